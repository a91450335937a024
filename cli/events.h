#pragma once

#include <cstdint>
#include <string>

#include "lib/store/default_db.h"

namespace driftwatch::cli {

struct EventsOptions {
  std::string db = kDefaultCollectorDb;
  std::string node;       // exact node name
  std::string container;  // full id or a prefix (the 12-char short id)
  std::string kind;       // exec, chmod, write, container, status
  std::string since;      // ISO 8601 or relative (10m, 2h, 7d)
  std::string until;
  uint64_t limit = 0;     // the newest N matches; 0 = all
};

// Prints the collector's stored events matching the options, one JSON object per line, oldest
// first (the JSON of `analyze --events`). Opens the database read-only. Returns the exit
// status: 0, 1 when the database cannot be read, 2 for a bad argument.
int RunEvents(const EventsOptions& opt);

}  // namespace driftwatch::cli
