// output: the sensor's last stage on the node. Every event the sources produce (audit,
// fanotify, the container registry, status) gets the sensor run's identity and the next
// sequence number here, then goes to the spool (when a collector is configured: the durable
// queue the uplink streams from) and to the capture file (--capture). Sequence numbers are
// dense per run: a gap the collector sees is an event lost after this point.
//
// Thread-safety: Write, Flush and SetNotify may be called from any thread (the sources run
// threads of their own); the counters are atomics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "driftwatch/v1/event.pb.h"
#include "lib/audit/capture.h"
#include "lib/base/mutex.h"
#include "lib/event/event_view.h"
#include "sensor/spool.h"

namespace driftwatch::sensor {

class Output {
 public:
  Output(v1::EventId id, std::unique_ptr<CaptureWriter> capture)
      : id_(std::move(id)), capture_(std::move(capture)) {}

  // REQUIRES: called before any Write; `spool` outlives this object.
  void SetSpool(Spool* spool) { spool_ = spool; }
  // Called after each event reaches the spool (the uplink wakes up).
  void SetNotify(std::function<void()> notify);

  // Numbers the event (ev.id) and writes it to the spool, then the capture. Spool append
  // failures are counted by the spool and said when they start and stop, not per event.
  void Write(v1::Event& ev);
  void Flush();

  bool failed() const { return failed_.load(); }  // the capture file could not be written
  uint64_t encode_failures() const { return encode_failures_; }
  // An event spooled but unreadable when the uplink read it back (any thread).
  void CountUnreadable() { ++encode_failures_; }
  // Events written, by kind.
  uint64_t written(Kind kind) const {
    return by_kind_[static_cast<size_t>(kind)];
  }

 private:
  std::array<std::atomic<uint64_t>, 16> by_kind_{};
  Mutex mu_;
  v1::EventId id_;
  uint64_t seq_ DW_GUARDED_BY(mu_) = 0;
  std::unique_ptr<CaptureWriter> capture_ DW_GUARDED_BY(mu_);
  Spool* spool_ = nullptr;
  std::function<void()> notify_ DW_GUARDED_BY(mu_);
  std::string payload_ DW_GUARDED_BY(mu_);  // serialized event, reused
  std::atomic<bool> failed_{false};  // read by the metrics thread
  bool spool_failing_ DW_GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> encode_failures_{0};
};

}  // namespace driftwatch::sensor
