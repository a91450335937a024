// PgConn and MigratePg against a real PostgreSQL: tests/integration/pg_store_test.sh starts a
// private server (pg_env.sh) and runs this with DW_PG_URI set. Each test works in a database
// of its own.
#include "lib/store/pg_conn.h"
#include "lib/store/pg_schema.h"
#include "pg/pg_test_db.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <thread>

namespace driftwatch {
namespace {

class PgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(PgBaseUri().empty()) << "DW_PG_URI is not set: run tests/integration/pg_store_test.sh";
  }
};

int Count(PgConn* c, const std::string& sql) {
  auto r = c->Exec("count", sql);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  return r ? std::atoi(PQgetvalue(r->get(), 0, 0)) : -1;
}

const PgMigration kThree[] = {
    {1, "items", "CREATE TABLE items(id bigint PRIMARY KEY, v text NOT NULL)"},
    {2, "items index", "CREATE INDEX items_v ON items(v)"},
    {3, "seen", "CREATE TABLE seen(id bigint PRIMARY KEY); INSERT INTO seen VALUES (1)"},
};

TEST(PgUri, PasswordsAreRedacted) {
  EXPECT_EQ(RedactPgUri("postgresql://dw:s3cret@127.0.0.1:5432/driftwatch?sslmode=require"),
            "postgresql://dw:***@127.0.0.1:5432/driftwatch?sslmode=require");
  EXPECT_EQ(RedactPgUri("postgres://dw:a:b@c@h/db"), "postgres://dw:***@h/db");
  EXPECT_EQ(RedactPgUri("postgresql://h/db?user=dw&password=s3cret&sslmode=verify-full"),
            "postgresql://h/db?user=dw&password=***&sslmode=verify-full");
  EXPECT_EQ(RedactPgUri("postgresql://dw@h/db"), "postgresql://dw@h/db");
  EXPECT_EQ(RedactPgUri("postgresql://h/db?xpassword=keep"), "postgresql://h/db?xpassword=keep");
  EXPECT_TRUE(IsPgUri("postgres://h/db"));
  EXPECT_FALSE(IsPgUri("/var/lib/driftwatch/collector.db"));
}

TEST_F(PgTest, ConnectErrorsNameTheDatabaseNotThePassword) {
  const std::string base = PgBaseUri();
  std::string wrong = base;
  const size_t colon = wrong.find(':', wrong.find("://") + 3), at = wrong.rfind('@');
  ASSERT_LT(colon, at);
  wrong.replace(colon + 1, at - colon - 1, "not-the-password");
  auto c = PgConn::Connect(wrong);
  ASSERT_FALSE(c.has_value());
  const std::string m = c.error().message();
  EXPECT_NE(m.find("dw:***@"), std::string::npos) << m;
  EXPECT_EQ(m.find("not-the-password"), std::string::npos) << m;
  EXPECT_NE(m.find("password authentication failed"), std::string::npos) << m;

  auto bad = PgConn::Connect("postgresql://dw:x@127.0.0.1:1/db?sslmode=nonsense");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("sslmode"), std::string::npos) << bad.error().message();
  EXPECT_EQ(PgConn::Connect("/tmp/collector.db").error().code(), ErrorCode::kInvalidInput);
  // Nobody listens on port 1: refused at once, within the timeout anyway.
  auto closed = PgConn::Connect("postgresql://dw:x@127.0.0.1:1/db", std::chrono::seconds(3));
  ASSERT_FALSE(closed.has_value());
  EXPECT_EQ(closed.error().code(), ErrorCode::kUnavailable);
}

TEST_F(PgTest, ParametersAreNeverSql) {
  auto c = PgConn::Connect(FreshPgDatabase("dw_params"));
  ASSERT_TRUE(c.has_value()) << c.error().message();
  ASSERT_TRUE((*c)->Run("table", "CREATE TABLE t(v text)"));
  const std::string hostile = "x'); DROP TABLE t; --";
  ASSERT_TRUE((*c)->Exec("insert", "INSERT INTO t VALUES ($1), ($2)", {hostile, std::nullopt}));
  auto r = (*c)->Exec("read", "SELECT v FROM t WHERE v IS NOT NULL");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(std::string(PQgetvalue(r->get(), 0, 0)), hostile);
  EXPECT_EQ(Count(c->get(), "SELECT count(*) FROM t WHERE v IS NULL"), 1);
  auto e = (*c)->Exec("select from nowhere", "SELECT * FROM nowhere");
  ASSERT_FALSE(e.has_value());
  EXPECT_NE(e.error().message().find("select from nowhere: ERROR:  relation \"nowhere\""),
            std::string::npos)
      << e.error().message();
}

