#include "lib/log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>

#include "lib/event_json.h"

namespace driftwatch {
namespace {

std::string g_program = "driftwatch";
bool g_json = false;

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "info";
}

std::string Format(const char* fmt, va_list ap) {
  char buf[4096];
  va_list copy;
  va_copy(copy, ap);
  int n = std::vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  std::string s;
  if (n < 0) return s;
  if (static_cast<size_t>(n) < sizeof buf) {
    s.assign(buf, static_cast<size_t>(n));
  } else {
    s.resize(static_cast<size_t>(n) + 1);
    std::vsnprintf(s.data(), s.size(), fmt, ap);
    s.resize(static_cast<size_t>(n));
  }
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

void Emit(LogLevel level, const std::string& msg, bool banner) {
  std::string line;
  if (g_json) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    line = "{\"time\":\"" + FormatIsoTime(static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec) +
           "\",\"level\":\"" + LevelName(level) + "\",\"program\":";
    AppendJsonString(g_program, &line);
    line += ",\"msg\":";
    AppendJsonString(msg, &line);
    line += "}\n";
  } else {
    if (!banner) line = g_program + ": ";
    line += msg;
    line += '\n';
  }
  // One write: lines from several threads do not interleave.
  [[maybe_unused]] ssize_t n = write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

bool SetLogFormat(const std::string& program, const std::string& format) {
  g_program = program;
  if (format == "json") {
    g_json = true;
  } else if (format == "text") {
    g_json = false;
  } else {
    return false;
  }
  return true;
}

void Logf(LogLevel level, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string msg = Format(fmt, ap);
  va_end(ap);
  Emit(level, msg, false);
}

void LogBanner(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string msg = Format(fmt, ap);
  va_end(ap);
  Emit(LogLevel::kInfo, msg, true);
}

}  // namespace driftwatch
