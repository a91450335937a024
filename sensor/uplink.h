// uplink: streams the spool to the collector (proto/driftwatch/v1/collector.proto) and
// removes from the spool what the collector acknowledged.
//
//   spool ──Read──► EventBatch ──gRPC stream──► collector ──Ack{batch}──► spool.Ack(position)
//
// One stream at a time. Batches are cut by count (the collector's max_batch_events, at
// most `batch_events`) and by time: the first event after an idle spell waits at most
// `linger` for company, so an event reaches the collector within a few ms at light load,
// while under load batches fill up behind the ones in flight (at most `window` unacked).
// A broken stream is retried with jittered exponential backoff; everything not yet
// acknowledged is sent again on the next stream (the collector drops what it already
// stored, by event id).
//
// The fleet's prevention policy (Command{prevent_policy}) goes to options.on_prevent_policy.
// Drift inventories (Command{inventory}) are taken one at a time on a thread of their own and
// sent back on the stream the command came on, in chunks of about `inventory_chunk_bytes`
// of entries (InventoryChunker) taking turns with event batches; if that stream ends first,
// the reply is dropped (logged, counted): the collector counts the command as failed.
//
// Thread-safety: Start, Stop and everything else run on the io_context's thread, except
// Notify (any thread: "the spool grew") and counters() (atomics). gRPC's callbacks only
// copy what they got and post it to the io_context.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <expected>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <grpcpp/security/credentials.h>

#include "driftwatch/v1/collector.grpc.pb.h"
#include "lib/node/drift_inventory.h"
#include "sensor/spool.h"

namespace driftwatch::sensor {

struct UplinkOptions {
  // Collectors, host:port each (a name may resolve to several addresses: gRPC tries them
  // in turn). A stream that breaks moves the sensor on to the next one, with its spool: what
  // was not acknowledged goes again to whichever collector answers.
  std::vector<std::string> targets;
  bool insecure = false;       // plaintext (the collector must allow it)
  std::string ca_file;         // PEM: CA that signed the collector's certificate
  std::string cert_file;       // PEM: this node's client certificate
  std::string key_file;        // PEM: its key
  std::string server_name;     // expected name in the collector's certificate (default: host)
  // mTLS with the client certificate given later, by SetClientCertificate (an enrolled
  // node identity, sensor/enroll.h): cert_file and key_file unused; nothing is sent before.
  bool await_certificate = false;
  size_t batch_events = 1000;  // at most this many events per batch
  // The collector holds about one message per sensor stream in gRPC's buffers: with 50
  // sensors sending capped 64 KiB execs, 4 MiB batches took its peak RSS to 558 MiB, 256 KiB
  // ones to 212 MiB (bench/collector_ingest.sh).
  size_t batch_bytes = 256 << 10;
  int window = 16;             // batches in flight before waiting for acks
  std::chrono::milliseconds linger{5};
  std::chrono::milliseconds backoff_min{200};
  std::chrono::milliseconds backoff_max{30000};
  // Entries per inventory chunk, serialized: well under any gRPC message size limit.
  size_t inventory_chunk_bytes = 1 << 20;
  // Called (io thread) once per spool record that does not parse back as an event, which is
  // then not sent: a loss, counted by the caller (LossCounters.encode_failures). Records
  // are checksummed and every field carrying outside text is `bytes`, so only a sensor bug
  // can cause one; a record is reported once, not again when it is read for a resend.
  std::function<void()> on_unreadable_record;
  // Called (io thread) with the fleet's prevention policy the collector pushes
  // (Command{prevent_policy}), a newer generation each time on a stream.
  std::function<void(const v1::PreventPolicy&)> on_prevent_policy;
  // Called (io thread) with each Command{stop_container}; must not block.
  std::function<void(const v1::StopContainer&)> on_stop_container;
};

struct UplinkCounters {
  std::atomic<uint64_t> connects{0};      // streams that got a Welcome
  std::atomic<uint64_t> failures{0};      // streams that ended in an error
  std::atomic<uint64_t> switches{0};      // moves to another collector of the list
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> events_sent{0};   // resends included
  std::atomic<uint64_t> events_acked{0};
  std::atomic<uint64_t> duplicates{0};    // acked events the collector already had
  std::atomic<uint64_t> unreadable{0};    // spool records that did not parse (not sent)
  std::atomic<uint64_t> inventories{0};        // inventory replies sent whole
  std::atomic<uint64_t> inventory_chunks{0};
  std::atomic<uint64_t> inventories_dropped{0};  // their stream ended before they were sent
  std::atomic<bool> connected{false};
};

// A container's drift inventory as the sensor took it, for the collector.
struct InventoryResult {
  std::string container_id;  // the full id found ("" or the query when none)
  std::string error;         // why it could not be taken; then nothing else is set
  DriftInventoryResult inventory;
};

// Cuts an inventory into InventoryReply chunks: each holds entries up to `chunk_bytes`
// serialized (at least one entry), numbered from 0; the last one (last_chunk) carries the
// error and the truncation. A reply with no entries is one chunk.
class InventoryChunker {
 public:
  InventoryChunker(uint64_t command_id, InventoryResult r, size_t chunk_bytes);
  bool done() const { return done_; }
  uint64_t command_id() const { return command_id_; }
  // REQUIRES: !done().
  v1::InventoryReply Next();

