// A strict JSON reader for tests of what driftwatch writes (RFC 8259): checks that a text is
// one JSON value and nothing else, and gives back its strings as bytes under driftwatch's
// convention for bytes that are not UTF-8 (lib/event/event_json.h): a lone \udc80..\udcff is the
// byte 0x80..0xff. Raw bytes in strings must be valid UTF-8, control characters escaped;
// any other lone surrogate, or a raw byte that is not UTF-8, is an error.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/utf8.h"

namespace driftwatch::testing {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  std::string text;  // kNumber: as written; kString: the bytes, escapes undone
  std::vector<JsonValue> items;
  std::vector<std::pair<std::string, JsonValue>> members;  // in order, keys as bytes

  const JsonValue* Get(std::string_view key) const {
    for (const auto& [k, v] : members)
      if (k == key) return &v;
    return nullptr;
  }
};

class JsonReader {
 public:
  // Error: "" when `text` is exactly one JSON value (blanks around it allowed).
  static std::string Parse(std::string_view text, JsonValue* out) {
    JsonReader r(text);
    if (!r.Value(out, 0)) return r.error_;
    r.Blanks();
    if (r.pos_ != text.size()) return r.At("trailing bytes");
    return "";
  }

 private:
  explicit JsonReader(std::string_view s) : s_(s) {}

  std::string At(const std::string& what) {
    if (error_.empty()) error_ = what + " at offset " + std::to_string(pos_);
    return error_;
  }
  bool Fail(const std::string& what) {
    At(what);
    return false;
  }
  void Blanks() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool Lit(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }

  bool Value(JsonValue* v, int depth) {
    if (depth > 100) return Fail("nested too deeply");
    Blanks();
    if (pos_ >= s_.size()) return Fail("unexpected end");
    char c = s_[pos_];
    if (c == '{') return Object(v, depth);
    if (c == '[') return Array(v, depth);
    if (c == '"') {
      v->kind = JsonValue::Kind::kString;
      return String(&v->text);
    }
    if (Lit("true")) { v->kind = JsonValue::Kind::kBool; v->boolean = true; return true; }
    if (Lit("false")) { v->kind = JsonValue::Kind::kBool; return true; }
    if (Lit("null")) { v->kind = JsonValue::Kind::kNull; return true; }
    return Number(v);
  }

  bool Number(JsonValue* v) {
    size_t start = pos_;
    auto digits = [&] {
      size_t b = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > b;
    };
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (!digits()) {
      return Fail("expected a value");
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) return Fail("digits expected after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return Fail("digits expected in the exponent");
    }
    v->kind = JsonValue::Kind::kNumber;
    v->text = std::string(s_.substr(start, pos_ - start));
    return true;
  }

  bool Array(JsonValue* v, int depth) {
    v->kind = JsonValue::Kind::kArray;
    ++pos_;
    Blanks();
    if (Lit("]")) return true;
    for (;;) {
      v->items.emplace_back();
      if (!Value(&v->items.back(), depth + 1)) return false;
      Blanks();
      if (Lit("]")) return true;
      if (!Lit(",")) return Fail("expected ',' or ']'");
    }
  }

  bool Object(JsonValue* v, int depth) {
    v->kind = JsonValue::Kind::kObject;
    ++pos_;
    Blanks();
    if (Lit("}")) return true;
    for (;;) {
      Blanks();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected a key");
      std::string key;
      if (!String(&key)) return false;
      Blanks();
      if (!Lit(":")) return Fail("expected ':'");
      v->members.emplace_back(std::move(key), JsonValue{});
      if (!Value(&v->members.back().second, depth + 1)) return false;
      Blanks();
      if (Lit("}")) return true;
      if (!Lit(",")) return Fail("expected ',' or '}'");
    }
  }

  bool Hex4(uint32_t* v) {
    if (pos_ + 4 > s_.size()) return Fail("short \\u escape");
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return Fail("bad \\u escape");
      *v = *v * 16 + static_cast<uint32_t>(d);
    }
    return true;
  }

  // Length of the valid UTF-8 sequence at s_[i] (raw text in a string), 0 if none.
  size_t Utf8At(size_t i) const {
    unsigned char c = static_cast<unsigned char>(s_[i]);
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (i + n > s_.size()) return 0;
    for (size_t k = 1; k < n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s_[i + k]);
      if ((cc & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return 0;
    }
    return n;
  }

  bool String(std::string* out) {
    ++pos_;  // the quote
    for (;;) {
      if (pos_ >= s_.size()) return Fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return Fail("raw control character in a string");
      if (c >= 0x80) {
        size_t n = Utf8At(pos_);
        if (n == 0) return Fail("raw byte that is not UTF-8 in a string");
        out->append(s_.substr(pos_, n));
        pos_ += n;
        continue;
      }
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      if (++pos_ >= s_.size()) return Fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); continue;
        case '\\': out->push_back('\\'); continue;
        case '/': out->push_back('/'); continue;
        case 'b': out->push_back('\b'); continue;
        case 'f': out->push_back('\f'); continue;
        case 'n': out->push_back('\n'); continue;
        case 'r': out->push_back('\r'); continue;
        case 't': out->push_back('\t'); continue;
        case 'u': break;
        default: return Fail("unknown escape");
      }
      uint32_t cp;
      if (!Hex4(&cp)) return false;
      if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate needs its low one
        uint32_t lo;
        if (!Lit("\\u") || !Hex4(&lo) || lo < 0xDC00 || lo > 0xDFFF)
          return Fail("high surrogate without its low surrogate");
        AppendUtf8(0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00), out);
      } else if (cp >= 0xDC80 && cp <= 0xDCFF) {  // driftwatch: a byte that is not UTF-8
        out->push_back(static_cast<char>(cp - 0xDC00));
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return Fail("lone low surrogate outside \\udc80..\\udcff");
      } else {
        AppendUtf8(cp, out);
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace driftwatch::testing
