// session: the ingest protocol of one sensor stream, apart from gRPC. The reactor
// (collector/ingest_server.cc) moves bytes and messages; IngestSession decides.
//
// Per stream: Hello first (else INVALID_ARGUMENT), answered by Welcome; then EventBatch
// messages with increasing batch_id and at most max_batch_events events each, each acked
// (cumulatively, in order) once the store has committed it and detection admits it; a
// failed commit ends the stream (UNAVAILABLE, no ack: the sensor sends the batch again on
// its next stream). The node name is the client certificate's, never Hello.node, except
// with `insecure` (then Hello.node, checked as a certificate's name would be).
//
// Inventory commands: the stream takes the reply to each command it sent, in chunks
// (chunk_index from 0, last_chunk on the last). A chunk for no command outstanding, out of
// order, or taking the stream's (or all streams') replies being joined over the cap is
// discarded, logged (node, command, reason) and counted by node and reason; the command
// then fails (its later chunks are discarded too) and the stream goes on.
//
// Thread-safety: none of its own. The caller serializes every call (the reactor: under its
// mutex), except where a method says it runs on the read path without it: those touch state
// only the read path writes (one read at a time). `store` must outlive the session.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <expected>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "collector/message_scan.h"
#include "driftwatch/v1/collector.pb.h"
#include "lib/alerts/alert_store.h"
#include "lib/event/argv_caps.h"
#include "lib/store/event_store.h"

namespace driftwatch {

struct IngestOptions {
  uint32_t max_batch_events = 10000;
  uint32_t max_in_flight_batches = 4;
  size_t max_in_flight_bytes = 16 << 20;  // all streams' batches awaiting the store
  // What one event may cost the store and detection. A sensor caps exec arguments itself
  // (lib/event/argv_caps.h); one that did not (older, misconfigured or lying) can still send
  // megabytes per event within the message size. An event larger than max_event_bytes is
  // parsed: an exec has its arguments cut to `argv` and is kept, marked args_capped; one
  // still larger is refused: left out of its batch, which the store then records as a
  // sequence gap (a "Sensor blind window" alert naming the node). Both are counted by node
  // (OversizeByNode) and logged once per stream.
  size_t max_event_bytes = 256 << 10;
  ArgvCaps argv;
  bool insecure = false;  // node name from Hello.node (no client certificate)
  // Backpressure from detection, asked on the store's writer thread for each committed
  // batch: true to ack it now; false holds the ack until the gate runs `release` (the stream
  // is not read meanwhile once max_in_flight_batches are held). Unset: always ack.
  std::function<bool(std::function<void()> release)> admit;
  // Called on a gRPC thread with each Hello, after the node is known. Must not block.
  std::function<void(const std::string& node, const v1::Hello& hello)> on_hello;
  // Inventory replies: bytes of chunks being joined that one stream may hold at once (an
  // honest sensor sends one reply at a time); commands outstanding per stream; how long a
  // command waits for its last chunk (as detection waits for the reply).
  uint64_t max_inventory_bytes = 64ull << 20;         // per stream
  uint64_t max_inventory_bytes_total = 256ull << 20;  // all streams together
  uint32_t max_inventory_commands = 64;
  std::chrono::milliseconds inventory_timeout{60000};
  // Called on a gRPC thread with each whole inventory reply to a command of
  // RequestInventory (its chunks joined), and with an error in `inv.error` when the reply
  // was discarded (out of order, over the cap, malformed). `inv` has container_id, error,
  // entries and reply (one serialized InventoryReply) set. Must not block.
  std::function<void(const std::string& node, uint64_t command_id, StoredInventory inv)>
      on_inventory;
};

// What a session needs from outside its stream: the store's node bookkeeping, detection's
// backpressure and hand-offs, and the counters all streams share. The collector's adapter
// (ingest_server.cc) puts EventStore, IngestOptions' callbacks and IngestService's counters
// behind it. Thread-safety: any thread.
struct SessionStore {
  virtual ~SessionStore() = default;
  virtual void NodeConnected(const std::string& node, const NodeHello& hello) = 0;
  virtual void NodeDisconnected(const std::string& node) = 0;
  virtual std::optional<NodeState> Node(const std::string& node) const = 0;
  // After a Hello was accepted, outside the caller's lock.
  virtual void OnHello(const std::string& node, const v1::Hello& hello) = 0;
  // On the store's writer thread, for a batch committed: true to ack it now, false to hold
  // the ack until `release` runs (IngestOptions::admit).
  virtual bool Admit(std::function<void()> release) = 0;
  // A whole inventory reply, or a failed one (inv.error), outside the caller's lock.
  virtual void OnInventory(const std::string& node, uint64_t command_id, StoredInventory inv) = 0;
  // Counts one discarded inventory chunk; returns the node's count for `reason` so far.
  virtual uint64_t CountInventoryDiscard(const std::string& node, const std::string& reason) = 0;
  // The bytes of inventory replies all streams are joining: read, and changed by `delta`.
  virtual uint64_t InventoryBytes() const = 0;
  virtual void AddInventoryBytes(int64_t delta) = 0;
};

// Why a stream ends, as gRPC status codes name it (the reactor maps them one to one).
enum class SessionCode { kInvalidArgument, kUnauthenticated, kUnavailable };
struct SessionStatus {
  SessionCode code;
  std::string message;
};

class IngestSession {
 public:
  using Clock = std::chrono::steady_clock;
  // An inventory command sent on this stream and the chunks of its reply joined so far.
  struct Assembly {
    Clock::time_point asked;
    uint32_t next_chunk = 0;
    std::string failed;       // the reason it was discarded: so are its later chunks
    std::string header;       // the latest chunk's fields but its entries (wire format)
    std::string entries;      // every chunk's entries fields so far (wire format)
    uint64_t entry_count = 0;
    std::string container_id, error;  // from header
    uint64_t size() const { return header.size() + entries.size(); }
  };
  using Assemblies = std::map<uint64_t, Assembly>;  // by command id

