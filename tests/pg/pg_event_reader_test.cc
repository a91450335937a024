// PgEventReader (driftwatch events --db postgresql://...) on a real PostgreSQL
// (pg_store_test.sh): the store's rows written here as the ingest writes them, read back
// with every filter. Leaves the databases dw_reader and dw_status for pg_store_test.sh's CLI
// checks.
#include "lib/store/pg_event_reader.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "lib/store/pg_schema.h"
#include "pg/pg_test_db.h"
#include "lib/store/prepared_batch.h"

namespace driftwatch {
namespace {

std::string Hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string out = "\\x";
  for (unsigned char c : bytes) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

class PgEventReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(PgBaseUri().empty()) << "DW_PG_URI is not set: run tests/integration/pg_store_test.sh";
    uri_ = FreshPgDatabase(db_name_);
    ASSERT_FALSE(uri_.empty());
    auto c = PgConn::Connect(uri_);
    ASSERT_TRUE(c.has_value());
    c_ = std::move(*c);
    ASSERT_TRUE(MigratePg(c_.get(), PgStoreMigrations(), "test").has_value());
    ASSERT_TRUE(EnsureEventPartitions(c_.get(), kT0, 1).has_value());
    ASSERT_TRUE(c_->Run("rows", R"sql(
      INSERT INTO runs(node, boot_id, sensor_start_ns, max_seq, updated_ns) OVERRIDING SYSTEM VALUE
        VALUES ('n1', 'boot-1', 111, 2, 0), ('n2', 'boot-2', 222, 1, 0);
      INSERT INTO container_ids(node, id, updated_ns)
        VALUES ('n1', 'aaaaaaaaaaaa0000000000000000000000000000000000000000000000000001', 0),
               ('n2', 'host', 0)
    )sql"));
    v1::ContainerInfo info;
    info.set_id("aaaaaaaaaaaa0000000000000000000000000000000000000000000000000001");
    info.set_name("web");
    info.set_image("registry.example/web:1");
    ASSERT_TRUE(c_->Exec("info", "INSERT INTO containers(cid, info, updated_ns) VALUES (1, $1, 0)",
                         {Hex(info.SerializeAsString())}));
    Add("n1", 1, 1, 1, kT0 + 10, "exec", "/bin/sh");
    Add("n2", 1, 2, 2, kT0 + 20, "exec", "/usr/bin/id");
    Add("n1", 2, 1, 1, kT0 + 30, "write", "/etc/passwd");
  }
  // An event as the ingest stores it: the payload without id and container id.
  void Add(const std::string& node, int64_t id, int64_t run, int64_t cid, int64_t t,
           const std::string& kind, const std::string& path) {
    v1::Event ev;
    ev.set_time_ns(t);
    if (kind == "exec") {
      ev.mutable_exec()->set_exe(path);
      ev.mutable_exec()->add_args(path);
    } else {
      ev.mutable_write()->set_path(path);
    }
    ASSERT_TRUE(c_->Exec("event",
                         "INSERT INTO events(node, id, run_id, seq, time_ns, stored_ns, cid, kind, payload) "
                         "VALUES ($1, $2, $3, $2, $4, $4, $5, $6, $7)",
                         {node, std::to_string(id), std::to_string(run), std::to_string(t),
                          std::to_string(cid), std::to_string(EventKindNumber(kind)),
                          Hex(ev.SerializeAsString())}));
  }
  std::vector<StoredEvent> Get(const EventQuery& q) {
    auto r = PgEventReader::Open(uri_);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
    std::vector<StoredEvent> out;
    if (!r) return out;
    auto n = (*r)->Query(q, [&](const StoredEvent& e) { out.push_back(e); });
    EXPECT_TRUE(n.has_value()) << (n ? "" : n.error().message());
    return out;
  }
  static constexpr int64_t kT0 = 1764979200'000'000'000;
  std::string db_name_ = "dw_reader";
  std::string uri_;
  std::unique_ptr<PgConn> c_;
};

TEST_F(PgEventReaderTest, EveryFilter) {
  auto all = Get({});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].node, "n1");
  EXPECT_EQ(all[0].event.id().boot_id(), "boot-1");
  EXPECT_EQ(all[0].event.id().sensor_start_ns(), 111);
  EXPECT_EQ(all[0].event.id().seq(), 1u);
  EXPECT_EQ(all[0].event.container_id().substr(0, 12), "aaaaaaaaaaaa");
  ASSERT_TRUE(all[0].container.has_value());
  EXPECT_EQ(all[0].container->name(), "web");
  EXPECT_EQ(all[1].event.container_id(), "host");
  EXPECT_FALSE(all[1].container.has_value());
  EXPECT_EQ(all[2].event.write().path(), "/etc/passwd");

  EventQuery q;
  q.node = "n1";
  EXPECT_EQ(Get(q).size(), 2u);
  q = {};
  q.container = "aaaaaaaaaaaa";
  EXPECT_EQ(Get(q).size(), 2u);
  q.container = "%";  // text, not a pattern
  EXPECT_EQ(Get(q).size(), 0u);
  q = {};
  q.kind = "write";
  EXPECT_EQ(Get(q).size(), 1u);
  q = {};
  q.since_ns = kT0 + 20;
  q.until_ns = kT0 + 30;
  auto window = Get(q);
  ASSERT_EQ(window.size(), 1u);
  EXPECT_EQ(window[0].node, "n2");
  q = {};
  q.limit = 2;  // the newest two, oldest first
  auto newest = Get(q);
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_EQ(newest[0].event.time_ns(), kT0 + 20);
  EXPECT_EQ(newest[1].event.time_ns(), kT0 + 30);
  auto r = PgEventReader::Open(uri_);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*(*r)->CountEvents(), 3u);
  // Read-only: the CLI never writes.
  auto w = (*r)->Query({}, [&](const StoredEvent&) {});
  ASSERT_TRUE(w.has_value());
}

