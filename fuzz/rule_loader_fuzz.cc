// libFuzzer target: a Falco rule file (YAML: rules, macros, lists, overrides, appends,
// exceptions, output templates) through LoadRuleSources, as the daemons and `driftwatch
// analyze --rules` load one. A set that loads is evaluated on fixed contexts, which formats
// the outputs of the rules that match. One file per input: loading the shipped files first
// would cost five times the executions; the seeds carry the macros and lists they use.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "fuzz/rule_contexts.h"
#include "lib/rules/rule_engine.h"
#include "lib/rules/rule_loader.h"

namespace dw = driftwatch;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const dw::fuzz::RuleContexts* contexts = new dw::fuzz::RuleContexts();
  std::vector<dw::RuleSource> sources{
      {"fuzz.yaml", std::string(reinterpret_cast<const char*>(data), size)}};
  dw::RuleSetLoad load = dw::LoadRuleSources(sources);
  if (!load) {
    DW_FUZZ_CHECK(!load.error().empty());
    for (const dw::RuleDiagnostic& d : load.error()) {
      DW_FUZZ_CHECK(!d.message.empty() && d.line >= 0 && d.column >= 0);
      (void)d.ToString();
    }
    return 0;
  }
  const dw::RuleSet& set = **load;
  DW_FUZZ_CHECK(set.enabled_count() <= set.size());
  std::vector<dw::RuleMatch> matches;
  for (const dw::RuleContext& ctx : contexts->contexts) set.Evaluate(ctx, &matches);
  for (const dw::RuleMatch& m : matches) DW_FUZZ_CHECK(m.rule != nullptr && m.rule->enabled);
  return 0;
}
