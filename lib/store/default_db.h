// Where the collector keeps its SQLite database unless told otherwise (--db), and so where
// the CLI's readers (events, alerts, inventory, baseline, status --db) look by default.
#pragma once

namespace driftwatch {

inline constexpr const char* kDefaultCollectorDb = "/var/lib/driftwatch/collector.db";

}  // namespace driftwatch
