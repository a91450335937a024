// `driftwatch rules test`: the spec (YAML) read into test cases, their events run through
// the Detector the collector and analyze use, the alerts compared with the expectations.
#include "cli/rule_tests.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lib/base/result.h"
#include "lib/base/terminal_text.h"
#include "lib/base/yaml_documents.h"
#include "lib/detect/detect.h"
#include "lib/event/event_json_read.h"
#include "lib/event/event_view.h"
#include "lib/rules/rule_engine.h"
#include "lib/rules/rule_loader.h"

namespace driftwatch::cli {
namespace {

struct Expectation {
  std::string rule;
  uint64_t count = 1;
  std::string output_contains;                                     // in the alert's output
  std::vector<std::pair<std::string, std::string>> output_fields;  // field = value, as text
};

// Which events a case runs: all, a list of evt.num, or a range of them.
struct Selection {
  bool all = true;
  std::set<uint64_t> nums;
  uint64_t from = 0, to = 0;  // a range when nums is empty and !all
  bool Has(uint64_t n) const {
    if (all) return true;
    return nums.empty() ? n >= from && n <= to : nums.contains(n);
  }
};

struct TestCase {
  std::string name;
  std::string place;  // spec:line:column
  Selection events;
  std::vector<Expectation> expect;
  std::vector<std::string> no_alerts;
  bool only_listed = false;
};

struct Spec {
  std::string path;                 // for messages
  std::vector<std::string> rules;   // after --rules
  std::vector<std::string> events;  // JSON lines files
  std::vector<TestCase> cases;
};

// An alert as a test case sees it: the rule, the evt.num of the event that raised it.
struct Fired {
  Alert alert;
  uint64_t num = 0;
};

std::unexpected<Error> Bad(const std::string& place, const std::string& why) {
  return std::unexpected(Error::InvalidInput(place + ": " + why));
}

Result<uint64_t> Count(const YAML::Node& n, const std::string& place) {
  uint64_t v = 0;
  const std::string& s = n.IsScalar() ? n.Scalar() : std::string();
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size())
    return Bad(place, "expected a count (0, 1, 2, ...)");
  return v;
}

Result<std::string> Scalar(const YAML::Node& n, const std::string& place, const char* what) {
  if (!n.IsScalar()) return Bad(place, std::string("expected ") + what + " (a string)");
  return n.Scalar();
}

class SpecReader {
 public:
  explicit SpecReader(std::string path) : path_(std::move(path)) {}

