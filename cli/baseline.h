#pragma once

#include <string>

#include "lib/store/default_db.h"

namespace driftwatch::cli {

struct BaselineOptions {
  std::string action;     // list, show, export, import, reset, enforce
  std::string db = kDefaultCollectorDb;
  std::string image;      // digest, digest prefix, or part of the image; import: override
  std::string container;  // container name; import: override
  std::string file;       // import: the file; export: the output ("" or "-": stdout)
  bool all = false;       // reset, enforce: every match, not exactly one
  bool json = false;      // list, show: JSON lines
};

// `driftwatch baseline`: the collector's learned per-image baselines (lib/detect/baseline.h).
// list and show read the database read-only; import, reset and enforce edit it (a running
// collector loads the edit within seconds). Returns the exit status: 0; 1 on an error or
// when IMAGE matches nothing (or, for export, reset and enforce without --all, more than
// one baseline).
int RunBaseline(const BaselineOptions& opt);

}  // namespace driftwatch::cli
