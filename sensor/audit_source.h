// The live audit source: a reader thread that only drains the netlink socket into a
// bounded queue, and a parser thread that parses, reassembles and hands events on.
// Reading never waits on parsing; when the queue is full the reader drops and counts.
//
// Losses are counted where they happen: the kernel's `lost` counter (polled with
// AUDIT_GET), ENOBUFS on the socket, queue drops, reassembler evictions.
//
// Thread-safety: Start/Stop from one controlling thread. The sink and the tick callback
// run on the parser thread only. counters() may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <linux/audit.h>

#include "driftwatch/v1/event.pb.h"
#include "lib/audit/audit_reassembler.h"
#include "lib/base/diagnostics.h"
#include "lib/base/mutex.h"
#include "sensor/audit_netlink.h"

namespace driftwatch::sensor {

struct AuditCounters {
  std::atomic<uint64_t> socket_enobufs{0};
  std::atomic<uint64_t> queue_drops{0};
  std::atomic<uint64_t> kernel_lost_start{UINT64_MAX};  // first `lost` seen
  std::atomic<uint64_t> kernel_lost_now{0};             // last `lost` seen
  // Growth of `lost` since the first reading. Kept as a sum, not as now - start: the
  // kernel's counter drops back when someone resets it (auditctl --reset-lost) or it wraps
  // (32 bits), and a loss total must never go down (the lifetime totals build on it).
  std::atomic<uint64_t> kernel_lost_growth{0};
  std::atomic<uint64_t> records{0};
  std::atomic<uint64_t> events{0};
  std::atomic<uint64_t> evictions{0};
  std::atomic<uint64_t> parse_errors{0};
  // Exec events whose argv the caps cut (kept and marked: not a loss), and the bytes cut.
  std::atomic<uint64_t> args_capped{0};
  std::atomic<uint64_t> args_dropped_bytes{0};

  uint64_t KernelLostDelta() const { return kernel_lost_growth.load(); }
};

class AuditSource {
 public:
  struct Options {
    size_t queue_records = 1 << 16;  // records buffered between reader and parser
    AuditReassembler::Options reassembly;
    int status_poll_ms = 1000;       // AUDIT_GET period, for the kernel lost counter
    // Wake-up coalescing. The kernel sends one datagram per record; waking a thread for
    // each costs more than parsing it. Once the socket is drained the reader naps until
    // the batch it holds is due (the large receive buffer holds what arrives meanwhile)
    // and hands it to the parser publish_ms after its first record: latency bounded by a
    // few ms, wake-ups by two a batch whatever the rate. Longer batches cost less per exec
    // but find more processes gone when their exec is read: a short script whose shell
    // exited too is then attributed by device, or not at all (memfd execs, connects).
    int publish_ms = 5;
  };
  using Sink = std::function<void(v1::Event&)>;
  // On the parser thread, before the records of each batch: every event the sink gets
  // from then on was made before this call (its records had been received).
  using BatchBegin = std::function<void()>;

  // REQUIRES: `nl` outlives this object.
  AuditSource(AuditNetlink* nl, Options options, Sink sink, BatchBegin batch_begin);
  ~AuditSource();

  void Start();
  // Stops both threads; the parser completes the events in flight first.
  void Stop();

  const AuditCounters& counters() const { return counters_; }

 private:
  // Records of several datagrams, packed: one allocation per batch, not per record.
  struct Batch {
    std::string bytes;
    std::vector<std::pair<uint16_t, std::pair<uint32_t, uint32_t>>> recs;  // type, offset, len
  };

  void ReadLoop();
  // Takes the kernel's lost counter from an AUDIT_GET reply. One caller at a time (the
  // reader thread, then Stop after joining it).
  void NoteKernelStatus(const audit_status& st);
  void ParseLoop();
  void Publish(Batch* b);

  AuditNetlink* nl_;
  Options options_;
  Sink sink_;
  BatchBegin batch_begin_;
  AuditCounters counters_;
  Diagnostics diag_{stderr, 100};
  std::atomic<bool> stop_{false};

  Mutex mu_;
  CondVar cv_;
  std::deque<Batch> queue_ DW_GUARDED_BY(mu_);
  size_t queued_records_ DW_GUARDED_BY(mu_) = 0;
  bool reader_done_ DW_GUARDED_BY(mu_) = false;

  std::thread reader_;
  std::thread parser_;
};

}  // namespace driftwatch::sensor
