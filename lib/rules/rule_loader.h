// rule_loader: Falco rule files (YAML) into a compiled RuleSet (lib/rules/rule_engine.h).
//
// Items: `rule`, `macro`, `list`, with Falco's keys (condition, output, desc, priority,
// tags, enabled, exceptions, source, skip-if-unknown-filter), `override`
// ({key: append|replace}) and the older `append: true`. `required_engine_version` and
// `required_plugin_versions` items are accepted and ignored.
//
// Loading runs in two passes, as Falco's does: first every file is read in order and its
// items are merged (a later file may append to, override, disable or redefine what an
// earlier one defined; macros and lists may be used before they are defined), then lists
// are expanded, macros parsed and every rule's condition and output compiled. All errors
// of all files are collected; nothing is returned unless there are none, so a caller that
// swaps in the new RuleSet only on success keeps its old rules when a file is bad.
//
// Thread-safety: RuleLoader is single-threaded; separate loaders are independent.
#pragma once

#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/rules/priority.h"

namespace driftwatch {

class RuleSet;

// One error (or warning) in a rule file.
struct RuleDiagnostic {
  std::string file;
  int line = 0;      // 1-based; 0 when the file as a whole is concerned
  int column = 0;    // 1-based, in characters; 0 when unknown
  std::string item;  // "rule 'Name'", "macro 'name'", "list 'name'"; empty for the file
  std::string message;
  bool warning = false;

  // "file:line:column: error: rule 'Name': message"
  std::string ToString() const;
};

// Priority, ParsePriority and PriorityName: lib/rules/priority.h (Falco's priorities).

// A rule file's text under a name (its path) for diagnostics.
struct RuleSource {
  std::string name;
  std::string content;
};

using RuleSetLoad = std::expected<std::unique_ptr<RuleSet>, std::vector<RuleDiagnostic>>;

// Reads the files (in order) and compiles them. An unreadable file is an error.
[[nodiscard]] RuleSetLoad LoadRuleFiles(const std::vector<std::string>& paths);
// The same from text in memory (tests, embedded rules).
[[nodiscard]] RuleSetLoad LoadRuleSources(const std::vector<RuleSource>& sources);

// The directory of the shipped rule files: $DRIFTWATCH_RULES_DIR when set, else the
// installed share/driftwatch/rules when it exists, else the source tree's rules/.
std::string ShippedRulesDir();
// driftwatch_macros.yaml and driftwatch_rules.yaml in ShippedRulesDir(), in load order.
std::vector<std::string> ShippedRuleFiles();

}  // namespace driftwatch
