#include "lib/audit/audit_reassembler.h"

#include "lib/event/event_view.h"

namespace driftwatch {

namespace {
// The arena starts in a block of its own that Reset keeps: a reset does not hand the
// blocks back to malloc only to ask for them again at the next events.
google::protobuf::ArenaOptions ArenaOn(char* block) {
  google::protobuf::ArenaOptions o;
  o.initial_block = block;
  o.initial_block_size = AuditReassembler::kArenaBlock;
  return o;
}

// User-space messages (AUDIT_FIRST_USER_MSG..AUDIT_LAST_USER_MSG and the second user
// range) and daemon records stand alone: no EOE follows them.
bool IsSingleRecordType(uint32_t type) {
  return (type >= 1100 && type <= 1299) || (type >= 2100 && type <= 2999);
}
}  // namespace

AuditReassembler::AuditReassembler(Options options, Sink sink, Diagnostics* diag)
    : options_(options),
      sink_(std::move(sink)),
      diag_(diag),
      arena_block_(std::make_unique<char[]>(kArenaBlock)),
      arena_(ArenaOn(arena_block_.get())),
      scratch_(google::protobuf::Arena::CreateMessage<v1::Event>(&arena_)) {
  if (options_.max_in_flight == 0) options_.max_in_flight = 1;
}

AuditReassembler::~AuditReassembler() = default;

void AuditReassembler::Push(const AuditRecord& r) {
  ++stats_.records;
  Key key{r.TimeMs(), r.serial};
  if (key.time_ms > stream_time_ms_) stream_time_ms_ = key.time_ms;
  if (IsSingleRecordType(r.type)) {
    ++stats_.events_completed;  // nothing in it we model
    return;
  }
  if (r.type == kAuditEoe) stream_has_eoe_ = true;

  AuditEventBuilder* ev;
  if (last_ != nullptr && key == last_key_) {
    ev = last_;
  } else {
    auto it = by_key_.find(key);
    if (it == by_key_.end()) {
      if (r.type == kAuditEoe) {  // the event already completed on PROCTITLE
        return;
      }
      while (by_key_.size() >= options_.max_in_flight && !order_.empty()) {
        Key oldest = order_.front();
        order_.pop_front();
        if (by_key_.count(oldest)) {
          ++stats_.evictions;
          Complete(oldest);
        }
      }
      if (spare_) {
        spare_.key() = key;
        spare_.mapped().Reset(r.sec, r.msec, r.serial, options_.argv);
        it = by_key_.insert(std::move(spare_)).position;
      } else {
        it = by_key_.try_emplace(key, r.sec, r.msec, r.serial, options_.argv).first;
      }
      in_flight_bytes_ += it->second.footprint();
      order_.push_back(key);
    }
    ev = &it->second;
    last_key_ = key;
    last_ = ev;
  }
  const size_t before = ev->footprint();
  ev->Add(r, diag_);
  in_flight_bytes_ = in_flight_bytes_ - before + ev->footprint();
  if (in_flight_bytes_ > options_.max_in_flight_bytes) EvictForBytes(key);  // ev stays valid
  if (r.type == kAuditEoe || (r.type == kAuditProctitle && !stream_has_eoe_)) {
    Complete(key);
  }
}

void AuditReassembler::Complete(const Key& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return;
  if (last_ == &it->second) {
    last_ = nullptr;
    last_key_ = {UINT64_MAX, UINT64_MAX};
  }
  ++stats_.events_completed;
  in_flight_bytes_ -= it->second.footprint();
  // Finish refills the last exec's message in place, its arguments' buffers too: one that
  // holds many or big ones is let go first. What it held on the heap is freed only with the
  // arena, which is reset for those bytes too.
  size_t held = 0;
  bool had_exec = scratch_->has_exec();
  if (had_exec) {
    const auto& args = scratch_->exec().args();
    for (const std::string& a : args) held += a.capacity();
    if (args.size() > kKeptArgs || held > kSpareBytes) {
      abandoned_bytes_ += held;
      scratch_->clear_exec();
      had_exec = false;
    }
  }
  if (arena_.SpaceUsed() + abandoned_bytes_ > kArenaBytes) {
    arena_.Reset();
    abandoned_bytes_ = 0;
    had_exec = false;
    scratch_ = google::protobuf::Arena::CreateMessage<v1::Event>(&arena_);
  }
  const bool modelled = it->second.Finish(scratch_, diag_);
  if (had_exec && !scratch_->has_exec()) abandoned_bytes_ += held;  // let go for another kind
  if (it->second.footprint() <= kSpareBytes) {
    spare_ = by_key_.extract(it);
  } else {
    by_key_.erase(it);
  }
  if (modelled && KindOf(*scratch_) == Kind::kExec && scratch_->exec().args_capped()) {
    ++stats_.args_capped;
    stats_.args_dropped_bytes += scratch_->exec().args_dropped_bytes();
  }
  if (modelled) sink_(*scratch_);
  // Keep the arrival queue from growing with keys completed out of its order.
  while (!order_.empty() && by_key_.count(order_.front()) == 0) order_.pop_front();
}

void AuditReassembler::EvictForBytes(const Key& keep) {
  while (in_flight_bytes_ > options_.max_in_flight_bytes && !order_.empty() &&
         !(order_.front() == keep)) {
    Key oldest = order_.front();
    order_.pop_front();
    if (by_key_.count(oldest)) {
      ++stats_.evictions;
      Complete(oldest);
    }
  }
}

void AuditReassembler::Expire(uint64_t now_ms) {
  while (!order_.empty()) {
    const Key oldest = order_.front();
    auto it = by_key_.find(oldest);
    if (it == by_key_.end()) {
      order_.pop_front();
      continue;
    }
    if (oldest.time_ms + options_.timeout_ms > now_ms) break;
    order_.pop_front();
    ++stats_.timeouts;
    Complete(oldest);
  }
}

void AuditReassembler::Flush() {
  while (!order_.empty()) {
    Key k = order_.front();
    order_.pop_front();
    Complete(k);
  }
  by_key_.clear();
  in_flight_bytes_ = 0;
  last_ = nullptr;
}

}  // namespace driftwatch
