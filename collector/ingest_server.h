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
// The reactor moves bytes and messages and keeps gRPC's rules (one read, one write, Finish
// last); what a message means and what is answered is IngestSession's (collector/session.h),
// which reaches the store, detection and the counters below through SessionStore.
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
#include <optional>
#include <cstdint>
#include <deque>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "collector/enrollment.h"
#include "collector/message_scan.h"
#include "collector/session.h"
#include "driftwatch/v1/collector.grpc.pb.h"
#include "lib/alerts/alert_store.h"
#include "lib/base/mutex.h"
#include "lib/event/argv_caps.h"
#include "lib/store/event_store.h"

namespace driftwatch {

// The node name a verified client certificate carries: its first DNS subject alternative
// name, else (no DNS SAN) its common name; never an IP, URI or email SAN (lib/daemon/node_name.h).
// "" without a verified certificate, or when that name is missing or not acceptable as a node
// name (empty, control characters, bad UTF-8, spaces, too long: lib/daemon/node_name.h); then a
// warning naming the certificate's subject and the reason is logged, and the caller refuses
// the stream (UNAUTHENTICATED, logged with the peer's address).
std::string NodeFromAuthContext(const grpc::AuthContext& auth);

// What the peer's verified certificate says about itself (serial, fingerprint, bootstrap
// role); nullopt without one.
std::optional<CertificateInfo> PeerCertificate(const grpc::AuthContext& auth);

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
    : public v1::Collector::WithCallbackMethod_Enroll<
          v1::Collector::WithRawCallbackMethod_Stream<v1::Collector::Service>> {
 public:
  IngestService(EventSink* store, IngestOptions opt) : store_(store), opt_(opt) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Stream(
      grpc::CallbackServerContext* ctx) override;
  // Answered inline (checks and one ECDSA signature): collector/enrollment.h.
  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* ctx,
                                   const v1::EnrollRequest* request,
                                   v1::EnrollResponse* response) override;

  // Who may stream and enroll (deny list, bootstrap role, enrollment). Without one (set
  // before serving; it must outlive the server) every verified certificate streams and
  // Enroll answers UNIMPLEMENTED.
  void SetAuthority(NodeAuthority* authority) { authority_ = authority; }
  // Ends the live streams whose certificate the deny list now refuses (after a reload);
  // returns how many.
  size_t EndDeniedStreams();

  uint64_t active_streams() const { return active_streams_.load(); }
  size_t in_flight_bytes() const { return in_flight_bytes_.load(); }
  uint64_t budget_waits() const { return budget_waits_.load(); }  // reads held back, total
  std::map<std::string, OversizeCounts> OversizeByNode() const;

  // Inventory reply chunks discarded, by node and reason: "unsolicited" (no such command
  // outstanding on the stream), "out_of_order", "over_cap", "malformed", "incomplete" (the
  // command timed out or its stream ended before the last chunk).
  std::map<std::pair<std::string, std::string>, uint64_t> InventoryDiscards() const;

  // The fleet's prevention policy (--prevent-policy; nullopt: none), pushed to every stream
  // now and to each new one after its Hello, with a generation that grows with each call
  // (sensors apply the newest: collector.proto PreventPolicy). Call once before serving.
  struct PreventPolicyText {
    std::string text, name;
  };
  void SetPreventPolicy(const std::optional<PreventPolicyText>& policy);
  uint64_t policy_pushes() const { return policy_pushes_.load(); }
  // The sha256 (hex) of the policy pushed now; "" with none.
  std::string prevent_policy_sha256() const;

  // Asks the node's sensor to stop a container (Command{stop_container}, no reply) on the
  // node's newest stream. Error: no stream of that node can be written to.
  std::expected<void, std::string> RequestStop(const std::string& node,
                                               const std::string& container_id,
                                               const std::string& reason);

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

  // The store, IngestOptions' callbacks and the counters below, as each stream's
  // IngestSession sees them (collector/session.h).
  class StoreAdapter final : public SessionStore {
   public:
    explicit StoreAdapter(IngestService* svc) : svc_(svc) {}
    void NodeConnected(const std::string& node, const NodeHello& hello) override;
    void NodeDisconnected(const std::string& node) override;
    std::optional<NodeState> Node(const std::string& node) const override;
    void OnHello(const std::string& node, const v1::Hello& hello) override;
    bool Admit(std::function<void()> release) override;
    void OnInventory(const std::string& node, uint64_t command_id, StoredInventory inv) override;
    uint64_t CountInventoryDiscard(const std::string& node, const std::string& reason) override;
    uint64_t InventoryBytes() const override;
    void AddInventoryBytes(int64_t delta) override;

   private:
    IngestService* const svc_;
  };

  EventSink* const store_;
  const IngestOptions opt_;
  NodeAuthority* authority_ = nullptr;
  StoreAdapter session_store_{this};
  std::atomic<uint64_t> active_streams_{0};
  std::atomic<uint64_t> inventory_bytes_{0};  // inventory replies being joined, all streams
  std::atomic<uint64_t> next_stream_{1};  // store tokens: a failed batch stops its stream
  // Streams past Hello, by node, oldest first. Lock order: streams_mu_, then a reactor's.
  mutable Mutex streams_mu_;
  std::multimap<std::string, StreamReactor*> streams_ DW_GUARDED_BY(streams_mu_);
  grpc::ByteBuffer policy_message_ DW_GUARDED_BY(streams_mu_);  // Command{prevent_policy}
  uint64_t policy_generation_ DW_GUARDED_BY(streams_mu_) = 0;
  std::string policy_sha256_ DW_GUARDED_BY(streams_mu_);
  std::atomic<uint64_t> policy_pushes_{0};
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
