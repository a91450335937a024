// PgEventStore against a real PostgreSQL (tests/integration/pg_store_test.sh starts it and
// sets DW_PG_URI): exactly once within one store, across two stores ("collectors") sharing a
// database, with two writers on one run, and across a writer connection killed mid-stream.
// Each test works in a database of its own.
#include "lib/store/pg_event_store.h"
#include "lib/store/pg_schema.h"
#include "pg/pg_test_db.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "lib/base/clock.h"

namespace driftwatch {
namespace {


int64_t One(PgConn* c, const std::string& sql) {
  auto r = c->Exec("query", sql);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  if (!r || PQntuples(r->get()) == 0 || PQgetisnull(r->get(), 0, 0)) return -1;
  return std::strtoll(PQgetvalue(r->get(), 0, 0), nullptr, 10);
}

class PgStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(PgBaseUri().empty())
        << "DW_PG_URI is not set: run tests/integration/pg_store_test.sh";
  }
  std::unique_ptr<PgEventStore> Open(const std::string& uri, PgStoreOptions opt = {}) {
    opt.uri = uri;
    opt.commit_interval = std::chrono::milliseconds(2);
    auto s = PgEventStore::Open(opt);
    EXPECT_TRUE(s.has_value()) << s.error();
    return s ? std::move(*s) : nullptr;
  }
};

v1::Event Ev(uint64_t seq, const std::string& boot, int64_t start_ns,
             const std::string& container = std::string(64, 'a')) {
  v1::Event e;
  e.mutable_id()->set_node("whatever-the-sensor-says");
  e.mutable_id()->set_boot_id(boot);
  e.mutable_id()->set_sensor_start_ns(start_ns);
  e.mutable_id()->set_seq(seq);
  e.set_time_ns(1'000'000'000LL * static_cast<int64_t>(seq));
  e.set_container_id(container);
  e.mutable_exec()->set_pid(static_cast<uint32_t>(seq));
  e.mutable_exec()->add_args("/bin/sh");
  return e;
}

v1::Event ContainerEv(uint64_t seq, const std::string& boot, int64_t start_ns,
                      const std::string& id, const std::string& state) {
  v1::Event e = Ev(seq, boot, start_ns, id);
  e.mutable_container()->set_id(id);
  e.mutable_container()->set_state(state);
  e.mutable_container()->set_pod_name("web-0");
  return e;
}

std::shared_ptr<const PreparedBatch> Batch(const std::string& node, std::vector<v1::Event> evs) {
  google::protobuf::RepeatedPtrField<v1::Event> f;
  for (auto& e : evs) *f.Add() = std::move(e);
  auto b = PrepareBatch(node, &f);
  EXPECT_TRUE(b.has_value()) << b.error();
  return std::make_shared<const PreparedBatch>(b ? std::move(*b) : PreparedBatch{});
}

std::vector<v1::Event> Range(uint64_t from, uint64_t to, const std::string& boot,
                             int64_t start_ns) {
  std::vector<v1::Event> v;
  for (uint64_t i = from; i <= to; ++i) v.push_back(Ev(i, boot, start_ns));
  return v;
}

CommitResult SubmitWait(EventSink* s, std::shared_ptr<const PreparedBatch> b) {
  std::promise<CommitResult> p;
  s->Submit(std::move(b), [&](const CommitResult& r) { p.set_value(r); });
  return p.get_future().get();
}

// Per node: ids 1..N, none missing, none twice, and node_heads.last_id = N.
void ExpectDenseIds(PgConn* c) {
  EXPECT_EQ(One(c, "SELECT count(*) FROM (SELECT node, count(*) AS n, min(id) AS lo, "
                   "max(id) AS hi, count(DISTINCT id) AS d FROM events GROUP BY node) t "
                   "WHERE NOT (lo = 1 AND hi = n AND d = n)"),
            0);
  EXPECT_EQ(One(c, "SELECT count(*) FROM node_heads h LEFT JOIN (SELECT node, count(*) AS n "
                   "FROM events GROUP BY node) e USING (node) WHERE h.last_id <> "
                   "coalesce(e.n, 0)"),
            0);
}

// Every (node, run, seq) stored once.
void ExpectOnce(PgConn* c, int64_t total) {
  EXPECT_EQ(One(c, "SELECT count(*) FROM events"), total);
  EXPECT_EQ(One(c, "SELECT count(*) FROM (SELECT DISTINCT node, run_id, seq FROM events) t"),
            total);
}

// What a hostile node names its containers (quotes, backslashes, braces, commas, a word
// PostgreSQL arrays read as NULL, non-ASCII): stored verbatim, each its own key.
TEST_F(PgStoreTest, HostileContainerIdsAreStoredVerbatim) {
  const std::string uri = FreshPgDatabase("dw_pgstore_hostile");
  auto s = Open(uri, PgStoreOptions());
  ASSERT_NE(s, nullptr);
  const std::vector<std::string> ids = {"a\"b", "c\\d", "{e,f}", "NULL", "g h", "\xc3\xa9t\xc3\xa9",
                                        "'; DROP TABLE events; --"};
  std::vector<v1::Event> evs;
  for (size_t i = 0; i < ids.size(); ++i) evs.push_back(Ev(i + 1, "boot-h", 7, ids[i]));
  CommitResult r = SubmitWait(s.get(), Batch("node-h", std::move(evs)));
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.stored, ids.size());
  auto c = PgConn::Connect(uri);
  ASSERT_TRUE(c.has_value());
  for (const std::string& id : ids) {
    auto q = (*c)->Exec("find", "SELECT count(*) FROM container_ids WHERE id = $1 AND node = 'node-h'",
                        {id});
    ASSERT_TRUE(q.has_value());
    EXPECT_STREQ(PQgetvalue(q->get(), 0, 0), "1") << id;
  }
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM events"), static_cast<int64_t>(ids.size()));
}

