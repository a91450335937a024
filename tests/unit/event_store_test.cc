#include "lib/store/event_store.h"
#include "lib/base/time_arg.h"
#include "lib/store/event_reader.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <atomic>
#include <thread>
#include <future>
#include <mutex>
#include <tuple>

#include "lib/base/clock.h"

namespace driftwatch {
namespace {

// An EventQuery with only some fields set (designated initializers would warn).
struct Q {
  EventQuery q;
  Q& node(std::string v) { q.node = std::move(v); return *this; }
  Q& container(std::string v) { q.container = std::move(v); return *this; }
  Q& kind(std::string v) { q.kind = std::move(v); return *this; }
  Q& since(int64_t v) { q.since_ns = v; return *this; }
  Q& until(int64_t v) { q.until_ns = v; return *this; }
  Q& limit(uint64_t v) { q.limit = v; return *this; }
  operator const EventQuery&() const { return q; }
};

class EventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dw_store_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/collector.db";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<EventStore> Open(StoreOptions opt = {}) {
    opt.path = path_;
    opt.commit_interval = std::chrono::milliseconds(1);
    opt.retention_interval = std::chrono::hours(1);  // tests call EnforceRetention
    auto s = EventStore::Open(opt);
    EXPECT_TRUE(s.has_value()) << s.error();
    return s ? std::move(*s) : nullptr;
  }

  std::unique_ptr<EventReader> Reader() {
    auto r = EventReader::Open(path_);
    EXPECT_TRUE(r.has_value()) << r.error();
    return r ? std::move(*r) : nullptr;
  }

  std::vector<StoredEvent> Query(const EventQuery& q) {
    std::vector<StoredEvent> out;
    auto r = Reader();
    auto n = r->Query(q, [&](const StoredEvent& e) { out.push_back(e); });
    EXPECT_TRUE(n.has_value()) << n.error();
    return out;
  }

  std::string dir_, path_;
};

v1::Event Exec(uint64_t seq, const std::string& boot = "boot-1", int64_t start_ns = 100,
               const std::string& container = std::string(64, 'a'), int64_t time_ns = 0) {
  v1::Event e;
  e.mutable_id()->set_node("whatever-the-sensor-says");
  e.mutable_id()->set_boot_id(boot);
  e.mutable_id()->set_sensor_start_ns(start_ns);
  e.mutable_id()->set_seq(seq);
  e.set_time_ns(time_ns ? time_ns : 1'000'000'000LL * static_cast<int64_t>(seq));
  e.set_container_id(container);
  e.mutable_exec()->set_pid(static_cast<uint32_t>(seq));
  e.mutable_exec()->add_args("/bin/sh");
  return e;
}

v1::Event Container(uint64_t seq, const std::string& id, const std::string& state,
                    const std::string& boot = "boot-1") {
  v1::Event e = Exec(seq, boot, 100, id);
  e.mutable_container()->set_id(id);
  e.mutable_container()->set_state(state);
  e.mutable_container()->set_pod_name("web-0");
  return e;
}

// Prepares and submits one batch, waits for its commit.
std::shared_ptr<const PreparedBatch> Share(PreparedBatch b) {
  return std::make_shared<const PreparedBatch>(std::move(b));
}

CommitResult Submit(EventStore* s, const std::string& node, std::vector<v1::Event> evs) {
  google::protobuf::RepeatedPtrField<v1::Event> f;
  for (auto& e : evs) *f.Add() = std::move(e);
  auto b = PrepareBatch(node, &f);
  EXPECT_TRUE(b.has_value()) << b.error();
  std::promise<CommitResult> p;
  s->Submit(Share(std::move(*b)), [&](const CommitResult& r) { p.set_value(r); });
  return p.get_future().get();
}

std::vector<v1::Event> Range(uint64_t from, uint64_t to, const std::string& boot = "boot-1",
                             int64_t start_ns = 100) {
  std::vector<v1::Event> v;
  for (uint64_t i = from; i <= to; ++i) v.push_back(Exec(i, boot, start_ns));
  return v;
}

TEST_F(EventStoreTest, ResentEventsAreStoredOnce) {
  auto s = Open();
  CommitResult r = Submit(s.get(), "node-a", Range(1, 100));
  EXPECT_EQ(r.stored, 100u);
  EXPECT_EQ(r.duplicates, 0u);
  EXPECT_EQ(r.error, "");
  // Resent from the oldest unacked one, with new events behind.
  r = Submit(s.get(), "node-a", Range(61, 150));
  EXPECT_EQ(r.stored, 50u);
  EXPECT_EQ(r.duplicates, 40u);
  s->Flush();
  EXPECT_EQ(*Reader()->CountEvents(), 150u);
  // The node the store files them under is the one given, not the event's own.
  auto evs = Query(Q().node("node-a"));
  ASSERT_EQ(evs.size(), 150u);
  EXPECT_EQ(evs[0].event.id().node(), "node-a");
  EXPECT_EQ(evs[149].event.id().seq(), 150u);
  auto n = s->Node("node-a");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->events_stored, 150u);
  EXPECT_EQ(n->duplicates, 40u);
}

