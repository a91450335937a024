// `driftwatch rules test`: rule files tested against events, with the expected alerts
// written beside them (README, "Testing rules").
#pragma once

#include <string>
#include <vector>

namespace driftwatch::cli {

struct RulesTestOptions {
  std::vector<std::string> rules;   // --rules FILE (repeatable): loaded before the spec's
  std::vector<std::string> files;   // SPEC...; with `events`, RULES... instead
  std::vector<std::string> events;  // --events FILE: the spec-less form
  std::vector<std::string> expect;  // --expect RULE[=COUNT], with `events`
  bool no_shipped_rules = false;
};

// Each spec (or the one test case of --events and --expect) loads its rules as the collector
// does (RuleFilesToLoad: the shipped files unless no_shipped_rules, then --rules, then the
// spec's `rules`), reads its events (lib/event/event_json_read.h) and runs each test case's
// events through a fresh Detector, the collector's and analyze's detection stage. Prints
// PASS or FAIL per case, a FAIL with every expectation (rule, expected and actual count,
// first evt.num), then a summary. Returns 0 when every case passed, 1 when one failed, 2
// on bad input (a spec, events file or rule file that cannot be used; file:line named).
int RunRulesTest(const RulesTestOptions& opt);

}  // namespace driftwatch::cli
