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
#pragma once

#include <atomic>
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
#include "lib/audit_event.h"
#include "lib/event_store.h"

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
  // Called on a gRPC thread with each InventoryReply a sensor sends and the node of its
  // stream. Must not block.
  std::function<void(const std::string& node, v1::InventoryReply reply)> on_inventory;
};

// The node name a verified client certificate carries: its first DNS subject alternative
// name, else (no DNS SAN) its common name; never an IP, URI or email SAN (lib/node_name.h).
// "" without a verified certificate, or when that name is missing or not acceptable as a node
// name (empty, control characters, bad UTF-8, spaces, too long: lib/node_name.h); then a
// warning naming the certificate's subject and the reason is logged, and the caller refuses
// the stream (UNAUTHENTICATED, logged with the peer's address).
std::string NodeFromAuthContext(const grpc::AuthContext& auth);

// A SensorMessage in the wire format, walked without a full parse. For a batch, `events`
// views the serialized events inside the message's bytes (which must outlive it); a Hello
// or InventoryReply is parsed into `message`. As protobuf parses: the last body field wins,
// repeated batch fields merge, unknown fields are skipped. Error: the bytes are malformed.
struct ScannedSensorMessage {
  v1::SensorMessage::BodyCase body = v1::SensorMessage::BODY_NOT_SET;
  uint64_t batch_id = 0;
  std::vector<std::string_view> events;
  v1::SensorMessage message;  // hello or inventory
};
[[nodiscard]] std::expected<void, std::string> ScanSensorMessage(std::string_view bytes,
                                                                 ScannedSensorMessage* out);

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

  // Asks the node's sensor for a container's drift inventory (Command{inventory}) on the
  // node's newest stream; the reply comes to on_inventory. Error: no stream of that node
  // that can still be written to.
  std::expected<void, std::string> RequestInventory(const std::string& node,
                                                    const std::string& container_id,
                                                    uint64_t command_id);

 private:
  friend class StreamReactor;
  void Register(const std::string& node, StreamReactor* r);
  void Unregister(const std::string& node, StreamReactor* r);
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
  std::atomic<uint64_t> next_stream_{1};  // store tokens: a failed batch stops its stream
  // Streams past Hello, by node, oldest first. Lock order: streams_mu_, then a reactor's.
  std::mutex streams_mu_;
  std::multimap<std::string, StreamReactor*> streams_;  // GUARDED_BY(streams_mu_)
  std::atomic<size_t> in_flight_bytes_{0};
  std::atomic<uint64_t> budget_waits_{0};
  std::mutex parked_mu_;  // a leaf: nothing else is locked while holding it
  std::vector<StreamReactor*> parked_;  // GUARDED_BY(parked_mu_)
  mutable std::mutex oversize_mu_;
  std::map<std::string, OversizeCounts> oversize_;  // GUARDED_BY(oversize_mu_)
};

}  // namespace driftwatch
