#pragma once

#include <string>
#include <vector>

namespace driftwatch::cli {

struct AnalyzeOptions {
  std::vector<std::string> inputs;  // files; "-" is stdin
  bool events = false;              // one JSON object per event instead of the summary
  std::string node;                 // evt.hostname for logs without node= prefixes
};

// Returns the process exit status: 0, or 1 when an input could not be read whole.
int RunAnalyze(const AnalyzeOptions& opt);

}  // namespace driftwatch::cli