TEST_F(PgEventReaderTest, BadRowsAndForeignDatabasesAreNamed) {
  ASSERT_TRUE(c_->Exec("corrupt", "UPDATE events SET payload = '\\xffff' WHERE node = 'n2'"));
  auto r = PgEventReader::Open(uri_);
  ASSERT_TRUE(r.has_value());
  auto n = (*r)->Query({}, [](const StoredEvent&) {});
  ASSERT_FALSE(n.has_value());
  EXPECT_NE(n.error().message().find("event 1 of node n2: payload does not parse"), std::string::npos)
      << n.error().message();
  // The rows after the bad one were read and dropped: the connection serves the next query.
  auto count = (*r)->CountEvents();
  ASSERT_TRUE(count.has_value()) << count.error().message();
  EXPECT_EQ(*count, 3u);
  // Put back for the CLI check after the tests.
  ASSERT_TRUE(c_->Run("restore", "DELETE FROM events WHERE node = 'n2'"));
  Add("n2", 1, 2, 2, kT0 + 20, "exec", "/usr/bin/id");
  const std::string b = PgBaseUri();
  auto other = OpenEventQueries(b);  // the server's own database: no driftwatch schema
  ASSERT_FALSE(other.has_value());
  EXPECT_NE(other.error().message().find("not a driftwatch store"), std::string::npos)
      << other.error().message();
  const std::string password = b.substr(b.find("://dw:") + 6, b.find('@') - b.find("://dw:") - 6);
  EXPECT_EQ(other.error().message().find(password), std::string::npos)
      << "the password is in: " << other.error().message();
}

