// PidCursor: whether a pid seen alive earlier can since name another process, without asking
// /proc. The kernel hands out pids in turn: after the last pid given (the cursor,
// /proc/sys/kernel/ns_last_pid) comes the next free one above it, up to pid_max, then from
// 300 again. So a pid seen alive when the cursor stood at C can name a new process only once
// the cursor has passed it: it went round, or moved from C past the pid.
//
// The caller observes the cursor (at most a millisecond apart while it asks) and marks each
// pid it sees alive with mark(); MayBeReused() then answers from the marks alone. It answers
// "maybe" (the caller reads /proc) whenever it cannot be sure:
//   - the cursor went down since the mark (round), or was not observed for over 20 ms (it
//     could have gone all the way round unseen: 32,768 pids, the smallest usual pid_max, take
//     well over a second of forks on any machine), or is unknown;
//   - the pid lies ahead of the mark's cursor and within kMargin of the cursor now, or the
//     cursor is within kMargin of pid_max: the caller observes at most a millisecond
//     before it asks, and 1,024 pids in a millisecond would be a million forks a second;
//   - pid_max is below kMinPidMax (the cursor could go round between observations).
// A caller that knows its last observation came after the event it asks about (the event's
// records had been received before it looked) passes `observed_after`: then where the
// cursor stood at the event is behind where it was seen, and the margin is not needed.
//
// Thread-safety: not thread-safe.
#pragma once

#include <cstdint>
#include <optional>

namespace driftwatch {

class PidCursor {
 public:
  static constexpr int64_t kMaxGapNs = 20'000'000;
  static constexpr int64_t kMargin = 1024;  // pids the cursor may move between observations
  static constexpr int64_t kMinPidMax = 32768;

  struct Mark {
    uint64_t round = 0;  // 0: unknown
    int64_t cursor = -1;
  };

  // One observation at `now_ns` (a monotonic clock) of the cursor and pid_max; nullopt:
  // unknown (every mark taken before is then void).
  void Observe(int64_t now_ns, std::optional<int64_t> last_pid, int64_t pid_max);
  // Where the cursor stands now, for a pid the caller has just seen alive.
  Mark mark() const { return Mark{known_ ? round_ : 0, last_pid_}; }
  // Whether `pid`, seen alive at `seen`, may since have been given to another process
  // (before the last observation when `observed_after`, else before about now).
  bool MayBeReused(int64_t pid, Mark seen, bool observed_after = false) const;
  int64_t last_pid() const { return last_pid_; }
  int64_t last_observed_ns() const { return last_ns_; }

 private:
  bool known_ = false;
  int64_t last_ns_ = 0;
  int64_t last_pid_ = -1;
  int64_t pid_max_ = 0;
  uint64_t round_ = 1;
};

// The cursor and pid_max of this process's pid namespace, read with pread on files kept
// open (one syscall each). Unavailable (nullopt) when this process is not in the init pid
// namespace, whose pids audit reports, or the files cannot be opened.
class PidCursorReader {
 public:
  PidCursorReader();
  ~PidCursorReader();
  PidCursorReader(const PidCursorReader&) = delete;
  PidCursorReader& operator=(const PidCursorReader&) = delete;
  bool available() const { return last_fd_ >= 0 && max_fd_ >= 0; }
  std::optional<int64_t> LastPid() const { return ReadInt(last_fd_); }
  std::optional<int64_t> PidMax() const { return ReadInt(max_fd_); }

 private:
  static std::optional<int64_t> ReadInt(int fd);
  int last_fd_ = -1, max_fd_ = -1;
};

}  // namespace driftwatch
