// clock: the wall clock and the one way times are printed (UTC, nanoseconds).
//
// Thread-safety: thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace driftwatch {

// "2026-11-28T09:06:20.123000000Z"
std::string FormatIsoTime(int64_t time_ns);
// The wall clock now, ns since the epoch.
int64_t NowNs();

}  // namespace driftwatch
