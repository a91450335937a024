// `driftwatch rules`: check rule files as the collector loads them; list the fields.
#pragma once

#include <string>
#include <vector>

namespace driftwatch::cli {

struct RulesCheckOptions {
  std::vector<std::string> files;
  bool no_shipped = false;  // only FILEs, not the shipped macros and rules before them
  bool quiet = false;       // no list of rules, only errors and the summary
};

// Loads the shipped rule files (unless no_shipped) and then FILEs, in order, as the collector
// does. Prints each rule loaded (priority, name, enabled, file:line) on stdout, every error
// and warning of every file on stderr (file:line:column: error: rule 'X': reason). Returns
// 0 when everything loaded, 1 on any error.
int RunRulesCheck(const RulesCheckOptions& opt);

// Prints every field a condition or output may use: name, type, description; with
// `markdown`, docs/fields.md (lib/rules/rule_fields.h FieldsMarkdown).
int RunRulesFields(bool markdown);

}  // namespace driftwatch::cli
