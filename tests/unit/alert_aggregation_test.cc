// Alert aggregation (issue 19): the key, the summary's Falco JSON, the counting in
// AlertStore::CommitDetection (exactly once across replays), and the alerts table of an
// older version upgraded in place.
#include "lib/alerts/alert_aggregation.h"

#include <stdlib.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <filesystem>
#include <string>
#include <vector>

#include "lib/alerts/alert_store.h"
#include "lib/base/clock.h"
#include "lib/store/event_store.h"

namespace driftwatch {
namespace {

using nlohmann::json;
using Kind = AlertStore::StoredResult::Kind;

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kNow = 1'764'320'000 * kSecond;  // the commits' clock
const AggregationOptions kOn{std::chrono::seconds(60), false};

// A drift exec alert of node n1's container: repeat `seq` of it.
Alert Drift(uint64_t seq, Priority p = Priority::kError) {
  Alert a;
  a.time_ns = kNow + static_cast<int64_t>(seq) * 1000;
  a.rule = "Package Manager Execution in Container";
  a.priority = p;
  a.message = "package manager run (seq " + std::to_string(seq) + ")";
  a.output_fields = {{"proc.name", AlertField::String("apk")},
                     {"container.id", AlertField::String("aaaaaaaaaaaa")},
                     {"evt.arg.flags", AlertField::String("EXE_LOWER_LAYER")}};
  a.hostname = a.node = "n1";
  a.container_id = std::string(64, 'a');
  a.subject = "/sbin/apk";
  a.event_key = "n1/boot/5/" + std::to_string(seq);
  return a;
}

TEST(AggregationKey, WhoIsAggregated) {
  const Alert a = Drift(1);
  EXPECT_FALSE(AggregationKey(a, kOn).empty());
  EXPECT_EQ(AggregationKey(a, kOn), AggregationKey(Drift(2), kOn));  // another event, same key
  EXPECT_EQ(AggregationKey(a, {std::chrono::seconds(0), true}), "");  // window 0: off
  // Critical and above only when asked.
  for (Priority p : {Priority::kCritical, Priority::kAlert, Priority::kEmergency}) {
    EXPECT_EQ(AggregationKey(Drift(1, p), kOn), "") << PriorityName(p);
    EXPECT_NE(AggregationKey(Drift(1, p), {std::chrono::seconds(60), true}), "");
  }
  EXPECT_NE(AggregationKey(Drift(1, Priority::kDebug), kOn), "");
  // The collector's own alerts never: each carries its own losses.
  Alert internal = Drift(1, Priority::kWarning);
  internal.source = "internal";
  EXPECT_EQ(AggregationKey(internal, {std::chrono::seconds(60), true}), "");
  // Each part of the key tells alerts apart.
  auto differs = [&](void (*change)(Alert*)) {
    Alert b = Drift(2);
    change(&b);
    return AggregationKey(b, kOn) != AggregationKey(a, kOn);
  };
  EXPECT_TRUE(differs([](Alert* b) { b->rule = "Other rule"; }));
  EXPECT_TRUE(differs([](Alert* b) { b->node = "n2"; }));
  EXPECT_TRUE(differs([](Alert* b) { b->container_id = std::string(64, 'b'); }));
  EXPECT_TRUE(differs([](Alert* b) { b->subject = "sha256:00ff"; }));
  // ... and parts do not run together.
  EXPECT_TRUE(differs([](Alert* b) {
    b->node = "n1" + std::string(64, 'a');
    b->container_id = "";
  }));
}

// Alert::subject from the event: the executable's sha256 when known, else its path, with
// the process's name (busybox's applets are different commands of one file).
TEST(AggregationKey, SubjectOfEvents) {
  v1::Event ev;
  ev.mutable_id()->set_node("n1");
  ev.set_container_id("cid");
  ev.mutable_exec()->set_exe("/tmp/x");
  ev.mutable_exec()->set_comm("x");
  RuleContext ctx;
  ctx.event = &ev;
  Alert a;
  FillAlertContext(ctx, &a);
  EXPECT_EQ(a.subject, "/tmp/x\nx");
  ctx.file.sha256 = "00ff";
  FillAlertContext(ctx, &a);
  EXPECT_EQ(a.subject, "sha256:00ff\nx");
  ev.mutable_exec()->set_comm("uname");
  FillAlertContext(ctx, &a);
  EXPECT_EQ(a.subject, "sha256:00ff\nuname");
  // A script: the file that ran, not its interpreter.
  ctx.file.sha256.clear();
  ev.mutable_exec()->set_exe_file("/tmp/run.sh");
  ev.mutable_exec()->set_comm("run.sh");
  FillAlertContext(ctx, &a);
  EXPECT_EQ(a.subject, "/tmp/run.sh\nrun.sh");
  ev.mutable_write()->set_path("/etc/passwd");
  FillAlertContext(ctx, &a);
  EXPECT_EQ(a.subject, "/etc/passwd");
  ev.mutable_write()->set_sha256(std::string(32, '\x01'));
  FillAlertContext(ctx, &a);
  std::string hex;
  for (int i = 0; i < 32; ++i) hex += "01";
  EXPECT_EQ(a.subject, "sha256:" + hex);
  ev.mutable_container()->set_id("cid");
  FillAlertContext(ctx, &a);
  EXPECT_EQ(a.subject, "");
}

TEST(AggregateJson, CountAndTimesInSortedOutputFields) {
  const Alert a = Drift(1);
  const std::string line = FalcoJson(a);
  const std::string agg = AggregateJson(line, 1000, kNow, kNow + 59 * kSecond);
  json j = json::parse(agg);
  EXPECT_EQ(j["output_fields"][kAggregateCountField], 1000);
  EXPECT_EQ(j["output_fields"][kAggregateFirstField], FormatIsoTime(kNow));
  EXPECT_EQ(j["output_fields"][kAggregateLastField], FormatIsoTime(kNow + 59 * kSecond));
  // Everything else as it was.
  json before = json::parse(line);
  j["output_fields"].erase(kAggregateCountField);
  j["output_fields"].erase(kAggregateFirstField);
  j["output_fields"].erase(kAggregateLastField);
  EXPECT_EQ(j, before);
  // In Falco's sorted order: container.id < driftwatch.* < evt.arg.flags < evt.time.
  const size_t c = agg.find("\"container.id\""), d = agg.find("\"driftwatch.count\""),
               f = agg.find("\"driftwatch.first_time\""), l = agg.find("\"driftwatch.last_time\""),
               e = agg.find("\"evt.arg.flags\"");
  EXPECT_LT(c, d);
  EXPECT_LT(d, f);
  EXPECT_LT(f, l);
  EXPECT_LT(l, e);
  // Once more: the fields replaced, not doubled.
  const std::string again = AggregateJson(agg, 1001, kNow, kNow);
  EXPECT_EQ(json::parse(again)["output_fields"][kAggregateCountField], 1001);
  EXPECT_EQ(again.size(), agg.size());
  // Values with quotes, commas and braces in strings are read past.
  Alert odd = a;
  odd.output_fields.emplace_back("proc.cmdline", AlertField::String("sh -c \"a,b}\":{x\\"));
  const std::string odd_agg = AggregateJson(FalcoJson(odd), 2, kNow, kNow);
  EXPECT_EQ(json::parse(odd_agg)["output_fields"]["proc.cmdline"], "sh -c \"a,b}\":{x\\");
  EXPECT_EQ(json::parse(odd_agg)["output_fields"][kAggregateCountField], 2);
  // Not ours: left as it is.
  EXPECT_EQ(AggregateJson("{\"rule\":\"x\"}", 2, 0, 0), "{\"rule\":\"x\"}");
  EXPECT_EQ(AggregateJson("{\"a\":1,\"output_fields\":{\"x", 2, 0, 0),
            "{\"a\":1,\"output_fields\":{\"x");
}

class AggregationStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "dw_aggregation_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    db_ = (dir_ / "collector.db").string();
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    store_.reset();
    auto st = AlertStore::Open(db_);
    ASSERT_TRUE(st) << st.error();
    store_ = std::move(*st);
  }
  // One detection commit of these alerts (and closes) at `now`, window 60 s.
  AlertStore::DetectionCommitted Commit(const std::vector<Alert>& alerts, int64_t now,
                                        std::vector<int64_t> close = {},
                                        const AggregationOptions& opt = kOn) {
    AlertStore::DetectionCommit c;
    for (const Alert& a : alerts) c.alerts.push_back({&a, FalcoJson(a), AggregationKey(a, opt)});
    c.now_ns = now;
    c.aggregate_window = opt.window;
    c.close = std::move(close);
    c.outputs = {"file:/x"};
    c.cursors["n1"] = static_cast<int64_t>(alerts.size());
    auto r = store_->CommitDetection(c);
    EXPECT_TRUE(r) << r.error();
    return r ? *r : AlertStore::DetectionCommitted{};
  }
  std::string Sql(const std::string& q) {
    sqlite3* db = nullptr;
    std::string out;
    EXPECT_EQ(sqlite3_open_v2(db_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_exec(
        db, q.c_str(),
        [](void* p, int n, char** v, char**) {
          auto* o = static_cast<std::string*>(p);
          for (int i = 0; i < n; ++i) *o += std::string(i ? "|" : (o->empty() ? "" : ";")) +
                                            (v[i] ? v[i] : "NULL");
          return 0;
        },
        &out, nullptr);
    sqlite3_close(db);
    return out;
  }
  std::vector<StoredAlert> Stored() {
    auto r = AlertReader::Open(db_);
    EXPECT_TRUE(r) << r.error();
    std::vector<StoredAlert> out;
    auto n = (*r)->Query({}, [&](const StoredAlert& a) { out.push_back(a); });
    EXPECT_TRUE(n) << n.error();
    return out;
  }

  std::filesystem::path dir_;
  std::string db_;
  std::unique_ptr<AlertStore> store_;
};

TEST_F(AggregationStoreTest, ThousandRepeatsAreOneAlertSentTwice) {
  std::vector<Alert> burst;
  for (uint64_t i = 1; i <= 1000; ++i) burst.push_back(Drift(i));
  // In three commits, the first one opening the aggregate.
  auto first = Commit({burst.begin(), burst.begin() + 300}, kNow);
  ASSERT_EQ(first.alerts.size(), 300u);
  EXPECT_EQ(first.alerts[0].kind, Kind::kNew);
  EXPECT_EQ(first.alerts[0].open_until_ns, kNow + 60 * kSecond);
  const int64_t id = first.alerts[0].id;
  for (size_t i = 1; i < 300; ++i) {
    EXPECT_EQ(first.alerts[i].kind, Kind::kRepeat);
    EXPECT_EQ(first.alerts[i].id, id);
  }
  Commit({burst.begin() + 300, burst.begin() + 700}, kNow + 10 * kSecond);
  Commit({burst.begin() + 700, burst.end()}, kNow + 59 * kSecond);
  EXPECT_EQ(Sql("SELECT count(*), sum(count) FROM alerts"), "1|1000");
  // The first alert went to the outbox at once; nothing for the repeats.
  EXPECT_EQ(Sql("SELECT alert_id FROM deliveries"), std::to_string(id));
  auto stored = Stored();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].count, 1000u);
  EXPECT_TRUE(stored[0].open);
  EXPECT_EQ(stored[0].first_ns, burst.front().time_ns);
  EXPECT_EQ(stored[0].last_ns, burst.back().time_ns);
  EXPECT_EQ(json::parse(stored[0].FullJson())["output_fields"][kAggregateCountField], 1000);
  EXPECT_EQ(json::parse(stored[0].json)["output"], json::parse(FalcoJson(burst[0]))["output"]);