TEST_F(EventStoreTest, RunsAreKeptApart) {
  auto s = Open();
  EXPECT_EQ(Submit(s.get(), "node-a", Range(1, 10)).stored, 10u);
  // Another sensor start in the same boot, another boot, another node: all new.
  EXPECT_EQ(Submit(s.get(), "node-a", Range(1, 10, "boot-1", 200)).stored, 10u);
  EXPECT_EQ(Submit(s.get(), "node-a", Range(1, 10, "boot-2", 100)).stored, 10u);
  EXPECT_EQ(Submit(s.get(), "node-b", Range(1, 10)).stored, 10u);
  EXPECT_EQ(Submit(s.get(), "node-b", Range(1, 10)).duplicates, 10u);
  EXPECT_EQ(*Reader()->CountEvents(), 40u);
}

TEST_F(EventStoreTest, ExactlyOnceAcrossReopen) {
  {
    auto s = Open();
    EXPECT_EQ(Submit(s.get(), "node-a", Range(1, 100)).stored, 100u);
    NodeHello h;
    h.boot_id = "boot-1";
    h.sensor_version = "0.1.0";
    s->NodeConnected("node-a", h);
  }
  auto s = Open();
  CommitResult r = Submit(s.get(), "node-a", Range(50, 120));
  EXPECT_EQ(r.stored, 20u);
  EXPECT_EQ(r.duplicates, 51u);
  EXPECT_EQ(*Reader()->CountEvents(), 120u);
  // Node counters survive; connections do not (the collector restarted).
  auto n = s->Node("node-a");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->events_stored, 120u);
  EXPECT_EQ(n->connected_streams, 0u);
  EXPECT_EQ(n->hello.sensor_version, "0.1.0");
  s->Close();
  auto nodes = Reader()->Nodes();
  ASSERT_TRUE(nodes.has_value());
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ((*nodes)[0].events_stored, 120u);
  EXPECT_EQ((*nodes)[0].duplicates, 51u);
}

TEST_F(EventStoreTest, ManyBatchesFromManyStreamsCommitTogether) {
  auto s = Open();
  std::vector<std::future<CommitResult>> futs;
  std::vector<std::promise<CommitResult>> ps(40);
  for (int i = 0; i < 40; ++i) {
    google::protobuf::RepeatedPtrField<v1::Event> f;
    for (auto& e : Range(static_cast<uint64_t>(i % 4) * 25 + 1, static_cast<uint64_t>(i % 4) * 25 + 25)) *f.Add() = e;
    auto b = PrepareBatch("node-" + std::to_string(i / 4), &f);
    ASSERT_TRUE(b);
    futs.push_back(ps[static_cast<size_t>(i)].get_future());
    s->Submit(Share(std::move(*b)), [&ps, i](const CommitResult& r) { ps[static_cast<size_t>(i)].set_value(r); });
  }
  uint64_t stored = 0;
  for (auto& f : futs) stored += f.get().stored;
  EXPECT_EQ(stored, 1000u);
  EXPECT_EQ(s->Nodes().size(), 10u);
}

TEST_F(EventStoreTest, RetentionByCountDeletesOldestInChunks) {
  StoreOptions o;
  o.retention_max_events = 100;
  o.retention_chunk = 30;
  auto s = Open(o);
  Submit(s.get(), "node-a", Range(1, 250));
  auto del = s->EnforceRetention(NowNs());
  ASSERT_TRUE(del.has_value()) << del.error();
  EXPECT_EQ(*del, 150u);
  auto evs = Query(EventQuery{});
  ASSERT_EQ(evs.size(), 100u);
  EXPECT_EQ(evs.front().event.id().seq(), 151u);
  EXPECT_EQ(evs.back().event.id().seq(), 250u);
  // Deleted events stay deleted: a resend of them is still a duplicate.
  EXPECT_EQ(Submit(s.get(), "node-a", Range(1, 10)).duplicates, 10u);
  EXPECT_EQ(*s->EnforceRetention(NowNs()), 0u);
}

TEST_F(EventStoreTest, RetentionByAge) {
  StoreOptions o;
  o.retention_age = std::chrono::hours(1);
  o.retention_chunk = 7;
  auto s = Open(o);
  Submit(s.get(), "node-a", Range(1, 50));
  EXPECT_EQ(*s->EnforceRetention(NowNs()), 0u);
  EXPECT_EQ(*Reader()->CountEvents(), 50u);
  // All but the newest row: an empty table would number the next rows from 1 again, below
  // what detection has done.
  EXPECT_EQ(*s->EnforceRetention(NowNs() + 2 * 3'600'000'000'000LL), 49u);
  EXPECT_EQ(*Reader()->CountEvents(), 1u);
  EXPECT_EQ(*s->EnforceRetention(NowNs() + 3 * 3'600'000'000'000LL), 0u);
  Submit(s.get(), "node-a", Range(51, 51));
  auto scanner = EventScanner::Open(path_);
  ASSERT_TRUE(scanner) << scanner.error();
  EXPECT_EQ(*(*scanner)->MaxRowid(), 51);
  EXPECT_EQ(s->head(), 51);
}

