#include "lib/base/time_arg.h"

#include <charconv>
#include <ctime>

namespace driftwatch {
namespace {

bool ParseInt(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

Result<int64_t> ParseTimeArg(std::string_view text, int64_t now_ns) {
  auto bad = [&](std::string_view why) {
    return std::unexpected(Error::InvalidInput(
        "bad time '" + std::string(text) + "': " + std::string(why) +
        " (ISO 8601 like 2026-11-28T09:06:20Z, or relative like 30s, 10m, 2h, 7d)"));
  };
  if (text.empty()) return bad("empty");
  // Relative: a number and one unit, meaning that long ago.
  if (std::isdigit(static_cast<unsigned char>(text[0])) && text.size() <= 12 &&
      text.find('-') == std::string_view::npos) {
    int64_t n = 0;
    int64_t unit = 0;
    switch (text.back()) {
      case 's': unit = 1'000'000'000LL; break;
      case 'm': unit = 60'000'000'000LL; break;
      case 'h': unit = 3'600'000'000'000LL; break;
      case 'd': unit = 86'400'000'000'000LL; break;
      default: return bad("unknown unit (s, m, h, d)");
    }
    if (!ParseInt(text.substr(0, text.size() - 1), &n) || n < 0) return bad("not a number");
    if (n > INT64_MAX / unit) return bad("too far back");
    return now_ns - n * unit;
  }
  // ISO 8601: YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|(+|-)HH[:]MM]; no zone means UTC.
  std::string_view s = text;
  auto num = [&](size_t digits, int* out) -> bool {
    if (s.size() < digits) return false;
    int64_t v = 0;
    if (!ParseInt(s.substr(0, digits), &v)) return false;
    *out = static_cast<int>(v);
    s.remove_prefix(digits);
    return true;
  };
  auto eat = [&](char c) -> bool {
    if (s.empty() || s[0] != c) return false;
    s.remove_prefix(1);
    return true;
  };
  std::tm tm{};
  int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
  int64_t frac_ns = 0;
  if (!num(4, &year) || !eat('-') || !num(2, &mon) || !eat('-') || !num(2, &day)) {
    return bad("expected YYYY-MM-DD");
  }
  if (!s.empty() && (s[0] == 'T' || s[0] == 't' || s[0] == ' ')) {
    s.remove_prefix(1);
    if (!num(2, &hour) || !eat(':') || !num(2, &min)) return bad("expected HH:MM after the date");
    if (eat(':')) {
      if (!num(2, &sec)) return bad("expected seconds");
      if (eat('.') || eat(',')) {
        int64_t scale = 100'000'000;
        size_t digits = 0;
        while (!s.empty() && std::isdigit(static_cast<unsigned char>(s[0]))) {
          frac_ns += (s[0] - '0') * scale;
          scale /= 10;
          s.remove_prefix(1);
          ++digits;
        }
        if (digits == 0) return bad("expected digits after the decimal point");
      }
    }
  }
  int64_t offset_s = 0;
  if (eat('Z') || eat('z')) {
  } else if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    int sign = s[0] == '-' ? -1 : 1;
    s.remove_prefix(1);
    int oh = 0, om = 0;
    if (!num(2, &oh)) return bad("expected a zone offset +HH:MM");
    eat(':');
    if (!num(2, &om)) return bad("expected a zone offset +HH:MM");
    offset_s = sign * (oh * 3600 + om * 60);
  }
  if (!s.empty()) return bad("trailing characters");
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return bad("field out of range");
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  const int64_t t = timegm(&tm) - offset_s;
  // Nanoseconds since the epoch in 64 bits: the years 1678 to 2261.
  int64_t ns = 0;
  if (__builtin_mul_overflow(t, int64_t{1'000'000'000}, &ns) ||
      __builtin_add_overflow(ns, frac_ns, &ns))
    return bad("out of range (nanoseconds since 1970 hold the years 1678 to 2261)");
  return ns;
}

Result<> ParseTimeRange(std::string_view since, std::string_view until,
                                                int64_t now_ns, std::optional<int64_t>* since_ns,
                                                std::optional<int64_t>* until_ns) {
  for (auto [text, out] : {std::pair{since, since_ns}, std::pair{until, until_ns}}) {
    if (text.empty()) continue;
    auto t = ParseTimeArg(text, now_ns);
    if (!t) return std::unexpected(t.error());
    *out = *t;
  }
  return {};
}

}  // namespace driftwatch
