#pragma once

#include <cstdint>
#include <string>

#include "lib/store/default_db.h"

namespace driftwatch::cli {

struct AlertsOptions {
  std::string db = kDefaultCollectorDb;
  std::string node;       // exact node name
  std::string container;  // full id or a prefix (the 12-char short id)
  std::string pod;        // pod name or namespace/name
  std::string rule;       // exact rule name
  std::string priority;   // this severity or more severe: emergency ... debug
  std::string since;      // ISO 8601 or relative (10m, 2h, 7d)
  std::string until;
  uint64_t limit = 0;     // the newest N matches; 0 = all
  bool table = false;     // a readable table instead of JSON lines
  bool allowed = false;   // the allowed-drift summary instead of the alerts
};

// Prints the stored alerts matching the options, oldest first: one Falco JSON object per
// line, or a table. An aggregated alert (count > 1) carries driftwatch.count,
// driftwatch.first_time and driftwatch.last_time in its output_fields (AggregateJson), and
// its COUNT in the table. Opens the database read-only. Returns the exit status: 0, 1 when the
// database cannot be read, 2 for a bad argument.
//
// With `allowed`: the allowed-drift summary (rule matches a rule exception or the drift
// policy allowed), one row per day, node, namespace, workload, container name, rule, what
// allowed it and subject, by last time; filtered by node, pod and since only.
int RunAlerts(const AlertsOptions& opt);

}  // namespace driftwatch::cli
