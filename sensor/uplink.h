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

#include <grpcpp/security/credentials.h>

#include "driftwatch/v1/collector.grpc.pb.h"
#include "sensor/spool.h"

namespace driftwatch::sensor {

struct UplinkOptions {
  std::string target;          // collector host:port
  bool insecure = false;       // plaintext (the collector must allow it)
  std::string ca_file;         // PEM: CA that signed the collector's certificate
  std::string cert_file;       // PEM: this node's client certificate
  std::string key_file;        // PEM: its key
  std::string server_name;     // expected name in the collector's certificate (default: host)
  size_t batch_events = 1000;  // at most this many events per batch
  // The collector holds about one message per sensor stream in gRPC's buffers: with 50
  // sensors sending capped 64 KiB execs, 4 MiB batches took its peak RSS to 558 MiB, 256 KiB
  // ones to 212 MiB (bench/collector_ingest.sh).
  size_t batch_bytes = 256 << 10;
  int window = 16;             // batches in flight before waiting for acks
  std::chrono::milliseconds linger{5};
  std::chrono::milliseconds backoff_min{200};
  std::chrono::milliseconds backoff_max{30000};
  // Called (io thread) once per spool record that does not parse back as an event, which is
  // then not sent: a loss, counted by the caller (LossCounters.encode_failures). Records
  // are checksummed and every field carrying outside text is `bytes`, so only a sensor bug
  // can cause one; a record is reported once, not again when it is read for a resend.
  std::function<void()> on_unreadable_record;
};

struct UplinkCounters {
  std::atomic<uint64_t> connects{0};      // streams that got a Welcome
  std::atomic<uint64_t> failures{0};      // streams that ended in an error
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> events_sent{0};   // resends included
  std::atomic<uint64_t> events_acked{0};
  std::atomic<uint64_t> duplicates{0};    // acked events the collector already had
  std::atomic<uint64_t> unreadable{0};    // spool records that did not parse (not sent)
  std::atomic<bool> connected{false};
};

class Uplink {
 public:
  // What the collector asks of the node: a container's drift inventory. Runs on a thread of
  // its own (it walks a file tree); the reply is sent when it returns.
  using InventoryFn = std::function<v1::InventoryReply(const std::string& container_id)>;
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

  const UplinkCounters& counters() const { return counters_; }
  std::string last_error() const { return last_error_; }  // io thread

 private:
  class Stream;
  Uplink(boost::asio::io_context* io, Spool* spool, UplinkOptions options, HelloFn hello,
         InventoryFn inventory, std::shared_ptr<grpc::ChannelCredentials> creds);

  void Connect();
  void Pump();
  void OnMessage(const v1::CollectorMessage& m);
  void OnStreamDone(const grpc::Status& st);
  void Send(v1::SensorMessage msg);
  void WriteNext();
  void ScheduleReconnect();

  boost::asio::io_context* io_;
  Spool* spool_;
  UplinkOptions options_;
  HelloFn hello_;
  InventoryFn inventory_;
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Collector::Stub> stub_;

  std::shared_ptr<Stream> stream_;  // the live stream, null between streams
  bool welcomed_ = false;
  bool writing_ = false;
  bool stopping_ = false;
  bool ack_failing_ = false;           // the spool's last Ack failed (logged once per spell)
  std::deque<v1::SensorMessage> out_;  // waiting for the one write gRPC allows at a time
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