// 1. One store: two runs in a batch, the same batches again, a gap, container infos, ids in
// commit order, the feed, the node counters, a batch PostgreSQL text cannot hold.
TEST_F(PgStoreTest, OneStoreStoresEachEventOnce) {
  const std::string uri = FreshPgDatabase("dw_pgstore_one");
  std::mutex feed_mu;
  std::map<std::string, std::set<int64_t>> fed;
  PgStoreOptions opt;
  opt.on_commit = [&](PgStoreCommit c) {
    std::lock_guard lk(feed_mu);
    for (const CommittedBatch& b : c.batches) {
      for (int64_t id : b.rowids) {
        if (id != 0) {
          EXPECT_TRUE(fed[b.batch->node].insert(id).second) << id;
        }
      }
    }
  };
  auto s = Open(uri, opt);
  ASSERT_NE(s, nullptr);
  const std::string cont = std::string(64, 'c');

  // Batch 1: run 1 seq 1..10 (seq 3 a container event) interleaved with run 2 seq 1..5.
  std::vector<v1::Event> e1;
  std::vector<std::pair<std::string, uint64_t>> order;  // (boot, seq) in commit order
  for (uint64_t i = 1; i <= 10; ++i) {
    e1.push_back(i == 3 ? ContainerEv(i, "boot-1", 100, cont, "running") : Ev(i, "boot-1", 100));
    order.emplace_back("boot-1", i);
    if (i <= 5) {
      e1.push_back(Ev(i, "boot-2", 200));
      order.emplace_back("boot-2", i);
    }
  }
  auto b1 = Batch("node-a", std::move(e1));
  auto b2 = Batch("node-a", Range(11, 20, "boot-1", 100));
  for (uint64_t i = 11; i <= 20; ++i) order.emplace_back("boot-1", i);
  CommitResult r = SubmitWait(s.get(), b1);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.stored, 15u);
  r = SubmitWait(s.get(), b2);
  EXPECT_EQ(r.stored, 10u);
  // Resent: nothing new, all counted.
  r = SubmitWait(s.get(), b1);
  EXPECT_EQ(r.stored, 0u);
  EXPECT_EQ(r.duplicates, 15u);
  r = SubmitWait(s.get(), b2);
  EXPECT_EQ(r.stored, 0u);
  EXPECT_EQ(r.duplicates, 10u);
  // 21..24 never came; the container's info changes at 30.
  std::vector<v1::Event> e3 = Range(25, 29, "boot-1", 100);
  e3.push_back(ContainerEv(30, "boot-1", 100, cont, "exited"));
  for (uint64_t i = 25; i <= 30; ++i) order.emplace_back("boot-1", i);
  r = SubmitWait(s.get(), Batch("node-a", std::move(e3)));
  EXPECT_EQ(r.stored, 6u);
  // Another node in the same store numbers its own ids from 1.
  r = SubmitWait(s.get(), Batch("node-b", Range(1, 3, "boot-b", 1)));
  EXPECT_EQ(r.stored, 3u);
  // A container id PostgreSQL text cannot hold: refused alone, at once.
  std::vector<v1::Event> bad = {Ev(1, "boot-x", 1, std::string("c\0x", 3))};
  r = SubmitWait(s.get(), Batch("node-x", std::move(bad)));
  EXPECT_NE(r.error.find("container_id is not UTF-8 text without NUL"), std::string::npos)
      << r.error;
  s->Flush();

  auto c = PgConn::Connect(uri);
  ASSERT_TRUE(c.has_value());
  PgConn* pc = c->get();
  EXPECT_EQ(One(pc, "SELECT count(*) FROM events WHERE node = 'node-a'"), 31);
  ExpectOnce(pc, 34);
  ExpectDenseIds(pc);
  // ids in commit order.
  auto rows = pc->Exec("order", "SELECT e.id, r.boot_id, e.seq FROM events e JOIN runs r "
                                "USING (run_id) WHERE e.node = 'node-a' ORDER BY e.id");
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(PQntuples(rows->get()), static_cast<int>(order.size()));
  for (int i = 0; i < PQntuples(rows->get()); ++i) {
    EXPECT_EQ(std::atoll(PQgetvalue(rows->get(), i, 0)), i + 1);
    EXPECT_EQ(PQgetvalue(rows->get(), i, 1), order[static_cast<size_t>(i)].first) << i;
    EXPECT_EQ(std::strtoull(PQgetvalue(rows->get(), i, 2), nullptr, 10),
              order[static_cast<size_t>(i)].second)
        << i;
  }
  // The gap, after the event that followed it (seq 25: id 26).
  EXPECT_EQ(One(pc, "SELECT count(*) FROM gaps"), 1);
  EXPECT_EQ(One(pc, "SELECT from_seq * 1000000 + to_seq * 1000 + after_id FROM gaps "
                    "WHERE node = 'node-a'"),
            21'024'026);
  EXPECT_EQ(One(pc, "SELECT max_seq FROM runs WHERE boot_id = 'boot-1'"), 30);
  EXPECT_EQ(One(pc, "SELECT max_seq FROM runs WHERE boot_id = 'boot-2'"), 5);
  // One container row, the latest info.
  EXPECT_EQ(One(pc, "SELECT count(*) FROM containers"), 1);
  auto info = pc->Exec("info", "SELECT info FROM containers c JOIN container_ids k USING (cid) "
                               "WHERE k.node = 'node-a'");
  ASSERT_TRUE(info.has_value());
  ASSERT_EQ(PQntuples(info->get()), 1);
  size_t n = 0;
  unsigned char* raw = PQunescapeBytea(
      reinterpret_cast<const unsigned char*>(PQgetvalue(info->get(), 0, 0)), &n);
  v1::ContainerInfo ci;
  EXPECT_TRUE(ci.ParseFromArray(raw, static_cast<int>(n)));
  PQfreemem(raw);
  EXPECT_EQ(ci.state(), "exited");
  EXPECT_EQ(ci.id(), cont);
  // Counters: in the table and in this collector's view.
  EXPECT_EQ(One(pc, "SELECT events_stored * 1000 + duplicates FROM nodes WHERE node = 'node-a'"),
            31'025);
  auto node = s->Node("node-a");
  ASSERT_TRUE(node.has_value());
  EXPECT_EQ(node->events_stored, 31u);
  EXPECT_EQ(node->duplicates, 25u);
  EXPECT_EQ(node->events_missing, 4u);
  // The feed named every stored id once.
  {
    std::lock_guard lk(feed_mu);
    EXPECT_EQ(fed["node-a"].size(), 31u);
    EXPECT_EQ(*fed["node-a"].rbegin(), 31);
    EXPECT_EQ(fed["node-b"].size(), 3u);
  }
  // Today's and tomorrow's partitions were made.
  EXPECT_EQ(One(pc, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"), 2);

  // Node bookkeeping reaches the table with the next commit.
  NodeHello h;
  h.boot_id = "boot-1";
  h.sensor_version = "1.2.3";
  s->NodeConnected("node-a", h);
  s->Flush();
  for (int i = 0; i < 100 && One(pc, "SELECT connected_streams FROM nodes WHERE node = "
                                     "'node-a'") != 1;
       ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(One(pc, "SELECT connected_streams FROM nodes WHERE node = 'node-a'"), 1);
  EXPECT_EQ(One(pc, "SELECT events_stored FROM nodes WHERE node = 'node-a'"), 31);
  s->Close();

  // Reopened (a restart): the marks come from the table; nothing stored again.
  auto s2 = Open(uri);
  ASSERT_NE(s2, nullptr);
  r = SubmitWait(s2.get(), b1);
  EXPECT_EQ(r.stored, 0u);
  EXPECT_EQ(r.duplicates, 15u);
  EXPECT_EQ(s2->Node("node-a")->events_stored, 31u);
}

// Retention: partitions of days wholly before the cutoff go; runs, container keys and gaps
// not written since go with them.
TEST_F(PgStoreTest, RetentionDropsOldDays) {
  const std::string uri = FreshPgDatabase("dw_pgstore_retention");
  const int64_t day = 86'400'000'000'000;
  std::atomic<int64_t> wall{NowNs() - 10 * day};
  PgStoreOptions opt;
  opt.wall_clock = [&] { return wall.load(); };
  opt.retention_age = std::chrono::hours(24 * 3);
  opt.retention_interval = std::chrono::hours(1);  // the test calls EnforceRetention
  auto s = Open(uri, opt);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(SubmitWait(s.get(), Batch("old", Range(1, 5, "b", 1))).stored, 5u);
  // Ten days later (the store clock slews towards it: a test cannot wait; a new store does).
  s->Close();
  wall = NowNs();
  auto s2 = Open(uri, opt);
  ASSERT_NE(s2, nullptr);
  EXPECT_EQ(SubmitWait(s2.get(), Batch("new", Range(1, 5, "b", 1))).stored, 5u);
  // Detection's rows, one stored ten days ago and one now each (an alert with its outbox
  // rows, its summary's and a counted repeat). The old alert's event time is recent: alerts
  // age by when the collector stored them, not by a node's clock.
  auto c = PgConn::Connect(uri);
  ASSERT_TRUE(c.has_value());
  const int64_t now = NowNs(), old = now - 10 * day;
  for (const auto& [name, stored] : {std::pair{"old", old}, std::pair{"new", now}}) {
    const std::string n = name, t = std::to_string(stored);
    ASSERT_TRUE((*c)->Run("detection rows",
        "INSERT INTO alerts(time_ns, stored_ns, node, container_id, container_name, pod_name, "
        "pod_namespace, rule, priority, event_key, message, json, first_ns, last_ns) VALUES (" +
        std::to_string(now) + ", " + t + ", '" + n + "', 'c', '', '', '', 'r', 4, 'k-" + n +
        "', 'm', '{}', 0, 0);"
        "INSERT INTO deliveries SELECT id, 'stdout' FROM alerts WHERE node = '" + n + "';"
        "INSERT INTO deliveries SELECT -id, 'stdout' FROM alerts WHERE node = '" + n + "';"
        "INSERT INTO alert_repeats SELECT 'k2-" + n + "', 'r', id FROM alerts WHERE node = '" + n + "';"
        "INSERT INTO inventories(taken_ns, node, container_id, container_name, pod_name, "
        "pod_namespace, rules, error, entries, reply) VALUES (" + t + ", '" + n +
        "', 'c', '', '', '', 'r', '', 0, '');"
        "INSERT INTO allowed_drift(day, node, pod_namespace, workload, container_name, image, "
        "rule, allowed_by, subject, count, first_ns, last_ns, container_id, pod_name, message) "
        "VALUES ('d', '" + n + "', '', '', '', '', 'r', 'p', 's', 1, " + t + ", " + t +
        ", 'c', '', '')").has_value());
  }
  auto deleted = s2->EnforceRetention(s2->StoreNowNs());
  ASSERT_TRUE(deleted.has_value()) << deleted.error();
  for (const std::string table : {"alerts", "inventories", "allowed_drift"}) {
    EXPECT_EQ(One(c->get(), "SELECT count(*) FROM " + table + " WHERE node = 'old'"), 0) << table;
    EXPECT_EQ(One(c->get(), "SELECT count(*) FROM " + table + " WHERE node = 'new'"), 1) << table;
  }
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM events"), 5);
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM events WHERE node = 'new'"), 5);
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM runs WHERE node = 'old'"), 0);
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM container_ids WHERE node = 'old'"), 0);
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM runs WHERE node = 'new'"), 1);
  // The two old partitions (that day and the next), the old run and container key, and the
  // old alert, its two outbox rows, its repeat, inventory and allowed-drift row.
  EXPECT_EQ(*deleted, 10u);
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM deliveries"), 2);
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM alert_repeats"), 1);
  // A node's ids never restart, whatever retention removed.
  EXPECT_EQ(SubmitWait(s2.get(), Batch("old", Range(6, 6, "b", 1))).stored, 1u);
  EXPECT_EQ(One(c->get(), "SELECT id FROM events WHERE node = 'old'"), 6);
}

// A collector whose clock runs a year ahead must not age out what the others stored: its
// retention goes by the database server's clock when its own is ahead.
TEST_F(PgStoreTest, RetentionNeverByAClockAhead) {
  const std::string uri = FreshPgDatabase("dw_pgstore_ahead");
  auto s = Open(uri, PgStoreOptions());
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(SubmitWait(s.get(), Batch("today", Range(1, 5, "b", 1))).stored, 5u);
  const int64_t year = 365LL * 86'400'000'000'000;
  PgStoreOptions ahead;
  ahead.wall_clock = [year] { return NowNs() + year; };
  ahead.retention_age = std::chrono::hours(24 * 7);
  ahead.retention_interval = std::chrono::hours(1);
  auto s2 = Open(uri, ahead);
  ASSERT_NE(s2, nullptr);
  auto deleted = s2->EnforceRetention(s2->StoreNowNs());
  ASSERT_TRUE(deleted.has_value()) << deleted.error();
  auto c = PgConn::Connect(uri);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM events WHERE node = 'today'"), 5);
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM runs WHERE node = 'today'"), 1);
}

// 2. Two collectors on one database: 50 sensor runs split between them, 1M events, then one
// half resent to the other collector (a failover): each event stored once, ids dense per node.
TEST_F(PgStoreTest, TwoStoresStoreEachEventOnce) {
  const std::string uri = FreshPgDatabase("dw_pgstore_two");
  const char* env = std::getenv("DW_PG_TWO_EVENTS");
  const uint64_t total = env ? std::strtoull(env, nullptr, 10) : 1'000'000;
  constexpr int kRuns = 50, kBatch = 500;
  const uint64_t per_run = total / kRuns;
  // Sensor i is node-i with one run; its batches in seq order.
  std::vector<std::vector<std::shared_ptr<const PreparedBatch>>> runs(kRuns);
  for (int i = 0; i < kRuns; ++i) {
    const std::string node = "node-" + std::to_string(i);
    for (uint64_t from = 1; from <= per_run; from += kBatch) {
      runs[i].push_back(Batch(node, Range(from, std::min<uint64_t>(from + kBatch - 1, per_run),
                                          "boot-" + std::to_string(i), 1000 + i)));
    }
  }
  auto a = Open(uri), b = Open(uri);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::atomic<uint64_t> stored{0}, dups{0}, errors{0};
  auto done = [&](const CommitResult& r) {
    stored += r.stored;
    dups += r.duplicates;
    if (!r.error.empty()) ++errors;
  };
  // Sensors stream at once: each collector's half, the runs' batches interleaved.
  auto stream = [&](PgEventStore* s, int first, int last) {
    for (size_t k = 0; k < runs[0].size(); ++k) {
      for (int i = first; i < last; ++i) s->Submit(runs[i][k], done, static_cast<uint64_t>(i + 1));
    }
    s->Flush();
  };
  const auto t0 = std::chrono::steady_clock::now();
  std::thread ta(stream, a.get(), 0, kRuns / 2), tb(stream, b.get(), kRuns / 2, kRuns);
  ta.join();
  tb.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("two stores: %llu events in %.2f s: %.0f events/s\n",
              static_cast<unsigned long long>(per_run * kRuns), secs,
              static_cast<double>(per_run * kRuns) / secs);
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_EQ(stored.load(), per_run * kRuns);
  EXPECT_EQ(dups.load(), 0u);
  // The first half's sensors fail over to b and resend everything: nothing new.
  stored = 0;
  stream(b.get(), 0, kRuns / 2);
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_EQ(stored.load(), 0u);
  EXPECT_EQ(dups.load(), per_run * kRuns / 2);

  auto c = PgConn::Connect(uri);
  ASSERT_TRUE(c.has_value());
  ExpectOnce(c->get(), static_cast<int64_t>(per_run * kRuns));
  ExpectDenseIds(c->get());
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM runs WHERE max_seq = " + std::to_string(per_run)),
            kRuns);
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM gaps"), 0);
  EXPECT_EQ(One(c->get(), "SELECT sum(events_stored) FROM nodes"),
            static_cast<int64_t>(per_run * kRuns));
}

// 3. Two collectors given the same run's batches at the same time (a sensor that failed over
// while its first collector was still committing), beside another run of the same node on one
// of them: stored once, no gap, ids dense.
TEST_F(PgStoreTest, ConcurrentWritersOnOneRunStoreItOnce) {
  const std::string uri = FreshPgDatabase("dw_pgstore_same_run");
  constexpr uint64_t kSeqs = 100'000, kOther = 20'000, kBatch = 1000;
  std::vector<std::shared_ptr<const PreparedBatch>> shared, other;
  for (uint64_t from = 1; from <= kSeqs; from += kBatch)
    shared.push_back(Batch("node-s", Range(from, from + kBatch - 1, "boot-s", 7)));
  for (uint64_t from = 1; from <= kOther; from += kBatch)
    other.push_back(Batch("node-s", Range(from, from + kBatch - 1, "boot-o", 8)));
  PgStoreOptions opt;
  opt.commit_max_events = 3000;  // several commits racing
  auto a = Open(uri, opt), b = Open(uri, opt);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  std::atomic<uint64_t> stored{0}, dups{0}, errors{0};
  auto done = [&](const CommitResult& r) {
    stored += r.stored;
    dups += r.duplicates;
    if (!r.error.empty()) ++errors;
  };
  // Batches go in blocks of 10. In a racing block both get batch k at the same moment; in a
  // led block one commits batch k first and the other resends it after (a failover's resend).
  // The led blocks make sure each store stored some of the shared run whatever the timing: a
  // sanitizer build once let a win every race.
  enum class Lead { kRace, kA, kB };
  auto lead = [](size_t k) { return static_cast<Lead>(k / 10 % 3); };
  std::barrier step(2), committed(2);
  auto feed = [&](PgEventStore* store, Lead me, bool with_other) {
    for (size_t k = 0; k < shared.size(); ++k) {
      step.arrive_and_wait();
      const Lead l = lead(k);
      if (l != Lead::kRace && l != me) committed.arrive_and_wait();  // after the leader's commit
      store->Submit(shared[k], done, 1);
      if (with_other && k < other.size()) store->Submit(other[k], done, 2);
      if (l == me) {
        store->Flush();
        committed.arrive_and_wait();
      }
      if (l == Lead::kRace) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    store->Flush();
  };
  std::thread ta([&] { feed(a.get(), Lead::kA, false); });
  std::thread tb([&] { feed(b.get(), Lead::kB, true); });
  ta.join();
  tb.join();
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_EQ(stored.load(), kSeqs + kOther);
  EXPECT_EQ(dups.load(), kSeqs);
  // Both collectors stored some of the shared run (the led blocks see to it).
  const uint64_t by_a = a->Node("node-s")->events_stored, by_b = b->Node("node-s")->events_stored;
  std::printf("shared run: %llu events stored by a, %llu by b (and b the other run's %llu)\n",
              static_cast<unsigned long long>(by_a),
              static_cast<unsigned long long>(by_b - kOther),
              static_cast<unsigned long long>(kOther));
  EXPECT_GT(by_a, 0u);
  EXPECT_GT(by_b, kOther);
  auto c = PgConn::Connect(uri);
  ASSERT_TRUE(c.has_value());
  ExpectOnce(c->get(), static_cast<int64_t>(kSeqs + kOther));
  ExpectDenseIds(c->get());
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM gaps"), 0);
  EXPECT_EQ(One(c->get(), "SELECT max_seq FROM runs WHERE boot_id = 'boot-s'"),
            static_cast<int64_t>(kSeqs));
  EXPECT_EQ(One(c->get(), "SELECT events_stored FROM nodes WHERE node = 'node-s'"),
            static_cast<int64_t>(kSeqs + kOther));
}

// 4. The writer's connection killed (pg_terminate_backend) again and again while batches
// stream in: every batch acknowledged, every event there once.
TEST_F(PgStoreTest, KilledConnectionLosesNothingStoresNothingTwice) {
  const std::string uri = FreshPgDatabase("dw_pgstore_kill");
  constexpr int kNodes = 4, kBatches = 60, kBatch = 500;
  std::vector<std::vector<std::shared_ptr<const PreparedBatch>>> batches(kNodes);
  for (int n = 0; n < kNodes; ++n) {
    for (int k = 0; k < kBatches; ++k) {
      const uint64_t from = static_cast<uint64_t>(k) * kBatch + 1;
      batches[n].push_back(Batch("node-" + std::to_string(n),
                                 Range(from, from + kBatch - 1, "boot", 1)));
    }
  }
  PgStoreOptions opt;
  opt.commit_max_events = 2000;
  opt.retry_backoff = std::chrono::milliseconds(10);
  auto s = Open(uri, opt);
  ASSERT_NE(s, nullptr);
  auto admin = PgConn::Connect(uri);
  ASSERT_TRUE(admin.has_value());
  std::atomic<uint64_t> acked{0}, stored{0}, errors{0};
  std::mutex err_mu;
  std::string first_error;
  auto done = [&](const CommitResult& r) {
    if (!r.error.empty()) {
      ++errors;
      std::lock_guard lk(err_mu);
      if (first_error.empty()) first_error = r.error;
      return;
    }
    acked += r.stored + r.duplicates;
    stored += r.stored;
  };
  std::atomic<bool> streaming{true};
  std::set<int> killed_pids;
  std::thread killer([&] {
    while (streaming && killed_pids.size() < 8) {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      const int pid = s->writer_backend_pid();
      if (pid == 0) continue;
      const std::string p = std::to_string(pid);
      auto r = (*admin)->Exec("terminate the writer", "SELECT pg_terminate_backend($1)", {p});
      if (r && std::string(PQgetvalue(r->get(), 0, 0)) == "t") killed_pids.insert(pid);
    }
  });
  for (int k = 0; k < kBatches; ++k) {
    for (int n = 0; n < kNodes; ++n) s->Submit(batches[n][k], done, static_cast<uint64_t>(n + 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  s->Flush();
  streaming = false;
  killer.join();
  const uint64_t total = static_cast<uint64_t>(kNodes) * kBatches * kBatch;
  EXPECT_EQ(errors.load(), 0u) << first_error;
  EXPECT_EQ(acked.load(), total);
  EXPECT_GE(killed_pids.size(), 3u);
  EXPECT_GE(s->retries(), 1u);
  std::printf("connection killed %zu times, %llu retries, %llu stored (the rest found stored "
              "by a commit whose answer was lost)\n",
              killed_pids.size(), static_cast<unsigned long long>(s->retries()),
              static_cast<unsigned long long>(stored.load()));
  auto c = PgConn::Connect(uri);
  ASSERT_TRUE(c.has_value());
  ExpectOnce(c->get(), static_cast<int64_t>(total));
  ExpectDenseIds(c->get());
  EXPECT_EQ(One(c->get(), "SELECT count(*) FROM gaps"), 0);
  // Resent after all that: nothing new.
  for (int n = 0; n < kNodes; ++n) {
    EXPECT_EQ(SubmitWait(s.get(), batches[n][kBatches - 1]).stored, 0u);
  }
}

}  // namespace
}  // namespace driftwatch
