#include "lib/base/terminal_text.h"

#include <cstdint>

#include "lib/base/utf8.h"

namespace driftwatch {
namespace {

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
