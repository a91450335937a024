// IngestSession (collector/session.h), the protocol of one sensor stream, driven as the
// reactor drives it, against a small SessionStore that records what the session asked of
// it. Each row: what the sensor sends (and the store does) -> what the stream answers, what
// reaches the store and detection, and how the stream ends.
#include "collector/session.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace driftwatch {
namespace {

// Everything the session does, in order, as lines of `log`.
struct RecordingStore : SessionStore {
  std::vector<std::string>* log;
  std::map<std::string, NodeState> nodes;
  bool hold_acks = false;
  std::vector<std::function<void()>> held;
  uint64_t inventory_bytes = 0;
  std::map<std::pair<std::string, std::string>, uint64_t> discards;

  explicit RecordingStore(std::vector<std::string>* l) : log(l) {}
  void NodeConnected(const std::string& node, const NodeHello& h) override {
    ++nodes[node].connected_streams;
    log->push_back("connected " + node + " boot=" + h.boot_id);
  }
  void NodeDisconnected(const std::string& node) override {
    --nodes[node].connected_streams;
    log->push_back("disconnected " + node);
  }
  std::optional<NodeState> Node(const std::string& node) const override {
    auto it = nodes.find(node);
    if (it == nodes.end()) return std::nullopt;
    return it->second;
  }
  void OnHello(const std::string& node, const v1::Hello&) override {
    log->push_back("on_hello " + node);
  }
  bool Admit(std::function<void()> release) override {
    if (!hold_acks) return true;
    held.push_back(std::move(release));
    log->push_back("held");
    return false;
  }
  void OnInventory(const std::string& node, uint64_t command_id, StoredInventory inv) override {
    std::string line = "inventory " + node + " " + std::to_string(command_id);
    if (!inv.error.empty()) {
      line += " error=" + inv.error;
    } else {
      v1::InventoryReply r;
      EXPECT_TRUE(r.ParseFromString(inv.reply));
      line += " container=" + inv.container_id + " entries=" + std::to_string(inv.entries) +
              " parsed=" + std::to_string(r.entries_size());
    }
    log->push_back(line);
  }
  uint64_t CountInventoryDiscard(const std::string& node, const std::string& reason) override {
    log->push_back("discard " + node + " " + reason);
    return ++discards[{node, reason}];
  }
  uint64_t InventoryBytes() const override { return inventory_bytes; }
  void AddInventoryBytes(int64_t delta) override {
    inventory_bytes += static_cast<uint64_t>(delta);
  }
};

// One step of a row.
struct Op {
  enum Kind { kSend, kRaw, kCommit, kRelease, kRefuse, kCommand, kAdvance, kEnd, kReconnect };
  Kind kind = kSend;
  v1::SensorMessage msg;
  std::string raw;
  uint64_t id = 0;
  CommitResult result;
  std::chrono::milliseconds advance{0};
};

Op Send(v1::SensorMessage m) { return Op{Op::kSend, std::move(m), "", 0, {}, {}}; }
Op Raw(std::string bytes) { return Op{Op::kRaw, {}, std::move(bytes), 0, {}, {}}; }
Op Hello(const std::string& node = "") {
  v1::SensorMessage m;
  m.mutable_hello()->set_node(node);
  m.mutable_hello()->set_boot_id("b1");
  return Send(m);
}
Op Batch(uint64_t id, int events = 1) {
  v1::SensorMessage m;
  m.mutable_batch()->set_batch_id(id);
  for (int i = 0; i < events; ++i) m.mutable_batch()->add_events()->mutable_id()->set_seq(i + 1);
  return Send(m);
}
Op Commit(uint64_t id, uint64_t stored, uint64_t duplicates = 0, std::string error = "") {
  return Op{Op::kCommit, {}, "", id, CommitResult{stored, duplicates, std::move(error)}, {}};
}
Op Release() { return Op{Op::kRelease, {}, "", 0, {}, {}}; }
Op Refuse(uint64_t id, std::string why) { return Op{Op::kRefuse, {}, std::move(why), id, {}, {}}; }
Op Command(uint64_t id) { return Op{Op::kCommand, {}, "", id, {}, {}}; }
Op Advance(std::chrono::milliseconds d) { return Op{Op::kAdvance, {}, "", 0, {}, d}; }
Op End() { return Op{Op::kEnd, {}, "", 0, {}, {}}; }
Op Reconnect() { return Op{Op::kReconnect, {}, "", 0, {}, {}}; }
// A chunk of command `cmd`'s reply; last: -1 leaves last_chunk absent (a sensor from before
// chunks), else sets it.
Op Chunk(uint64_t cmd, uint32_t index, int last, int entries, std::string garbage_entry = "") {
  v1::SensorMessage m;
  v1::InventoryReply* r = m.mutable_inventory();
  r->set_command_id(cmd);
  r->set_container_id("c1");
  r->set_chunk_index(index);
  if (last >= 0) r->set_last_chunk(last != 0);
  for (int i = 0; i < entries; ++i) {
    v1::InventoryEntry* e = r->add_entries();
    e->set_kind("added");
    e->set_path("/usr/bin/x" + std::to_string(i));
  }
  std::string bytes = m.SerializeAsString();
  if (!garbage_entry.empty()) {
    // An entries field (4, length-delimited) whose bytes do not parse as an InventoryEntry,
    // appended inside the inventory field: the message is rebuilt around it.
    std::string reply = r->SerializeAsString();
    reply += '\x22';
    reply += static_cast<char>(garbage_entry.size());
    reply += garbage_entry;
    bytes = std::string("\x1a") + static_cast<char>(reply.size()) + reply;
    return Raw(bytes);
  }
  return Raw(bytes);
}

struct Row {
  std::string name;
  std::function<void(IngestOptions*, RecordingStore*)> setup;
  std::string cert_node;  // "" with options->insecure: the node from Hello
  std::vector<Op> ops;
  std::vector<std::string> want;  // the log: store calls, messages out ("out ...")
  std::string want_status;        // "" while the stream may go on; else "CODE: message"
};

const char* CodeName(SessionCode c) {
  switch (c) {
    case SessionCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case SessionCode::kUnauthenticated: return "UNAUTHENTICATED";
    case SessionCode::kUnavailable: return "UNAVAILABLE";
  }
  return "?";
}

// Drives sessions over one store as the reactor does, recording what comes out.
struct Driver {
  std::vector<std::string> log;
  RecordingStore store{&log};
  IngestOptions opt;
  std::string peer = "ipv4:127.0.0.1:5000";
  std::string cert_node;
  std::optional<IngestSession> s;
  ScannedSensorMessage msg;
  IngestSession::Clock::time_point now{};