TEST_F(EventStoreTest, Queries) {
  auto s = Open();
  const std::string c1 = "0123456789ab" + std::string(52, 'c');
  const std::string c2 = "0123456789ff" + std::string(52, 'd');
  std::vector<v1::Event> a;
  for (uint64_t i = 1; i <= 20; ++i) a.push_back(Exec(i, "boot-1", 100, i % 2 ? c1 : c2));
  a[4].clear_exec();
  a[4].mutable_chmod()->set_new_mode(0755);
  Submit(s.get(), "node-a", a);
  Submit(s.get(), "node-b", Range(1, 5));

  EXPECT_EQ(Query(EventQuery{}).size(), 25u);
  EXPECT_EQ(Query(Q().node("node-b")).size(), 5u);
  EXPECT_EQ(Query(Q().node("node-c")).size(), 0u);
  EXPECT_EQ(Query(Q().container(c1)).size(), 10u);
  EXPECT_EQ(Query(Q().container(c1.substr(0, 12))).size(), 10u);
  EXPECT_EQ(Query(Q().container("0123456789")).size(), 20u);
  auto chmods = Query(Q().kind("chmod"));
  ASSERT_EQ(chmods.size(), 1u);
  EXPECT_EQ(chmods[0].event.id().seq(), 5u);
  // Times: seq i happened at i seconds; since inclusive, until exclusive.
  auto win = Query(Q().node("node-a").since(5'000'000'000LL).until(8'000'000'000LL));
  ASSERT_EQ(win.size(), 3u);
  EXPECT_EQ(win[0].event.id().seq(), 5u);
  // Limit: the newest N, oldest first.
  auto last = Query(Q().node("node-a").limit(3));
  ASSERT_EQ(last.size(), 3u);
  EXPECT_EQ(last[0].event.id().seq(), 18u);
  EXPECT_EQ(last[2].event.id().seq(), 20u);
  EXPECT_EQ(Query(Q().node("node-a").kind("exec").limit(100)).size(), 19u);
}

TEST_F(EventStoreTest, ContainerInfoIsUpsertedAndJoined) {
  auto s = Open();
  const std::string c = std::string(64, 'e');
  Submit(s.get(), "node-a", {Container(1, c, "running"), Exec(2, "boot-1", 100, c)});
  Submit(s.get(), "node-a", {Container(3, c, "exited")});
  Submit(s.get(), "node-b", {Exec(1, "boot-9", 100, c)});  // same id, other node: not joined
  auto evs = Query(Q().kind("exec"));
  ASSERT_EQ(evs.size(), 2u);
  ASSERT_TRUE(evs[0].container.has_value());
  EXPECT_EQ(evs[0].container->state(), "exited");
  EXPECT_EQ(evs[0].container->pod_name(), "web-0");
  EXPECT_FALSE(evs[1].container.has_value());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM containers", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_F(EventStoreTest, MalformedEventsAreRefusedNamingTheField) {
  struct Case {
    std::function<void(v1::Event*)> spoil;
    std::string error;
  } cases[] = {
      {[](v1::Event* e) { e->clear_id(); }, "event 1: id missing"},
      {[](v1::Event* e) { e->mutable_id()->set_seq(0); }, "event 1: id.seq is 0"},
      {[](v1::Event* e) { e->clear_exec(); }, "event 1: body missing"},
      {[](v1::Event* e) { e->set_time_ns(-1); }, "event 1: time_ns is negative"},
      {[](v1::Event* e) { e->mutable_container()->set_state("running"); },
       "event 1: container.id is empty"},
      {[](v1::Event* e) { e->set_container_id(std::string(300, 'x')); },
       "event 1: container_id longer"},
  };
  for (const Case& c : cases) {
    google::protobuf::RepeatedPtrField<v1::Event> f;
    *f.Add() = Exec(1);
    *f.Add() = Exec(2);
    c.spoil(f.Mutable(1));
    auto b = PrepareBatch("node-a", &f);
    ASSERT_FALSE(b.has_value()) << c.error;
    EXPECT_TRUE(b.error().message().starts_with(c.error)) << b.error();
  }
}