  // `cert_node`: the node name of the client's verified certificate, "" without one (then
  // the stream is refused, UNAUTHENTICATED, unless opt->insecure).
  IngestSession(SessionStore* store, const IngestOptions* opt, std::string peer,
                std::string cert_node);

  // Why the stream ends (the first failure), or nullopt while it may go on.
  const std::optional<SessionStatus>& failure() const { return failure_; }
  // Records the stream's failure (the first one wins) and logs it with the peer and node.
  void Fail(SessionCode code, std::string message);
  // A commit failed: the stream is ended for the store's sake, not the sensor's input.
  bool store_failed() const {
    return failure_ && failure_->code == SessionCode::kUnavailable;
  }
  // Read path (written only there): past Hello, and the node's name.
  bool hello() const { return hello_; }
  const std::string& node() const { return node_; }
  size_t in_flight() const { return inflight_.size(); }

  // Messages to send, in order (Welcome, Ack); the caller takes them after each call.
  std::vector<v1::CollectorMessage> TakeOutbox() { return std::exchange(outbox_, {}); }

  // Read path, without the caller's lock: what a scanned message asks for, and why it is
  // refused (`refused` set: the stream fails with it). A Hello is parsed here, a chunk's
  // routing fields scanned.
  struct Inbound {
    std::string refused;
    v1::SensorMessage::BodyCase body = v1::SensorMessage::BODY_NOT_SET;
    std::optional<v1::Hello> hello;
    uint64_t batch_id = 0;
    uint64_t event_count = 0;
    InventoryChunkScan chunk;
  };
  Inbound Inspect(const std::expected<void, std::string>& scanned,
                  const ScannedSensorMessage& msg) const;

  // What the caller does next, outside its lock: `registered`: a Hello was accepted (the
  // caller registers the stream under node(), then calls HelloDone); `batch_id`: a batch is
  // accepted, to be prepared and submitted (Submitted, or BatchRefused); `joining`: a chunk
  // continues its command's reply (WalkChunk, then JoinChunk).
  struct Step {
    bool registered = false;
    uint64_t batch_id = 0;
    std::optional<Assemblies::node_type> joining;
  };
  Step Apply(const Inbound& in, Clock::time_point now);
  void HelloDone(const v1::Hello& hello) { store_->OnHello(node_, hello); }

