#include "cli/rules.h"

#include <cstdio>
#include <string>
#include <vector>

#include "lib/rules/rule_engine.h"

namespace driftwatch::cli {

int RunRulesCheck(const RulesCheckOptions& opt) {
  std::vector<std::string> user = opt.rules;
  user.insert(user.end(), opt.files.begin(), opt.files.end());
  const std::vector<std::string> files = RuleFilesToLoad(user, opt.no_shipped_rules);
  if (files.empty()) {
    std::fprintf(stderr, "driftwatch rules check: no rule files\n");
    return 2;
  }
  RuleSetLoad loaded = RuleSet::Load(files);
  if (!loaded) {
    size_t errors = 0;
    for (const RuleDiagnostic& d : loaded.error()) {
      std::fprintf(stderr, "%s\n", d.ToString().c_str());
      if (!d.warning) ++errors;
    }
    std::fprintf(stderr, "%zu error(s) in %zu file(s): rules not loaded\n", errors, files.size());
    return 1;
  }
  const RuleSet& set = **loaded;
  for (const RuleDiagnostic& d : set.warnings()) std::fprintf(stderr, "%s\n", d.ToString().c_str());
  if (!opt.quiet) {
    for (const Rule* r : set.rules()) {
      const char* state = !r->enabled ? "disabled" : r->inactive_reason.empty() ? "active" : "inactive";
      std::printf("%-13s %-8s %s (%s:%d)\n", std::string(PriorityName(r->priority)).c_str(), state,
                  r->name.c_str(), r->source_file.c_str(), r->line);
    }
  }
  std::vector<std::string> summary = set.Summary(opt.verbose ? 0 : 3);
  summary[0] += " (" + std::to_string(files.size()) + " file(s))";
  for (const std::string& line : summary) std::printf("%s\n", line.c_str());
  return 0;
}

int RunRulesFields(bool markdown) {
  if (markdown) {
    std::string md = FieldsMarkdown();
    std::fwrite(md.data(), 1, md.size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  for (const FieldInfo* f : AllFields()) {
    std::string name(f->name);
    if (f->arg == FieldArgMode::kOptional) name += "[N]?";
    if (f->arg == FieldArgMode::kRequired) name += "[N]";
    std::printf("%-30s %-7s %s\n", name.c_str(), std::string(FieldTypeName(f->type)).c_str(),
                std::string(f->doc).c_str());
  }
  return 0;
}

}  // namespace driftwatch::cli
