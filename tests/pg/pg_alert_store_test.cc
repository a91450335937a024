// PgAlertStore and PgAlertReader (lib/alerts/pg_alert_*) on a real PostgreSQL
// (pg_store_test.sh): detection commits stored once across replays and across two stores
// committing at once, aggregation, fencing by lease, the outbox per owner, inventories, a
// lost connection, and the CLI's queries giving the rows SQLite's AlertReader gives. Leaves
// the database dw_alert_reader for pg_store_test.sh's CLI check.
#include "lib/alerts/pg_alert_store.h"

#include <stdlib.h>

#include <gtest/gtest.h>

#include <barrier>
#include <filesystem>
#include <set>
#include <thread>

#include "driftwatch/v1/collector.pb.h"
#include "lib/alerts/alert_aggregation.h"
#include "lib/alerts/pg_alert_reader.h"
#include "lib/store/pg_lease.h"
#include "lib/store/pg_schema.h"
#include "pg/pg_test_db.h"

namespace driftwatch {
namespace {

using Kind = DetectionStore::StoredResult::Kind;
using std::chrono::milliseconds;

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kNow = 1'764'320'000 * kSecond;
const AggregationOptions kAggregate{std::chrono::seconds(60), false};

// An alert of `node`'s container `cid` about event `seq` of the node's sensor run.
Alert MakeAlert(const std::string& node, uint64_t seq, const std::string& rule = "Drift Exec",
                const std::string& cid = std::string(64, 'a'),
                Priority p = Priority::kWarning) {
  Alert a;
  a.time_ns = kNow + static_cast<int64_t>(seq) * 1000;
  a.rule = rule;
  a.priority = p;
  a.message = "exec of a dropped binary (seq " + std::to_string(seq) + ")";
  a.output_fields = {{"proc.name", AlertField::String("sh")},
                     {"container.id", AlertField::String(cid.substr(0, 12))}};
  a.hostname = a.node = node;
  a.container_id = cid;
  a.container_name = "web";
  a.pod_name = "web-0";
  a.pod_namespace = "shop";
  a.subject = "/tmp/x";
  a.event_key = node + "/boot/5/" + std::to_string(seq);
  return a;
}

int64_t One(PgConn* c, const std::string& sql) {
  auto r = c->Exec("query", sql);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  if (!r || PQntuples(r->get()) == 0 || PQgetisnull(r->get(), 0, 0)) return -1;
  return PgGetInt(r->get(), 0, 0);
}

class PgAlertStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(PgBaseUri().empty())
        << "DW_PG_URI is not set: run tests/integration/pg_store_test.sh";
    uri_ = FreshPgDatabase("dw_alerts");
    ASSERT_FALSE(uri_.empty());
    a_ = Open("collector-a");
    b_ = Open("collector-b");
    ASSERT_TRUE(a_ && b_);
    auto c = PgConn::Connect(uri_);
    ASSERT_TRUE(c.has_value()) << c.error();
    sql_ = std::move(*c);
  }
  std::unique_ptr<PgAlertStore> Open(const std::string& owner) {
    auto s = PgAlertStore::Open(uri_, owner);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
    return s ? std::move(*s) : nullptr;
  }
  // A commit of `alerts` at `now` (window 60 s) by `store`; the alerts must outlive it.
  static DetectionStore::DetectionCommit Commit(const std::vector<Alert>& alerts, int64_t now,
                                                std::vector<int64_t> close = {}) {
    DetectionStore::DetectionCommit c;
    for (const Alert& a : alerts)
      c.alerts.push_back({&a, FalcoJson(a), AggregationKey(a, kAggregate)});
    c.now_ns = now;
    c.aggregate_window = kAggregate.window;
    c.close = std::move(close);
    c.outputs = {"file:/x", "webhook"};
    return c;
  }
  Lease Take(const std::string& node, const std::string& owner) {
    auto l = AcquireLease(sql_.get(), node, owner, milliseconds(60000));
    EXPECT_TRUE(l.has_value() && l->has_value()) << node;
    return l && *l ? **l : Lease{};
  }
  std::string uri_;
  std::unique_ptr<PgAlertStore> a_, b_;
  std::unique_ptr<PgConn> sql_;
};