  Result<Spec> Read() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) return std::unexpected(Error::FromErrno(errno, path_));
    std::ostringstream text;
    text << in.rdbuf();
    std::vector<YAML::Node> docs;
    try {
      docs = LoadYamlDocuments(text.str());
    } catch (const YAML::Exception& e) {
      return Bad(YamlPlace(path_, e.mark), "YAML: " + e.msg);
    }
    if (docs.size() != 1 || !docs[0].IsMap())
      return Bad(path_, "expected one YAML document: a map of rules, events and tests");
    Spec spec;
    spec.path = path_;
    const std::filesystem::path dir = std::filesystem::path(path_).parent_path();
    auto relative = [&dir](const std::string& p) {
      return std::filesystem::path(p).is_absolute() ? p : (dir / p).lexically_normal().string();
    };
    for (auto it = docs[0].begin(); it != docs[0].end(); ++it) {
      const std::string key = it->first.Scalar();
      const YAML::Node v = it->second;  // a copy: the iterator's pair is a temporary
      if (key == "rules" || key == "events") {
        auto files = Strings(v, key == "rules" ? "rule files" : "events files");
        if (!files) return std::unexpected(files.error());
        for (const std::string& f : *files)
          (key == "rules" ? spec.rules : spec.events).push_back(relative(f));
      } else if (key == "tests") {
        if (!v.IsSequence()) return Bad(Place(v), "expected a list of test cases");
        for (const YAML::Node& c : v) {
          auto tc = Case(c, spec.cases.size() + 1);
          if (!tc) return std::unexpected(tc.error());
          spec.cases.push_back(std::move(*tc));
        }
      } else {
        return Bad(Place(it->first), "unknown key '" + key + "' (rules, events, tests)");
      }
    }
    if (spec.events.empty()) return Bad(path_, "no events: name a file of event JSON lines");
    if (spec.cases.empty()) return Bad(path_, "no tests");
    return spec;
  }

 private:
  std::string Place(const YAML::Node& n) const { return YamlPlace(path_, n.Mark()); }

  // A string or a list of strings.
  Result<std::vector<std::string>> Strings(const YAML::Node& n, const char* what) {
    std::vector<std::string> out;
    if (n.IsScalar()) {
      out.push_back(n.Scalar());
      return out;
    }
    if (!n.IsSequence())
      return Bad(Place(n), std::string("expected ") + what + " (a string or a list)");
    for (const YAML::Node& e : n) {
      auto s = Scalar(e, Place(e), what);
      if (!s) return std::unexpected(s.error());
      out.push_back(*s);
    }
    return out;
  }

  Result<TestCase> Case(const YAML::Node& c, size_t number) {
    if (!c.IsMap()) return Bad(Place(c), "expected a test case (a map)");
    TestCase tc;
    tc.place = Place(c);
    tc.name = "#" + std::to_string(number);
    for (auto it = c.begin(); it != c.end(); ++it) {
      const std::string key = it->first.Scalar();
      const YAML::Node v = it->second;  // a copy: the iterator's pair is a temporary
      if (key == "name") {
        auto s = Scalar(v, Place(v), "a name");
        if (!s) return std::unexpected(s.error());
        tc.name = *s;
      } else if (key == "events") {
        auto sel = Events(v);
        if (!sel) return std::unexpected(sel.error());
        tc.events = *sel;
      } else if (key == "expect") {
        if (!v.IsSequence()) return Bad(Place(v), "expected a list of expected alerts");
        for (const YAML::Node& e : v) {
          auto x = Expect(e);
          if (!x) return std::unexpected(x.error());
          tc.expect.push_back(std::move(*x));
        }
      } else if (key == "no_alerts") {
        auto rules = Strings(v, "rule names");
        if (!rules) return std::unexpected(rules.error());
        tc.no_alerts = *rules;
      } else if (key == "only_listed") {
        if (!v.IsScalar() || (v.Scalar() != "true" && v.Scalar() != "false"))
          return Bad(Place(v), "expected true or false");
        tc.only_listed = v.Scalar() == "true";
      } else {
        return Bad(Place(it->first),
                   "unknown key '" + key + "' (name, events, expect, no_alerts, only_listed)");
      }
    }
    return tc;
  }

  // all | [N, ...] | {from: N, to: M}
  Result<Selection> Events(const YAML::Node& v) {
    Selection s;
    if (v.IsScalar() && v.Scalar() == "all") return s;
    s.all = false;
    if (v.IsSequence()) {
      for (const YAML::Node& n : v) {
        auto num = Count(n, Place(n));
        if (!num) return Bad(Place(n), "expected an evt.num");
        s.nums.insert(*num);
      }
      if (s.nums.empty()) return Bad(Place(v), "an empty list selects no events");
      return s;
    }
    if (v.IsMap() && v["from"] && v["to"] && v.size() == 2) {
      auto from = Count(v["from"], Place(v["from"]));
      auto to = Count(v["to"], Place(v["to"]));
      if (!from || !to || *from > *to)
        return Bad(Place(v), "expected {from: N, to: M} with N <= M");
      s.from = *from;
      s.to = *to;
      return s;
    }
    return Bad(Place(v), "expected all, a list of evt.num, or {from: N, to: M}");
  }

  Result<Expectation> Expect(const YAML::Node& e) {
    if (!e.IsMap()) return Bad(Place(e), "expected {rule: NAME, ...}");
    Expectation x;
    for (auto it = e.begin(); it != e.end(); ++it) {
      const std::string key = it->first.Scalar();
      const YAML::Node v = it->second;  // a copy: the iterator's pair is a temporary
      if (key == "rule") {
        auto s = Scalar(v, Place(v), "a rule name");
        if (!s) return std::unexpected(s.error());
        x.rule = *s;
      } else if (key == "count") {
        auto n = Count(v, Place(v));
        if (!n) return std::unexpected(n.error());
        x.count = *n;
      } else if (key == "output_contains") {
        auto s = Scalar(v, Place(v), "text");
        if (!s) return std::unexpected(s.error());
        x.output_contains = *s;
      } else if (key == "output_fields") {
        if (!v.IsMap()) return Bad(Place(v), "expected a map of field: value");
        for (auto f = v.begin(); f != v.end(); ++f) {
          auto s = Scalar(f->second, Place(f->second), "a value");
          if (!s) return std::unexpected(s.error());
          x.output_fields.emplace_back(f->first.Scalar(), *s);
        }
      } else {
        return Bad(Place(it->first),
                   "unknown key '" + key + "' (rule, count, output_contains, output_fields)");
      }
    }
    if (x.rule.empty()) return Bad(Place(e), "an expected alert needs its rule");
    return x;
  }

  std::string path_;
};

