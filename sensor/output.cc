#include "sensor/output.h"

#include <cerrno>
#include <cstring>

#include "lib/base/log.h"

namespace driftwatch::sensor {

void Output::SetNotify(std::function<void()> notify) {
  MutexLock lock(mu_);
  notify_ = std::move(notify);
}

void Output::Write(v1::Event& ev) {
  ++by_kind_[static_cast<size_t>(KindOf(ev))];
  MutexLock lock(mu_);
  *ev.mutable_id() = id_;
  ev.mutable_id()->set_seq(++seq_);
  // Spool first: a capture (buffered) never holds an event the spool lacks.
  bool serialized = false;
  if (spool_) {
    payload_.clear();
    serialized = ev.AppendToString(&payload_);
    if (!serialized) {
      if (encode_failures_++ == 0)  // said once; counted in status events and /metrics
        LogWarn("event %llu failed to serialize\n", (unsigned long long)seq_);
    } else if (auto r = spool_->AppendSerialized(payload_); !r) {
      // Said when appends start failing and when they work again, not per event: the
      // spool counts them (append_failures, in status events and /metrics).
      if (!spool_failing_) LogWarn("%s; appends failing\n", r.error().c_str());
      spool_failing_ = true;
    } else if (spool_failing_) {
      spool_failing_ = false;
      LogInfo("spool: appends succeed again (%llu failed so far)\n",
              (unsigned long long)spool_->append_failures());
    }
    if (notify_) notify_();
  }
  if (capture_ && !(serialized ? capture_->WriteSerialized(payload_) : capture_->Write(ev)) &&
      !failed_) {
    failed_ = true;
    LogWarn("capture write failed: %s\n", strerror(errno));
  }
  if (payload_.capacity() > (1u << 20)) std::string().swap(payload_);  // keep no huge one
}

void Output::Flush() {
  MutexLock lock(mu_);
  if (capture_) capture_->Flush();
}

}  // namespace driftwatch::sensor
