// Falco's loader semantics and language, case by case (issue 13: upstream rule files load
// unchanged). Each test names the Falco source it follows.
#include <gtest/gtest.h>

#include <cstdlib>

#include "lib/rules/rule_condition.h"
#include "lib/rules/rule_engine.h"
#include "lib/rules/rule_fields.h"
#include "lib/rules/rule_loader.h"
#include "unit/rule_test_util.h"

namespace driftwatch {
namespace {

using testing::Container;
using testing::Ctx;
using testing::ExecEvent;

std::string AllMessages(const std::vector<RuleDiagnostic>& d) {
  std::string s;
  for (const auto& x : d) s += x.ToString() + "\n";
  return s;
}

std::unique_ptr<RuleSet> MustLoad(std::vector<RuleSource> src) {
  auto r = RuleSet::LoadStrings(src);
  EXPECT_TRUE(r.has_value()) << (r ? "" : AllMessages(r.error()));
  return r ? std::move(*r) : nullptr;
}

// Every message, errors and warnings, one per line, when the load fails.
std::string MustFail(std::vector<RuleSource> src) {
  auto r = RuleSet::LoadStrings(src);
  EXPECT_FALSE(r.has_value());
  return r ? "" : AllMessages(r.error());
}

std::string Warnings(const RuleSet& set) { return AllMessages(set.warnings()); }

std::string Rule(const std::string& name, const std::string& cond, const std::string& extra = "") {
  return "- rule: " + name + "\n  desc: d\n  condition: " + cond + "\n  output: o %proc.name\n  priority: WARNING\n" +
         extra;
}

// Falco: rule_loader_compiler.cpp compile_macros_infos / resolve_macros: a macro sees the
// macros defined before its latest definition or append; rules see all (MAX_VISIBILITY).
TEST(FalcoCompat, MacroVisibilityFollowsLoadOrder) {
  std::string later = "- macro: a\n  condition: b and proc.name = x\n- macro: b\n  condition: proc.pid > 1\n";
  std::string msg = MustFail({{"f.yaml", later}});
  EXPECT_NE(msg.find("f.yaml:2:14: error: macro 'a': Undefined macro 'b' used in filter."), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("defined later, at f.yaml:3"), std::string::npos) << msg;

  // Reported although no rule uses the macro, as Falco compiles every macro.
  EXPECT_NE(MustFail({{"f.yaml", "- macro: a\n  condition: nosuch\n"}}).find("Undefined macro 'nosuch'"),
            std::string::npos);

  // A rule may use a macro defined after it.
  auto set = MustLoad({{"f.yaml", Rule("R", "b") + "- macro: b\n  condition: proc.name = x\n"}});
  ASSERT_TRUE(set);
  EXPECT_TRUE(set->Find("R"));

  // An append moves the macro's visibility to the append's place.
  MustLoad({{"f.yaml", "- macro: a\n  condition: proc.name = x\n- macro: b\n  condition: proc.name = y\n"
                       "- macro: a\n  condition: or b\n  override:\n    condition: append\n" +
                           Rule("R", "a")}});
  // A redefinition keeps the first definition's place but sees what came before it.
  MustLoad({{"f.yaml", "- macro: a\n  condition: proc.name = x\n- macro: b\n  condition: proc.name = y\n"
                       "- macro: a\n  condition: b\n" +
                           Rule("R", "a")}});
}

// Falco: compile_list_infos: an item names a list only when that list was defined before
// (index < visibility); its items are pasted as written, one level deep.
TEST(FalcoCompat, ListVisibilityAndOneLevelExpansion) {
  auto set = MustLoad({{"f.yaml", R"(
- list: early
  items: [sh]
- list: mid
  items: [early, bash]
- list: top
  items: [mid, late]
- list: late
  items: [zsh]
- rule: Top
  desc: d
  condition: proc.name in (top)
  output: o
  priority: WARNING
- rule: Mid
  desc: d
  condition: proc.name in (mid)
  output: o
  priority: WARNING
)"}});
  ASSERT_TRUE(set);
  auto ev_of = [](const std::string& name) { return ExecEvent(name, "/bin/" + name, {name}); };
  auto matches = [&](const std::string& name) {
    auto ev = ev_of(name);
    std::vector<const driftwatch::Rule*> m;
    set->Match(Ctx(ev), &m);
    std::string s;
    for (const auto* r : m) s += r->name + " ";
    return s;
  };
  EXPECT_EQ(matches("sh"), "Mid ");         // mid = [sh, bash]; top = [early, bash, late]
  EXPECT_EQ(matches("bash"), "Top Mid ");
  EXPECT_EQ(matches("early"), "Top ");      // one level: "early" stays a string in top
  EXPECT_EQ(matches("late"), "Top ");       // defined after top: the plain string
  EXPECT_EQ(matches("zsh"), "");
}

// Falco: compile_rule_infos validates the output first; with skip-if-unknown-filter an
// unknown field there skips the rule with a warning (err_is_unknown_type_or_field).
TEST(FalcoCompat, SkipIfUnknownFilterCoversOutput) {
  std::string bad_output = "- rule: R\n  desc: d\n  condition: proc.name = x\n  output: o %nosuch.field\n"
                           "  priority: WARNING\n";
  auto set = MustLoad({{"f.yaml", bad_output + "  skip-if-unknown-filter: true\n"}});
  ASSERT_TRUE(set);
  EXPECT_EQ(set->Find("R"), nullptr);
  EXPECT_NE(Warnings(*set).find("f.yaml:4:13: warning: rule 'R': unknown field 'nosuch.field' in output: rule "
                                "skipped (skip-if-unknown-filter)"),
            std::string::npos)
      << Warnings(*set);
  std::string msg = MustFail({{"f.yaml", bad_output}});
  EXPECT_NE(msg.find("f.yaml:4:13: error: rule 'R': unknown field 'nosuch.field' in output"), std::string::npos)
      << msg;
  msg = MustFail({{"f.yaml", Rule("R", "nosuch.field = 1")}});
  EXPECT_NE(msg.find("f.yaml:3:14: error: rule 'R': unknown field 'nosuch.field'"), std::string::npos) << msg;
}

// libs sinsp_filter_check_event::validate_filter_value: "unknown event type X", an error
// skip-if-unknown-filter also skips.
TEST(FalcoCompat, UnknownEventTypeIsAnError) {
  std::string msg = MustFail({{"f.yaml", Rule("R", "evt.type = nosuchcall")}});
  EXPECT_NE(msg.find("f.yaml:3:25: error: rule 'R': unknown event type nosuchcall"), std::string::npos) << msg;
  msg = MustFail({{"f.yaml", Rule("R", "evt.type in (execve, nosuchcall)")}});
  EXPECT_NE(msg.find("f.yaml:3:35: error: rule 'R': unknown event type nosuchcall"), std::string::npos) << msg;
  auto set = MustLoad({{"f.yaml", Rule("R", "evt.type = nosuchcall", "  skip-if-unknown-filter: true\n")}});
  ASSERT_TRUE(set);
  EXPECT_EQ(set->Find("R"), nullptr);
  // Known to Falco though driftwatch never produces it: loads (inactive, below).
  set = MustLoad({{"f.yaml", Rule("R", "evt.type in (execve, ptrace)")}});
  ASSERT_TRUE(set);
  EXPECT_NE(set->Find("R"), nullptr);
}

// Falco: rule_loader_reader.cpp (required_engine_version: semver or the old integer N =
// 0.N.0) and collector::define (compatible_with: same major, not newer).
TEST(FalcoCompat, RequiredEngineVersion) {
  EXPECT_EQ(std::string(kFalcoEngineVersion), "0.57.0");
  MustLoad({{"f.yaml", "- required_engine_version: 0.57.0\n"}});
  MustLoad({{"f.yaml", "- required_engine_version: 0.26.0\n"}});
  MustLoad({{"f.yaml", "- required_engine_version: 57\n"}});
  std::string msg = MustFail({{"f.yaml", "\n- required_engine_version: 0.58.0\n"}});
  EXPECT_NE(msg.find("f.yaml:2:28: error: Rules require engine version 0.58.0, but driftwatch implements Falco "
                     "engine version 0.57.0"),
            std::string::npos)
      << msg;
  EXPECT_NE(MustFail({{"f.yaml", "- required_engine_version: 58\n"}}).find("require engine version 0.58.0"),
            std::string::npos);
  EXPECT_NE(MustFail({{"f.yaml", "- required_engine_version: 1.0.0\n"}}).find("require engine version 1.0.0"),
            std::string::npos);
  EXPECT_NE(MustFail({{"f.yaml", "- required_engine_version: banana\n"}}).find("Unable to parse engine version"),
            std::string::npos);
}

// Falco: falco_engine::check_plugin_requirements; driftwatch's container.* fields stand for
// the container plugin, nothing else is there.
TEST(FalcoCompat, RequiredPluginVersions) {
  MustLoad({{"f.yaml", "- required_plugin_versions:\n  - name: container\n    version: 0.4.0\n"}});
  MustLoad({{"f.yaml", "- required_plugin_versions:\n  - name: container\n    version: 0.1.0\n"}});
  std::string msg = MustFail({{"f.yaml", "- required_plugin_versions:\n  - name: container\n    version: 0.5.0\n"}});
  EXPECT_NE(msg.find("f.yaml:2:5: error: Plugin 'container' version '0.4.0' is not compatible with required plugin "
                     "version '0.5.0'"),
            std::string::npos)
      << msg;
  msg = MustFail({{"f.yaml", "- required_plugin_versions:\n  - name: k8saudit\n    version: 0.1.0\n"}});
  EXPECT_NE(msg.find("f.yaml:2:5: error: Plugin requirement not satisfied, must load one of: k8saudit (>= 0.1.0)"),
            std::string::npos)
      << msg;
  // One alternative driftwatch has is enough.
  MustLoad({{"f.yaml", "- required_plugin_versions:\n  - name: k8saudit\n    version: 0.1.0\n    alternatives:\n"
                       "      - name: container\n        version: 0.2.0\n"}});
  EXPECT_NE(MustFail({{"f.yaml", "- required_plugin_versions:\n  - name: container\n    version: x\n"}})
                .find("Invalid required version 'x' for plugin 'container'"),
            std::string::npos);
}

// Falco: reader::read loads every document of a file.
TEST(FalcoCompat, EveryYamlDocumentLoads) {
  auto set = MustLoad({{"f.yaml", "- macro: m\n  condition: proc.name = x\n---\n" + Rule("R", "m") + "---\n" +
                                      Rule("S", "proc.name = y")}});
  ASSERT_TRUE(set);
  EXPECT_NE(set->Find("R"), nullptr);
  EXPECT_NE(set->Find("S"), nullptr);
  std::string msg = MustFail({{"f.yaml", Rule("R", "proc.name = x") + "---\n" + Rule("S", "proc.name = (")}});
  EXPECT_NE(msg.find("f.yaml:9:"), std::string::npos) << msg;  // the line in the file, not the document
}

// Falco: rule_loading_messages.h WARNING_APPEND and WARNING_ENABLED.
TEST(FalcoCompat, LegacyAppendAndEnabledWarnDeprecated) {
  auto set = MustLoad({{"f.yaml", "- list: l\n  items: [a]\n- list: l\n  items: [b]\n  append: true\n"
                                  "- macro: m\n  condition: proc.name in (l)\n- macro: m\n  condition: or proc.name = c\n"
                                  "  append: true\n" +
                                      Rule("R", "m") + "- rule: R\n  condition: and proc.pid > 0\n  append: true\n"
                                                       "- rule: R\n  enabled: false\n"}});
  ASSERT_TRUE(set);
  const std::string w = Warnings(*set);
  const std::string append =
      "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.";
  EXPECT_NE(w.find("f.yaml:3:3: warning: list 'l': " + append), std::string::npos) << w;
  EXPECT_NE(w.find("f.yaml:8:3: warning: macro 'm': " + append), std::string::npos) << w;
  EXPECT_NE(w.find("f.yaml:16:3: warning: rule 'R': " + append), std::string::npos) << w;
  EXPECT_NE(w.find("f.yaml:19:3: warning: rule 'R': The standalone 'enabled' key usage is deprecated."),
            std::string::npos)
      << w;
  EXPECT_FALSE(set->Find("R")->enabled);
  EXPECT_EQ(set->Find("R")->condition, "m and proc.pid > 0");
}

// Falco: collector::define warns "Unknown source X, skipping"; find_prev_rule refuses a
// rule re-defined with a different source.
TEST(FalcoCompat, OtherSourcesAreSkippedAndCannotChange) {
  std::string k8s = "- rule: K\n  desc: d\n  condition: ka.verb = create\n  output: o\n  priority: WARNING\n"
                    "  source: k8s_audit\n";
  auto set = MustLoad({{"f.yaml", k8s + "- rule: K\n  condition: and ka.user.name = x\n  append: true\n"}});
  ASSERT_TRUE(set);
  EXPECT_EQ(set->Find("K"), nullptr);
  EXPECT_NE(Warnings(*set).find("f.yaml:6:11: warning: rule 'K': Unknown source k8s_audit, skipping"),
            std::string::npos)
      << Warnings(*set);
  // Redefined without a source (so syscall): refused.
  std::string msg = MustFail({{"f.yaml", k8s + Rule("K", "proc.name = x")}});
  EXPECT_NE(msg.find("f.yaml:7:3: error: rule 'K': Rule has been re-defined with a different source"),
            std::string::npos)
      << msg;
  msg = MustFail({{"f.yaml", Rule("S", "proc.name = x") +
                                 "- rule: S\n  condition: and proc.pid > 0\n  source: aws_cloudtrail\n"
                                 "  override:\n    condition: append\n"}});
  EXPECT_NE(msg.find("rule 'S': Rule has been re-defined with a different source"), std::string::npos) << msg;
}

// libs 0.22 filter operators (parser.cpp s_binary_str_ops): regex (RE2, POSIX, the whole
// value), bcontains and bstartswith (hex bytes).
TEST(FalcoCompat, RegexAndByteOperators) {
  auto ev = ExecEvent("curl", "/usr/bin/curl", {"curl", "-s", "http://x/Payload.SH"});
  auto ctx = Ctx(ev);
  auto eval = [&](std::string_view text) {
    auto c = cond::CompileText(text);
    EXPECT_TRUE(c.has_value()) << text << ": " << (c ? "" : c.error().message);
    return c && c->Evaluate(ctx);
  };
  EXPECT_TRUE(eval("proc.exepath regex '/usr/(s?bin)/c[a-z]+'"));
  EXPECT_FALSE(eval("proc.exepath regex 'bin/curl'"));  // anchored at both ends
  EXPECT_TRUE(eval("proc.exepath regex '.*bin/curl'"));
  EXPECT_TRUE(eval("proc.name bcontains 7572"));      // "ur"
  EXPECT_TRUE(eval("proc.name bstartswith 6375"));    // "cu"
  EXPECT_FALSE(eval("proc.name bstartswith 7572"));
  auto bad = cond::CompileText("proc.name regex 'a(b'");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().offset, 16u);
  EXPECT_NE(bad.error().message.find("invalid regex pattern: "), std::string::npos) << bad.error().message;
  bad = cond::CompileText("proc.name bcontains xyz");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message, "bcontains and bstartswith operator support hex strings only");
  // An invalid regex in a rule file is a load error at its position.
  std::string msg = MustFail({{"f.yaml", Rule("R", "proc.name regex '('")}});
  EXPECT_NE(msg.find("f.yaml:3:30: error: rule 'R': invalid regex pattern:"), std::string::npos) << msg;
}

// libs 0.22 transformers (tolower, toupper, b64, basename, len) and val() on the right.
TEST(FalcoCompat, TransformersAndFieldCompare) {
  auto ev = ExecEvent("Bash", "/usr/bin/Bash", {"Bash", "-c", "aWQ="});
  auto ctx = Ctx(ev, nullptr, {"bash", "init"});
  auto eval = [&](std::string_view text) {
    auto c = cond::CompileText(text);
    EXPECT_TRUE(c.has_value()) << text << ": " << (c ? "" : c.error().message);
    return c && c->Evaluate(ctx);
  };
  EXPECT_TRUE(eval("tolower(proc.name) = bash"));
  EXPECT_TRUE(eval("toupper(proc.name) = BASH"));
  EXPECT_TRUE(eval("basename(proc.exepath) = Bash"));
  EXPECT_TRUE(eval("tolower(basename(proc.exepath)) in (sh, bash)"));
  EXPECT_TRUE(eval("len(proc.name) = 4"));
  EXPECT_TRUE(eval("len(proc.aname) >= 2"));      // a list: its number of elements
  EXPECT_TRUE(eval("b64(proc.pname) = val(proc.pname)") == false);
  EXPECT_FALSE(eval("b64(proc.exepath) exists"));  // 13 characters are not base64: unset
  auto encoded = ExecEvent("aWQ=", "/tmp/aWQ=", {"aWQ="});
  auto b64 = cond::CompileText("b64(proc.name) = id and b64(basename(proc.exepath)) = id");
  ASSERT_TRUE(b64.has_value());
  EXPECT_TRUE(b64->Evaluate(Ctx(encoded)));
  EXPECT_TRUE(eval("tolower(proc.name) = val(proc.pname)"));
  EXPECT_FALSE(eval("proc.name = val(proc.pname)"));
  EXPECT_TRUE(eval("proc.name != val(proc.pname)"));
  EXPECT_TRUE(eval("proc.pname in val(proc.aname)"));
  EXPECT_TRUE(eval("proc.name = toupper(proc.pname)") == false);
  EXPECT_TRUE(eval("proc.pid > val(proc.ppid)"));
  EXPECT_FALSE(eval("proc.name = val(container.name)"));  // unset on the right: false

  for (const char* bad : {"len(proc.pid) > 1", "proc.name = val(proc.pid)", "proc.name regex val(proc.pname)",
                          "join(proc.name) = x", "val(proc.name) = x", "tolower(proc.name = x"}) {
    EXPECT_FALSE(cond::CompileText(bad).has_value()) << bad;
  }
}

// The one load order of rules check, analyze and the collector.
TEST(FalcoCompat, RuleFilesToLoadOrder) {
  const auto shipped = ShippedRuleFiles();
  auto files = RuleFilesToLoad({"/tmp/a.yaml", "/tmp/b.yaml", shipped[0]}, false);
  ASSERT_EQ(files.size(), shipped.size() + 2);
  EXPECT_EQ(files[0], shipped[0]);
  EXPECT_EQ(files[shipped.size()], "/tmp/a.yaml");
  EXPECT_EQ(files[shipped.size() + 1], "/tmp/b.yaml");
  EXPECT_EQ(RuleFilesToLoad({"/tmp/a.yaml", "/tmp/b.yaml"}, true),
            (std::vector<std::string>{"/tmp/a.yaml", "/tmp/b.yaml"}));
}

// A user file that redefines a shipped macro or list (instead of override) is warned about,
// with both places.
TEST(FalcoCompat, RedefiningShippedMacroOrListWarns) {
  RuleSource shipped{"shipped.yaml", "- list: l\n  items: [a]\n- macro: m\n  condition: proc.name in (l)\n", true};
  auto set = MustLoad({shipped, {"user.yaml", "- macro: m\n  condition: proc.name = b\n- list: l\n  items: [c]\n"
                                              "- macro: m\n  condition: or proc.name = d\n  override:\n"
                                              "    condition: append\n"}});
  ASSERT_TRUE(set);
  const std::string w = Warnings(*set);
  EXPECT_NE(w.find("user.yaml:1:3: warning: macro 'm': redefines the macro of the shipped rules at shipped.yaml:3"),
            std::string::npos)
      << w;
  EXPECT_NE(w.find("user.yaml:3:3: warning: list 'l': redefines the list of the shipped rules at shipped.yaml:1"),
            std::string::npos)
      << w;
  EXPECT_EQ(w.find("user.yaml:5"), std::string::npos) << w;  // an explicit override is fine
}

// The same text again (Falco's files define open_write, rename, ... as the shipped macros
// do) changes nothing and is not warned about.
TEST(FalcoCompat, RedefiningShippedMacroWithTheSameTextIsQuiet) {
  RuleSource shipped{"shipped.yaml", "- list: l\n  items: [a]\n- macro: m\n  condition: proc.name in (l)\n", true};
  auto set = MustLoad({shipped, {"user.yaml", "- macro: m\n  condition: proc.name in (l)\n- list: l\n  items: [a]\n"
                                              "- rule: R\n  desc: d\n  condition: m\n  output: o\n  priority: INFO\n"}});
  ASSERT_TRUE(set);
  EXPECT_EQ(Warnings(*set).find("redefines"), std::string::npos) << Warnings(*set);
}

// Rules that can never match driftwatch's events load inactive, with a reason.
TEST(FalcoCompat, InactiveRules) {
  auto set = MustLoad({{"f.yaml", Rule("Net", "evt.type in (sendto, recvmsg) and proc.name = x") +
                                      Rule("Net2", "evt.type = sendto and proc.name = y") +
                                      Rule("NotNet", "not evt.type in (sendto) and proc.name = bash") +
                                      Rule("NeNet", "evt.type != sendto and proc.name = bash") +
                                      Rule("Either", "(evt.type = sendto or evt.type = execve) and proc.name = bash") +
                                      Rule("Off", "evt.type = ptrace", "  enabled: false\n")}});
  ASSERT_TRUE(set);
  EXPECT_EQ(set->Find("Net")->inactive_reason, "event types driftwatch never sees: sendto, recvmsg");
  EXPECT_EQ(set->Find("Net2")->inactive_reason, "event types driftwatch never sees: sendto");
  EXPECT_EQ(set->Find("NotNet")->inactive_reason, "");
  EXPECT_EQ(set->Find("NeNet")->inactive_reason, "");
  EXPECT_EQ(set->Find("Either")->inactive_reason, "");
  EXPECT_EQ(set->active_count(), 3u);
  EXPECT_EQ(set->inactive_count(), 2u);
  EXPECT_EQ(set->enabled_count(), 5u);
  auto lines = set->Summary(1);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "6 rules: 3 active, 1 disabled, 2 inactive");
  EXPECT_EQ(lines[1], "  1 inactive, event types driftwatch never sees: sendto, recvmsg: 'Net'");
  EXPECT_EQ(lines[2], "  1 inactive, event types driftwatch never sees: sendto: 'Net2'");

