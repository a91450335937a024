#include "lib/audit/audit_log_reader.h"

#include <string>

namespace driftwatch {

bool ReadAuditLog(InputStream* in, AuditReassembler* reassembler, Diagnostics* diag,
                  LogReadStats* stats) {
  std::string_view line;
  bool too_long = false;
  AuditRecord rec;
  while (in->NextLine(&line, &too_long)) {
    ++stats->lines;
    if (too_long) {
      diag->Report(&in->name(), in->line_number(), "line longer than 1 MiB (skipped)");
      continue;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (const char* err = ParseLogLine(line, &rec)) {
      diag->Report(&in->name(), in->line_number(), err);
      continue;
    }
    rec.source = &in->name();
    rec.line = in->line_number();
    reassembler->Push(rec);
    // Log time is the clock offline: events with no ending record time out by it.
    if ((stats->lines & 1023) == 0) reassembler->Expire(reassembler->stream_time_ms());
  }
  if (!in->error().empty()) {
    diag->Report(&in->name(), in->line_number(), "read error: " + in->error());
    return false;
  }
  return true;
}

}  // namespace driftwatch
