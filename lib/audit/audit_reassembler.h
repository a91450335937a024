// Stage 2 of the audit data flow: records grouped into events by (timestamp, serial).
//
// An event is complete on its EOE record, at once for single-record (user-space) types,
// on PROCTITLE when the stream carries no EOE records (auditd does not write them to its
// logs; the kernel emits PROCTITLE last), or when it has waited `timeout_ms` (stream time)
// for more records. At most `max_in_flight` events, holding at most `max_in_flight_bytes`
// together (AuditEventBuilder::footprint), wait at once; past either the oldest is completed
// early and counted as an eviction. Each exec keeps at most what `argv` allows of its
// arguments, cut while they arrive (ArgvCaps): memory is bounded before the event exists.
//
// Thread-compatible: one reassembler per record stream.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>

#include <google/protobuf/arena.h>

#include "driftwatch/v1/event.pb.h"
#include "lib/audit/audit_event.h"
#include "lib/audit/audit_record.h"
#include "lib/base/diagnostics.h"

namespace driftwatch {

class AuditReassembler {
 public:
  struct Options {
    size_t max_in_flight = 4096;
    size_t max_in_flight_bytes = 32 << 20;
    uint64_t timeout_ms = 2000;
    ArgvCaps argv;
  };
  struct Stats {
    uint64_t records = 0;
    uint64_t events_completed = 0;  // all audit events, modelled or not
    uint64_t evictions = 0;
    uint64_t timeouts = 0;
    uint64_t args_capped = 0;         // exec events whose argv the caps cut (kept, marked)
    uint64_t args_dropped_bytes = 0;  // argument bytes those caps left out
  };
  // The first block of the events' arena (see arena_).
  static constexpr size_t kArenaBlock = (1 << 20) + (256 << 10);
  // Receives each exec or chmod event; the Event may be moved from.
  using Sink = std::function<void(v1::Event&)>;

  AuditReassembler(Options options, Sink sink, Diagnostics* diag);
  ~AuditReassembler();

  void Push(const AuditRecord& r);
  // Completes the events that started before now_ms - timeout_ms.
  void Expire(uint64_t now_ms);
  // Completes every event in flight (end of input, shutdown).
  void Flush();

  const Stats& stats() const { return stats_; }
  size_t in_flight() const { return by_key_.size(); }
  size_t in_flight_bytes() const { return in_flight_bytes_; }
  // Highest record time seen (ms): the stream's clock for offline input.
  uint64_t stream_time_ms() const { return stream_time_ms_; }

 private:
  struct Key {
    uint64_t time_ms;
    uint64_t serial;
    bool operator==(const Key& o) const { return time_ms == o.time_ms && serial == o.serial; }
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return k.serial * 0x9E3779B97F4A7C15ull ^ k.time_ms; }
  };

  void Complete(const Key& key);
  // Completes the oldest events but `keep` while over max_in_flight_bytes.
  void EvictForBytes(const Key& keep);

  Options options_;
  Sink sink_;
  Diagnostics* diag_;
  Stats stats_;
  bool stream_has_eoe_ = false;
  uint64_t stream_time_ms_ = 0;
  size_t in_flight_bytes_ = 0;  // footprints of the events in by_key_
  // Elements keep their address while in the map (last_ points at one).
  std::unordered_map<Key, AuditEventBuilder, KeyHash> by_key_;
  // The node of the last event completed, reused for the next one (kept only when small).
  decltype(by_key_)::node_type spare_;
  std::deque<Key> order_;  // arrival order; completed keys are skipped lazily
  // Most records belong to the event of the previous record: remember it.
  Key last_key_{UINT64_MAX, UINT64_MAX};
  AuditEventBuilder* last_ = nullptr;
  // The event handed to the sink, built on an arena: its strings and messages cost a bump of
  // a pointer, not a malloc and a free each, and are refilled in place by the next event of
  // the kind (AuditEventBuilder::Finish). The arena is reset once it holds kArenaBytes,
  // which its first block (kept across resets) has room for, counting the heap bytes of
  // the arguments let go since (a message with more than kKeptArgs of them or over
  // kSpareBytes is not refilled: at most kKeptArgs buffers of up to kSpareBytes are kept).
  static constexpr size_t kArenaBytes = 1 << 20;
  static constexpr int kKeptArgs = 64;
  size_t abandoned_bytes_ = 0;
  // A spare node is kept only when what it holds is small: a huge argv is let go at once.
  static constexpr size_t kSpareBytes = 16 << 10;
  std::unique_ptr<char[]> arena_block_;
  google::protobuf::Arena arena_;
  v1::Event* scratch_;
};

}  // namespace driftwatch
