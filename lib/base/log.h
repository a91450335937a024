// log: the daemons' log lines on stderr, in one of two formats:
//   text (default)  "driftwatch-sensor: connected to collector ..." (the journal adds time)
//   json            {"time":"2026-11-28T11:05:13.123Z","level":"info",
//                    "program":"driftwatch-sensor","msg":"connected to collector ..."}
// (--log-format). One line per call; a trailing newline in the message is dropped.
// Messages carry outside bytes (paths, names, peers' words): in text format the program name
// and message are escaped as lib/base/terminal_text.h says (controls, C1, bad UTF-8 as \x1b,
// \xc2\x9b, \n, ...; a backslash as \\); in json format they are JSON strings (event_json's
// escaping) with DEL and U+0080-U+009F also escaped (\u007f, \u009b), so neither format
// puts a control character on a terminal.
//
// Thread-safety: any thread; each line is one write(2).
#pragma once

#include <string>

namespace driftwatch {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Once, at start-up: the program name every line carries, and the format ("text", "json").
// False for an unknown format.
bool SetLogFormat(const std::string& program, const std::string& format);

void Logf(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// A line whose text names the program itself (start-up banners): as is in text format.
void LogBanner(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

#define LogInfo(...) ::driftwatch::Logf(::driftwatch::LogLevel::kInfo, __VA_ARGS__)
#define LogWarn(...) ::driftwatch::Logf(::driftwatch::LogLevel::kWarning, __VA_ARGS__)
#define LogError(...) ::driftwatch::Logf(::driftwatch::LogLevel::kError, __VA_ARGS__)

}  // namespace driftwatch
