// Offline stage 1: an audit.log (RAW or ENRICHED, one record a line) fed to the
// reassembler line by line. Bad lines are reported with file:line and skipped.
#pragma once

#include <cstdint>

#include "lib/audit/audit_reassembler.h"
#include "lib/base/diagnostics.h"
#include "lib/audit/log_input.h"

namespace driftwatch {

struct LogReadStats {
  uint64_t lines = 0;
};

// Reads `in` to its end. Returns false when reading stopped on an I/O or decompression
// error (reported to `diag`); what was read before it is kept.
bool ReadAuditLog(InputStream* in, AuditReassembler* reassembler, Diagnostics* diag,
                  LogReadStats* stats);

}  // namespace driftwatch
