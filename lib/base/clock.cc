#include "lib/base/clock.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace driftwatch {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatIsoTime(int64_t time_ns) {
  time_t secs = static_cast<time_t>(time_ns / 1000000000);
  int64_t frac = time_ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  // Events come many to a second: format the date and time once per second.
  thread_local time_t cached_secs = -1;
  thread_local char cached[80];  // room for any int the format could print
  if (secs != cached_secs) {
    struct tm tm;
    gmtime_r(&secs, &tm);
    std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_secs = secs;
  }
  std::string out(cached);
  char digits[9];
  for (int i = 8; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  out.append(digits, 9);
  out.push_back('Z');
  return out;
}

}  // namespace driftwatch