// Detection's per-node view: a node's events from a cursor by id, its runs and container ids,
// its window before a cursor, gaps, container infos, cursor and head.
TEST_F(PgEventReaderTest, ScannerReadsOneNodeByIds) {
  ASSERT_TRUE(c_->Run("more", R"sql(
    INSERT INTO gaps(node, run_id, from_seq, to_seq, after_id, stored_ns) VALUES ('n1', 1, 5, 7, 2, 0);
    INSERT INTO detect_cursors(node, id, updated_ns) VALUES ('n1', 1, 0);
    INSERT INTO node_heads(node, last_id) VALUES ('n1', 2), ('n2', 1)
  )sql"));
  auto sc = PgEventScanner::Open(uri_);
  ASSERT_TRUE(sc.has_value()) << sc.error().message();
  PgEventScanner* s = sc->get();
  std::vector<int64_t> ids;
  std::vector<std::string> paths;
  auto scan = [&](int64_t after, int64_t upto, size_t limit) {
    ids.clear();
    paths.clear();
    auto n = s->Scan("n1", after, upto, limit, [&](const ScannedEvent& e) {
      ids.push_back(e.rowid);
      v1::Event ev;
      const RunInfo* run = *s->Run(e.run_id);
      ASSERT_NE(run, nullptr);
      ASSERT_TRUE(DecodeStoredEvent(e.payload, *run, e.seq, **s->ContainerId(e.cid), &ev));
      EXPECT_EQ(ev.id().boot_id(), "boot-1");
      paths.push_back(ev.has_exec() ? ev.exec().exe() : ev.write().path());
    });
    ASSERT_TRUE(n.has_value()) << n.error().message();
  };
  scan(0, 0, 100);
  EXPECT_EQ(ids, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(paths, (std::vector<std::string>{"/bin/sh", "/etc/passwd"}));
  scan(1, 0, 100);
  EXPECT_EQ(ids, (std::vector<int64_t>{2}));
  scan(0, 1, 100);
  EXPECT_EQ(ids, (std::vector<int64_t>{1}));
  scan(0, 0, 1);
  EXPECT_EQ(ids, (std::vector<int64_t>{1}));
  EXPECT_EQ((*s->Run(1))->sensor_start_ns, 111);
  EXPECT_EQ(*s->Run(99), nullptr);
  EXPECT_EQ(*s->FirstIdAtOrAfter("n1", kT0 + 11), 2);
  EXPECT_EQ(*s->FirstIdAtOrAfter("n1", kT0 + 31), 0);
  EXPECT_EQ(**s->TimeOf("n1", 2), kT0 + 30);
  EXPECT_FALSE(s->TimeOf("n2", 2)->has_value());
  auto gaps = s->Gaps("n1", 1, 2);
  ASSERT_TRUE(gaps.has_value());
  ASSERT_EQ(gaps->size(), 1u);
  EXPECT_EQ((*gaps)[0].from_seq, 5u);
  EXPECT_EQ((*gaps)[0].to_seq, 7u);
  EXPECT_TRUE(s->Gaps("n1", 2, 10)->empty());
  EXPECT_TRUE(s->Gaps("n2", 0, 10)->empty());
  std::vector<std::string> infos;
  ASSERT_TRUE(s->ContainerInfos("n1", [&](const std::string& id, std::string_view info) {
    v1::ContainerInfo ci;
    ASSERT_TRUE(ci.ParseFromString(std::string(info)));
    infos.push_back(id.substr(0, 12) + "=" + ci.name());
  }));
  EXPECT_EQ(infos, (std::vector<std::string>{"aaaaaaaaaaaa=web"}));
  EXPECT_EQ(*s->Cursor("n1"), 1);
  EXPECT_EQ(*s->Cursor("n2"), 0);
  EXPECT_EQ(*s->Head("n1"), 2);
  EXPECT_EQ(*s->Head("n3"), 0);
}

// `driftwatch status --db postgresql://`: in a database of its own (dw_status), left for
// pg_store_test.sh's CLI check (live leases and heartbeats last an hour: the tests after
// this one take minutes under the sanitizers).
class PgStoreStatusTest : public PgEventReaderTest {
 protected:
  PgStoreStatusTest() { db_name_ = "dw_status"; }
};

// Per node: the nodes row, its gaps, head minus cursor, its lease's owner and whether the
// lease ran out by the server's clock; the collectors whose heartbeat has not.
TEST_F(PgStoreStatusTest, NodesLagOwnersAndLiveCollectors) {
  const std::string now = kPgServerNowNs;
  ASSERT_TRUE(c_->Run("status rows", R"sql(
    INSERT INTO nodes VALUES
      ('n1', 2, 1764979200000000000, 7, 1, 'boot-1', 111, '0.9.0', '6.1.0', 'owner', 'fid', 0, '10.0.0.1:5000'),
      ('n2', 0, 1764979100000000000, 1, 0, 'boot-2', 222, '0.9.0', '6.1.0', 'observer', 'fid', 0, '10.0.0.2:5000'),
      ('n3', 1, 1764979000000000000, 0, 0, 'boot-3', 333, '0.9.0', '6.1.0', 'owner', 'fid', 0, '10.0.0.3:5000');
    INSERT INTO node_heads(node, last_id) VALUES ('n1', 7), ('n2', 1);
    INSERT INTO detect_cursors(node, id, updated_ns) VALUES ('n1', 2, 0);
    INSERT INTO gaps(node, run_id, from_seq, to_seq, after_id, stored_ns)
      VALUES ('n1', 1, 5, 7, 2, 0), ('n1', 1, 9, 9, 3, 0)
  )sql"));
  ASSERT_TRUE(c_->Run("leases and collectors",
                      "INSERT INTO detect_leases(node, owner, expires_ns, epoch) VALUES "
                      "('n1', 'collector-a', " + now + " + 3600000000000, 1), "
                      "('n2', 'collector-b', " + now + " - 1000000000, 3); "
                      "INSERT INTO collectors(owner, expires_ns) VALUES "
                      "('collector-a', " + now + " + 3600000000000), "
                      "('collector-b', " + now + " - 1000000000), "
                      "('collector-c', " + now + " + 3600000000000)"));
  auto q = OpenEventQueries(uri_);
  ASSERT_TRUE(q.has_value()) << q.error().message();
  auto st = (*q)->Status();
  ASSERT_TRUE(st.has_value()) << st.error().message();
  EXPECT_EQ(st->schema_version, static_cast<int>(PgStoreMigrations().size()));
  EXPECT_EQ(st->live_collectors, (std::vector<std::string>{"collector-a", "collector-c"}));
  ASSERT_EQ(st->nodes.size(), 3u);
  const StoredNodeStatus& n1 = st->nodes[0];
  EXPECT_EQ(n1.state.node, "n1");
  EXPECT_EQ(n1.state.connected_streams, 2u);
  EXPECT_EQ(n1.state.last_seen_ns, 1764979200000000000);
  EXPECT_EQ(n1.state.events_stored, 7u);
  EXPECT_EQ(n1.state.events_missing, 4u);  // 5..7 and 9
  EXPECT_EQ(n1.state.hello.peer, "10.0.0.1:5000");
  EXPECT_EQ(n1.detect_lag, 5);             // ids 3..7
  EXPECT_FALSE(n1.detect_lag_at_least);
  EXPECT_EQ(n1.lease_owner, "collector-a");
  EXPECT_FALSE(n1.lease_expired);
  const StoredNodeStatus& n2 = st->nodes[1];
  EXPECT_EQ(n2.state.node, "n2");
  EXPECT_EQ(n2.state.events_missing, 0u);
  EXPECT_EQ(n2.detect_lag, 1);  // no cursor yet: all of its events
  EXPECT_EQ(n2.lease_owner, "collector-b");
  EXPECT_TRUE(n2.lease_expired);
  const StoredNodeStatus& n3 = st->nodes[2];
  EXPECT_EQ(n3.state.node, "n3");
  EXPECT_EQ(n3.detect_lag, 0);  // no events
  EXPECT_EQ(n3.lease_owner, "");
  EXPECT_FALSE(n3.lease_expired);
  // The reader's connection serves the next query (the status read's transaction ended).
  auto count = (*q)->CountEvents();
  ASSERT_TRUE(count.has_value()) << count.error().message();
  EXPECT_EQ(*count, 3u);
}

}  // namespace
}  // namespace driftwatch
