#include "lib/audit/audit_record.h"

#include <cstdint>

#include <libaudit.h>

#include <charconv>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

namespace driftwatch {
namespace {

bool ConsumePrefix(std::string_view* s, std::string_view prefix) {
  if (s->substr(0, prefix.size()) != prefix) return false;
  s->remove_prefix(prefix.size());
  return true;
}

// Decimal digits at the front of `s` up to `stop`, which is consumed too. False when there
// are none, another character follows them, or the value overflows.
bool TakeDecimal(std::string_view* s, char stop, uint64_t* out) {
  const char* first = s->data();
  const char* last = first + s->size();
  auto [p, ec] = std::from_chars(first, last, *out, 10);
  if (ec != std::errc() || p == last || *p != stop) return false;
  s->remove_prefix(static_cast<size_t>(p - first) + 1);
  return true;
}

// "audit(S.M:N):" followed by the body. Shared by log lines and netlink payloads; in one
// pass, as it is the first thing read of every record. Only auditd's ENRICHED log lines
// have a \x1d separator: the kernel's records are never looked at for one.
const char* ParseStampAndBody(std::string_view s, AuditRecord* out, bool log_line) {
  if (!ConsumePrefix(&s, "audit(")) return "missing audit( timestamp";
  uint64_t msec = 0;
  if (!TakeDecimal(&s, '.', &out->sec) || !TakeDecimal(&s, ':', &msec) || msec > 999 ||
      !TakeDecimal(&s, ')', &out->serial)) {
    return "malformed audit(sec.msec:serial) timestamp";
  }
  // Nanoseconds since the epoch must fit an int64 (until 2262): a later stamp is forged.
  if (out->sec > static_cast<uint64_t>(INT64_MAX / 1000000000 - 1))
    return "audit timestamp out of range (after the year 2262)";
  out->msec = static_cast<uint32_t>(msec);
  if (!ConsumePrefix(&s, ":")) return "missing ':' after audit timestamp";
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == '\0')) {
    s.remove_suffix(1);
  }
  size_t sep = log_line ? s.find('\x1d') : std::string_view::npos;
  if (sep == std::string_view::npos) {
    out->body = s;
    out->enriched = {};
  } else {
    out->body = s.substr(0, sep);
    out->enriched = s.substr(sep + 1);
  }
  return nullptr;
}

}  // namespace

uint32_t AuditTypeFromName(std::string_view name) {
  // The hot names first: they are nearly every record of an exec-heavy log.
  if (name == "SYSCALL") return kAuditSyscall;
  if (name == "EXECVE") return kAuditExecve;
  if (name == "PATH") return kAuditPath;
  if (name == "CWD") return kAuditCwd;
  if (name == "SOCKADDR") return kAuditSockaddr;
  if (name == "PROCTITLE") return kAuditProctitle;
  if (name == "EOE") return kAuditEoe;
  if (name == "BPRM_FCAPS") return 1321;
  if (name.substr(0, 8) == "UNKNOWN[" && name.back() == ']') {
    uint64_t v = 0;
    if (ParseU64(name.substr(8, name.size() - 9), &v) && v <= 0xffff) {
      return static_cast<uint32_t>(v);
    }
    return 0;
  }
  // Everything else through libaudit's table, memoized: type names are a small set.
  static std::mutex mu;
  static std::unordered_map<std::string, uint32_t> cache;
  std::lock_guard<std::mutex> lock(mu);
  std::string key(name);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  int t = cache.size() < 4096 ? audit_name_to_msg_type(key.c_str()) : -1;
  uint32_t v = t > 0 ? static_cast<uint32_t>(t) : 0;
  if (cache.size() < 4096) cache.emplace(std::move(key), v);
  return v;
}

const char* ParseLogLine(std::string_view line, AuditRecord* out) {
  *out = AuditRecord{};
  std::string_view s = line;
  if (ConsumePrefix(&s, "node=")) {
    size_t sp = s.find(' ');
    if (sp == std::string_view::npos) return "node= prefix without a record";
    out->node = s.substr(0, sp);
    s.remove_prefix(sp + 1);
  }
  if (!ConsumePrefix(&s, "type=")) return "line does not start with type=";
  size_t sp = s.find(' ');
  if (sp == std::string_view::npos || sp == 0) return "missing record type";
  out->type_name = s.substr(0, sp);
  out->type = AuditTypeFromName(out->type_name);
  s.remove_prefix(sp + 1);
  if (!ConsumePrefix(&s, "msg=")) return "missing msg=audit(...)";
  return ParseStampAndBody(s, out, /*log_line=*/true);
}

const char* ParseNetlinkRecord(uint16_t type, std::string_view payload, AuditRecord* out) {
  *out = AuditRecord{};
  out->type = type;
  return ParseStampAndBody(payload, out, /*log_line=*/false);
}

bool FieldCursor::Next(std::string_view* key, std::string_view* value) {
  while (!rest_.empty() && rest_.front() == ' ') rest_.remove_prefix(1);
  if (rest_.empty() || error_ != nullptr) return false;
  // Keys are short: one pass to the '=' (a space first means a field without one).
  size_t eq = 0;
  while (eq < rest_.size() && rest_[eq] != '=' && rest_[eq] != ' ') ++eq;
  if (eq == rest_.size() || rest_[eq] != '=') {
    error_ = "field without '='";
    return false;
  }
  *key = rest_.substr(0, eq);
  rest_.remove_prefix(eq + 1);
  if (!rest_.empty() && (rest_.front() == '"' || rest_.front() == '\'')) {
    char q = rest_.front();
    size_t end = rest_.find(q, 1);
    if (end == std::string_view::npos) {
      error_ = "unterminated quoted value";
      return false;
    }
    *value = rest_.substr(0, end + 1);
    rest_.remove_prefix(end + 1);
    return true;
  }
  size_t end = rest_.find(' ');
  *value = rest_.substr(0, end);
  rest_.remove_prefix(end == std::string_view::npos ? rest_.size() : end);
  return true;
}

bool FindField(std::string_view body, std::string_view key, std::string_view* value) {
  FieldCursor c(body);
  std::string_view k, v;
  while (c.Next(&k, &v)) {
    if (k == key) {
      *value = v;
      return true;
    }
  }
  return false;
}

namespace {
inline int HexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
}  // namespace

bool HexDecodeAppend(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  size_t base = out->size();
  out->resize(base + hex.size() / 2);
  char* dst = out->data() + base;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexNibble(hex[i]), lo = HexNibble(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      out->resize(base);
      return false;
    }
    *dst++ = static_cast<char>((hi << 4) | lo);
  }
  return true;
}

bool DecodeAuditString(std::string_view raw, std::string* out) {
  out->clear();
  if (raw.size() >= 2 && (raw.front() == '"' || raw.front() == '\'') && raw.back() == raw.front()) {
    out->assign(raw.substr(1, raw.size() - 2));
    return true;
  }
  if (raw == "(null)" || raw == "(none)" || raw == "?") return true;
  return HexDecodeAppend(raw, out);
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s == "-1") {  // unset ids (auid, ses) as some records print them
    *out = 4294967295u;
    return true;
  }
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, 10);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseI64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, 10);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseHexU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseOctalU32(std::string_view s, uint32_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, 8);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace driftwatch
