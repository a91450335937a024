// ingest_server: the driftwatch.v1.Collector service. One ServerBidiReactor per sensor stream
// (gRPC's callback API: no thread per stream), handing validated batches to the EventStore
// and acknowledging each only once the store has committed it.
//
// Per stream: Hello first (else INVALID_ARGUMENT), answered by Welcome; then EventBatch
// messages with increasing batch_id and at most max_batch_events events each. The node name
// is the client certificate's (SAN DNS name, else CN), never Hello.node, except with
// `insecure`. The stream is served raw (grpc::ByteBuffer): a batch's events are never
// deserialized into a heap-allocated message but walked in the wire format and handed to
// PrepareEncodedBatch as the bytes received, which parses each one (on an arena) to validate.
// At most `max_in_flight_batches` batches per stream wait for the store: beyond that the
// stream is not read (gRPC flow control then holds the sensor back, once the stream's HTTP/2
// window, fixed by the collector's --stream-window-bytes, is full), so a slow or stuck stream
// costs its own memory only and never blocks another. And all streams together have at most
// about `max_in_flight_bytes` of batches read and not yet committed: past it a stream reads
// its next message only once commits brought the total back under (every waiting stream is
// resumed then). Without it memory grows with streams x batches x batch size (50 sensors
// sending 64 KiB execs: over 1 GiB). What is left per stream is gRPC's: the message being
// received (at most --max-message-bytes) and the stream window.
//
//
// Nothing but Hello is looked at before a stream's Hello (a batch or reply first ends the
// stream), and only Hello is parsed whole. Drift inventories come back in chunks
// (InventoryReply with chunk_index and last_chunk) on the stream their Command went out on:
// a chunk's command id is read by walking the wire format, and a chunk for no command
// outstanding on this stream, out of order, or taking the stream's inventories being joined
// over `max_inventory_bytes` costs a walk over its bytes, nothing more: it is discarded,
// logged (node, command, reason) and counted (InventoryDiscards), and the stream goes on.
// A solicited reply's entries are checked one at a time (each parsed into one reused
// message) and joined as received: the collector never holds a parsed inventory.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <cstdint>
#include <deque>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "driftwatch/v1/collector.grpc.pb.h"
#include "lib/alert_store.h"
#include "lib/audit_event.h"
#include "lib/event_store.h"
#include "lib/mutex.h"

