// loss_file: the sensor's loss totals over its lifetime on a node, kept in a small file beside
// the spool (`<spool dir>/losses`) so that a restart does not reset them. The collector alerts
// on any growth of a lifetime total it sees (in Hello or in a status event), so the totals
// must never be counted twice across a restart: a run reads the totals of the runs before it
// once, at Open (its base), and from then on persists base + its own counters.
//
// Thread-safety: every method may be called from any thread; one internal mutex guards the
// state and the file I/O (a store is one pwrite of 128 bytes, plus fdatasync when asked).
// Only one process may use a file: the spool's LOCK (sensor/spool.h) guards it, so open it
// only while the spool in the same directory is open.
//
// On disk: 256 bytes, two 128-byte slots, each:
//   "DWLOSS01" | generation (u64 LE) | n (u32 LE) | 0 (u32) | 12 counters (u64 LE each) |
//   masked crc32 of the 120 bytes before it (u32 LE) | 0 (u32)
// The first n counters are valid (n <= 12), in the order of kLossFields (the field numbers of
// v1::LossCounters); counters past n read as 0, counters this version does not know are
// ignored. A store writes the slot the older generation is in with the next generation, in
// place: no rename, no new block, so a store works on a full filesystem once the file exists
// (Open writes the whole file when it is missing or not 256 bytes long); a store torn by a
// power cut spoils one slot and the other still holds the totals before it. Open takes the
// valid slot with the highest generation; with none valid (a new, corrupt or foreign file)
// the totals start at 0, logged.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <string>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/mutex.h"

namespace driftwatch::sensor {

// Everything the sensor failed to see or to keep (v1::LossCounters as plain numbers).
struct LossCounts {
  uint64_t kernel_lost = 0;            // growth of the kernel's audit lost counter
  uint64_t socket_enobufs = 0;         // netlink receive buffer overruns
  uint64_t queue_drops = 0;            // records dropped between reader and parser
  uint64_t reassembly_evictions = 0;   // audit events pushed out unfinished
  uint64_t fanotify_overflows = 0;     // fanotify queue overflows
  uint64_t hash_skipped = 0;           // executables over the hash size cap (no sha256)
  uint64_t spool_dropped = 0;          // unacked events dropped because the spool was full
  uint64_t spool_append_failures = 0;  // events the spool could not write (ENOSPC, EFBIG, EIO)
  uint64_t encode_failures = 0;        // events that could not be serialized
  uint64_t hash_queue_full = 0;        // executables not hashed: no room in the hash queue

  bool operator==(const LossCounts&) const = default;
  LossCounts& operator+=(const LossCounts& o);
  void ToProto(v1::LossCounters* p) const;
};
LossCounts operator+(LossCounts a, const LossCounts& b);

struct LossField {
  const char* name;  // as in v1::LossCounters; also the `kind` label of the metrics
  uint64_t LossCounts::*member;
};
// In file order, which is the order of v1::LossCounters' field numbers.
inline constexpr std::array<LossField, 10> kLossFields = {{
    {"kernel_lost", &LossCounts::kernel_lost},
    {"socket_enobufs", &LossCounts::socket_enobufs},
    {"queue_drops", &LossCounts::queue_drops},
    {"reassembly_evictions", &LossCounts::reassembly_evictions},
    {"fanotify_overflows", &LossCounts::fanotify_overflows},
    {"hash_skipped", &LossCounts::hash_skipped},
    {"spool_dropped", &LossCounts::spool_dropped},
    {"spool_append_failures", &LossCounts::spool_append_failures},
    {"encode_failures", &LossCounts::encode_failures},
    {"hash_queue_full", &LossCounts::hash_queue_full},
}};

class LossFile {
 public:
  static constexpr size_t kFileBytes = 256;

  // Opens or creates the file at `path` (0600) and reads the totals of earlier runs (see
  // above: a missing or corrupt file is logged and starts at 0, never an error). `sync`:
  // fdatasync after every store. Errors: the file cannot be opened or created.
  static std::expected<std::unique_ptr<LossFile>, std::string> Open(const std::string& path,
                                                                    bool sync);
  ~LossFile();
  LossFile(const LossFile&) = delete;
  LossFile& operator=(const LossFile&) = delete;

  // Totals of the runs before this one, as read at Open.
  LossCounts base() const { return base_; }
  // base() + `run`: the lifetime totals, given this run's counters.
  LossCounts Lifetime(const LossCounts& run) const { return base_ + run; }

  // Persists base() + `run` (`run`: this run's counters, which only grow). Errors: the
  // write or fdatasync failed; the file then still holds an earlier store (or is rewritten
  // whole by the next store when Open could not write it).
  std::expected<void, std::string> Store(const LossCounts& run);
  // Store, but only when `run` differs from what the last successful store wrote and
  // `min_gap` has passed since the last store attempt. Returns whether it stored.
  std::expected<bool, std::string> StoreIfChanged(const LossCounts& run,
                                                  std::chrono::steady_clock::duration min_gap);

  uint64_t stores() const;          // successful stores
  uint64_t store_failures() const;  // failed stores

 private:
  LossFile(std::string path, int fd, bool sync) : path_(std::move(path)), fd_(fd), sync_(sync) {}
  std::expected<void, std::string> StoreLocked(const LossCounts& run) DW_REQUIRES(mu_);

  const std::string path_;
  const int fd_;
  const bool sync_;
  LossCounts base_;  // set once in Open, read-only after

  mutable Mutex mu_;
  uint64_t generation_ DW_GUARDED_BY(mu_) = 0;  // of the newest slot on disk
  bool whole_file_ DW_GUARDED_BY(mu_) = false;  // the next store writes all 256 bytes
  LossCounts stored_run_ DW_GUARDED_BY(mu_);    // `run` of the last successful store
  std::chrono::steady_clock::time_point last_attempt_ DW_GUARDED_BY(mu_){};
  uint64_t stores_ DW_GUARDED_BY(mu_) = 0;
  uint64_t store_failures_ DW_GUARDED_BY(mu_) = 0;
};

}  // namespace driftwatch::sensor
