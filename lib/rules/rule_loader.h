// rule_loader: Falco rule files (YAML) into a compiled RuleSet (lib/rules/rule_engine.h).
//
// Items: `rule`, `macro`, `list`, with Falco's keys (condition, output, desc, priority,
// tags, enabled, exceptions, source, skip-if-unknown-filter), `override`
// ({key: append|replace}) and the older `append: true` (deprecated, with Falco's warning),
// `required_engine_version` and `required_plugin_versions`. Every YAML document of a file
// (`---`) is read, as Falco does.
//
// Loading runs in two passes, as Falco's does (userspace/engine/rule_loader_collector.cpp,
// rule_loader_compiler.cpp): first every file is read in order and its items are merged (a
// later file may append to, override, disable or redefine what an earlier one defined),
// then lists are expanded, macros parsed and every rule's condition and output compiled.
// Visibility, as Falco's: every definition, append or override takes the next place in
// load order; a macro may use only macros whose first definition comes before its own
// latest definition or append ("Undefined macro 'x' used in filter."), and a list item
// names a list only when that list was defined before (its items are pasted in, one level
// deep); otherwise the item is the plain string. Rule conditions see every macro and list.
// A rule of a source other than `syscall` is skipped with a warning (Falco: "Unknown source
// X, skipping"); redefining a rule with another source is an error. A rule whose condition
// can never be true on driftwatch's events loads inactive (Rule::inactive_reason).
//
// All errors of all files are collected; nothing is returned unless there are none, so a
// caller that swaps in the new RuleSet only on success keeps its old rules when a file is
// bad.
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

// A rule file's text under a name (its path) for diagnostics. `shipped`: one of
// ShippedRuleFiles(); a later file that redefines one of its macros or lists (instead of
// overriding it) gets a warning naming both places.
struct RuleSource {
  std::string name;
  std::string content;
  bool shipped = false;
};

// The Falco engine version whose rule language driftwatch implements: libs 0.22's filter
// grammar, operators and transformers (rule_condition.h) and Falco 0.57's loader. A file's
// `required_engine_version` must be compatible with it (same major, not newer), as in Falco.
inline constexpr const char* kFalcoEngineVersion = "0.57.0";

// What driftwatch provides itself that Falco gets from a plugin, for a file's
// `required_plugin_versions`: the container plugin's container.* fields (driftwatch's own
// container attribution). A requirement naming any other plugin is an error.
struct BuiltinPlugin {
  const char* name;
  const char* version;
};
inline constexpr BuiltinPlugin kBuiltinPlugins[] = {{"container", "0.4.0"}};

using RuleSetLoad = std::expected<std::unique_ptr<RuleSet>, std::vector<RuleDiagnostic>>;

// Reads the files (in order) and compiles them. An unreadable file is an error.
[[nodiscard]] RuleSetLoad LoadRuleFiles(const std::vector<std::string>& paths);
// The same from text in memory (tests, embedded rules).
[[nodiscard]] RuleSetLoad LoadRuleSources(const std::vector<RuleSource>& sources);

// The directory of the shipped rule files: $DRIFTWATCH_RULES_DIR when set, else
// ../share/driftwatch/rules from the running binary's directory when it exists (an
// installed binary), else the source tree's rules/ (a binary in its build tree).
std::string ShippedRulesDir();
// driftwatch_macros.yaml and driftwatch_rules.yaml in ShippedRulesDir(), in load order.
std::vector<std::string> ShippedRuleFiles();

// The one load order of `driftwatch rules check`, `analyze --rules` and the collector: the
// shipped files unless `no_shipped`, then `user_files` in the order given (a user file that
// is a file already listed is loaded once, in its first place).
std::vector<std::string> RuleFilesToLoad(const std::vector<std::string>& user_files, bool no_shipped);

}  // namespace driftwatch
