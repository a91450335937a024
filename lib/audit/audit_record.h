// Stage 1 of the audit data flow: one audit record, parsed from a netlink message or
// from a line of an auditd log (RAW or ENRICHED format, with or without a node= prefix).
//
// A record is a view into the caller's buffer: nothing is copied, so parsing is cheap
// enough to run on every record of a busy host. Thread-safety: plain values, no state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace driftwatch {

// Record types the pipeline looks at (values from linux/audit.h).
enum AuditType : uint32_t {
  kAuditSyscall = 1300,
  kAuditPath = 1302,
  kAuditSockaddr = 1306,
  kAuditCwd = 1307,
  kAuditExecve = 1309,
  kAuditEoe = 1320,
  kAuditProctitle = 1327,
};

struct AuditRecord {
  uint32_t type = 0;            // numeric type; 0 when a log names a type we do not know
  std::string_view type_name;   // "SYSCALL", "UNKNOWN[1334]", ...
  std::string_view node;        // node= prefix of a log line, empty when absent
  uint64_t sec = 0;             // audit(sec.msec:serial)
  uint32_t msec = 0;
  uint64_t serial = 0;
  std::string_view body;        // the key=value fields, up to an ENRICHED separator
  std::string_view enriched;    // ENRICHED log: the interpreted fields after \x1d
  // Where the record came from, for diagnostics (file name or "netlink", 1-based line).
  const std::string* source = nullptr;
  uint64_t line = 0;

  uint64_t TimeMs() const { return sec * 1000 + msec; }
};

// Parses one log line ("[node=N ]type=T msg=audit(S.M:N): fields[\x1dENRICHED]").
// Returns nullptr on success, else a static string naming what is wrong.
const char* ParseLogLine(std::string_view line, AuditRecord* out);

// Parses a netlink audit message: `type` is nlmsg_type, `payload` is
// "audit(S.M:N): fields" (never ENRICHED). Returns nullptr on success, else the reason.
const char* ParseNetlinkRecord(uint16_t type, std::string_view payload, AuditRecord* out);

// Numeric type for a log's type name ("SYSCALL" -> 1300, "UNKNOWN[1334]" -> 1334), 0 if
// unknown. Only the types in AuditType and the ranges used for grouping matter here.
uint32_t AuditTypeFromName(std::string_view name);

// Walks the key=value fields of a record body. Values keep their raw form: "quoted",
// 'single quoted' (the msg='...' of user records), or bare (numbers, hex, (null)).
class FieldCursor {
 public:
  explicit FieldCursor(std::string_view body) : rest_(body) {}
  // Returns false at the end. A malformed field (no '=', unterminated quote) sets
  // error() and stops the walk.
  bool Next(std::string_view* key, std::string_view* value);
  const char* error() const { return error_; }

 private:
  std::string_view rest_;
  const char* error_ = nullptr;
};

// Finds one field's raw value in a body; false when absent.
bool FindField(std::string_view body, std::string_view key, std::string_view* value);

// Decodes an audit "untrusted string" value: "quoted" text is taken as is, bare hex is
// decoded, "(null)" and "(none)" give an empty string. Returns false on bad hex.
bool DecodeAuditString(std::string_view raw, std::string* out);

// Hex decoding helper (upper or lower case). Returns false on odd length or a non-hex
// character; `out` is appended to.
bool HexDecodeAppend(std::string_view hex, std::string* out);

// Integer fields. Accepts decimal, and "-1" style values for unset ids (as 4294967295).
bool ParseU64(std::string_view s, uint64_t* out);
bool ParseI64(std::string_view s, int64_t* out);
bool ParseHexU64(std::string_view s, uint64_t* out);
bool ParseOctalU32(std::string_view s, uint32_t* out);

}  // namespace driftwatch