  // Batches. Submitted: the batch went to the store. BatchRefused: it did not prepare.
  void Submitted(uint64_t batch_id) { inflight_.push_back(InFlight{batch_id, false, {}}); }
  void BatchRefused(uint64_t batch_id, const std::string& error);
  // On the store's writer thread, without the caller's lock: true to ack (or fail) the
  // batch now, false when detection holds it back (`release` runs Committed later).
  bool Admit(const CommitResult& r, std::function<void()> release) const {
    return !r.error.empty() || store_->Admit(std::move(release));
  }
  // The batch is committed (or failed: the stream fails, UNAVAILABLE). Acks are cumulative
  // and in order: one Ack for the leading run of committed batches, into the outbox.
  void Committed(uint64_t batch_id, const CommitResult& r);

  // Inventory commands: `command_id` is outstanding on this stream from `now` on. False
  // when max_inventory_commands are outstanding already.
  bool AddCommand(uint64_t command_id, Clock::time_point now);
  // Read path, without the caller's lock: the chunk's entries, each parsed to check it, and
  // its other fields, on the assembly Apply took out (nothing else touches it meanwhile).
  struct ChunkWalk {
    std::expected<void, std::string> ok;
    std::string header;
    std::string container_id, error;
    uint64_t entries = 0;
    uint64_t size_before = 0;  // the assembly's size() before (counted in inventory_bytes_)
  };
  // Its entries are appended to `a` as received, counted in the walk.
  ChunkWalk WalkChunk(const std::vector<std::string_view>& parts, Assembly* a);
  // Puts the assembly back with the walked chunk; a whole reply, or a failure, is then
  // ready for DeliverReady.
  void JoinChunk(const InventoryChunkScan& c, Assemblies::node_type node, ChunkWalk w);
  // Read path, without the caller's lock: hands on the replies and failures decided.
  void DeliverReady();
  // The bytes of replies this stream is joining.
  uint64_t inventory_bytes() const { return inventory_bytes_; }

  // The stream is done (no call after this): partial replies are counted as incomplete,
  // their bytes released, the node's disconnect recorded and logged. `finish_text`: the
  // status it ended with ("OK" or the message).
  void End(bool cancelled, const std::string& finish_text);

 private:
  struct InFlight {
    uint64_t batch_id = 0;
    bool done = false;
    CommitResult result;
  };
  void OnHello(const v1::Hello& h);
  bool CheckBatch(uint64_t batch_id, uint64_t event_count);
  std::optional<Assemblies::node_type> TakeAssembly(const InventoryChunkScan& c,
                                                    Clock::time_point now);
  void FailAssembly(uint64_t command_id, Assembly* a, const std::string& reason,
                    const std::string& why);
  void ExpireInventories(Clock::time_point now);
  void AddInventoryBytes(int64_t delta);
  void Discard(uint64_t command_id, const std::string& reason, const std::string& why);

  SessionStore* const store_;
  const IngestOptions* const opt_;
  const std::string peer_;
  const std::string cert_node_;

  std::optional<SessionStatus> failure_;
  std::vector<v1::CollectorMessage> outbox_;
  bool hello_ = false;           // read path
  std::string node_;             // read path (set with hello_)
  uint64_t last_batch_id_ = 0;
  std::deque<InFlight> inflight_;
  uint64_t stored_ = 0;
  uint64_t duplicates_ = 0;
  Assemblies inventories_;       // commands awaiting their reply
  uint64_t inventory_bytes_ = 0;  // their size(), taken ones included
  v1::InventoryEntry entry_;     // read path: each inventory entry is parsed here to check it
  // Read path: inventory replies and failures decided, handed on by DeliverReady.
  std::vector<std::pair<uint64_t, StoredInventory>> ready_;
};

}  // namespace driftwatch