TEST_F(PgAlertStoreTest, CommitStoresOnceAndAReplayStoresNothing) {
  std::vector<Alert> alerts = {MakeAlert("n1", 1), MakeAlert("n1", 2, "Other Rule"),
                               MakeAlert("n2", 3)};
  auto c = Commit(alerts, kNow);
  for (auto& n : c.alerts) n.aggregate_key.clear();  // each stored on its own
  c.cursors = {{"n1", 7}, {"n2", 3}, {"", 9}};
  const std::string blob("loss\0totals\xff", 12);
  c.losses = {{"n1", blob}};
  auto r = a_->CommitDetection(c);
  ASSERT_TRUE(r.has_value()) << r.error();
  ASSERT_EQ(r->alerts.size(), 3u);
  std::set<int64_t> ids;
  for (const auto& s : r->alerts) {
    EXPECT_EQ(s.kind, Kind::kNew);
    EXPECT_EQ(s.open_until_ns, 0);
    ids.insert(s.id);
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM alerts"), 3);
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM deliveries"), 6);
  EXPECT_EQ(One(sql_.get(), "SELECT id FROM detect_cursors WHERE node = 'n1'"), 7);
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM detect_cursors WHERE node = ''"), 0)
      << "SQLite's global floor is not a PostgreSQL cursor";
  auto losses = a_->NodeLosses();
  ASSERT_TRUE(losses.has_value()) << losses.error();
  EXPECT_EQ((*losses)["n1"], blob);

  // The same commit again (a restart replaying it): nothing new, the cursor not moved back.
  c.cursors = {{"n1", 5}};
  r = a_->CommitDetection(c);
  ASSERT_TRUE(r.has_value()) << r.error();
  for (const auto& s : r->alerts) {
    EXPECT_EQ(s.kind, Kind::kDuplicate);
    EXPECT_EQ(s.id, 0);
  }
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM alerts"), 3);
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM deliveries"), 6);
  EXPECT_EQ(One(sql_.get(), "SELECT id FROM detect_cursors WHERE node = 'n1'"), 7);

  // Insert outside a commit: the same unique key.
  auto fresh = a_->Insert(alerts[0], FalcoJson(alerts[0]));
  ASSERT_TRUE(fresh.has_value()) << fresh.error();
  EXPECT_FALSE(*fresh);
  const Alert other = MakeAlert("n1", 99);
  fresh = a_->Insert(other, FalcoJson(other));
  ASSERT_TRUE(fresh.has_value());
  EXPECT_TRUE(*fresh);

  // Bytes that are not UTF-8 (a file name's) are stored, not a commit failing forever.
  Alert raw = MakeAlert("n1", 100);
  raw.message = std::string("wrote /tmp/\xff\xfe\0x", 15);
  std::vector<Alert> one = {raw};
  r = a_->CommitDetection(Commit(one, kNow));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->alerts[0].kind, Kind::kNew);

  // SQLite's callback has no place on PostgreSQL.
  auto bad = Commit(one, kNow);
  bad.extra = [](sqlite3*) -> Result<> { return {}; };
  auto refused = a_->CommitDetection(bad);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidInput);
}

TEST_F(PgAlertStoreTest, TwoStoresCommittingTheSameAlertsStoreEachOnce) {
  // Each round both stores commit, at once, the same 3 repeats of one aggregate (window long
  // enough for all rounds) and then 5 alerts stored on their own. The repeats first: were
  // their counting not one commit after the other, both would count them (the unique index
  // of the plain alerts alone would serialize the commits only from the first plain one).
  constexpr int kRounds = 30;
  std::vector<std::vector<Alert>> rounds(kRounds);
  for (int i = 0; i < kRounds; ++i) {
    for (int k = 0; k < 8; ++k) {
      Alert a = MakeAlert("n1", static_cast<uint64_t>(i * 8 + k + 1));
      if (k >= 3) a.rule = "Plain " + std::to_string(k);
      rounds[i].push_back(a);
    }
  }
  std::barrier sync(2);
  struct Tally {
    int fresh = 0, repeats = 0, duplicates = 0;
    std::string error;
  };
  Tally tally[2];
  auto run = [&](PgAlertStore* s, Tally* t) {
    for (int i = 0; i < kRounds; ++i) {
      auto c = Commit(rounds[i], kNow);
      for (size_t k = 3; k < 8; ++k) c.alerts[k].aggregate_key.clear();
      sync.arrive_and_wait();
      auto r = s->CommitDetection(c);
      if (!r) {
        t->error = r.error().message();
        sync.arrive_and_drop();
        return;
      }
      for (const auto& st : r->alerts) {
        if (st.kind == Kind::kNew) ++t->fresh;
        if (st.kind == Kind::kRepeat) ++t->repeats;
        if (st.kind == Kind::kDuplicate) ++t->duplicates;
      }
    }
  };
  std::thread ta(run, a_.get(), &tally[0]);
  std::thread tb(run, b_.get(), &tally[1]);
  ta.join();
  tb.join();
  ASSERT_EQ(tally[0].error, "");
  ASSERT_EQ(tally[1].error, "");
  EXPECT_EQ(tally[0].fresh + tally[1].fresh, 5 * kRounds + 1);
  EXPECT_EQ(tally[0].repeats + tally[1].repeats, 3 * kRounds - 1);
  EXPECT_EQ(tally[0].duplicates + tally[1].duplicates, 8 * kRounds);
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM alerts"), 5 * kRounds + 1);
  EXPECT_EQ(One(sql_.get(), "SELECT count FROM alerts WHERE agg_key <> '' AND rule = 'Drift Exec'"),
            3 * kRounds);
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM alert_repeats"), 3 * kRounds - 1);
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM deliveries"), 2 * (5 * kRounds + 1));
}

