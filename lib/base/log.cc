#include "lib/base/log.h"

#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>

#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/base/terminal_text.h"

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

// AppendJsonString leaves DEL and U+0080-U+009F (C1 controls) raw, which is valid JSON but
// reaches a terminal that shows the log as is: \u007f and \u0080-\u009f instead. Its output
// is valid UTF-8 (bad bytes are escaped), so a 0xC2 there always leads a two-byte sequence.
void AppendJsonLogString(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  std::string j;
  AppendJsonString(s, &j);
  for (size_t i = 0; i < j.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(j[i]);
    unsigned char next = i + 1 < j.size() ? static_cast<unsigned char>(j[i + 1]) : 0;
    if (c == 0x7F) {
      out->append("\\u007f");
    } else if (c == 0xC2 && next >= 0x80 && next <= 0x9F) {
      out->append("\\u00");
      out->push_back(kHex[next >> 4]);
      out->push_back(kHex[next & 15]);
      ++i;
    } else {
      out->push_back(j[i]);
    }
  }
}

void Emit(LogLevel level, const std::string& msg, bool banner) {
  std::string line;
  if (g_json) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    line = "{\"time\":\"" + FormatIsoTime(static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec) +
           "\",\"level\":\"" + LevelName(level) + "\",\"program\":";
    AppendJsonLogString(g_program, &line);
    line += ",\"msg\":";
    AppendJsonLogString(msg, &line);
    line += "}\n";
  } else {
    // Messages carry names, paths and peers' words: escaped (lib/base/terminal_text.h), so a line
    // stays one line and nothing in it reaches the terminal as a control.
    if (!banner) line = TerminalEscape(g_program) + ": ";
    AppendTerminalEscaped(msg, &line);
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
