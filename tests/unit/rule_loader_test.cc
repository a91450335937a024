#include "lib/rules/rule_loader.h"

#include <gtest/gtest.h>


#include "lib/rules/rule_engine.h"
#include "unit/rule_test_util.h"

namespace driftwatch {
namespace {

using testing::Container;
using testing::Ctx;
using testing::ExecEvent;
using testing::ReadFile;
using testing::SourceRuleFiles;


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

std::vector<RuleDiagnostic> MustFail(std::vector<RuleSource> src) {
  auto r = RuleSet::LoadStrings(src);
  EXPECT_FALSE(r.has_value());
  return r ? std::vector<RuleDiagnostic>{} : r.error();
}

std::vector<std::string> Matches(const RuleSet& set, const RuleContext& ctx) {
  std::vector<const Rule*> m;
  set.Match(ctx, &m);
  std::vector<std::string> names;
  for (const Rule* r : m) names.push_back(r->name);
  return names;
}

constexpr char kBase[] = R"(
- list: shells
  items: [bash, sh]
- list: more_shells
  items: [shells, zsh, '"quoted item"']
- macro: spawned
  condition: evt.type in (execve, execveat)
- rule: Shell
  desc: a shell
  condition: spawned and proc.name in (more_shells)
  output: "shell %proc.name"
  priority: warning
  tags: [shell]
)";

TEST(RuleLoader, SeedRulesLoadUnchangedWithShippedMacros) {
  std::string dir = std::string(DW_SOURCE_DIR) + "/rules";
  auto r = RuleSet::LoadStrings({{"driftwatch_macros.yaml", ReadFile(dir + "/driftwatch_macros.yaml")},
                                 {"seed-rules.yaml", ReadFile(std::string(DW_SOURCE_DIR) + "/../shared/seed/seed-rules.yaml")}});
  ASSERT_TRUE(r.has_value()) << AllMessages(r.error());
  EXPECT_EQ((*r)->size(), 4u);
  EXPECT_NE((*r)->Find("Container Shell Spawned"), nullptr);
  EXPECT_EQ((*r)->Find("Package Manager Execution in Container")->priority, Priority::kError);
}

TEST(RuleLoader, ShippedFilesLoad) {
  auto r = RuleSet::Load(SourceRuleFiles());
  ASSERT_TRUE(r.has_value()) << AllMessages(r.error());
  EXPECT_GE((*r)->size(), 12u);
  EXPECT_TRUE((*r)->warnings().empty()) << AllMessages((*r)->warnings());
}

TEST(RuleLoader, NestedAndQuotedListItems) {
  auto set = MustLoad({{"a.yaml", kBase}});
  ASSERT_TRUE(set);
  auto zsh = ExecEvent("zsh", "/bin/zsh", {"zsh"});
  auto bash = ExecEvent("bash", "/bin/bash", {"bash"});
  auto quoted = ExecEvent("quoted item", "/x", {"x"});
  auto other = ExecEvent("shells", "/x", {"x"});
  EXPECT_EQ(Matches(*set, Ctx(zsh)).size(), 1u);
  EXPECT_EQ(Matches(*set, Ctx(bash)).size(), 1u);
  EXPECT_EQ(Matches(*set, Ctx(quoted)).size(), 1u);
  EXPECT_EQ(Matches(*set, Ctx(other)).size(), 0u);  // a list name expands, it is no item
}

// Quoted list items and exception values have the escapes of a quoted string in a
// condition: \xHH names a byte YAML cannot hold; a bad escape is refused with its place.
TEST(RuleLoader, EscapesInQuotedItemsAndValues) {
  auto set = MustLoad({{"e.yaml", R"(
- list: odd_names
  items: ['"/tmp/\xffx"', '"a \"b\""', /tmp/\xfex]
- rule: Odd
  desc: d
  condition: fd.name in (odd_names)
  output: "%fd.name"
  priority: warning
  exceptions:
    - name: ok
      fields: fd.name
      values: ['"/tmp/\x80"']
)"}});
  ASSERT_TRUE(set);
  auto fired = [&](const std::string& path) {
    auto w = testing::WriteEvent(path);
    return Matches(*set, Ctx(w)).size() == 1;
  };
  EXPECT_TRUE(fired("/tmp/\xffx"));
  EXPECT_TRUE(fired("a \"b\""));
  EXPECT_TRUE(fired("/tmp/\\xfex"));  // bare: no escapes
  EXPECT_FALSE(fired("/tmp/\xfex"));
  EXPECT_FALSE(fired("/tmp/\\xffx"));

  std::string all = AllMessages(MustFail({{"e.yaml", R"(
- list: bad_items
  items: [ok, '"/tmp/\x4"']
- rule: Odd
  desc: d
  condition: fd.name = x
  output: o
  priority: warning
  exceptions:
    - name: bad
      fields: fd.name
      values: ['"\xzz"']
)"}}));
  EXPECT_NE(all.find("e.yaml:3:"), std::string::npos) << all;
  EXPECT_NE(all.find("item \"/tmp/\\x4\": '\\x' takes two hex digits"), std::string::npos) << all;
  EXPECT_NE(all.find("value \"\\xzz\": '\\x' takes two hex digits"), std::string::npos) << all;
}

TEST(RuleLoader, PrioritiesCaseInsensitive) {
  for (auto [text, p] : std::vector<std::pair<std::string, Priority>>{
           {"EMERGENCY", Priority::kEmergency}, {"Alert", Priority::kAlert}, {"critical", Priority::kCritical},
           {"error", Priority::kError}, {"WaRnInG", Priority::kWarning}, {"notice", Priority::kNotice},
           {"INFORMATIONAL", Priority::kInformational}, {"info", Priority::kInformational}, {"debug", Priority::kDebug}}) {
    auto set = MustLoad({{"p.yaml", "- rule: R\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: " + text + "\n"}});
    ASSERT_TRUE(set) << text;
    EXPECT_EQ(set->Find("R")->priority, p) << text;
  }
}

TEST(RuleLoader, ErrorsCarryFileLineColumnItemAndAllAreReported) {
  std::string a = R"(- rule: Bad field
  desc: d
  condition: >
    evt.type = execve and
    proc.nme = bash
  output: o
  priority: warning
- rule: Bad macro
  desc: d
  condition: evt.type = execve and no_such_macro
  output: o
  priority: warning
)";
  std::string b = R"(- rule: Bad list
  desc: d
  condition: proc.name in missing_list
  output: "x %proc.nope"
  priority: critical
- rule: Bad syntax
  desc: d
  condition: (proc.name = a
  output: o
  priority: nope
- macro: loop_a
  condition: loop_b
- macro: loop_b
  condition: loop_a
- rule: Loops
  desc: d
  condition: loop_a
  output: o
  priority: warning
)";
  auto d = MustFail({{"a.yaml", a}, {"b.yaml", b}});
  std::string all = AllMessages(d);
  auto has = [&](const std::string& s) { return all.find(s) != std::string::npos; };
  EXPECT_TRUE(has("a.yaml:5:5: error: rule 'Bad field': unknown field 'proc.nme'")) << all;
  EXPECT_TRUE(has("a.yaml:10:36: error: rule 'Bad macro': Undefined macro 'no_such_macro' used in filter.")) << all;
  EXPECT_TRUE(has("b.yaml:3:27: error: rule 'Bad list': undefined list 'missing_list'")) << all;
  EXPECT_TRUE(has("b.yaml:4:14: error: rule 'Bad list': unknown field 'proc.nope' in output")) << all;
  EXPECT_TRUE(has("b.yaml:8:")) << all;
  EXPECT_TRUE(has("rule 'Bad syntax': expected ')'")) << all;
  EXPECT_TRUE(has("rule 'Bad syntax': unknown priority 'nope'")) << all;
  // Falco's visibility order makes a loop impossible: a macro sees only earlier macros.
  EXPECT_TRUE(has("b.yaml:12:14: error: macro 'loop_a': Undefined macro 'loop_b' used in filter.")) << all;
  // File order, then line order.
  ASSERT_GE(d.size(), 2u);
  EXPECT_EQ(d.front().file, "a.yaml");
  EXPECT_EQ(d.back().file, "b.yaml");
}

TEST(RuleLoader, YamlSyntaxErrorHasPosition) {
  auto d = MustFail({{"y.yaml", "- rule: x\n  desc: [unclosed\n"}});
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d[0].file, "y.yaml");
  EXPECT_GT(d[0].line, 0);
  EXPECT_NE(d[0].message.find("YAML"), std::string::npos);
}

// yaml-cpp 0.7's LoadAll loops forever, allocating, on a token it cannot place at the top
// of a document (a stray ','): the loader reports it at its place instead.
TEST(RuleLoader, StrayFlowTokenIsAnErrorNotAHang) {
  for (const char* text : {",", ",\n", "- list: a\n  items: [x]\n---\n,\n", "]", "}"}) {
    auto d = MustFail({{"s.yaml", text}});
    ASSERT_FALSE(d.empty()) << text;
    EXPECT_EQ(d[0].file, "s.yaml");
    EXPECT_GT(d[0].line, 0) << text;
    EXPECT_NE(d[0].message.find("YAML"), std::string::npos) << d[0].ToString();
  }
  // Nesting past yaml-cpp's bound is named as such (yaml-cpp itself says "bad file").
  auto deep = MustFail({{"d.yaml", std::string(10000, '[') + std::string(10000, ']')}});
  ASSERT_FALSE(deep.empty());
  EXPECT_NE(deep[0].message.find("nested too deeply"), std::string::npos) << deep[0].ToString();
  // Empty documents are not that: they load as nothing.
  auto empty = RuleSet::LoadStrings({{"e.yaml", "---\n---\n...\n---\n"}});
  ASSERT_TRUE(empty) << empty.error()[0].ToString();
  EXPECT_EQ((*empty)->size(), 0u);
}

TEST(RuleLoader, MissingKeysAndUndefinedTargets) {
  std::string all = AllMessages(MustFail({{"m.yaml", R"(
- rule: No output
  desc: d
  condition: proc.name = x
  priority: warning
- rule: Ghost
  condition: and proc.name = y
  append: true
- rule: Ghost2
  enabled: false
- list: l
  items: [a]
  override: {items: sideways}
)"}}));
  EXPECT_NE(all.find("rule 'No output': missing 'output'"), std::string::npos) << all;
  EXPECT_NE(all.find("rule 'Ghost': append to a rule that is not defined"), std::string::npos) << all;
  EXPECT_NE(all.find("rule 'Ghost2': 'enabled' for a rule that is not defined"), std::string::npos) << all;
  EXPECT_NE(all.find("list 'l'"), std::string::npos) << all;
}

TEST(RuleLoader, OverrideAppendReplaceAndEnabled) {
  auto set = MustLoad({{"a.yaml", kBase},
                       {"b.yaml", R"(
- list: shells
  items: [fish]
  override: {items: append}
- macro: spawned
  condition: and proc.pid != 1
  override: {condition: append}
- rule: Shell
  condition: and not proc.pname = sshd
  output: "replaced %proc.name"
  tags: [extra]
  override: {condition: append, output: replace, tags: append}
)"}});
  ASSERT_TRUE(set);
  const Rule* r = set->Find("Shell");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->tags, (std::vector<std::string>{"shell", "extra"}));
  auto fish = ExecEvent("fish", "/bin/fish", {"fish"});
  std::vector<RuleMatch> m;
  set->Evaluate(Ctx(fish), &m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].output, "replaced fish");
  auto fish_sshd = ExecEvent("fish", "/bin/fish", {"fish"});
  fish_sshd.mutable_exec()->set_parent_name("sshd");
  EXPECT_TRUE(Matches(*set, Ctx(fish_sshd)).empty());
  auto pid1 = ExecEvent("sh", "/bin/sh", {"sh"});
  pid1.mutable_exec()->set_pid(1);
  EXPECT_TRUE(Matches(*set, Ctx(pid1)).empty());  // the macro's append

  // Disabled by an override-only item and by the short form.
  for (const char* off : {"- rule: Shell\n  enabled: false\n  override: {enabled: replace}\n",
                          "- rule: Shell\n  enabled: false\n"}) {
    auto s2 = MustLoad({{"a.yaml", kBase}, {"c.yaml", off}});
    ASSERT_TRUE(s2);
    EXPECT_FALSE(s2->Find("Shell")->enabled);
    EXPECT_EQ(s2->enabled_count(), 0u);
    EXPECT_TRUE(Matches(*s2, Ctx(fish)).empty());
  }
}

TEST(RuleLoader, OverrideNeedsModeForEveryKey) {
  std::string all = AllMessages(MustFail({{"a.yaml", kBase},
                                          {"b.yaml", "- rule: Shell\n  condition: and x\n  priority: debug\n"
                                                     "  override: {condition: append}\n"}}));
  EXPECT_NE(all.find("key 'priority' has no override mode"), std::string::npos) << all;
  all = AllMessages(MustFail({{"a.yaml", kBase},
                              {"b.yaml", "- rule: Shell\n  priority: debug\n  override: {priority: append}\n"}}));
  EXPECT_NE(all.find("cannot be overridden with append"), std::string::npos) << all;
}

TEST(RuleLoader, LegacyAppendOnRuleMacroAndList) {
  auto set = MustLoad({{"a.yaml", kBase},
                       {"b.yaml", R"(
- list: shells
  items: [ksh]
  append: true
- macro: spawned
  condition: and proc.exepath startswith /bin/
  append: true
- rule: Shell
  condition: and proc.name != sh
  append: true
)"}});
  ASSERT_TRUE(set);
  auto ksh = ExecEvent("ksh", "/bin/ksh", {"ksh"});
  auto ksh_usr = ExecEvent("ksh", "/usr/bin/ksh", {"ksh"});
  auto sh = ExecEvent("sh", "/bin/sh", {"sh"});
  EXPECT_EQ(Matches(*set, Ctx(ksh)).size(), 1u);
  EXPECT_TRUE(Matches(*set, Ctx(ksh_usr)).empty());
  EXPECT_TRUE(Matches(*set, Ctx(sh)).empty());
}

TEST(RuleLoader, RedefinitionReplaces) {
  auto set = MustLoad({{"a.yaml", kBase},
                       {"b.yaml", "- rule: Shell\n  desc: new\n  condition: proc.name = vim\n  output: o\n  priority: info\n"}});
  ASSERT_TRUE(set);
  EXPECT_EQ(set->size(), 1u);
  EXPECT_EQ(set->Find("Shell")->desc, "new");
  auto vim = ExecEvent("vim", "/usr/bin/vim", {"vim"});
  auto bash = ExecEvent("bash", "/bin/bash", {"bash"});
  EXPECT_EQ(Matches(*set, Ctx(vim)).size(), 1u);
  EXPECT_TRUE(Matches(*set, Ctx(bash)).empty());
}

TEST(RuleLoader, Exceptions) {
  auto set = MustLoad({{"a.yaml", kBase},
                       {"b.yaml", R"(
- list: trusted_parents
  items: [sshd, login]
- rule: Shell
  exceptions:
    - name: parent_and_path
      fields: [proc.pname, proc.exepath]
      comps: [in, startswith]
      values:
        - [trusted_parents, /bin/]
        - [[cron, atd], /usr/bin/]
    - name: by_name
      fields: proc.name
      values: [zsh]
  override: {exceptions: append}
- rule: Shell
  exceptions:
    - name: by_name
      values: [bash]
  append: true
)"}});
  ASSERT_TRUE(set);
  EXPECT_EQ(set->Find("Shell")->exception_names, (std::vector<std::string>{"parent_and_path", "by_name"}));
  auto ev = [](const char* name, const char* exe, const char* parent) {
    auto e = ExecEvent(name, exe, {name});
    e.mutable_exec()->set_parent_name(parent);
    return e;
  };
  auto sh_sshd = ev("sh", "/bin/sh", "sshd");          // excepted: list in a tuple
  auto sh_cron = ev("sh", "/usr/bin/sh", "cron");      // excepted: inline list
  auto sh_cron_bin = ev("sh", "/bin/sh", "cron");      // not: cron only with /usr/bin/
  auto zsh = ev("zsh", "/bin/zsh", "x");               // excepted: single field
  auto bash = ev("bash", "/bin/bash", "x");            // excepted: appended value
  EXPECT_TRUE(Matches(*set, Ctx(sh_sshd)).empty());
  EXPECT_TRUE(Matches(*set, Ctx(sh_cron)).empty());
  EXPECT_EQ(Matches(*set, Ctx(sh_cron_bin)).size(), 1u);
  EXPECT_TRUE(Matches(*set, Ctx(zsh)).empty());
  EXPECT_TRUE(Matches(*set, Ctx(bash)).empty());
  // An excepted match is told apart from no match (the allowed-drift summary counts it),
  // with the exception that excepted it.
  std::vector<RuleMatch> out, excepted;
  set->Evaluate(Ctx(sh_sshd), &out, &excepted);
  EXPECT_TRUE(out.empty());
  ASSERT_EQ(excepted.size(), 1u);
  EXPECT_EQ(excepted[0].rule->name, "Shell");
  EXPECT_EQ(excepted[0].excepted_by, "parent_and_path");
  EXPECT_FALSE(excepted[0].output.empty());
  excepted.clear();
  set->Evaluate(Ctx(bash), &out, &excepted);
  ASSERT_EQ(excepted.size(), 1u);
  EXPECT_EQ(excepted[0].excepted_by, "by_name");
  excepted.clear();
  set->Evaluate(Ctx(sh_cron_bin), &out, &excepted);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_TRUE(excepted.empty());
  auto dash = ev("dash", "/bin/dash", "x");  // the condition does not hold: neither
  out.clear();
  set->Evaluate(Ctx(dash), &out, &excepted);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(excepted.empty());

  std::string all = AllMessages(MustFail({{"a.yaml", kBase},
                                          {"b.yaml", R"(
- rule: Shell
  exceptions:
    - name: bad
      fields: [proc.nope, proc.name]
      values: [[a, b]]
    - name: arity
      fields: [proc.name, proc.pname]
      values: [[a]]
  override: {exceptions: append}
)"}}));
  EXPECT_NE(all.find("unknown field 'proc.nope'"), std::string::npos) << all;
}

TEST(RuleLoader, DisabledRuleErrorsAreWarningsAndSkipUnknownFilter) {
  auto set = MustLoad({{"a.yaml", R"(
- rule: Off
  desc: d
  condition: proc.no_such_field = 1
  output: o
  priority: debug
  enabled: false
- rule: Skipped
  desc: d
  condition: fd.no_such_port = 22
  output: o
  priority: debug
  skip-if-unknown-filter: true
- rule: On
  desc: d
  condition: proc.name = x
  output: o
  priority: debug
  some_future_key: 1
)"}});
  ASSERT_TRUE(set);
  EXPECT_EQ(set->enabled_count(), 1u);
  std::string w = AllMessages(set->warnings());
  // (Names no Falco table has: proc.vpid and fd.sport are Falco's, known, never set.)
  EXPECT_NE(w.find("warning: rule 'Off': unknown field 'proc.no_such_field'"), std::string::npos) << w;
  EXPECT_NE(w.find("rule 'Skipped'"), std::string::npos) << w;
  EXPECT_NE(w.find("unknown key 'some_future_key'"), std::string::npos) << w;
}

TEST(RuleLoader, BrokenMacroReportedOnceNotAgainByItsRules) {
  auto d = MustFail({{"a.yaml", R"(
- macro: broken
  condition: (proc.name = a
- rule: Uses broken
  desc: d
  condition: broken and proc.pid > 1
  output: o
  priority: warning
- rule: Uses missing
  desc: d
  condition: missing_macro
  output: o
  priority: warning
)"}});
  std::string all = AllMessages(d);
  EXPECT_NE(all.find("macro 'broken': expected ')'"), std::string::npos) << all;
  EXPECT_EQ(all.find("Undefined macro 'broken'"), std::string::npos) << all;
  EXPECT_NE(all.find("rule 'Uses missing': Undefined macro 'missing_macro' used in filter."), std::string::npos) << all;
}

TEST(RuleLoader, UnreadableFile) {
  auto r = RuleSet::Load({"/nonexistent/rules.yaml"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error()[0].file, "/nonexistent/rules.yaml");
}

}  // namespace
}  // namespace driftwatch