// Events arrive as bytes: what a sensor sent is stored except the id and container id,
// which come back from the columns (the node from the authenticated name).
TEST_F(EventStoreTest, EncodedEventsKeepUnknownFieldsAndGetTheirIdBack) {
  auto s = Open();
  const std::string c = "0123456789ab" + std::string(52, 'f');
  v1::Event e = Exec(7, "boot-x", 42, c, 5'000'000'000LL);
  // Field 99 (varint 1): unknown to this version, appended after the known ones.
  std::string bytes = e.SerializeAsString() + std::string("\x98\x06\x01", 3);
  std::vector<std::string_view> views{bytes};
  auto b = PrepareEncodedBatch("node-z", views);
  ASSERT_TRUE(b.has_value()) << b.error();
  ASSERT_EQ(b->events.size(), 1u);
  // The payload lacks the id and the container id (they are columns).
  EXPECT_EQ(b->payload(b->events[0]).find("boot-x"), std::string_view::npos);
  EXPECT_EQ(b->payload(b->events[0]).find(c), std::string_view::npos);
  v1::Event decoded;
  ASSERT_TRUE(DecodePreparedEvent(*b, 0, &decoded));
  EXPECT_EQ(decoded.id().node(), "node-z");
  EXPECT_EQ(decoded.id().seq(), 7u);
  EXPECT_EQ(decoded.container_id(), c);
  EXPECT_FALSE(DecodePreparedEvent(*b, 1, &decoded));
  std::promise<CommitResult> p;
  s->Submit(Share(std::move(*b)), [&](const CommitResult& r) { p.set_value(r); });
  EXPECT_EQ(p.get_future().get().stored, 1u);
  auto evs = Query(Q().container("0123456789ab"));
  ASSERT_EQ(evs.size(), 1u);
  const v1::Event& got = evs[0].event;
  EXPECT_EQ(got.id().node(), "node-z");
  EXPECT_EQ(got.id().boot_id(), "boot-x");
  EXPECT_EQ(got.id().sensor_start_ns(), 42);
  EXPECT_EQ(got.id().seq(), 7u);
  EXPECT_EQ(got.container_id(), c);
  EXPECT_EQ(got.time_ns(), 5'000'000'000LL);
  EXPECT_EQ(got.exec().pid(), 7u);
  EXPECT_EQ(got.GetReflection()->GetUnknownFields(got).field_count(), 1);
}

// Issue 11: paths, argv, names and labels that are not UTF-8 (bytes on the wire) are
// stored and read back exactly, through the batch, the store and DecodeStoredEvent.
TEST_F(EventStoreTest, BytesThatAreNotUtf8AreStoredAsTheyAre) {
  auto s = Open();
  const std::string cid = std::string(64, 'e');
  const std::string path = "/tmp/\xffx";
  std::vector<v1::Event> evs;
  v1::Event c = Container(1, cid, "running");
  c.mutable_container()->set_name("app\xff");
  c.mutable_container()->set_pod_name("web-\xfe");
  c.mutable_container()->set_upperdir("/var/lib/c\xff/fs");
  c.mutable_container()->add_lowerdirs("/l\x80");
  v1::Label* l = c.mutable_container()->add_labels();
  l->set_key("k\xfe");
  l->set_value("v\xff");
  evs.push_back(c);
  v1::Event w = Exec(2, "boot-1", 100, cid);
  w.mutable_write()->set_kind("close_write");
  w.mutable_write()->set_path(path);
  w.mutable_write()->set_upper_path("/var/lib/c\xff/fs" + path);
  w.mutable_write()->set_comm("cp\xff");
  evs.push_back(w);
  v1::Event e = Exec(3, "boot-1", 100, cid);
  e.mutable_exec()->set_exe(path);
  e.mutable_exec()->set_path(path);
  e.mutable_exec()->set_comm("\xffx");
  e.mutable_exec()->set_cwd("/\xfe");
  e.mutable_exec()->add_args(std::string("\x80\0\xff", 3));
  e.mutable_exec()->set_user_name("r\xfft");
  evs.push_back(e);
  for (v1::Event& ev : evs) ev.mutable_id()->set_node("node-u");  // as the store files them

  std::vector<std::string> bytes;
  for (const v1::Event& ev : evs) bytes.push_back(ev.SerializeAsString());
  std::vector<std::string_view> views(bytes.begin(), bytes.end());
  auto b = PrepareEncodedBatch("node-u", views);
  ASSERT_TRUE(b.has_value()) << b.error();
  for (size_t i = 0; i < evs.size(); ++i) {
    v1::Event got;
    ASSERT_TRUE(DecodePreparedEvent(*b, i, &got));
    EXPECT_EQ(got.SerializeAsString(), bytes[i]) << i;
    got.Clear();
    RunInfo run{"node-u", "boot-1", 100};
    ASSERT_TRUE(DecodeStoredEvent(b->payload(b->events[i]), run, evs[i].id().seq(), cid, &got));
    EXPECT_EQ(got.SerializeAsString(), bytes[i]) << i;
  }
  std::promise<CommitResult> p;
  s->Submit(Share(std::move(*b)), [&](const CommitResult& r) { p.set_value(r); });
  CommitResult r = p.get_future().get();
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.stored, 3u);
  auto stored = Query(Q().node("node-u"));
  ASSERT_EQ(stored.size(), 3u);
  for (size_t i = 0; i < stored.size(); ++i) {
    EXPECT_EQ(stored[i].event.SerializeAsString(), bytes[i]) << i;
    ASSERT_TRUE(stored[i].container.has_value()) << i;
    EXPECT_EQ(stored[i].container->name(), "app\xff");
    ASSERT_EQ(stored[i].container->labels_size(), 1);
    EXPECT_EQ(stored[i].container->labels(0).value(), "v\xff");
  }
  EXPECT_EQ(stored[1].event.write().path(), path);
  EXPECT_EQ(stored[2].event.exec().args(1), std::string("\x80\0\xff", 3));
}

// A `string` field is left only for the sensor's own vocabulary; bad UTF-8 there is a broken
// sensor, and the batch is refused (not stored in part).
TEST_F(EventStoreTest, UnparsableEncodedEventsAreRefused) {
  const std::string good = Exec(1).SerializeAsString();
  v1::Event bad_utf8 = Exec(2);
  bad_utf8.mutable_exec()->set_syscall("exec\xff");  // a proto3 string must be UTF-8
  const std::string bad_utf8_bytes = bad_utf8.SerializePartialAsString();
  const std::string truncated = good.substr(0, good.size() - 3);
  for (const std::string* bad : {&bad_utf8_bytes, &truncated}) {
    std::vector<std::string_view> views{good, *bad};
    auto b = PrepareEncodedBatch("node-a", views);
    ASSERT_FALSE(b.has_value());
    EXPECT_TRUE(b.error().message().starts_with("event 1: does not parse")) << b.error();
  }
}

TEST_F(EventStoreTest, DatabaseOfTheOldSchemaIsRefused) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE events(id INTEGER PRIMARY KEY, node TEXT); "
                         "CREATE TABLE runs(x); CREATE TABLE containers(x); "
                         "CREATE TABLE nodes(x)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  StoreOptions o;
  o.path = path_;
  auto s = EventStore::Open(o);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message().find("schema version 1"), std::string::npos) << s.error();
  auto r = EventReader::Open(path_);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("schema version 1"), std::string::npos) << r.error();
}

