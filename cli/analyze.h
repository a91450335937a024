#pragma once

#include <string>
#include <vector>

namespace driftwatch::cli {

struct AnalyzeOptions {
  std::vector<std::string> inputs;  // files; "-" is stdin
  bool events = false;              // one JSON object per event instead of alerts
  bool summary = false;             // the per-container table instead of alerts
  std::string node;                 // evt.hostname for logs without node= prefixes
  // Rule files, loaded in order after the shipped ones (RuleFilesToLoad), as the collector.
  std::vector<std::string> rules;
  bool no_shipped_rules = false;  // only `rules`
  std::vector<std::string> approved_images;  // image policy files (lists or K8s YAML)
};

// Returns the process exit status: 0, or 1 when an input could not be read whole.
int RunAnalyze(const AnalyzeOptions& opt);

}  // namespace driftwatch::cli
