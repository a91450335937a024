#include "lib/node/procfs.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>

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

namespace {

template <typename T>
bool ParseNum(std::string_view f, T* out, int base = 10) {
  if (f.empty()) return false;
  auto [ptr, ec] = std::from_chars(f.data(), f.data() + f.size(), *out, base);
  return ec == std::errc() && ptr == f.data() + f.size();
}

}  // namespace

std::optional<ProcStat> ParseProcStat(std::string_view text) {
  size_t open = text.find('(');
  size_t p = text.rfind(')');
  if (p == std::string_view::npos || open == std::string_view::npos || open > p)
    return std::nullopt;
  ProcStat st;
  st.comm = text.substr(open + 1, p - open - 1);
  int field = 2;
  size_t i = p + 1;
  while (i < text.size() && field < 51) {
    while (i < text.size() && text[i] == ' ') ++i;
    if (i >= text.size() || text[i] == '\n') break;
    size_t end = text.find_first_of(" \n", i);
    if (end == std::string_view::npos) end = text.size();
    std::string_view f = text.substr(i, end - i);
    ++field;
    bool ok = true;
    switch (field) {
      case 3: st.state = f[0]; break;
      case 4: ok = ParseNum(f, &st.ppid); break;
      case 5: ok = ParseNum(f, &st.pgrp); break;
      case 6: ok = ParseNum(f, &st.session); break;
      case 22: ok = ParseNum(f, &st.start_ticks); break;
      case 50: ok = ParseNum(f, &st.env_start); break;
      case 51: ok = ParseNum(f, &st.env_end); break;
      default: break;
    }
    if (!ok) {
      if (field <= 22) return std::nullopt;
      st.env_start = st.env_end = 0;
      break;
    }
    i = end;
  }
  if (field < 22) return std::nullopt;
  if (field < 51 || st.env_end < st.env_start) st.env_start = st.env_end = 0;
  return st;
}

ProcStatus ParseProcStatus(std::string_view text) {
  ProcStatus s;
  // The last number of a tab-separated NS* line: the id in the innermost pid namespace.
  auto last_id = [](std::string_view v, std::optional<uint32_t>* out) {
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    size_t b = v.find_last_of(" \t");
    std::string_view n = b == std::string_view::npos ? v : v.substr(b + 1);
    uint32_t id = 0;
    if (ParseNum(n, &id)) *out = id;
  };
  auto caps = [](std::string_view v, std::optional<uint64_t>* out) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    uint64_t c = 0;
    if (v.size() <= 16 && ParseNum(v, &c, 16)) *out = c;
  };
  size_t i = 0;
  while (i < text.size()) {
    size_t nl = text.find('\n', i);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(i, nl - i);
    i = nl + 1;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon), v = line.substr(colon + 1);
    if (key == "NSpid") last_id(v, &s.vpid);
    else if (key == "NSpgid") last_id(v, &s.vpgid);
    else if (key == "NSsid") last_id(v, &s.vsid);
    else if (key == "CapInh") caps(v, &s.cap_inheritable);
    else if (key == "CapPrm") caps(v, &s.cap_permitted);
    else if (key == "CapEff") caps(v, &s.cap_effective);
  }
  return s;
}

Environ SplitEnviron(std::string_view text, size_t max_bytes, uint64_t beyond) {
  Environ e;
  size_t used = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = text.find('\0', i);
    size_t next = end == std::string_view::npos ? text.size() : end + 1;
    std::string_view entry = text.substr(i, (end == std::string_view::npos ? text.size() : end) - i);
    i = next;
    if (entry.empty()) continue;
    if (end == std::string_view::npos && beyond > 0) {  // the piece of an entry a read cut
      e.capped = true;
      e.dropped_bytes += entry.size();
      continue;
    }
    if (e.capped || used + entry.size() + 1 > max_bytes) {
      e.capped = true;
      e.dropped_bytes += entry.size() + 1;
      continue;
    }
    used += entry.size() + 1;
    e.entries.push_back(entry);
  }
  if (beyond > 0) {
    e.capped = true;
    e.dropped_bytes += beyond;
  }
  return e;
}

std::string ReadLinkAt(int dirfd, const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = readlinkat(dirfd, path.c_str(), buf, sizeof buf);
  // A link that fills the buffer may be cut: no answer rather than a wrong one.
  return n > 0 && static_cast<size_t>(n) < sizeof buf ? std::string(buf, static_cast<size_t>(n))
                                                      : std::string();
}

std::string FdPath(int fd) { return ReadLinkAt(AT_FDCWD, "/proc/self/fd/" + std::to_string(fd)); }

int FdMountId(int fd) {
  std::string info;
  ReadSmallFile("/proc/self/fdinfo/" + std::to_string(fd), &info);
  size_t at = info.find("mnt_id:");
  if (at == std::string::npos) return -1;
  at += 7;
  while (at < info.size() && (info[at] == ' ' || info[at] == '\t')) ++at;
  int id = -1;
  std::from_chars(info.data() + at, info.data() + info.size(), id);
  return id;
}

bool ReadSmallFileAt(int dirfd, const char* name, std::string* out, size_t max_bytes) {
  out->clear();
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return false;
  char buf[4096];
  while (out->size() < max_bytes) {
    size_t want = std::min(sizeof buf, max_bytes - out->size());
    ssize_t n = read(fd, buf, want);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return !out->empty();
}

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  std::string text;
  if (!ReadSmallFile("/proc/" + std::to_string(pid) + "/stat", &text)) return std::nullopt;
  return ParseProcStat(text);
}

bool ProcessAlive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

}  // namespace driftwatch