TEST_F(PgTest, MigrationsApplyOnceAndInOrder) {
  auto c = PgConn::Connect(FreshPgDatabase("dw_migrate"));
  ASSERT_TRUE(c.has_value()) << c.error().message();
  auto v = MigratePg(c->get(), kThree, "test");
  ASSERT_TRUE(v.has_value()) << v.error().message();
  EXPECT_EQ(*v, 3);
  EXPECT_EQ(Count(c->get(), "SELECT count(*) FROM dw_schema_migrations"), 3);
  // Again: nothing to do (migration 3's INSERT would fail on its primary key if run twice).
  v = MigratePg(c->get(), kThree, "test");
  ASSERT_TRUE(v.has_value()) << v.error().message();
  EXPECT_EQ(Count(c->get(), "SELECT count(*) FROM seen"), 1);
  // One more later: only it runs.
  const PgMigration four[] = {kThree[0], kThree[1], kThree[2],
                              {4, "more", "INSERT INTO seen VALUES (4)"}};
  v = MigratePg(c->get(), four, "test");
  ASSERT_TRUE(v.has_value()) << v.error().message();
  EXPECT_EQ(*v, 4);
  EXPECT_EQ(Count(c->get(), "SELECT count(*) FROM seen"), 2);
  // A driftwatch that knows fewer migrations than the database has: refused.
  v = MigratePg(c->get(), kThree, "older");
  ASSERT_FALSE(v.has_value());
  EXPECT_NE(v.error().message().find("schema version 4 is newer than this driftwatch's (3)"),
            std::string::npos)
      << v.error().message();
  const PgMigration gap[] = {kThree[0], {3, "skipped two", "SELECT 1"}};
  EXPECT_FALSE(MigratePg(c->get(), gap, "test").has_value());
}

TEST_F(PgTest, AFailingMigrationLeavesNothing) {
  auto c = PgConn::Connect(FreshPgDatabase("dw_migrate_fail"));
  ASSERT_TRUE(c.has_value()) << c.error().message();
  ASSERT_TRUE(MigratePg(c->get(), std::span(kThree, 2), "test").has_value());
  const PgMigration bad[] = {kThree[0], kThree[1], kThree[2],
                             {4, "broken", "CREATE TABLE half(x int); SELECT * FROM nowhere"}};
  auto v = MigratePg(c->get(), bad, "test");
  ASSERT_FALSE(v.has_value());
  EXPECT_NE(v.error().message().find("migration 4 (broken)"), std::string::npos)
      << v.error().message();
  // Neither 3 (in the same transaction) nor 4's first statement stayed.
  EXPECT_EQ(Count(c->get(), "SELECT max(version) FROM dw_schema_migrations"), 2);
  EXPECT_EQ(Count(c->get(), "SELECT count(*) FROM pg_tables WHERE tablename IN ('seen', 'half')"), 0);
  // The connection is usable afterwards.
  EXPECT_EQ(*MigratePg(c->get(), kThree, "test"), 3);
}