 private:
  uint64_t command_id_;
  InventoryResult r_;
  size_t chunk_bytes_;
  size_t next_entry_ = 0;
  uint32_t next_chunk_ = 0;
  bool done_ = false;
};

class Uplink {
 public:
  // What the collector asks of the node: a container's drift inventory. Runs on a thread of
  // its own (it walks a file tree); the reply is sent when it returns.
  using InventoryFn = std::function<InventoryResult(const std::string& container_id)>;
  // Fills the Hello's descriptive fields (node, versions, modes) at every connect.
  using HelloFn = std::function<void(v1::Hello*)>;

  // REQUIRES: `io` and `spool` outlive this object.
  static std::expected<std::unique_ptr<Uplink>, std::string> Create(
      boost::asio::io_context* io, Spool* spool, UplinkOptions options, HelloFn hello,
      InventoryFn inventory);
  ~Uplink();

  void Start();
  // At shutdown: while connected, runs the io_context until the spool is empty or
  // `timeout` passes, so that the last events (the final status) reach the collector.
  void Drain(std::chrono::milliseconds timeout);
  // Cancels the stream and waits (running the io_context) until gRPC has let go of it.
  void Stop();
  // The spool grew (any thread).
  void Notify();
  // The client certificate to use from now on (io thread). The first one starts the
  // uplink (if Start was called); a later one (a renewal) is switched to at a quiet point:
  // no new batch is sent, and once every batch in flight is acked the stream is ended and
  // a new one opened with it. Nothing is lost or sent twice: only acked events leave the
  // spool.
  void SetClientCertificate(const std::string& cert_pem, const std::string& key_pem);

  const UplinkCounters& counters() const { return counters_; }
  std::string last_error() const { return last_error_; }  // io thread
  std::string target() const { return options_.targets[target_]; }  // io thread: the current one

 private:
  class Stream;
  Uplink(boost::asio::io_context* io, Spool* spool, UplinkOptions options, HelloFn hello,
         InventoryFn inventory, std::shared_ptr<grpc::ChannelCredentials> creds);

  void Connect();
  // A channel per collector of the list, made with the current credentials: moving to the
  // next collector reuses its channel. A channel is never dropped while its connection is
  // failing (gRPC 1.51 aborted, refcount "prior > 0", when a failed TLS channel was
  // destroyed as the sensor moved on: 1 run in 5 here); only new credentials replace them.
  void MakeChannels();
  void MaybeSwitch();  // a renewed certificate waits: end the stream once nothing is in flight
  void Pump();
  void OnMessage(const v1::CollectorMessage& m);
  void OnStreamDone(const grpc::Status& st);
  void Send(v1::SensorMessage msg);
  void WriteNext();
  void ScheduleReconnect();
  void DropInventories();  // the stream ended: counted and logged

  boost::asio::io_context* io_;
  Spool* spool_;
  UplinkOptions options_;
  HelloFn hello_;
  InventoryFn inventory_;
  std::shared_ptr<grpc::ChannelCredentials> creds_;  // null while awaiting a certificate
  std::string ca_pem_;                               // with await_certificate
  bool started_ = false;
  bool switching_ = false;       // a new certificate waits for the stream to go quiet
  bool retry_pending_ = false;
  size_t target_ = 0;            // index in options_.targets of the collector in use
  size_t failed_in_row_ = 0;     // stream failures since the last Welcome
  std::vector<std::shared_ptr<grpc::Channel>> channels_;  // by target
  std::vector<std::unique_ptr<v1::Collector::Stub>> stubs_;
  std::deque<std::shared_ptr<grpc::Channel>> retired_channels_;  // replaced by new credentials

  std::shared_ptr<Stream> stream_;  // the live stream, null between streams
  bool welcomed_ = false;
  uint64_t policy_generation_ = 0;  // the newest prevent_policy push on this stream
  bool writing_ = false;
  bool stopping_ = false;
  bool ack_failing_ = false;           // the spool's last Ack failed (logged once per spell)
  std::deque<v1::SensorMessage> out_;  // waiting for the one write gRPC allows at a time
  // Inventory replies being sent on the live stream, chunk by chunk, oldest first.
  std::deque<InventoryChunker> inventories_;
  bool last_write_chunk_ = false;  // the last write was an inventory chunk: a batch's turn
  uint64_t next_batch_id_ = 1;
  uint64_t send_pos_ = 0;  // spool position of the next event to send
  uint64_t unreadable_reported_until_ = 0;  // records before this position were reported
  struct InFlight {
    uint64_t batch_id;
    uint64_t end_pos;  // spool position after the batch's last event
    size_t events;
  };
  std::deque<InFlight> in_flight_;
  size_t max_batch_ = 0;
  boost::asio::steady_timer linger_timer_;
  bool linger_armed_ = false;
  boost::asio::steady_timer retry_timer_;
  std::chrono::milliseconds backoff_;
  std::mt19937_64 rng_;
  std::atomic<bool> notify_pending_{false};
  std::string last_error_;
  UplinkCounters counters_;
  boost::asio::thread_pool inventory_pool_{1};  // inventories, one at a time
};

}  // namespace driftwatch::sensor