  // The window ends: the summary goes to the outbox as -id.
  auto closed = Commit({}, kNow + 60 * kSecond, {id});
  ASSERT_EQ(closed.closed.size(), 1u);
  EXPECT_EQ(closed.closed[0].count, 1000u);
  json summary = json::parse(closed.closed[0].summary_json);
  EXPECT_EQ(summary["output_fields"][kAggregateCountField], 1000);
  EXPECT_EQ(summary["output_fields"][kAggregateLastField], FormatIsoTime(burst.back().time_ns));
  EXPECT_EQ(Sql("SELECT alert_id FROM deliveries ORDER BY alert_id"),
            std::to_string(-id) + ";" + std::to_string(id));
  auto pending = store_->Undelivered();
  ASSERT_TRUE(pending) << pending.error();
  ASSERT_EQ(pending->size(), 2u);
  EXPECT_EQ((*pending)[0].alert_id, id);  // the first alert before its summary
  EXPECT_EQ((*pending)[1].alert_id, -id);
  EXPECT_EQ((*pending)[1].json, closed.closed[0].summary_json);
  ASSERT_TRUE(store_->MarkDelivered({{-id, "file:/x"}}));
  EXPECT_EQ(Sql("SELECT alert_id FROM deliveries"), std::to_string(id));
  EXPECT_FALSE(Stored()[0].open);
  // Closed twice: nothing the second time.
  EXPECT_TRUE(Commit({}, kNow + 61 * kSecond, {id}).closed.empty());
}

