// `driftwatch rules`: check rule files as the collector loads them; list the fields.
#pragma once

#include <string>
#include <vector>

namespace driftwatch::cli {

struct RulesCheckOptions {
  std::vector<std::string> rules;  // --rules FILE (repeatable), loaded before `files`
  std::vector<std::string> files;
  bool no_shipped_rules = false;  // only FILEs, not the shipped macros and rules before them
  bool quiet = false;             // no list of rules, only errors and the summary
  bool verbose = false;           // the summary names every inactive rule
};

// Loads the files the collector loads with the same flags (RuleFilesToLoad: the shipped
// files unless no_shipped_rules, then FILEs in order). Prints each rule loaded (priority,
// state, name, file:line) on stdout unless quiet, every error and warning of every file on
// stderr (file:line:column: error: rule 'X': reason), then the summary ("N rules: A active,
// D disabled, I inactive" and a line per reason rules are inactive). Returns 0 when
// everything loaded (warnings only), 1 on any error.
int RunRulesCheck(const RulesCheckOptions& opt);

// Prints every field a condition or output may use: name, type, description; with
// `markdown`, docs/fields.md (lib/rules/rule_fields.h FieldsMarkdown).
int RunRulesFields(bool markdown);

}  // namespace driftwatch::cli