namespace driftwatch {

struct IngestOptions {
  uint32_t max_batch_events = 10000;
  uint32_t max_in_flight_batches = 4;
  size_t max_in_flight_bytes = 32 << 20;  // all streams' batches awaiting the store
  // What one event may cost the store and detection. A sensor caps exec arguments itself
  // (lib/audit_event.h); one that did not (older, misconfigured or lying) can still send
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

// The node name a verified client certificate carries: its first DNS subject alternative
// name, else (no DNS SAN) its common name; never an IP, URI or email SAN (lib/node_name.h).
// "" without a verified certificate, or when that name is missing or not acceptable as a node
// name (empty, control characters, bad UTF-8, spaces, too long: lib/node_name.h); then a
// warning naming the certificate's subject and the reason is logged, and the caller refuses
// the stream (UNAUTHENTICATED, logged with the peer's address).
std::string NodeFromAuthContext(const grpc::AuthContext& auth);

// A SensorMessage in the wire format, walked without parsing it. For a batch, `events`
// views the serialized events inside the message's bytes (which must outlive it), the
// first `max_event_views` of them, `event_count` counts them all; a Hello's or an
// InventoryReply's bytes are viewed in `parts` (protobuf would merge them, in order). As
// protobuf parses: the last body field wins, repeated batch fields merge, unknown fields
// are skipped. Error: the bytes are malformed.
struct ScannedSensorMessage {
  v1::SensorMessage::BodyCase body = v1::SensorMessage::BODY_NOT_SET;
  uint64_t batch_id = 0;
  std::vector<std::string_view> events;
  uint64_t event_count = 0;
  std::vector<std::string_view> parts;  // hello or inventory
};
[[nodiscard]] std::expected<void, std::string> ScanSensorMessage(
    std::string_view bytes, ScannedSensorMessage* out,
    size_t max_event_views = static_cast<size_t>(-1));

// The fields of an InventoryReply chunk that say where it belongs, read by walking its
// wire format (`parts` as ScanSensorMessage gives them), nothing allocated. Error: the
// bytes are malformed.
struct InventoryChunkScan {
  uint64_t command_id = 0;
  uint64_t chunk_index = 0;
  bool has_last_chunk = false;  // absent: a sensor from before chunks, one message
  bool last_chunk = false;
  uint64_t entries = 0;
  uint64_t bytes = 0;  // the chunk's size
  bool last() const { return !has_last_chunk || last_chunk; }
};
[[nodiscard]] std::expected<void, std::string> ScanInventoryChunk(
    const std::vector<std::string_view>& parts, InventoryChunkScan* out);

// Events over IngestOptions::max_event_bytes, by what was done with them.
struct OversizeCounts {
  uint64_t capped = 0;   // exec events whose arguments were cut: kept
  uint64_t refused = 0;  // left out of their batch
};

// Applies max_event_bytes and `caps` to a batch's events (views, as ScanSensorMessage left
// them): oversized execs are cut, their new bytes kept in `storage` (which the views then
// point into: it must outlive them), events still oversized removed. An oversized event that
// does not parse is left as it is, for PrepareEncodedBatch to refuse the batch as before.
OversizeCounts BoundEventSizes(std::vector<std::string_view>* events, size_t max_event_bytes,
                               const ArgvCaps& caps, std::deque<std::string>* storage);

class StreamReactor;

// Thread-safety: Stream() is called by gRPC on any thread; each reactor serializes its own
// state with a mutex and never calls into gRPC while holding it (gRPC may run a reaction
// inline). `store` must outlive the server.
class IngestService final
    : public v1::Collector::WithRawCallbackMethod_Stream<v1::Collector::Service> {
 public:
  IngestService(EventStore* store, IngestOptions opt) : store_(store), opt_(opt) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Stream(
      grpc::CallbackServerContext* ctx) override;

  uint64_t active_streams() const { return active_streams_.load(); }
  size_t in_flight_bytes() const { return in_flight_bytes_.load(); }
  uint64_t budget_waits() const { return budget_waits_.load(); }  // reads held back, total
  std::map<std::string, OversizeCounts> OversizeByNode() const;

  // Inventory reply chunks discarded, by node and reason: "unsolicited" (no such command
  // outstanding on the stream), "out_of_order", "over_cap", "malformed", "incomplete" (the
  // command timed out or its stream ended before the last chunk).
  std::map<std::pair<std::string, std::string>, uint64_t> InventoryDiscards() const;

  // Asks the node's sensor for a container's drift inventory (Command{inventory}) on the
  // node's newest stream; the reply comes to on_inventory. Error: no stream of that node
  // that can still be written to, or that stream has max_inventory_commands outstanding.
  std::expected<void, std::string> RequestInventory(const std::string& node,
                                                    const std::string& container_id,
                                                    uint64_t command_id);

 private:
  friend class StreamReactor;
  void Register(const std::string& node, StreamReactor* r);
  void Unregister(const std::string& node, StreamReactor* r);
  // Counts one discarded chunk; the node's count for `reason` so far.
  uint64_t CountInventoryDiscard(const std::string& node, const std::string& reason);
  void CountOversize(const std::string& node, const OversizeCounts& n);
  // The in-flight byte budget. Charge/Release: any thread, no lock held. Park: with the
  // reactor's mu_ held; false (not parked) when the budget has room after all. Unpark: with
  // the reactor's mu_ held; false when a Release already took it off the list (it will be
  // resumed). A parked reactor does not finish, so it outlives its place on the list.
  void Charge(size_t bytes) { in_flight_bytes_ += bytes; }
  void Release(size_t bytes);
  bool OverBudget() const { return in_flight_bytes_.load() >= opt_.max_in_flight_bytes; }
  bool Park(StreamReactor* r);
  bool Unpark(StreamReactor* r);

  EventStore* const store_;
  const IngestOptions opt_;
  std::atomic<uint64_t> active_streams_{0};
  std::atomic<uint64_t> inventory_bytes_{0};  // inventory replies being joined, all streams
  std::atomic<uint64_t> next_stream_{1};  // store tokens: a failed batch stops its stream
  // Streams past Hello, by node, oldest first. Lock order: streams_mu_, then a reactor's.
  Mutex streams_mu_;
  std::multimap<std::string, StreamReactor*> streams_ DW_GUARDED_BY(streams_mu_);
  mutable Mutex discards_mu_;  // a leaf lock
  std::map<std::pair<std::string, std::string>, uint64_t> discards_ DW_GUARDED_BY(discards_mu_);
  std::atomic<size_t> in_flight_bytes_{0};
  std::atomic<uint64_t> budget_waits_{0};
  Mutex parked_mu_;  // a leaf: nothing else is locked while holding it
  std::vector<StreamReactor*> parked_ DW_GUARDED_BY(parked_mu_);
  mutable Mutex oversize_mu_;
  std::map<std::string, OversizeCounts> oversize_ DW_GUARDED_BY(oversize_mu_);
};

}  // namespace driftwatch
