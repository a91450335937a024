// libFuzzer target: Falco condition text (rule files are operator input, but conditions
// also come in third-party rule sets and their macros) through cond::Parse, cond::Compile
// against the field registry and the macros and lists of the shipped rules (plus a
// recursive macro), and Evaluate on fixed exec, write and chmod contexts.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "fuzz/fuzz_check.h"
#include "fuzz/rule_contexts.h"
#include "lib/rules/rule_condition.h"

namespace dw = driftwatch;
namespace cond = driftwatch::cond;

namespace {

struct Fixture {
  std::map<std::string, cond::NodePtr, std::less<>> macros;
  std::map<std::string, std::vector<std::string>, std::less<>> lists;
  cond::Names names;
  dw::fuzz::RuleContexts ctx;

  Fixture() {
    // The shipped macros and lists (list items naming other lists are kept as they are).
    for (const char* file : {DW_SOURCE_DIR "/rules/driftwatch_macros.yaml",
                             DW_SOURCE_DIR "/rules/driftwatch_rules.yaml"}) {
      for (const YAML::Node& item : YAML::LoadFile(file)) {
        if (item["macro"] && item["condition"]) {
          auto n = cond::Parse(item["condition"].as<std::string>());
          DW_FUZZ_CHECK(n.has_value());
          macros.insert_or_assign(item["macro"].as<std::string>(), std::move(*n));
        } else if (item["list"] && item["items"]) {
          lists.insert_or_assign(item["list"].as<std::string>(),
                                 item["items"].as<std::vector<std::string>>());
        }
      }
    }
    auto loop = cond::Parse("proc.name = x or loop");  // recursion: Compile must refuse it
    DW_FUZZ_CHECK(loop.has_value());
    macros.emplace("loop", std::move(*loop));
    lists["empty"] = {};
    names.macro = [this](std::string_view n) -> const cond::Node* {
      auto it = macros.find(n);
      return it == macros.end() ? nullptr : it->second.get();
    };
    names.list = [this](std::string_view n) -> const std::vector<std::string>* {
      auto it = lists.find(n);
      return it == lists.end() ? nullptr : &it->second;
    };
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* f = new Fixture();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto node = cond::Parse(text);
  if (!node) {
    DW_FUZZ_CHECK(!node.error().message.empty());
    DW_FUZZ_CHECK(node.error().offset <= text.size());
    int line = 0, column = 0;
    cond::LineColumn(text, node.error().offset, &line, &column);
    DW_FUZZ_CHECK(line >= 1 && column >= 1);
    return 0;
  }
  auto compiled = cond::Compile(**node, f->names);
  if (!compiled) {
    const cond::Error& e = compiled.error();
    DW_FUZZ_CHECK(!e.message.empty());
    // The offset is in the macro's text when the error lies in a macro.
    if (e.macro.empty()) DW_FUZZ_CHECK(e.offset <= text.size());
    return 0;
  }
  for (const dw::RuleContext& ctx : f->ctx.contexts) (void)compiled->Evaluate(ctx);
  return 0;
}
