// utf8: what is valid UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing past
// U+10FFFF), for the writers that pass valid text through and escape everything else.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace driftwatch {

// Length of the valid UTF-8 sequence at s[i] (1 for ASCII, 2 to 4), 0 if none starts there.
size_t Utf8SequenceLength(std::string_view s, size_t i);

// True when `bytes` is valid UTF-8.
bool IsUtf8(std::string_view bytes);

// Appends the UTF-8 encoding of code point `cp` (at most U+10FFFF; JSON's \u escapes
// decoded).
void AppendUtf8(uint32_t cp, std::string* out);

}  // namespace driftwatch