  // Evaluate skips inactive rules.
  auto ev = ExecEvent("bash", "/bin/bash", {"bash"});
  std::vector<RuleMatch> out;
  set->Evaluate(Ctx(ev), &out);
  std::string names;
  for (const auto& m : out) names += m.rule->name + " ";
  EXPECT_EQ(names, "NotNet NeNet Either ");
}

// The summary names a few rules per reason, or all (rules check -v).
TEST(FalcoCompat, InactiveSummaryNamesAFewOrAll) {
  std::string file;
  for (const char* n : {"A", "B", "C", "D"}) file += Rule(n, "evt.type = ptrace");
  auto set = MustLoad({{"f.yaml", file}});
  ASSERT_TRUE(set);
  auto few = set->Summary(2);
  ASSERT_EQ(few.size(), 2u);
  EXPECT_EQ(few[0], "4 rules: 0 active, 0 disabled, 4 inactive");
  EXPECT_EQ(few[1], "  4 inactive, event types driftwatch never sees: ptrace: 'A', 'B', +2 more");
  EXPECT_EQ(set->Summary(0)[1], "  4 inactive, event types driftwatch never sees: ptrace: 'A', 'B', 'C', 'D'");
}

// Any check of a field driftwatch never sets is false, `exists` included; `not` flips it.
TEST(FalcoCompat, InactiveByFieldNeverSet) {
  const FieldInfo* never = nullptr;
  for (const FieldInfo* f : AllFields()) {
    if (!f->never.empty() && f->type == FieldType::kString && f->arg == FieldArgMode::kNone) {
      never = f;
      break;
    }
  }
  if (!never) GTEST_SKIP() << "no string field of the registry is marked `never`";
  const std::string name(never->name);
  auto set = MustLoad({{"f.yaml", Rule("A", name + " = x and proc.name = bash") +
                                      Rule("B", name + " exists") + Rule("C", "not " + name + " exists") +
                                      Rule("D", name + " = x or proc.name = bash")}});
  ASSERT_TRUE(set);
  EXPECT_EQ(set->Find("A")->inactive_reason,
            "field never set: " + name + " (" + std::string(never->never) + ")");
  EXPECT_FALSE(set->Find("B")->inactive_reason.empty());
  EXPECT_EQ(set->Find("C")->inactive_reason, "");
  EXPECT_EQ(set->Find("D")->inactive_reason, "");
}

}  // namespace
}  // namespace driftwatch