TEST_F(AggregationStoreTest, ReplaysCountOnce) {
  auto r = Commit({Drift(1), Drift(2), Drift(3)}, kNow);
  EXPECT_EQ(r.alerts[2].kind, Kind::kRepeat);
  // The same events evaluated again (a restart before their cursor was known to be
  // committed; an exec looked at again): neither stored nor counted again.
  r = Commit({Drift(1), Drift(3), Drift(4)}, kNow + kSecond);
  EXPECT_EQ(r.alerts[0].kind, Kind::kDuplicate);
  EXPECT_EQ(r.alerts[1].kind, Kind::kDuplicate);
  EXPECT_EQ(r.alerts[2].kind, Kind::kRepeat);
  EXPECT_EQ(Sql("SELECT count(*), sum(count) FROM alerts"), "1|4");
  // A repeat without an event id cannot be told from another: counted.
  Alert anonymous = Drift(5);
  anonymous.event_key.clear();
  Commit({anonymous, anonymous}, kNow + kSecond);
  EXPECT_EQ(Sql("SELECT sum(count) FROM alerts"), "6");
}

TEST_F(AggregationStoreTest, FixedWindowsAndWhoStaysAlone) {
  // A steady stream: one alert per window, from the first alert's time, closed or not.
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = Commit({Drift(static_cast<uint64_t>(10 + i))}, kNow + i * 30 * kSecond);
    if (r.alerts[0].kind == Kind::kNew) ids.push_back(r.alerts[0].id);
  }
  // 0 s opens, 30 s counted; 60 s is past the first window: opens; 90 s counted; 120 s opens.
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(Sql("SELECT count FROM alerts ORDER BY id"), "2;2;1");
  // Critical: each on its own unless asked; so with the window 0.
  auto critical = [](uint64_t seq) {
    Alert a = Drift(seq, Priority::kCritical);
    a.rule = "Critical rule";
    return a;
  };
  Commit({critical(20), critical(21)}, kNow);
  Commit({Drift(22), Drift(23)}, kNow, {}, {std::chrono::seconds(0), false});
  EXPECT_EQ(Sql("SELECT count(*) FROM alerts WHERE agg_key = ''"), "4");
  Commit({critical(24), critical(25)}, kNow, {}, {std::chrono::seconds(60), true});
  EXPECT_EQ(Sql("SELECT count FROM alerts WHERE priority = 2 AND agg_key != ''"), "2");
  // Another container: its own aggregate.
  Alert other = Drift(30);
  other.container_id = std::string(64, 'b');
  EXPECT_EQ(Commit({other}, kNow + 121 * kSecond).alerts[0].kind, Kind::kNew);
}