// The spec-less form: one case over every event, expecting --expect RULE[=COUNT].
Result<Spec> ShortSpec(const RulesTestOptions& opt) {
  Spec spec;
  spec.path = "--expect";
  spec.rules = opt.files;
  spec.events = opt.events;
  TestCase tc;
  tc.name = "--expect";
  tc.place = "command line";
  for (const std::string& e : opt.expect) {
    Expectation x;
    x.rule = e;
    const size_t eq = e.rfind('=');
    if (eq != std::string::npos) {
      uint64_t n = 0;
      const char* end = e.data() + e.size();
      auto r = std::from_chars(e.data() + eq + 1, end, n);
      if (eq + 1 < e.size() && r.ec == std::errc() && r.ptr == end) {
        x.rule = e.substr(0, eq);
        x.count = n;
      }
    }
    tc.expect.push_back(std::move(x));
  }
  if (tc.expect.empty()) return Bad("--events", "needs at least one --expect RULE[=COUNT]");
  spec.cases.push_back(std::move(tc));
  return spec;
}

bool Meets(const Fired& f, const Expectation& x) {
  if (f.alert.rule != x.rule) return false;
  if (f.alert.message.find(x.output_contains) == std::string::npos) return false;
  for (const auto& want : x.output_fields) {
    auto it = std::find_if(f.alert.output_fields.begin(), f.alert.output_fields.end(),
                           [&want](const auto& kv) { return kv.first == want.first; });
    if (it == f.alert.output_fields.end() || it->second.Text() != want.second) return false;
  }
  return true;
}

// The event's evt.num: the last part of the alert's event key ("node/boot/start/seq").
uint64_t EventNum(const Alert& a) {
  uint64_t n = 0;
  const size_t slash = a.event_key.rfind('/');
  const std::string_view s = slash == std::string::npos
                                 ? std::string_view()
                                 : std::string_view(a.event_key).substr(slash + 1);
  std::from_chars(s.data(), s.data() + s.size(), n);
  return n;
}

// Runs one case's events through a fresh Detector. A non-container event that says what
// its container is (EventRead::container) is preceded by that container's report, as the
// sensor sends one before its container's events; the report's own alerts are not the
// case's (write a container event to test rules on them).
std::vector<Fired> Run(const std::shared_ptr<const RuleSet>& rules,
                       const std::vector<EventRead>& events, const Selection& sel) {
  Detector detector(rules);
  std::vector<Fired> fired;
  std::map<std::pair<std::string, std::string>, std::string> known;  // (node, id) -> report
  const Detector::Sink keep = [&fired](Alert&& a) {
    Fired f{std::move(a), 0};
    f.num = EventNum(f.alert);
    fired.push_back(std::move(f));
  };
  const Detector::Sink drop = [](Alert&&) {};
  for (const EventRead& r : events) {
    const v1::Event& ev = r.event;
    if (!sel.Has(ev.id().seq())) continue;
    const std::string node = ev.id().node().empty() ? "local" : ev.id().node();
    if (KindOf(ev) == Kind::kContainer) {
      known[{node, ev.container().id()}] = ev.container().SerializeAsString();
    } else if (r.container && !ev.container_id().empty()) {
      v1::Event report;
      report.set_time_ns(ev.time_ns());
      report.mutable_id()->set_node(ev.id().node());
      report.set_container_id(ev.container_id());
      v1::ContainerInfo* c = report.mutable_container();
      *c = *r.container;
      c->set_id(ev.container_id());
      if (c->state().empty()) c->set_state("running");
      std::string bytes = c->SerializeAsString();
      std::string& last = known[{node, ev.container_id()}];
      if (last != bytes) {
        last = std::move(bytes);
        detector.OnEvent(node, report, drop);
      }
    }
    detector.OnEvent(node, ev, keep);
  }
  return fired;
}