TEST_F(PgAlertStoreTest, AggregationCountsRepeatsOnceAndClosesWithASummary) {
  std::vector<Alert> first = {MakeAlert("n1", 1)};
  auto r = a_->CommitDetection(Commit(first, kNow));
  ASSERT_TRUE(r.has_value()) << r.error();
  ASSERT_EQ(r->alerts[0].kind, Kind::kNew);
  const int64_t id = r->alerts[0].id;
  EXPECT_EQ(r->alerts[0].open_until_ns, kNow + 60 * kSecond);
  std::vector<Alert> more = {MakeAlert("n1", 2), MakeAlert("n1", 3)};
  r = a_->CommitDetection(Commit(more, kNow + kSecond));
  ASSERT_TRUE(r.has_value()) << r.error();
  for (const auto& s : r->alerts) {
    EXPECT_EQ(s.kind, Kind::kRepeat);
    EXPECT_EQ(s.id, id);
  }
  // Replayed: counted once.
  r = a_->CommitDetection(Commit(more, kNow + 2 * kSecond));
  ASSERT_TRUE(r.has_value());
  for (const auto& s : r->alerts) EXPECT_EQ(s.kind, Kind::kDuplicate);
  r = a_->CommitDetection(Commit(first, kNow + 2 * kSecond));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->alerts[0].kind, Kind::kDuplicate);
  EXPECT_EQ(One(sql_.get(), "SELECT count FROM alerts WHERE id = " + std::to_string(id)), 3);
  auto open = a_->OpenAggregates();
  ASSERT_TRUE(open.has_value()) << open.error();
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].id, id);
  EXPECT_EQ((*open)[0].node, "n1");

  // Closed: the summary, with one delivery per output.
  std::vector<Alert> none;
  r = a_->CommitDetection(Commit(none, kNow + 61 * kSecond, {id}));
  ASSERT_TRUE(r.has_value()) << r.error();
  ASSERT_EQ(r->closed.size(), 1u);
  EXPECT_EQ(r->closed[0].count, 3u);
  EXPECT_EQ(r->closed[0].summary_json,
            AggregateJson(FalcoJson(first[0]), 3, first[0].time_ns, more[1].time_ns));
  EXPECT_NE(r->closed[0].summary_json.find("\"driftwatch.count\":3"), std::string::npos);
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM deliveries WHERE alert_id = -" +
                                std::to_string(id)),
            2);
  // Closed once; a repeat now opens a new aggregate.
  r = a_->CommitDetection(Commit(none, kNow + 62 * kSecond, {id}));
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->closed.empty());
  std::vector<Alert> later = {MakeAlert("n1", 4)};
  r = a_->CommitDetection(Commit(later, kNow + 63 * kSecond));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->alerts[0].kind, Kind::kNew);
  EXPECT_NE(r->alerts[0].id, id);
  // An aggregate of one closes without a summary.
  const int64_t single = r->alerts[0].id;
  r = a_->CommitDetection(Commit(none, kNow + 200 * kSecond, {single}));
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->closed.size(), 1u);
  EXPECT_EQ(r->closed[0].count, 1u);
  EXPECT_EQ(r->closed[0].summary_json, "");
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM deliveries WHERE alert_id = -" +
                                std::to_string(single)),
            0);
}