TEST_F(AggregationStoreTest, OpenAggregatesOutliveTheConnection) {
  const int64_t id = Commit({Drift(1), Drift(2)}, kNow).alerts[0].id;
  Reopen();  // a restart (or kill -9: the commit is all there is)
  auto open = store_->OpenAggregates();
  ASSERT_TRUE(open) << open.error();
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].id, id);
  EXPECT_EQ((*open)[0].node, "n1");
  EXPECT_EQ((*open)[0].open_until_ns, kNow + 60 * kSecond);
  auto r = Commit({Drift(3)}, kNow + 5 * kSecond);
  EXPECT_EQ(r.alerts[0].kind, Kind::kRepeat);
  EXPECT_EQ(r.alerts[0].id, id);
  Commit({}, kNow + 60 * kSecond, {id});
  open = store_->OpenAggregates();
  ASSERT_TRUE(open);
  EXPECT_TRUE(open->empty());
}

// The alerts table as versions before aggregation made it, with a row and an undelivered
// alert: opened, it gains the columns in place and keeps everything.
TEST_F(AggregationStoreTest, OlderDatabaseUpgradedInPlace) {
  store_.reset();
  std::filesystem::remove(db_);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
  const char* old_schema = R"sql(
    CREATE TABLE alerts(id INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL,
      stored_ns INTEGER NOT NULL, node TEXT NOT NULL, container_id TEXT NOT NULL,
      container_name TEXT NOT NULL, pod_name TEXT NOT NULL, pod_namespace TEXT NOT NULL,
      rule TEXT NOT NULL, priority INTEGER NOT NULL, event_key TEXT NOT NULL,
      message TEXT NOT NULL, json TEXT NOT NULL);
    CREATE UNIQUE INDEX alerts_event_rule ON alerts(event_key, rule) WHERE event_key != '';
    CREATE TABLE deliveries(alert_id INTEGER NOT NULL, output TEXT NOT NULL,
      PRIMARY KEY(alert_id, output)) WITHOUT ROWID;
    INSERT INTO alerts VALUES(7, 100, 100, 'n1', 'cid', '', '', '', 'Old rule', 4, 'n1/b/0/1',
      'm', '{"output_fields":{"evt.time":100},"rule":"Old rule"}');
    INSERT INTO deliveries VALUES(7, 'file:/x');
  )sql";
  ASSERT_EQ(sqlite3_exec(db, old_schema, nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);

  // Read-only first (the CLI on a database an older collector still writes): as it is.
  auto stored = Stored();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].count, 1u);
  EXPECT_EQ(stored[0].first_ns, 100);
  EXPECT_EQ(Sql("SELECT count(*) FROM pragma_table_info('alerts') WHERE name = 'count'"), "0");

  Reopen();
  EXPECT_EQ(Sql("SELECT count(*) FROM pragma_table_info('alerts') WHERE name IN ('count', "
                "'first_ns', 'last_ns', 'agg_key', 'open_until_ns')"),
            "5");
  EXPECT_EQ(Sql("SELECT id, count, open_until_ns FROM alerts"), "7|1|0");
  stored = Stored();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].count, 1u);
  EXPECT_EQ(stored[0].first_ns, 100);  // 0 in the row: the alert's time
  EXPECT_EQ(stored[0].last_ns, 100);
  EXPECT_EQ(stored[0].FullJson(), stored[0].json);
  auto pending = store_->Undelivered();
  ASSERT_TRUE(pending) << pending.error();
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].alert_id, 7);
  // Old rows are still known by (event_key, rule); new ones aggregate.
  Alert old;
  old.rule = "Old rule";
  old.event_key = "n1/b/0/1";
  EXPECT_EQ(Commit({old}, kNow).alerts[0].kind, Kind::kDuplicate);
  Commit({Drift(1), Drift(2)}, kNow);
  EXPECT_EQ(Sql("SELECT count FROM alerts ORDER BY id"), "1;2");
  // Opened again: nothing to add, nothing changed.
  Reopen();
  EXPECT_EQ(Sql("SELECT count FROM alerts ORDER BY id"), "1;2");
}