// One line of a case's table: what was expected of a rule and what happened.
struct Row {
  std::string rule, note;
  uint64_t expected = 0, actual = 0, first = 0;
  bool ok = true;
};

void PrintRows(const std::vector<Row>& rows) {
  std::printf("      %-50s %8s %6s  %s\n", "rule", "expected", "actual", "first evt.num");
  for (const Row& r : rows) {
    std::string name = TerminalEscape(r.rule) + r.note;
    std::printf("    %c %-50s %8llu %6llu  %s\n", r.ok ? ' ' : '!', name.c_str(),
                static_cast<unsigned long long>(r.expected),
                static_cast<unsigned long long>(r.actual),
                r.first == 0 ? "-" : std::to_string(r.first).c_str());
  }
}

// Prints PASS or FAIL (and the table); true when the case passed.
bool Check(const TestCase& tc, const std::vector<Fired>& fired) {
  std::vector<Row> rows;
  std::vector<std::string> notes;
  for (const Expectation& x : tc.expect) {
    Row r{x.rule, "", x.count, 0, 0, true};
    if (!x.output_contains.empty() || !x.output_fields.empty()) r.note = " (with output)";
    const Fired* other = nullptr;
    for (const Fired& f : fired) {
      if (Meets(f, x)) {
        if (r.actual++ == 0) r.first = f.num;
      } else if (f.alert.rule == x.rule && other == nullptr) {
        other = &f;
      }
    }
    r.ok = r.actual == x.count;
    if (!r.ok && other != nullptr && !r.note.empty())
      notes.push_back("first other alert of '" + x.rule + "' (evt.num " +
                      std::to_string(other->num) + "): " + other->alert.message);
    rows.push_back(std::move(r));
  }
  std::map<std::string, Row> extra;  // rules that fired but were not listed, or not wanted
  for (const Fired& f : fired) {
    const bool listed = std::any_of(tc.expect.begin(), tc.expect.end(),
                                    [&](const Expectation& x) { return x.rule == f.alert.rule; });
    const bool unwanted =
        std::find(tc.no_alerts.begin(), tc.no_alerts.end(), f.alert.rule) != tc.no_alerts.end();
    if (!unwanted && (listed || !tc.only_listed)) continue;
    Row& r = extra[f.alert.rule];
    if (r.actual++ == 0) {
      r.rule = f.alert.rule;
      r.first = f.num;
      r.ok = false;
      r.note = unwanted ? " (no_alerts)" : " (not listed)";
    }
  }
  for (const std::string& rule : tc.no_alerts) {
    if (!extra.contains(rule)) rows.push_back(Row{rule, " (no_alerts)", 0, 0, 0, true});
  }
  for (auto& [rule, r] : extra) rows.push_back(std::move(r));
  const bool pass = std::all_of(rows.begin(), rows.end(), [](const Row& r) { return r.ok; });
  std::printf("%s %s\n", pass ? "PASS" : "FAIL", TerminalEscape(tc.name).c_str());
  if (!pass) {
    std::printf("    at %s\n", TerminalEscape(tc.place).c_str());
    PrintRows(rows);
    for (const std::string& n : notes) std::printf("    %s\n", TerminalEscape(n).c_str());
  }
  return pass;
}