TEST_F(PgAlertStoreTest, ACommitWhoseLeaseWasTakenStoresNothing) {
  const Lease mine = Take("n1", "collector-a");
  std::vector<Alert> alerts = {MakeAlert("n1", 1)};
  auto c = Commit(alerts, kNow);
  c.leases = {mine};
  c.lease_ttl = milliseconds(60000);
  c.cursors = {{"n1", 1}};
  auto r = a_->CommitDetection(c);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->alerts[0].kind, Kind::kNew);
  // Another collector took the node over (the lease ran out meanwhile).
  ASSERT_TRUE(sql_->Run("expire", "UPDATE detect_leases SET expires_ns = 0"));
  const Lease theirs = Take("n1", "collector-b");
  EXPECT_EQ(theirs.epoch, mine.epoch + 1);
  std::vector<Alert> next = {MakeAlert("n1", 2)};
  c = Commit(next, kNow);
  c.leases = {mine};
  c.lease_ttl = milliseconds(60000);
  c.cursors = {{"n1", 2}};
  c.losses = {{"n1", "x"}};
  r = a_->CommitDetection(c);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.error().message().find("lease of node n1 lost"), std::string::npos) << r.error();
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM alerts"), 1);
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM deliveries"), 2);
  EXPECT_EQ(One(sql_.get(), "SELECT id FROM detect_cursors WHERE node = 'n1'"), 1);
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM node_losses"), 0);
  // The store goes on: the new owner's commit of the same step is stored.
  c.leases = {theirs};
  r = b_->CommitDetection(c);
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->alerts[0].kind, Kind::kRepeat);  // of the aggregate the first commit opened
  EXPECT_EQ(One(sql_.get(), "SELECT count FROM alerts"), 2);
  EXPECT_EQ(One(sql_.get(), "SELECT id FROM detect_cursors WHERE node = 'n1'"), 2);
}

TEST_F(PgAlertStoreTest, UndeliveredIsTheOwnersAndMarkDeliveredRemoves) {
  std::vector<Alert> alerts = {MakeAlert("n1", 1), MakeAlert("n2", 1),
                               MakeAlert("n3", 1)};
  auto c = Commit(alerts, kNow);
  for (auto& n : c.alerts) n.aggregate_key.clear();
  auto r = a_->CommitDetection(c);
  ASSERT_TRUE(r.has_value()) << r.error();
  Take("n1", "collector-a");
  Take("n2", "collector-b");  // n3: nobody's
  auto mine = a_->Undelivered();
  ASSERT_TRUE(mine.has_value()) << mine.error();
  ASSERT_EQ(mine->size(), 2u);
  for (const auto& p : *mine) {
    EXPECT_EQ(p.node, "n1");
    EXPECT_EQ(p.alert_id, r->alerts[0].id);
    EXPECT_EQ(p.json, c.alerts[0].json);
    EXPECT_EQ(p.container_name, "web");
  }
  EXPECT_EQ((*mine)[0].output, "file:/x");
  EXPECT_EQ((*mine)[1].output, "webhook");
  auto theirs = b_->Undelivered();
  ASSERT_TRUE(theirs.has_value());
  ASSERT_EQ(theirs->size(), 2u);
  EXPECT_EQ((*theirs)[0].node, "n2");
  // Delivered to one output: the other is still to do.
  ASSERT_TRUE(a_->MarkDelivered({{r->alerts[0].id, "file:/x"}}));
  mine = a_->Undelivered();
  ASSERT_TRUE(mine.has_value());
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ((*mine)[0].output, "webhook");
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM deliveries"), 5);
  // An expired lease: not this collector's to deliver any more.
  ASSERT_TRUE(sql_->Run("expire", "UPDATE detect_leases SET expires_ns = 0 WHERE node = 'n1'"));
  mine = a_->Undelivered();
  ASSERT_TRUE(mine.has_value());
  EXPECT_TRUE(mine->empty());
}