// Allowed drift (issue 19): counted per day, workload, rule, what allowed it and subject, in
// the detection commit's transaction; read back by AlertReader::QueryAllowed.
TEST_F(AggregationStoreTest, AllowedDriftSummarizedPerWorkloadAndDay) {
  std::vector<Alert> matches;
  for (uint64_t i = 1; i <= 5; ++i) {
    Alert a = Drift(i);
    a.pod_namespace = "ci";
    a.pod_name = "build-" + std::to_string(i);  // a pod per run: one workload
    a.container_name = "build";
    matches.push_back(a);
  }
  Alert next_day = Drift(6);
  next_day.time_ns = kNow + 86400 * kSecond;
  next_day.pod_namespace = "ci";
  next_day.container_name = "build";
  AlertStore::DetectionCommit c;
  for (const Alert& a : matches) c.allowed.push_back({&a, "policy ci", "build", "golang:1"});
  c.allowed.push_back({&next_day, "policy ci", "build", "golang:1"});
  c.allowed.push_back({&matches[0], "exception by_name", "build", "golang:1"});
  c.cursors["n1"] = 6;
  ASSERT_TRUE(store_->CommitDetection(c));
  auto r = AlertReader::Open(db_);
  ASSERT_TRUE(r) << r.error();
  std::vector<StoredAllowedDrift> rows;
  auto n = (*r)->QueryAllowed({}, [&](const StoredAllowedDrift& d) { rows.push_back(d); });
  ASSERT_TRUE(n) << n.error();
  ASSERT_EQ(rows.size(), 3u);
  const StoredAllowedDrift& first = rows[0].allowed_by == "policy ci" ? rows[0] : rows[1];
  EXPECT_EQ(first.count, 5u);
  EXPECT_EQ(first.workload, "build");
  EXPECT_EQ(first.pod_namespace, "ci");
  EXPECT_EQ(first.first_ns, matches[0].time_ns);
  EXPECT_EQ(first.last_ns, matches[4].time_ns);
  EXPECT_EQ(first.pod_name, "build-5");  // the latest
  EXPECT_EQ(first.image, "golang:1");
  EXPECT_EQ(rows[2].count, 1u);  // the next day: a row of its own
  EXPECT_NE(rows[2].day, first.day);
  // Filters: namespace, since.
  AllowedDriftQuery q;
  q.ns = "prod";
  EXPECT_EQ(*(*r)->QueryAllowed(q, [](const StoredAllowedDrift&) {}), 0u);
  q = {};
  q.since_ns = kNow + 86400 * kSecond;
  EXPECT_EQ(*(*r)->QueryAllowed(q, [](const StoredAllowedDrift&) {}), 1u);
  // Nothing of it was an alert.
  EXPECT_TRUE(Stored().empty());
}

// The summary is bounded like the alerts: by age (its last event) and by row count.
TEST_F(AggregationStoreTest, AllowedDriftRetention) {
  Alert old_row = Drift(1);
  Alert b = Drift(2), c = Drift(3);
  b.time_ns = c.time_ns = NowNs();
  b.subject = "/workspace/out/b";
  c.subject = "/workspace/out/c";
  AlertStore::DetectionCommit commit;
  for (const Alert* a : {&old_row, &b, &c}) commit.allowed.push_back({a, "policy ci", "build", ""});
  ASSERT_TRUE(store_->CommitDetection(commit));
  StoreOptions so;
  so.path = db_;
  so.retention_age = std::chrono::hours(1);
  so.retention_interval = std::chrono::hours(1);  // called below
  so.retention_max_alerts = 1;
  auto events = EventStore::Open(so);
  ASSERT_TRUE(events) << events.error();
  ASSERT_TRUE((*events)->EnforceRetention(NowNs()));
  EXPECT_EQ(Sql("SELECT subject FROM allowed_drift"), "/workspace/out/c");
}

}  // namespace
}  // namespace driftwatch
