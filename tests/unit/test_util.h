// Helpers for unit tests: run log text through the offline pipeline.
#pragma once

#include <string>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/audit/audit_reassembler.h"
#include "lib/base/diagnostics.h"

namespace driftwatch {

struct PipelineResult {
  std::vector<v1::Event> events;
  uint64_t errors = 0;
  AuditReassembler::Stats stats;
};

inline PipelineResult RunLines(const std::vector<std::string>& lines,
                               AuditReassembler::Options opt = {}) {
  PipelineResult res;
  Diagnostics diag(nullptr);
  static const std::string kSource = "test";
  AuditReassembler r(opt, [&](v1::Event& ev) { res.events.push_back(ev); }, &diag);
  uint64_t n = 0;
  for (const std::string& line : lines) {
    AuditRecord rec;
    ++n;
    if (const char* err = ParseLogLine(line, &rec)) {
      diag.Report(&kSource, n, err);
      continue;
    }
    rec.source = &kSource;
    rec.line = n;
    r.Push(rec);
  }
  r.Flush();
  res.errors = diag.count();
  res.stats = r.stats();
  return res;
}

}  // namespace driftwatch