  void Start() { s.emplace(&store, &opt, peer, cert_node); }
  void Drain() {
    for (const v1::CollectorMessage& m : s->TakeOutbox()) {
      if (m.has_welcome()) {
        log.push_back("out welcome " + m.welcome().node() +
                      " max=" + std::to_string(m.welcome().max_batch_events()));
      } else if (m.has_ack()) {
        log.push_back("out ack " + std::to_string(m.ack().batch_id()) +
                      " stored=" + std::to_string(m.ack().stored()) +
                      " dup=" + std::to_string(m.ack().duplicates()));
      } else {
        log.push_back("out ?");
      }
    }
  }
  void Receive(const std::string& bytes) {
    const IngestSession::Inbound in =
        s->Inspect(ScanSensorMessage(bytes, &msg, opt.max_batch_events + 1ull), msg);
    IngestSession::Step step = s->Apply(in, now);
    if (step.registered) s->HelloDone(*in.hello);
    if (step.joining) {
      IngestSession::ChunkWalk w = s->WalkChunk(msg.parts, &step.joining->mapped());
      s->JoinChunk(in.chunk, std::move(*step.joining), std::move(w));
    }
    s->DeliverReady();
    if (step.batch_id != 0) {
      s->Submitted(step.batch_id);
      log.push_back("submit " + std::to_string(step.batch_id));
    }
  }
  void Run(const Op& op) {
    switch (op.kind) {
      case Op::kSend: Receive(op.msg.SerializeAsString()); break;
      case Op::kRaw: Receive(op.raw); break;
      case Op::kCommit: {
        const uint64_t id = op.id;
        const CommitResult r = op.result;
        if (s->Admit(r, [this, id, r] { s->Committed(id, r); })) s->Committed(id, r);
        break;
      }
      case Op::kRelease:
        for (auto& f : std::exchange(store.held, {})) f();
        break;
      case Op::kRefuse: s->BatchRefused(op.id, op.raw); break;
      case Op::kCommand:
        log.push_back(std::string(s->AddCommand(op.id, now) ? "command " : "command full ") +
                      std::to_string(op.id));
        break;
      case Op::kAdvance: now += op.advance; break;
      case Op::kEnd: s->End(false, "OK"); break;
      case Op::kReconnect:
        s->End(false, s->failure() ? s->failure()->message : "OK");
        Start();
        break;
    }
    Drain();
  }
  std::string Status() const {
    if (!s->failure()) return "";
    return std::string(CodeName(s->failure()->code)) + ": " + s->failure()->message;
  }
};

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += "  " + s + "\n";
  return out;
}