TEST_F(EventStoreTest, CorruptPayloadIsAnErrorNamingTheRow) {
  auto s = Open();
  Submit(s.get(), "node-a", Range(1, 3));
  s->Close();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE events SET payload = x'ffffffff' WHERE seq = 2", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto r = Reader();
  auto n = r->Query({}, [](const StoredEvent&) {});
  ASSERT_FALSE(n.has_value());
  EXPECT_NE(n.error().message().find("event 2: payload does not parse"), std::string::npos) << n.error();
}

TEST_F(EventStoreTest, ReaderErrors) {
  auto r = EventReader::Open(dir_ + "/missing.db");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("no such database"), std::string::npos) << r.error();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/other.db").c_str(), &db), SQLITE_OK);
    sqlite3_exec(db, "CREATE TABLE t(x)", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  r = EventReader::Open(dir_ + "/other.db");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("not a driftwatch collector database"), std::string::npos);
}

TEST_F(EventStoreTest, SubmitAfterCloseFails) {
  auto s = Open();
  s->Close();
  google::protobuf::RepeatedPtrField<v1::Event> f;
  *f.Add() = Exec(1);
  auto b = PrepareBatch("node-a", &f);
  ASSERT_TRUE(b);
  std::string err;
  s->Submit(Share(std::move(*b)), [&](const CommitResult& r) { err = r.error; });
  EXPECT_EQ(err, "event store closed");
}

// Submits on a stream token, without waiting.
std::future<CommitResult> SubmitAsync(EventStore* s, const std::string& node,
                                      std::vector<v1::Event> evs, uint64_t stream) {
  google::protobuf::RepeatedPtrField<v1::Event> f;
  for (auto& e : evs) *f.Add() = std::move(e);
  auto b = PrepareBatch(node, &f);
  EXPECT_TRUE(b.has_value()) << b.error();
  auto p = std::make_shared<std::promise<CommitResult>>();
  auto fut = p->get_future();
  s->Submit(Share(std::move(*b)), [p](const CommitResult& r) { p->set_value(r); }, stream);
  return fut;
}

// A review read the high-water-mark code as losing a failed batch: once a later batch of the
// same run commits, the failed batch's events, resent, would look like duplicates. Settled
// here with a real lock held by another connection: batch A fails, batch B of the same
// stream is refused, the resend of A and B on a new stream stores all of them once.
TEST_F(EventStoreTest, FailedBatchLosesNothingWhenLaterBatchesFollow) {
  StoreOptions o;
  o.busy_timeout = std::chrono::milliseconds(50);
  auto s = Open(o);
  ASSERT_EQ(Submit(s.get(), "node-a", Range(1, 5)).stored, 5u);
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  CommitResult a = SubmitAsync(s.get(), "node-a", Range(6, 15), 7).get();
  EXPECT_NE(a.error, "") << "the write lock is held: batch A must fail";
  EXPECT_NE(s->last_error(), "");
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  // Batch B of the same stream, queued behind A: committing it would raise the mark to 25.
  CommitResult b = SubmitAsync(s.get(), "node-a", Range(16, 25), 7).get();
  EXPECT_NE(b.error.find("earlier batch of this stream failed"), std::string::npos) << b.error;
  // The sensor resends everything unacked (A and B) on a new stream.
  CommitResult again = SubmitAsync(s.get(), "node-a", Range(6, 25), 8).get();
  EXPECT_EQ(again.error, "");
  EXPECT_EQ(again.stored, 20u);
  EXPECT_EQ(again.duplicates, 0u);
  EXPECT_EQ(s->last_error(), "");
  s->Flush();
  auto evs = Query(EventQuery{});
  ASSERT_EQ(evs.size(), 25u);
  for (size_t i = 0; i < evs.size(); ++i) EXPECT_EQ(evs[i].event.id().seq(), i + 1);
}