// Every rule a case names must be loaded: a misspelt name would pass as "no alerts".
Result<> CheckRuleNames(const Spec& spec, const RuleSet& set) {
  std::set<std::string> names;
  for (const Rule* r : set.rules()) names.insert(r->name);
  for (const TestCase& tc : spec.cases) {
    std::vector<std::string> named = tc.no_alerts;
    for (const Expectation& x : tc.expect) named.push_back(x.rule);
    for (const std::string& n : named) {
      if (!names.contains(n))
        return Bad(tc.place, "test '" + tc.name + "': no rule '" + n + "' is loaded");
    }
  }
  return {};
}

// Returns 0 (all passed), 1 (a case failed) or 2 (bad input).
int RunSpec(const Spec& spec, const RulesTestOptions& opt, int* passed, int* failed) {
  std::vector<std::string> user = opt.rules;
  user.insert(user.end(), spec.rules.begin(), spec.rules.end());
  const std::vector<std::string> files = RuleFilesToLoad(user, opt.no_shipped_rules);
  if (files.empty()) {
    std::fprintf(stderr, "driftwatch rules test: %s: no rule files\n", spec.path.c_str());
    return 2;
  }
  RuleSetLoad loaded = RuleSet::Load(files);
  if (!loaded) {
    for (const RuleDiagnostic& d : loaded.error())
      std::fprintf(stderr, "%s\n", d.ToString().c_str());
    std::fprintf(stderr, "driftwatch rules test: %s: rules not loaded\n", spec.path.c_str());
    return 2;
  }
  std::shared_ptr<const RuleSet> rules(std::move(*loaded));
  if (auto ok = CheckRuleNames(spec, *rules); !ok) {
    std::fprintf(stderr, "driftwatch rules test: %s\n", ok.error().c_str());
    return 2;
  }
  std::vector<EventRead> events;
  for (const std::string& path : spec.events) {
    auto read = ReadEventJsonFile(path);
    if (!read) {
      std::fprintf(stderr, "driftwatch rules test: %s\n", read.error().c_str());
      return 2;
    }
    for (EventRead& r : *read) events.push_back(std::move(r));
  }
  // As analyze numbers audit logs: events without evt.num by their place in the input.
  std::set<uint64_t> nums;
  for (size_t i = 0; i < events.size(); ++i) {
    v1::EventId* id = events[i].event.mutable_id();
    if (id->seq() == 0) id->set_seq(i + 1);
    nums.insert(id->seq());
  }
  for (const TestCase& tc : spec.cases) {
    for (uint64_t n : tc.events.nums) {
      if (!nums.contains(n)) {
        std::fprintf(stderr, "driftwatch rules test: %s: test '%s': no event has evt.num %llu\n",
                     tc.place.c_str(), tc.name.c_str(), static_cast<unsigned long long>(n));
        return 2;
      }
    }
  }
  int result = 0;
  for (const TestCase& tc : spec.cases) {
    if (Check(tc, Run(rules, events, tc.events))) {
      ++*passed;
    } else {
      ++*failed;
      result = 1;
    }
  }
  return result;
}

}  // namespace

int RunRulesTest(const RulesTestOptions& opt) {
  std::vector<Spec> specs;
  if (!opt.events.empty() || !opt.expect.empty()) {
    if (opt.events.empty()) {
      std::fprintf(stderr, "driftwatch rules test: --expect needs --events FILE\n");
      return 2;
    }
    auto spec = ShortSpec(opt);
    if (!spec) {
      std::fprintf(stderr, "driftwatch rules test: %s\n", spec.error().c_str());
      return 2;
    }
    specs.push_back(std::move(*spec));
  } else {
    if (opt.files.empty()) {
      std::fprintf(stderr,
                   "driftwatch rules test: no SPEC (or RULES... --events FILE --expect RULE)\n");
      return 2;
    }
    for (const std::string& path : opt.files) {
      auto spec = SpecReader(path).Read();
      if (!spec) {
        std::fprintf(stderr, "driftwatch rules test: %s\n", spec.error().c_str());
        return 2;
      }
      specs.push_back(std::move(*spec));
    }
  }
  int passed = 0, failed = 0, result = 0;
  for (const Spec& spec : specs) {
    const int r = RunSpec(spec, opt, &passed, &failed);
    if (r == 2) return 2;
    result = std::max(result, r);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return result;
}

}  // namespace driftwatch::cli
