// rule_engine: a loaded, compiled set of Falco-syntax rules, evaluated against one event's
// RuleContext at a time. Load with RuleSet::Load (lib/rules/rule_loader.h does the work).
//
// Thread-safety: a RuleSet is immutable once loaded; Evaluate and every accessor may be
// called from any number of threads at once. To reload (SIGHUP), load a new RuleSet and
// swap a shared_ptr to it on success: a failed load leaves the old one untouched.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lib/rules/rule_condition.h"
#include "lib/rules/rule_context.h"
#include "lib/rules/rule_fields.h"
#include "lib/rules/rule_loader.h"

namespace driftwatch {

// A rule's output template, compiled: literal text and %field references.
class OutputFormat {
 public:
  struct Part {
    std::string literal;               // text before the field (or all of it, when no field)
    const FieldInfo* field = nullptr;  // null: literal only
    FieldArg arg;
    std::shared_ptr<const std::string> key;  // what arg.key points to
    std::string field_name;            // as written, "proc.aname[2]"
  };

  struct ParseError {
    size_t offset = 0;           // in the text
    std::string message;
    bool unknown_field = false;  // skip-if-unknown-filter skips the rule
  };
  // Parses "... %proc.name ...". Errors name the unknown field and its byte offset.
  static std::expected<OutputFormat, ParseError> Parse(std::string_view text);

  // Appends the formatted text; fills *fields (when not null) with field -> value or "<NA>".
  void Format(const RuleContext& ctx, std::string* out,
              std::map<std::string, std::string>* fields) const;
  // Appends the text with each field's value taken from `value` (by the name as written,
  // the keys Format puts in *fields): an alert's message made again from its output_fields.
  // False, with *out unspecified, when `value` has none for a field.
  bool FormatFrom(const std::function<std::optional<std::string>(std::string_view field)>& value,
                  std::string* out) const;


 private:
  std::vector<Part> parts_;
};

// A rule's exception (Falco's `exceptions:` item), compiled: its values or'ed.
struct RuleException {
  std::string name;
  cond::CompiledCondition compiled;
};

struct Rule {
  std::string name;
  std::string desc;
  std::string condition;  // as written (appends joined), without the exceptions
  std::string output;     // as written, folded and trimmed
  Priority priority = Priority::kWarning;
  std::vector<std::string> tags;
  bool enabled = true;
  std::vector<std::string> exception_names;
  std::string source_file;  // where it was first defined
  int line = 0;

  cond::CompiledCondition compiled;  // the condition, without the exceptions
  std::vector<RuleException> exceptions;  // those with values
  OutputFormat format;
  // Not empty: the condition can never be true on driftwatch's events (it needs event
  // types or fields driftwatch never has); the rule is loaded but never evaluated.
  std::string inactive_reason;
};

struct RuleMatch {
  const Rule* rule = nullptr;
  // Not empty: the condition held but this exception of the rule excepts the event.
  std::string excepted_by;
  std::string output;                                // formatted
  std::map<std::string, std::string> output_fields;  // field -> value, "<NA>" when unset
};

class RuleSet {
 public:
  // Loads files in order (later files may append to, override or disable earlier ones).
  static RuleSetLoad Load(const std::vector<std::string>& files) { return LoadRuleFiles(files); }
  static RuleSetLoad LoadStrings(const std::vector<RuleSource>& sources) {
    return LoadRuleSources(sources);
  }

  // Rules loaded, enabled or not, in definition order.
  size_t size() const { return rules_.size(); }
  std::vector<const Rule*> rules() const;
  const Rule* Find(std::string_view name) const;
  // Enabled rules, active (evaluated) or inactive (Rule::inactive_reason).
  size_t enabled_count() const { return active_.size() + inactive_; }
  size_t active_count() const { return active_.size(); }
  size_t inactive_count() const { return inactive_; }
  // "N rules: A active, D disabled, I inactive", then one line per distinct inactive
  // reason: its count, up to `max_names` rule names (all when 0) and the reason.
  std::vector<std::string> Summary(size_t max_names) const;
  // Warnings of the load that made this set (unused keys, disabled rules that fail, ...).
  const std::vector<RuleDiagnostic>& warnings() const { return warnings_; }

  // Appends a match for every active rule whose condition holds and no exception excepts,
  // in definition order; those an exception excepts go to *excepted (RuleMatch::excepted_by
  // set) when it is not null. REQUIRES: ctx.event != nullptr.
  void Evaluate(const RuleContext& ctx, std::vector<RuleMatch>* out,
                std::vector<RuleMatch>* excepted = nullptr) const;
  // Only tests the conditions and exceptions: the rules that match, no output formatting.
  void Match(const RuleContext& ctx, std::vector<const Rule*>* out) const;

 private:
  friend class RuleLoader;
  std::vector<std::unique_ptr<Rule>> rules_;
  std::vector<const Rule*> active_;  // enabled and not inactive
  size_t inactive_ = 0;              // enabled but inactive
  std::vector<RuleDiagnostic> warnings_;
};

}  // namespace driftwatch