const std::string kOver = "discard node-a over_cap";

std::vector<Row> Rows() {
  auto none = [](IngestOptions*, RecordingStore*) {};
  auto insecure = [](IngestOptions* o, RecordingStore*) { o->insecure = true; };
  return {
      // Hello
      {"hello answered with the certificate's name", none, "node-a", {Hello("liar")},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000"}, ""},
      {"no certificate name", none, "", {Hello("node-a")}, {},
       "UNAUTHENTICATED: no node name in the client certificate (SAN DNS or CN)"},
      {"batch before hello", none, "node-a", {Batch(1)}, {},
       "INVALID_ARGUMENT: EventBatch before Hello: the first message must be Hello"},
      {"inventory before hello", none, "node-a", {Chunk(1, 0, 1, 1)}, {},
       "INVALID_ARGUMENT: InventoryReply before Hello: the first message must be Hello"},
      {"second hello", none, "node-a", {Hello(), Hello()},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000"},
       "INVALID_ARGUMENT: second Hello on the stream"},
      {"insecure: the node from hello", insecure, "", {Hello("node-b")},
       {"connected node-b boot=b1", "on_hello node-b", "out welcome node-b max=10000"}, ""},
      {"insecure: empty node name", insecure, "", {Hello("")}, {},
       "INVALID_ARGUMENT: Hello.node"},
      {"insecure: node name with a space", insecure, "", {Hello("a b")}, {},
       "INVALID_ARGUMENT: Hello.node \"a b\""},
      {"message without a body", none, "node-a", {Raw("")}, {},
       "INVALID_ARGUMENT: SensorMessage without a body (hello, batch or inventory)"},
      {"malformed bytes", none, "node-a", {Raw("\x0a\x05\x01")}, {},
       "INVALID_ARGUMENT: malformed SensorMessage: field 1 (byte 0): its length 5 runs past "
       "the 1 bytes left"},
      {"hello that does not parse", none, "node-a", {Raw("\x0a\x02\x0a\x05")}, {},
       "INVALID_ARGUMENT: malformed Hello"},
      // Batches
      {"batches in order, acked once committed", none, "node-a",
       {Hello(), Batch(1, 2), Batch(5, 1), Commit(1, 2), Commit(5, 1)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "submit 1", "submit 5", "out ack 1 stored=2 dup=0", "out ack 5 stored=1 dup=0"},
       ""},
      {"batch id that does not increase", none, "node-a", {Hello(), Batch(2), Batch(2)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "submit 2"},
       "INVALID_ARGUMENT: batch_id 2 does not increase (previous 2)"},
      {"batch out of order", none, "node-a", {Hello(), Batch(3), Batch(2)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "submit 3"},
       "INVALID_ARGUMENT: batch_id 2 does not increase (previous 3)"},
      {"batch id 0", none, "node-a", {Hello(), Batch(0)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000"},
       "INVALID_ARGUMENT: batch_id 0 does not increase (previous 0)"},
      {"batch over max_batch_events",
       [](IngestOptions* o, RecordingStore*) { o->max_batch_events = 2; }, "node-a", {Hello(), Batch(1, 3)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=2"},
       "INVALID_ARGUMENT: batch 1 has 3 events, more than max_batch_events 2"},
      {"batch the store cannot prepare", none, "node-a",
       {Hello(), Batch(1), Refuse(1, "event 0: bad")},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "submit 1"},
       "INVALID_ARGUMENT: batch 1: event 0: bad"},
      {"acks in order: a later commit waits for the earlier one", none, "node-a",
       {Hello(), Batch(1, 2), Batch(2, 3), Commit(2, 3), Commit(1, 2)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "submit 1", "submit 2", "out ack 2 stored=5 dup=0"},
       ""},
      {"duplicate seqs are acked, counted as duplicates", none, "node-a",
       {Hello(), Batch(1, 3), Commit(1, 0, 3)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "submit 1", "out ack 1 stored=0 dup=3"},
       ""},
      {"commit failure: no ack, not even for later commits", none, "node-a",
       {Hello(), Batch(1), Batch(2), Commit(1, 0, 0, "disk I/O error"), Commit(2, 1)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "submit 1", "submit 2"},
       "UNAVAILABLE: store: disk I/O error"},
      {"commit failure, then the batch again on a new stream", none, "node-a",
       {Hello(), Batch(1), Commit(1, 0, 0, "disk I/O error"), Reconnect(), Hello(), Batch(1),
        Commit(1, 1)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "submit 1", "disconnected node-a", "connected node-a boot=b1", "on_hello node-a",
        "out welcome node-a max=10000", "submit 1", "out ack 1 stored=1 dup=0"},
       ""},
      {"detection behind: the ack is held until released",
       [](IngestOptions*, RecordingStore* st) { st->hold_acks = true; }, "node-a",
       {Hello(), Batch(1), Commit(1, 1), Release()},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "submit 1", "held", "out ack 1 stored=1 dup=0"},
       ""},
      // Inventory replies
      {"reply in one message (no last_chunk)", none, "node-a",
       {Hello(), Command(7), Chunk(7, 0, -1, 2)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "command 7", "inventory node-a 7 container=c1 entries=2 parsed=2"},
       ""},
      {"reply in chunks", none, "node-a",
       {Hello(), Command(7), Chunk(7, 0, 0, 2), Chunk(7, 1, 0, 0), Chunk(7, 2, 1, 1)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "command 7", "inventory node-a 7 container=c1 entries=3 parsed=3"},
       ""},
      {"reply without a command: discarded, the stream goes on", none, "node-a",
       {Hello(), Chunk(9, 0, 1, 1), Batch(1), Commit(1, 1)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "discard node-a unsolicited", "submit 1", "out ack 1 stored=1 dup=0"},
       ""},
      {"a chunk after the last one", none, "node-a",
       {Hello(), Command(7), Chunk(7, 0, 1, 1), Chunk(7, 1, 1, 1)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "command 7", "inventory node-a 7 container=c1 entries=1 parsed=1",
        "discard node-a unsolicited"},
       ""},
      {"wrong chunk order: the command fails, its later chunks discarded", none, "node-a",
       {Hello(), Command(7), Chunk(7, 1, 0, 1), Chunk(7, 0, 0, 1), Chunk(7, 2, 1, 1),
        Chunk(7, 3, 1, 1)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "command 7", "discard node-a out_of_order",
        "inventory node-a 7 error=the collector discarded the reply (out_of_order): chunk 1, "
        "expected 0",
        "discard node-a out_of_order", "discard node-a out_of_order",
        "discard node-a unsolicited"},
       ""},
      {"over the stream's cap", [](IngestOptions* o, RecordingStore*) { o->max_inventory_bytes = 40; },
       "node-a", {Hello(), Command(7), Chunk(7, 0, 1, 3)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "command 7", kOver,
        "inventory node-a 7 error=the collector discarded the reply (over_cap): the inventory "
        "replies this stream is joining would go over 40 bytes (--inventory-max-bytes)"},
       ""},
      {"over the cap of all streams together",
       [](IngestOptions* o, RecordingStore*) { o->max_inventory_bytes_total = 40; }, "node-a",
       {Hello(), Command(7), Chunk(7, 0, 0, 1), Chunk(7, 1, 1, 2)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "command 7", kOver,
        "inventory node-a 7 error=the collector discarded the reply (over_cap): the inventory "
        "replies all streams are joining would go over 40 bytes "
        "(--inventory-max-bytes-total)"},
       ""},
      {"an entry that does not parse", none, "node-a",
       {Hello(), Command(7), Chunk(7, 0, 1, 1, "\x0a\x09")},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "command 7", "discard node-a malformed",
        "inventory node-a 7 error=the collector discarded the reply (malformed): entry 1 does "
        "not parse as an InventoryEntry"},
       ""},
      {"a reply whose fields do not walk", none, "node-a",
       {Hello(), Command(7), Raw(std::string("\x1a\x02\x08", 3) + '\x80')},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "command 7"},
       "INVALID_ARGUMENT: malformed InventoryReply: field 1 (byte 0): its varint value is cut "
       "short"},
      {"too many commands outstanding",
       [](IngestOptions* o, RecordingStore*) { o->max_inventory_commands = 1; }, "node-a",
       {Hello(), Command(7), Command(8)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "command 7", "command full 8"},
       ""},
      {"a command past its timeout is forgotten; a partial reply counted incomplete",
       [](IngestOptions* o, RecordingStore*) { o->inventory_timeout = std::chrono::milliseconds(1000); },
       "node-a",
       {Hello(), Command(7), Command(8), Chunk(8, 0, 0, 1),
        Advance(std::chrono::milliseconds(1000)), Chunk(7, 0, 1, 1), Command(9)},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "command 7", "command 8", "discard node-a incomplete", "discard node-a unsolicited",
        "command 9"},
       ""},
      {"the stream ends before the last chunk", none, "node-a",
       {Hello(), Command(7), Chunk(7, 0, 0, 1), End()},
       {"connected node-a boot=b1", "on_hello node-a", "out welcome node-a max=10000",
        "command 7", "discard node-a incomplete", "disconnected node-a"},
       ""},
  };
}

TEST(IngestSession, Table) {
  for (const Row& row : Rows()) {
    SCOPED_TRACE(row.name);
    Driver d;
    row.setup(&d.opt, &d.store);
    d.cert_node = row.cert_node;
    d.Start();
    for (const Op& op : row.ops) d.Run(op);
    EXPECT_EQ(Joined(d.log), Joined(row.want));
    if (row.want_status.empty()) {
      EXPECT_EQ(d.Status(), "");
    } else {
      EXPECT_TRUE(d.Status().starts_with(row.want_status)) << d.Status();
    }
    // Every byte a reply held is given back once the stream ends.
    if (!row.ops.empty() && row.ops.back().kind != Op::kEnd) d.s->End(false, "OK");
    EXPECT_EQ(d.store.inventory_bytes, 0u);
  }
}

}  // namespace
}  // namespace driftwatch
