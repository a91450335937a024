#include "lib/node/pid_cursor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>

#include "lib/node/procfs.h"

namespace driftwatch {

void PidCursor::Observe(int64_t now_ns, std::optional<int64_t> last_pid, int64_t pid_max) {
  if (!last_pid || *last_pid < 0 || pid_max < kMinPidMax) {
    known_ = false;
    return;
  }
  const bool gap = !known_ || now_ns < last_ns_ || now_ns - last_ns_ > kMaxGapNs;
  const bool round = *last_pid < last_pid_;
  if (gap || round || pid_max < pid_max_) ++round_;
  known_ = true;
  last_ns_ = now_ns;
  last_pid_ = *last_pid;
  pid_max_ = pid_max;
}

bool PidCursor::MayBeReused(int64_t pid, Mark seen, bool observed_after) const {
  if (!known_ || seen.round != round_ || seen.cursor < 0 || pid <= 0) return true;
  const int64_t margin = observed_after ? 0 : kMargin;
  if (last_pid_ + margin >= pid_max_) return true;  // could go round before the next look
  // Passed since the mark (ahead of it then, not beyond reach now).
  return pid > seen.cursor && pid <= last_pid_ + margin;
}

namespace {
// The inode of the init pid namespace (PROC_PID_INIT_INO, fixed by the kernel).
constexpr const char* kInitPidNs = "pid:[4026531836]";
}  // namespace

PidCursorReader::PidCursorReader() {
  if (ReadLinkAt(AT_FDCWD, "/proc/self/ns/pid") != kInitPidNs) return;
  last_fd_ = open("/proc/sys/kernel/ns_last_pid", O_RDONLY | O_CLOEXEC);
  max_fd_ = open("/proc/sys/kernel/pid_max", O_RDONLY | O_CLOEXEC);
}

PidCursorReader::~PidCursorReader() {
  if (last_fd_ >= 0) close(last_fd_);
  if (max_fd_ >= 0) close(max_fd_);
}

std::optional<int64_t> PidCursorReader::ReadInt(int fd) {
  if (fd < 0) return std::nullopt;
  char buf[32];
  ssize_t n;
  do {
    n = pread(fd, buf, sizeof buf, 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return std::nullopt;
  int64_t v = -1;
  auto [end, ec] = std::from_chars(buf, buf + n, v);
  if (ec != std::errc() || end == buf || v < 0) return std::nullopt;
  return v;
}

}  // namespace driftwatch