// on_commit hands each commit's batches with their rowids: the rows (after, head] are exactly
// those, in the order a scan of the store reads them, duplicates left out (detection's feed).
TEST_F(EventStoreTest, CommitFeedIsExactlyTheRowsStored) {
  std::mutex mu;
  std::vector<StoreCommit> commits;
  StoreOptions o;
  o.on_commit = [&](StoreCommit c) {
    std::lock_guard lk(mu);
    commits.push_back(std::move(c));
  };
  auto s = Open(o);
  Submit(s.get(), "node-a", Range(1, 10));
  Submit(s.get(), "node-b", Range(1, 3));
  Submit(s.get(), "node-a", Range(5, 15));  // 5..10 are duplicates
  Submit(s.get(), "node-a", Range(1, 15));  // all duplicates: no commit to hand over
  s->Flush();
  std::lock_guard lk(mu);
  ASSERT_EQ(commits.size(), 3u);
  std::vector<std::tuple<int64_t, std::string, uint64_t>> fed;  // rowid, node, seq
  int64_t after = 0;
  for (const StoreCommit& c : commits) {
    EXPECT_EQ(c.after, after);  // one commit after the other, nothing between
    after = c.head;
    for (const CommittedBatch& b : c.batches) {
      ASSERT_EQ(b.rowids.size(), b.batch->events.size());
      for (size_t i = 0; i < b.rowids.size(); ++i) {
        if (b.rowids[i] == 0) continue;
        EXPECT_GT(b.rowids[i], c.after);
        EXPECT_LE(b.rowids[i], c.head);
        fed.emplace_back(b.rowids[i], b.batch->node, b.batch->events[i].seq);
      }
    }
  }
  EXPECT_EQ(after, s->head());
  auto sc = EventScanner::Open(path_);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  std::vector<std::tuple<int64_t, std::string, uint64_t>> scanned;
  auto n = (*sc)->Scan(0, s->head(), 1000, [&](const ScannedEvent& e) {
    auto run = (*sc)->Run(e.run_id);
    ASSERT_TRUE(run && *run);
    scanned.emplace_back(e.rowid, (*run)->node, e.seq);
  });
  ASSERT_TRUE(n.has_value()) << n.error();
  EXPECT_EQ(*n, 18u);
  EXPECT_EQ(fed, scanned);
}

// What a batch holds in memory counts the container ids kept beside its bytes: a sender
// that names a new container in every event must not look small to detection's feed bound.
TEST(PreparedBatchTest, MemoryBytesCountsContainerIds) {
  google::protobuf::RepeatedPtrField<v1::Event> f;
  for (uint64_t i = 1; i <= 100; ++i) {
    v1::Event e = Exec(i, "boot-1", 100);
    e.set_container_id(std::string(63, 'c') + static_cast<char>('0' + i % 10) + std::to_string(i));
    *f.Add() = std::move(e);
  }
  auto b = PrepareBatch("node-a", &f);
  ASSERT_TRUE(b.has_value()) << b.error();
  ASSERT_EQ(b->containers.size(), 100u);
  EXPECT_GE(b->MemoryBytes(), b->data.size() + 100 * 64 + 100 * sizeof(PreparedEvent));
}

TEST_F(EventStoreTest, GapsAreRecordedWithTheEventAfterThem) {
  auto s = Open();
  Submit(s.get(), "node-a", Range(1, 10));
  Submit(s.get(), "node-a", Range(21, 30));  // 11..20 never came
  Submit(s.get(), "node-b", Range(3, 4));    // a run first seen at 3: 1..2 never came
  s->Flush();
  EXPECT_EQ(s->Node("node-a")->events_missing, 10u);
  EXPECT_EQ(s->Node("node-b")->events_missing, 2u);
  auto sc = EventScanner::Open(path_);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  auto gaps = (*sc)->Gaps(0, s->head());
  ASSERT_TRUE(gaps.has_value()) << gaps.error();
  ASSERT_EQ(gaps->size(), 2u);
  EXPECT_EQ((*gaps)[0].node, "node-a");
  EXPECT_EQ((*gaps)[0].from_seq, 11u);
  EXPECT_EQ((*gaps)[0].to_seq, 20u);
  EXPECT_EQ((*gaps)[0].after_rowid, 11);  // the 11th row stored: seq 21
  EXPECT_EQ((*gaps)[1].node, "node-b");
  EXPECT_EQ((*gaps)[1].from_seq, 1u);
  EXPECT_EQ((*gaps)[1].to_seq, 2u);
  // The scanner gives the rows in order with their runs.
  std::vector<uint64_t> seqs;
  auto n = (*sc)->Scan(10, s->head(), 100, [&](const ScannedEvent& e) {
    auto run = (*sc)->Run(e.run_id);
    ASSERT_TRUE(run && *run);
    v1::Event ev;
    auto cid = (*sc)->ContainerId(e.cid);
    ASSERT_TRUE(cid && *cid);
    ASSERT_TRUE(DecodeStoredEvent(e.payload, **run, e.seq, **cid, &ev));
    EXPECT_EQ(ev.id().seq(), e.seq);
    seqs.push_back(e.seq);
  });
  ASSERT_TRUE(n.has_value()) << n.error();
  EXPECT_EQ(seqs.size(), 12u);
  EXPECT_EQ(seqs.front(), 21u);
}