// Collectors starting together: each migration applied once, none of them failing. Without
// the lock, two of them would both create the first table (one failing on "already exists")
// or both record a version (one failing on the primary key).
TEST_F(PgTest, ConcurrentMigratorsApplyEachMigrationOnce) {
  const std::string uri = FreshPgDatabase("dw_migrate_race");
  // Slow migrations widen the window two migrators would otherwise share.
  const PgMigration slow[] = {
      {1, "items", "SELECT pg_sleep(0.2); CREATE TABLE items(id bigint PRIMARY KEY)"},
      {2, "fill", "INSERT INTO items SELECT generate_series(1, 1000)"},
      {3, "once", "CREATE TABLE once(id int PRIMARY KEY); INSERT INTO once VALUES (1)"},
  };
  constexpr int kMigrators = 6;
  std::atomic<int> ok{0};
  std::vector<std::string> errors(kMigrators);
  std::vector<std::thread> threads;
  for (int i = 0; i < kMigrators; ++i) {
    threads.emplace_back([&, i] {
      auto c = PgConn::Connect(uri);
      if (!c) {
        errors[i] = c.error().message();
        return;
      }
      auto v = MigratePg(c->get(), slow, "migrator-" + std::to_string(i));
      if (v && *v == 3) ++ok;
      else errors[i] = v ? "version " + std::to_string(*v) : v.error().message();
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& e : errors) EXPECT_TRUE(e.empty()) << e;
  EXPECT_EQ(ok.load(), kMigrators);
  auto c = PgConn::Connect(uri);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(Count(c->get(), "SELECT count(*) FROM items"), 1000);
  EXPECT_EQ(Count(c->get(), "SELECT count(*) FROM once"), 1);
  EXPECT_EQ(Count(c->get(), "SELECT count(DISTINCT applied_by) FROM dw_schema_migrations"), 1);
}

TEST(PgSchema, DailyPartitionNames) {
  EXPECT_EQ(EventPartitionOf(0).name, "events_19700101");
  const int64_t day = 86'400'000'000'000;
  const EventPartition p = EventPartitionOf(1764979200'000'000'000 + 5);  // 2025-12-06 00:00:00 UTC
  EXPECT_EQ(p.name, "events_20251206");
  EXPECT_EQ(p.from_ns, 1764979200'000'000'000);
  EXPECT_EQ(p.to_ns, p.from_ns + day);
  EXPECT_EQ(EventPartitionOf(p.from_ns - 1).name, "events_20251205");
  EXPECT_EQ(EventPartitionOf(-1).name, "events_19691231");
}

// The store's schema on a real server: migrated, a day's partition made ahead, rows routed
// by stored_ns, a day without a partition refused, retention dropping whole days only.
TEST_F(PgTest, StoreSchemaPartitionsEventsByDay) {
  const std::string uri = FreshPgDatabase("dw_schema");
  auto c = PgConn::Connect(uri);
  ASSERT_TRUE(c.has_value()) << c.error().message();
  auto v = MigratePg(c->get(), PgStoreMigrations(), "test");
  ASSERT_TRUE(v.has_value()) << v.error().message();
  EXPECT_EQ(*v, static_cast<int>(PgStoreMigrations().size()));
  const int64_t day = 86'400'000'000'000, today = 1764979200'000'000'000 + 3600'000'000'000;
  // Collectors racing to make the same partitions.
  std::vector<std::thread> threads;
  std::atomic<int> made{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      auto cc = PgConn::Connect(uri);
      if (cc && EnsureEventPartitions(cc->get(), today, 1)) ++made;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(made.load(), 4);
  EXPECT_EQ(Count(c->get(), "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"), 2);
  auto insert = [&](int64_t stored_ns) {
    return (*c)->Exec("insert event",
                      "INSERT INTO events(node, id, run_id, seq, time_ns, stored_ns, cid, kind, payload) "
                      "VALUES ('n', 1, 1, 1, $1, $1, 1, 1, '\\x00')",
                      {std::to_string(stored_ns)});
  };
  ASSERT_TRUE(insert(today).has_value());
  ASSERT_TRUE(insert(today + day).has_value());
  auto late = insert(today + 3 * day);
  ASSERT_FALSE(late.has_value());
  EXPECT_NE(late.error().message().find("no partition of relation \"events\" found"), std::string::npos)
      << late.error().message();
  // Retention at a cutoff inside tomorrow: today's day goes whole, tomorrow's stays.
  auto dropped = DropEventPartitionsBefore(c->get(), today + day + 1);
  ASSERT_TRUE(dropped.has_value()) << dropped.error().message();
  EXPECT_EQ(*dropped, 1);
  EXPECT_EQ(Count(c->get(), "SELECT count(*) FROM events"), 1);
  EXPECT_EQ(Count(c->get(), "SELECT count(*) FROM events WHERE stored_ns >= " +
                                std::to_string(EventPartitionOf(today + day).from_ns)), 1);
  EXPECT_EQ(*DropEventPartitionsBefore(c->get(), today + day + 1), 0);
}

}  // namespace
}  // namespace driftwatch