TEST_F(PgAlertStoreTest, InventoriesAreTrimmedToTheNewest) {
  for (int i = 0; i < DetectionStore::kInventoriesKept + 3; ++i) {
    StoredInventory inv;
    inv.taken_ns = kNow + i;
    inv.node = "n1";
    inv.container_id = std::string(64, 'a');
    inv.container_name = "web";
    inv.rules = "Drift Exec";
    inv.entries = static_cast<uint64_t>(i);
    inv.reply = std::string("reply\0", 6) + std::to_string(i);
    ASSERT_TRUE(a_->InsertInventory(inv));
  }
  StoredInventory other;
  other.taken_ns = kNow;
  other.node = "n1";
  other.container_id = std::string(64, 'b');
  ASSERT_TRUE(a_->InsertInventory(other));
  auto reader = PgAlertReader::Open(uri_);
  ASSERT_TRUE(reader.has_value()) << reader.error();
  InventoryQuery q;
  q.container = "aaaa";
  std::vector<StoredInventory> got;
  auto n = (*reader)->QueryInventories(q, [&](const StoredInventory& i) { got.push_back(i); });
  ASSERT_TRUE(n.has_value()) << n.error();
  ASSERT_EQ(got.size(), static_cast<size_t>(DetectionStore::kInventoriesKept));
  EXPECT_EQ(got.front().entries, 3u);  // the oldest three dropped
  EXPECT_EQ(got.back().entries, static_cast<uint64_t>(DetectionStore::kInventoriesKept + 2));
  EXPECT_EQ(got.back().reply, std::string("reply\0", 6) + "12");
  EXPECT_EQ(One(sql_.get(), "SELECT count(*) FROM inventories"),
            DetectionStore::kInventoriesKept + 1);
}

TEST_F(PgAlertStoreTest, ALostConnectionIsReportedAndTheNextCallReconnects) {
  std::vector<Alert> alerts = {MakeAlert("n1", 1)};
  ASSERT_TRUE(a_->CommitDetection(Commit(alerts, kNow)));
  const int pid = a_->backend_pid();
  ASSERT_NE(pid, 0);
  ASSERT_TRUE(sql_->Exec("end the store's session", "SELECT pg_terminate_backend($1)",
                         {std::to_string(pid)}));
  std::vector<Alert> next = {MakeAlert("n1", 2)};
  auto r = a_->CommitDetection(Commit(next, kNow));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error();
  EXPECT_EQ(r.error().message().find(PgBaseUri().substr(PgBaseUri().find("://dw:") + 6, 10)),
            std::string::npos)
      << "the password is in: " << r.error();
  r = a_->CommitDetection(Commit(next, kNow));
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(r->alerts[0].kind, Kind::kRepeat);
  EXPECT_NE(a_->backend_pid(), pid);
  ASSERT_TRUE(sql_->Exec("end it again", "SELECT pg_terminate_backend($1)",
                         {std::to_string(a_->backend_pid())}));
  auto open = a_->OpenAggregates();
  ASSERT_FALSE(open.has_value());
  EXPECT_EQ(open.error().code(), ErrorCode::kUnavailable);
  open = a_->OpenAggregates();
  ASSERT_TRUE(open.has_value()) << open.error();
  EXPECT_EQ(open->size(), 1u);
}

TEST(PgAlertReaderTest, AStoreWithoutTheAlertTablesReadsAsEmpty) {
  ASSERT_FALSE(PgBaseUri().empty());
  const std::string uri = FreshPgDatabase("dw_alerts_v1");
  ASSERT_FALSE(uri.empty());
  auto c = PgConn::Connect(uri);
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(MigratePg(c->get(), PgStoreMigrations().first(1), "test"));
  auto r = OpenAlertQueries(uri);
  ASSERT_TRUE(r.has_value()) << r.error();
  auto n = (*r)->Query({}, [](const StoredAlert&) {});
  ASSERT_TRUE(n.has_value()) << n.error();
  EXPECT_EQ(*n, 0u);
  auto other = OpenAlertQueries(PgBaseUri().substr(0, PgBaseUri().rfind('/') + 1) + "postgres");
  ASSERT_FALSE(other.has_value());
  EXPECT_NE(other.error().message().find("not a driftwatch store"), std::string::npos)
      << other.error();
}