// `driftwatch status --db FILE`: per node what the nodes row says, the gaps, and the events
// above the node's cursor or the global floor, whichever is higher.
TEST_F(EventStoreTest, StatusCountsEachNodesEventsAboveItsCursor) {
  auto s = Open();
  Submit(s.get(), "node-a", Range(1, 10));   // rowids 1..10
  Submit(s.get(), "node-b", Range(1, 5));    // 11..15
  Submit(s.get(), "node-a", Range(21, 25));  // 16..20, after a gap of 10
  Submit(s.get(), "node-c", Range(1, 3));    // 21..23
  s->Flush();
  s.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  // Detection finished with everything up to 12, node-a up to 8 (below the floor), node-b
  // up to 14; node-c has no cursor of its own.
  ASSERT_EQ(sqlite3_exec(db,
                         "INSERT INTO detect_cursors(node, rowid, updated_ns) VALUES "
                         "('', 12, 0), ('node-a', 8, 0), ('node-b', 14, 0)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  auto r = Reader();
  auto st = r->Status();
  ASSERT_TRUE(st.has_value()) << st.error();
  EXPECT_EQ(st->schema_version, 3);
  EXPECT_TRUE(st->live_collectors.empty());
  ASSERT_EQ(st->nodes.size(), 3u);
  std::vector<std::tuple<std::string, uint64_t, uint64_t, int64_t, bool>> got;
  for (const StoredNodeStatus& n : st->nodes) {
    got.emplace_back(n.state.node, n.state.events_stored, n.state.events_missing, n.detect_lag,
                     n.detect_lag_at_least);
    EXPECT_EQ(n.lease_owner, "");
    EXPECT_GT(n.state.last_seen_ns, 0);
  }
  EXPECT_EQ(got, (decltype(got){{"node-a", 15, 10, 5, false},
                                {"node-b", 5, 0, 1, false},
                                {"node-c", 3, 0, 3, false}}));
  // Bounded: only the newest 4 rows (20..23) are read; counts of nodes whose cursor is below
  // them are lower bounds.
  ASSERT_EQ(sqlite3_exec(db, "INSERT INTO detect_cursors(node, rowid, updated_ns) VALUES ('node-c', 21, 0)",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  r->set_max_lag_scan(4);
  st = r->Status();
  ASSERT_TRUE(st.has_value()) << st.error();
  got.clear();
  for (const StoredNodeStatus& n : st->nodes)
    got.emplace_back(n.state.node, n.state.events_stored, n.state.events_missing, n.detect_lag,
                     n.detect_lag_at_least);
  EXPECT_EQ(got, (decltype(got){{"node-a", 15, 10, 1, true},
                                {"node-b", 5, 0, 0, true},
                                {"node-c", 3, 0, 2, false}}));
  sqlite3_close(db);
}

TEST_F(EventStoreTest, RetentionKeepsWhatDetectionHasNotEvaluated) {
  StoreOptions o;
  o.retention_max_events = 10;
  o.retention_chunk = 1000;
  std::atomic<int64_t> floor{31};  // rows 31.. not evaluated yet
  o.retention_floor = [&floor] { return floor.load(); };
  auto s = Open(o);
  Submit(s.get(), "node-a", Range(1, 100));
  EXPECT_EQ(*s->EnforceRetention(NowNs()), 30u);
  EXPECT_EQ(*Reader()->CountEvents(), 70u);
  floor = 101;  // all evaluated
  EXPECT_EQ(*s->EnforceRetention(NowNs()), 60u);
  EXPECT_EQ(*Reader()->CountEvents(), 10u);
}

TEST_F(EventStoreTest, ForwardClockJumpDoesNotDeleteEverything) {
  StoreOptions o;
  o.retention_age = std::chrono::hours(1);
  std::atomic<int64_t> wall{NowNs()};
  o.wall_clock = [&wall] { return wall.load(); };
  auto s = Open(o);
  Submit(s.get(), "node-a", Range(1, 50));
  wall += 365LL * 86400 * 1'000'000'000LL;  // the system clock jumps a year ahead
  // The store's clock moves at most twice as fast as real time: nothing is an hour old.
  const int64_t now = s->StoreNowNs();
  EXPECT_LT(now, wall.load() - 3'600'000'000'000LL);
  EXPECT_EQ(*s->EnforceRetention(now), 0u);
  Submit(s.get(), "node-a", Range(51, 60));  // rows stored after the jump
  EXPECT_EQ(*s->EnforceRetention(s->StoreNowNs()), 0u);
  EXPECT_EQ(*Reader()->CountEvents(), 60u);
  // A real hour later (as the store's clock sees it), the old rows go (but the newest).
  EXPECT_EQ(*s->EnforceRetention(s->StoreNowNs() + 2 * 3'600'000'000'000LL), 59u);
}

TEST_F(EventStoreTest, RunsAndContainerKeysAgeOutWithTheirEvents) {
  StoreOptions o;
  o.retention_age = std::chrono::hours(1);
  auto s = Open(o);
  Submit(s.get(), "node-a", Range(1, 5, "boot-old"));
  s->Flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // The newest row stays whatever its age (rowids must keep growing): one of another run and
  // container.
  auto last = Range(1, 1, "boot-new");
  last[0].set_container_id("other");
  Submit(s.get(), "node-a", last);
  s->Flush();
  const int64_t later = NowNs() + 2 * 3'600'000'000'000LL;
  EXPECT_EQ(*s->EnforceRetention(later), 5u);  // the events; their run and key go with them
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  auto count = [&](const char* sql) {
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
    sqlite3_step(st);
    const int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
  };
  EXPECT_EQ(count("SELECT count(*) FROM runs WHERE boot_id = 'boot-old'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM runs"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM container_ids WHERE id = 'other'"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM container_ids"), 1);
  sqlite3_close(db);
}

// A database of the previous schema (version 2, as the last release wrote it) is migrated in
// place: its events stay, detection resumes after them (the old collector evaluated them as
// they came), and new events are stored on top.
TEST_F(EventStoreTest, SchemaVersion2IsMigrated) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, R"sql(
CREATE TABLE IF NOT EXISTS runs(
  run_id INTEGER PRIMARY KEY,
  node TEXT NOT NULL,
  boot_id TEXT NOT NULL,
  sensor_start_ns INTEGER NOT NULL,
  max_seq INTEGER NOT NULL,
  UNIQUE(node, boot_id, sensor_start_ns));
CREATE TABLE IF NOT EXISTS container_ids(
  cid INTEGER PRIMARY KEY,
  node TEXT NOT NULL,
  id TEXT NOT NULL,
  UNIQUE(id, node));
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  time_ns INTEGER NOT NULL,
  stored_ns INTEGER NOT NULL,
  cid INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  payload BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS events_cid ON events(cid);
CREATE INDEX IF NOT EXISTS events_time ON events(time_ns);
CREATE TABLE IF NOT EXISTS containers(
  cid INTEGER PRIMARY KEY,
  info BLOB NOT NULL,
  updated_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nodes(
  node TEXT PRIMARY KEY,
  connected_streams INTEGER NOT NULL,
  last_seen_ns INTEGER NOT NULL,
  events_stored INTEGER NOT NULL,
  duplicates INTEGER NOT NULL,
  boot_id TEXT NOT NULL,
  sensor_start_ns INTEGER NOT NULL,
  sensor_version TEXT NOT NULL,
  kernel_version TEXT NOT NULL,
  audit_mode TEXT NOT NULL,
  fanotify_mode TEXT NOT NULL,
  spool_dropped INTEGER NOT NULL,
  peer TEXT NOT NULL);
PRAGMA user_version = 2;
)sql", nullptr, nullptr, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "INSERT INTO runs VALUES(1, 'node-a', 'boot-1', 100, 2);"
                         "INSERT INTO container_ids VALUES(1, 'node-a', 'c1');"
                         "INSERT INTO events VALUES(1, 1, 1, 1, 1, 1, 10, x'');"
                         "INSERT INTO events VALUES(2, 1, 2, 2, 2, 1, 10, x'');",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = Open();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->head(), 2);
  // The old run's mark holds: a resend of its events is a duplicate; new ones are stored.
  CommitResult r = Submit(s.get(), "node-a", Range(1, 4));
  EXPECT_EQ(r.duplicates, 2u);
  EXPECT_EQ(r.stored, 2u);
  s->Flush();
  auto sc = EventScanner::Open(path_);
  ASSERT_TRUE(sc.has_value()) << sc.error();
  auto cursors = (*sc)->Cursors();
  ASSERT_TRUE(cursors.has_value()) << cursors.error();
  EXPECT_EQ((*cursors)["node-a"], 2);
  EXPECT_EQ((*cursors)[""], 2);
  EXPECT_TRUE(Reader() != nullptr);
}

TEST(ParseTimeArgTest, AcceptedAndRefused) {
  const int64_t now = 1'800'000'000'000'000'000LL;
  struct {
    const char* in;
    int64_t want;
  } ok[] = {
      {"30s", now - 30'000'000'000LL},
      {"10m", now - 600'000'000'000LL},
      {"2h", now - 7'200'000'000'000LL},
      {"7d", now - 604'800'000'000'000LL},
      {"0s", now},
      {"2026-11-28", 1795824000'000'000'000LL},
      {"2026-11-28T09:06:20Z", 1795856780'000'000'000LL},
      {"2026-11-28T09:06:20.5Z", 1795856780'500'000'000LL},
      {"2026-11-28T09:06:20.123456789Z", 1795856780'123'456'789LL},
      {"2026-11-28T10:06:20+01:00", 1795856780'000'000'000LL},
      {"2026-11-28T04:06:20-0500", 1795856780'000'000'000LL},
      {"2026-11-28 09:06", 1795856760'000'000'000LL},
      {"2261-12-31", 9'214'560'000'000'000'000LL},  // the last year 64-bit nanoseconds hold
  };
  for (auto& c : ok) {
    auto t = ParseTimeArg(c.in, now);
    ASSERT_TRUE(t.has_value()) << c.in << ": " << t.error();
    EXPECT_EQ(*t, c.want) << c.in;
  }
  for (const char* bad : {"", "10", "10x", "m", "-5m", "2026-13-01", "2026-11-28T25:00Z",
                          "2026-11-28T09:06:20Zjunk", "yesterday", "2026/11/28",
                          "2725-12-03T10:40:00Z", "1600-01-01", "2262-04-12"}) {
    auto t = ParseTimeArg(bad, now);
    EXPECT_FALSE(t.has_value()) << bad;
    if (!t) {
      EXPECT_NE(t.error().message().find("bad time"), std::string::npos);
    }
  }
}

TEST(EventKindTest, Names) {
  v1::Event e;
  EXPECT_EQ(EventKind(e), "");
  e.mutable_exec();
  EXPECT_EQ(EventKind(e), "exec");
  e.mutable_write();
  EXPECT_EQ(EventKind(e), "write");
  e.mutable_status();
  EXPECT_EQ(EventKind(e), "status");
}

}  // namespace
}  // namespace driftwatch
