// json: JSON string literals of arbitrary bytes. Valid UTF-8 is kept as it is; each byte
// that is not part of a valid UTF-8 sequence (overlong forms and encoded surrogates
// included) becomes the lone surrogate \udc80..\udcff of its value (Python's
// "surrogateescape" reads it back); '"', '\\' and control characters are escaped as JSON
// requires. A valid name never produces a \udcXX escape, so the mapping is one to one.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace driftwatch {

// JSON string literal, quotes included, with the escaping described above.
void AppendJsonString(std::string_view bytes, std::string* out);
std::string JsonQuote(std::string_view bytes);  // the same, as a value

}  // namespace driftwatch
