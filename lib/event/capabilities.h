// capabilities: Linux capability sets as Falco prints them (thread.cap_effective, ...):
// the names of the bits set, "CAP_CHOWN CAP_KILL ...", lowest bit first, space-separated.
// Thread-safe (no state).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace driftwatch {

// The name of capability `bit` ("CAP_SYS_ADMIN" for 21), or "" for a bit no kernel names
// yet (Falco leaves those out too).
std::string_view CapabilityName(unsigned bit);

// Appends the names of the bits set in `caps` to *out, space-separated; nothing for 0.
void AppendCapabilities(uint64_t caps, std::string* out);

}  // namespace driftwatch
