// ingest_server: the driftwatch.v1.Collector service. One ServerBidiReactor per sensor stream
// (gRPC's callback API: no thread per stream), handing validated batches to the EventStore
// and acknowledging each only once the store has committed it.
//
// Per stream: Hello first (else INVALID_ARGUMENT), answered by Welcome; then EventBatch
// messages with increasing batch_id and at most max_batch_events events each. The node name
// is the client certificate's (SAN DNS name, else CN), never Hello.node, except with
// `insecure`. At most `max_in_flight_batches` batches per stream wait for the store: beyond
// that the stream is not read (gRPC flow control then holds the sensor back), so a slow or
// stuck stream costs its own memory only and never blocks another.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <grpcpp/grpcpp.h>

#include "driftwatch/v1/collector.grpc.pb.h"
#include "lib/event_store.h"

namespace driftwatch {

struct IngestOptions {
  uint32_t max_batch_events = 10000;
  uint32_t max_in_flight_batches = 8;
  bool insecure = false;  // node name from Hello.node (no client certificate)
};

// The node name a client certificate carries: its first DNS subject alternative name, else
// its common name; "" without a verified certificate.
std::string NodeFromAuthContext(const grpc::AuthContext& auth);

// Thread-safety: Stream() is called by gRPC on any thread; each reactor serializes its own
// state with a mutex and never calls into gRPC while holding it (gRPC may run a reaction
// inline). `store` must outlive the server.
class IngestService final : public v1::Collector::CallbackService {
 public:
  IngestService(EventStore* store, IngestOptions opt) : store_(store), opt_(opt) {}

  grpc::ServerBidiReactor<v1::SensorMessage, v1::CollectorMessage>* Stream(
      grpc::CallbackServerContext* ctx) override;

  uint64_t active_streams() const { return active_streams_.load(); }

 private:
  friend class StreamReactor;
  EventStore* const store_;
  const IngestOptions opt_;
  std::atomic<uint64_t> active_streams_{0};
};

}  // namespace driftwatch
