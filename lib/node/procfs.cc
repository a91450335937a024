#include "lib/node/procfs.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

namespace driftwatch {

bool ReadSmallFile(const std::string& path, std::string* out) {
  out->clear();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return !out->empty();
}

std::optional<ProcStat> ParseProcStat(std::string_view text) {
  size_t p = text.rfind(')');
  if (p == std::string_view::npos) return std::nullopt;
  ProcStat st;
  int field = 2;
  size_t i = p + 1;
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ') ++i;
    size_t end = text.find(' ', i);
    if (end == std::string_view::npos) end = text.size();
    std::string_view f = text.substr(i, end - i);
    ++field;
    if (field == 3 && !f.empty()) st.state = f[0];
    if (field == 22) {
      auto [ptr, ec] = std::from_chars(f.data(), f.data() + f.size(), st.start_ticks);
      if (ec != std::errc() || ptr != f.data() + f.size()) return std::nullopt;
      return st;
    }
    i = end;
  }
  return std::nullopt;
}

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  std::string text;
  if (!ReadSmallFile("/proc/" + std::to_string(pid) + "/stat", &text)) return std::nullopt;
  return ParseProcStat(text);
}

bool ProcessAlive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

}  // namespace driftwatch
