#include "lib/terminal_text.h"

#include <cstdint>

namespace driftwatch {
namespace {

// Length of the valid UTF-8 sequence starting at s[i] (2 to 4), 0 if none starts there.
// REQUIRES: s[i] >= 0x80.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;  // a continuation byte, or 0xC0, 0xC1, 0xF5-0xFF: never a lead byte
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8.
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
      (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;
  }
  return n;
}

bool PlainAscii(unsigned char c) { return c >= 0x20 && c < 0x7F && c != '\\'; }

// A valid two-byte sequence for U+0080-U+009F (C1 controls).
bool IsC1(std::string_view s, size_t i, size_t n) {
  return n == 2 && static_cast<unsigned char>(s[i]) == 0xC2 &&
         static_cast<unsigned char>(s[i + 1]) <= 0x9F;
}

void AppendHex(unsigned char c, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->append("\\x");
  out->push_back(kHex[c >> 4]);
  out->push_back(kHex[c & 15]);
}

}  // namespace

void AppendTerminalEscaped(std::string_view s, std::string* out) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (PlainAscii(c)) {
      size_t j = i + 1;  // copy runs of plain ASCII at once
      while (j < s.size() && PlainAscii(static_cast<unsigned char>(s[j]))) ++j;
      out->append(s.data() + i, j - i);
      i = j;
      continue;
    }
    switch (c) {
      case '\\': out->append("\\\\"); ++i; continue;
      case '\t': out->append("\\t"); ++i; continue;
      case '\n': out->append("\\n"); ++i; continue;
      case '\r': out->append("\\r"); ++i; continue;
    }
    if (c < 0x80) {  // the other C0 controls and DEL
      AppendHex(c, out);
      ++i;
      continue;
    }
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {  // not UTF-8: this byte alone, then look again from the next one
      AppendHex(c, out);
      ++i;
    } else if (IsC1(s, i, n)) {
      AppendHex(c, out);
      AppendHex(static_cast<unsigned char>(s[i + 1]), out);
      i += n;
    } else {
      out->append(s.data() + i, n);
      i += n;
    }
  }
}

std::string TerminalEscape(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  AppendTerminalEscaped(bytes, &out);
  return out;
}

std::string TerminalEscapeLines(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t b = 0;;) {
    size_t e = text.find('\n', b);
    AppendTerminalEscaped(text.substr(b, e == std::string_view::npos ? e : e - b), &out);
    if (e == std::string_view::npos) break;
    out.push_back('\n');
    b = e + 1;
  }
  return out;
}

bool IsTerminalClean(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (PlainAscii(c)) {
      ++i;
      continue;
    }
    if (c < 0x80) return false;
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0 || IsC1(s, i, n)) return false;
    i += n;
  }
  return true;
}

}  // namespace driftwatch