// The same alerts written to SQLite's AlertStore and to PgAlertStore: every filter of the
// CLI gives the same rows from AlertReader and from PgAlertReader.
TEST(PgAlertReaderTest, EveryFilterGivesWhatSqliteGives) {
  ASSERT_FALSE(PgBaseUri().empty());
  const std::string uri = FreshPgDatabase("dw_alert_reader");
  ASSERT_FALSE(uri.empty());
  char tmpl[] = "/tmp/dw_pg_alerts_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir = tmpl;
  const std::string file = (dir / "collector.db").string();
  auto pg = PgAlertStore::Open(uri, "test");
  ASSERT_TRUE(pg.has_value()) << pg.error();
  auto lite = AlertStore::Open(file);
  ASSERT_TRUE(lite.has_value()) << lite.error();

  const std::string web(64, 'a'), api = "abcd" + std::string(60, '1');
  std::vector<Alert> alerts;
  for (uint64_t i = 1; i <= 12; ++i) {
    const std::string node = i % 3 == 0 ? "n2" : "n1";
    const std::string cid = i % 4 == 0 ? "host" : i % 2 == 0 ? api : web;
    Alert a = MakeAlert(node, i, i % 5 == 0 ? "Sensitive Read" : "Drift Exec", cid,
                        static_cast<Priority>(i % 8));
    if (cid == api) {
      a.container_name = "api";
      a.pod_name = "api-1";
      a.pod_namespace = "billing";
    } else if (cid == "host") {
      a.container_name = a.pod_name = a.pod_namespace = "";
    }
    alerts.push_back(a);
  }
  // Three repeats of one aggregate (count 4 in the first alert's row).
  for (uint64_t i = 13; i <= 16; ++i) alerts.push_back(MakeAlert("n1", i, "Repeated"));
  DetectionStore::DetectionCommit c;
  for (const Alert& a : alerts) {
    c.alerts.push_back({&a, FalcoJson(a), a.rule == "Repeated" ? "agg-1" : ""});
  }
  c.now_ns = kNow;
  c.aggregate_window = std::chrono::seconds(60);
  c.outputs = {"file:/x"};
  Alert allowed1 = MakeAlert("n1", 20), allowed2 = MakeAlert("n2", 21);
  allowed2.pod_name = "api-1";
  allowed2.pod_namespace = "billing";
  c.allowed = {{&allowed1, "exception trusted", "web", "img:1"},
               {&allowed1, "exception trusted", "web", "img:1"},
               {&allowed2, "policy apk", "api", "img:2"}};
  for (DetectionStore* s : {static_cast<DetectionStore*>(pg->get()),
                            static_cast<DetectionStore*>(lite->get())}) {
    auto r = s->CommitDetection(c);
    ASSERT_TRUE(r.has_value()) << r.error();
    for (int i = 0; i < 3; ++i) {
      StoredInventory inv;
      inv.taken_ns = kNow + i;
      inv.node = i == 2 ? "n2" : "n1";
      inv.container_id = i == 1 ? api : web;
      inv.container_name = i == 1 ? "api" : "web";
      inv.pod_name = i == 1 ? "api-1" : "web-0";
      inv.pod_namespace = "shop";
      inv.rules = "Drift Exec";
      inv.entries = static_cast<uint64_t>(i);
      v1::InventoryReply reply;  // one that parses: the CLI prints it
      reply.set_command_id(static_cast<uint64_t>(i) + 1);
      reply.set_container_id(inv.container_id);
      inv.reply = reply.SerializeAsString();
      ASSERT_TRUE(s->InsertInventory(inv));
    }
  }
  auto pr = OpenAlertQueries(uri);
  ASSERT_TRUE(pr.has_value()) << pr.error();
  auto sr = OpenAlertQueries(file);
  ASSERT_TRUE(sr.has_value()) << sr.error();

  auto rows = [](AlertQueries* r, const AlertQuery& q) {
    std::vector<std::string> out;
    auto n = r->Query(q, [&](const StoredAlert& a) {
      out.push_back(std::to_string(a.id) + "|" + std::to_string(a.time_ns) + "|" + a.node +
                    "|" + a.container_id + "|" + a.container_name + "|" + a.pod_name + "|" +
                    a.pod_namespace + "|" + a.rule + "|" +
                    std::to_string(static_cast<int>(a.priority)) + "|" + a.message + "|" +
                    a.FullJson() + "|" + std::to_string(a.count) + "|" +
                    std::to_string(a.first_ns) + "|" + std::to_string(a.last_ns) + "|" +
                    (a.open ? "open" : "closed"));
    });
    EXPECT_TRUE(n.has_value()) << (n ? "" : n.error().message());
    if (n) {
      EXPECT_EQ(*n, out.size());
    }
    return out;
  };
  std::vector<std::pair<std::string, AlertQuery>> queries;
  queries.push_back({"all", {}});
  AlertQuery q;
  q.node = "n2";
  queries.push_back({"node", q});
  q = {};
  q.container = "abcd";
  queries.push_back({"container prefix", q});
  q.container = web;
  queries.push_back({"container id", q});
  q.container = "ab%";
  queries.push_back({"container: text, not a pattern", q});
  q = {};
  q.pod = "api-1";
  queries.push_back({"pod", q});
  q.pod = "billing/api-1";
  queries.push_back({"namespace/pod", q});
  q.pod = "shop/api-1";
  queries.push_back({"namespace/pod, none", q});
  q = {};
  q.rule = "Sensitive Read";
  queries.push_back({"rule", q});
  q = {};
  q.min_priority = Priority::kError;
  queries.push_back({"priority", q});
  q = {};
  q.since_ns = kNow + 5000;
  q.until_ns = kNow + 9000;
  queries.push_back({"since/until", q});
  q = {};
  q.limit = 4;
  queries.push_back({"limit", q});
  q.node = "n1";
  q.min_priority = Priority::kNotice;
  queries.push_back({"node, priority, limit", q});
  size_t total = 0;
  for (const auto& [name, query] : queries) {
    const auto want = rows(sr->get(), query);
    const auto got = rows(pr->get(), query);
    EXPECT_EQ(got, want) << name;
    total += got.size();
  }
  EXPECT_EQ(rows(pr->get(), {}).size(), 13u);  // 12 alerts and the aggregate's row
  EXPECT_EQ(rows(pr->get(), queries[4].second).size(), 0u);
  EXPECT_EQ(rows(pr->get(), queries[11].second).size(), 4u);
  EXPECT_GT(total, 30u);

  auto allowed = [](AlertQueries* r, const AllowedDriftQuery& q) {
    std::vector<std::string> out;
    auto n = r->QueryAllowed(q, [&](const StoredAllowedDrift& d) {
      out.push_back(d.day + "|" + d.node + "|" + d.pod_namespace + "|" + d.workload + "|" +
                    d.image + "|" + d.allowed_by + "|" + d.subject + "|" +
                    std::to_string(d.count) + "|" + std::to_string(d.first_ns) + "|" +
                    std::to_string(d.last_ns) + "|" + d.pod_name + "|" + d.message);
    });
    EXPECT_TRUE(n.has_value()) << (n ? "" : n.error().message());
    return out;
  };
  AllowedDriftQuery aq;
  EXPECT_EQ(allowed(pr->get(), aq), allowed(sr->get(), aq));
  EXPECT_EQ(allowed(pr->get(), aq).size(), 2u);
  aq.pod = "billing/api-1";
  EXPECT_EQ(allowed(pr->get(), aq), allowed(sr->get(), aq));
  EXPECT_EQ(allowed(pr->get(), aq).size(), 1u);
  aq = {};
  aq.ns = "shop";
  aq.limit = 1;
  EXPECT_EQ(allowed(pr->get(), aq), allowed(sr->get(), aq));

  auto inventories = [](AlertQueries* r, const InventoryQuery& q) {
    std::vector<std::string> out;
    auto n = r->QueryInventories(q, [&](const StoredInventory& i) {
      out.push_back(std::to_string(i.taken_ns) + "|" + i.node + "|" + i.container_id + "|" +
                    i.container_name + "|" + i.pod_name + "|" + i.reply);
    });
    EXPECT_TRUE(n.has_value()) << (n ? "" : n.error().message());
    return out;
  };
  InventoryQuery iq;
  EXPECT_EQ(inventories(pr->get(), iq), inventories(sr->get(), iq));
  EXPECT_EQ(inventories(pr->get(), iq).size(), 3u);
  iq.node = "n1";
  iq.container = "aaaa";
  EXPECT_EQ(inventories(pr->get(), iq), inventories(sr->get(), iq));
  EXPECT_EQ(inventories(pr->get(), iq).size(), 1u);
  iq = {};
  iq.name = "api";
  iq.pod = "shop/api-1";
  EXPECT_EQ(inventories(pr->get(), iq), inventories(sr->get(), iq));
  iq = {};
  iq.limit = 2;
  EXPECT_EQ(inventories(pr->get(), iq), inventories(sr->get(), iq));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace driftwatch
