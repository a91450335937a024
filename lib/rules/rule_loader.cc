#include "lib/rules/rule_loader.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "lib/base/yaml_documents.h"
#include "lib/rules/rule_condition.h"
#include "lib/rules/rule_engine.h"

#ifndef DW_RULES_INSTALL_DIR
#define DW_RULES_INSTALL_DIR "/usr/local/share/driftwatch/rules"
#endif
#ifndef DW_RULES_SOURCE_DIR
#define DW_RULES_SOURCE_DIR "rules"
#endif

namespace driftwatch {

std::string RuleDiagnostic::ToString() const {
  std::string s = file;
  if (line > 0) {
    // Appended piecewise: g++ 12 warns wrongly on ":" + std::string&& (PR 105329).
    s += ':';
    s += std::to_string(line);
    if (column > 0) {
      s += ':';
      s += std::to_string(column);
    }
  }
  s += warning ? ": warning: " : ": error: ";
  if (!item.empty()) s += item + ": ";
  s += message;
  return s;
}

namespace {

// Rule files are small: the three upstream files hold about 30,000 YAML nodes together.
constexpr size_t kMaxExpandedNodes = 1000000;

// Whether `n` has at most *budget nodes with aliases expanded (spends the budget).
bool WithinNodes(const YAML::Node& n, size_t* budget) {
  if (*budget == 0) return false;
  --*budget;
  if (n.IsSequence()) {
    for (const YAML::Node& c : n)
      if (!WithinNodes(c, budget)) return false;
  } else if (n.IsMap()) {
    for (const auto& kv : n)
      if (!WithinNodes(kv.first, budget) || !WithinNodes(kv.second, budget)) return false;
  }
  return true;
}

// Where a character of a scalar's value came from in its file.
struct Anchor {
  size_t offset;  // in the value
  int line;       // 1-based
  int column;     // 1-based
};

// A scalar's value with the map back to its file.
struct Text {
  std::string value;
  std::string file;
  int line = 0;
  int column = 0;
  std::vector<Anchor> anchors;

  void Locate(size_t offset, int* l, int* c) const {
    *l = line;
    *c = column;
    const Anchor* best = nullptr;
    for (const Anchor& a : anchors) {
      if (a.offset <= offset) best = &a;
    }
    if (!best) return;
    *l = best->line;
    int col = best->column;
    for (size_t i = best->offset; i < offset && i < value.size(); ++i) {
      if ((static_cast<unsigned char>(value[i]) & 0xC0) != 0x80) ++col;
    }
    *c = col;
  }
};

// A condition built from several scalars (a definition and its appends), joined by spaces.
struct Fragments {
  std::vector<std::pair<size_t, Text>> parts;  // start offset in joined, text
  std::string joined;

  void Replace(Text t) {
    parts.clear();
    joined.clear();
    Append(std::move(t));
  }
  void Append(Text t) {
    if (!joined.empty()) joined.push_back(' ');
    parts.emplace_back(joined.size(), t);
    joined += t.value;
  }
  void Locate(size_t offset, std::string* file, int* l, int* c) const {
    const std::pair<size_t, Text>* best = parts.empty() ? nullptr : &parts[0];
    for (const auto& p : parts) {
      if (p.first <= offset) best = &p;
    }
    if (!best) return;
    *file = best->second.file;
    best->second.Locate(offset - best->first, l, c);
  }
};

struct ExceptionSpec {
  std::string name;
  bool single_field = false;  // `fields: proc.name` with a flat list of values
  std::vector<std::string> fields;
  std::vector<std::string> comps;
  std::vector<YAML::Node> values;
  std::string file;
  int line = 0, column = 0;
};

// Falco's load order (rule_loader_collector.cpp): `index` is the place of the first
// definition, `visibility` that of the latest definition, append or override. A macro sees
// the macros, a list the lists, whose index is below its visibility.
struct ListDef {
  std::string name;
  std::vector<std::string> items;
  std::string file;
  int line = 0, column = 0;
  uint32_t index = 0, visibility = 0;
};

struct MacroDef {
  std::string name;
  Fragments cond;
  std::string file;
  int line = 0, column = 0;
  uint32_t index = 0, visibility = 0;
  cond::NodePtr ast;
};

// A `required_plugin_versions` entry: one of these plugins (name, version) must be there.
struct PluginRequirement {
  std::vector<std::pair<std::string, std::string>> alternatives;
  std::string file;
  int line = 0, column = 0;
};

// "x.y.z" (Falco's sinsp_version); nullopt when it is not one.
std::optional<std::array<uint64_t, 3>> ParseSemver(std::string_view s) {
  std::array<uint64_t, 3> v{};
  for (int i = 0; i < 3; ++i) {
    auto r = std::from_chars(s.data(), s.data() + s.size(), v[i]);
    if (r.ec != std::errc() || r.ptr == s.data()) return std::nullopt;
    s.remove_prefix(static_cast<size_t>(r.ptr - s.data()));
    if (i < 2) {
      if (!s.starts_with('.')) return std::nullopt;
      s.remove_prefix(1);
    }
  }
  if (!s.empty()) return std::nullopt;
  return v;
}

// Falco's sinsp_version::compatible_with: the same major version, and not older.
bool CompatibleWith(const std::array<uint64_t, 3>& have, const std::array<uint64_t, 3>& want) {
  return have[0] == want[0] && have >= want;
}

std::string SemverText(const std::array<uint64_t, 3>& v) {
  return std::to_string(v[0]) + "." + std::to_string(v[1]) + "." + std::to_string(v[2]);
}

// Falco's warnings (userspace/engine/rule_loading_messages.h).
constexpr const char* kWarningAppend =
    "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.";
constexpr const char* kWarningEnabled =
    "The standalone 'enabled' key usage is deprecated. The correct approach requires also a 'replace' entry "
    "under the 'override' key (i.e. 'enabled: replace').";

struct RuleDef {
  std::string name;
  std::string desc;
  Fragments cond;
  Text output;
  Priority priority = Priority::kWarning;
  std::vector<std::string> tags;
  bool enabled = true;
  bool skip_if_unknown_filter = false;
  std::string source = "syscall";
  bool unknown_source = false;  // not syscall: skipped with a warning, as Falco does
  std::vector<ExceptionSpec> exceptions;
  std::string file;
  int line = 0, column = 0;
};

bool IsListComp(std::string_view c) { return c == "in" || c == "intersects" || c == "pmatch"; }

std::optional<cond::Op> CompOp(std::string_view c) {
  static constexpr std::pair<std::string_view, cond::Op> kOps[] = {
      {"=", cond::Op::kEq},          {"==", cond::Op::kEq},          {"!=", cond::Op::kNe},
      {"<", cond::Op::kLt},          {"<=", cond::Op::kLe},          {">", cond::Op::kGt},
      {">=", cond::Op::kGe},         {"contains", cond::Op::kContains},
      {"icontains", cond::Op::kIContains}, {"startswith", cond::Op::kStartsWith},
      {"endswith", cond::Op::kEndsWith},   {"glob", cond::Op::kGlob},
      {"iglob", cond::Op::kIGlob},   {"in", cond::Op::kIn},
      {"bcontains", cond::Op::kBContains}, {"bstartswith", cond::Op::kBStartsWith},
      {"regex", cond::Op::kRegex},
      {"intersects", cond::Op::kIntersects}, {"pmatch", cond::Op::kPmatch}};
  for (const auto& [n, op] : kOps) {
    if (c == n) return op;
  }
  return std::nullopt;
}

bool IsQuoted(const std::string& s) {
  return s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front();
}

// A list item or exception value as Falco pastes it into a condition: a value wrapped in
// quotes is that string with its escapes undone, as in a condition (\xHH and the others:
// lib/rules/rule_condition.h). A bad escape was refused at load (BadEscape); here it stays as is.
std::pair<std::string, bool> Unquote(std::string s) {
  if (IsQuoted(s)) {
    std::string_view body = std::string_view(s).substr(1, s.size() - 2);
    auto text = cond::UnescapeQuoted(body, s.front());
    return {text ? std::move(*text) : std::string(body), true};
  }
  return {std::move(s), false};
}

// Why a quoted list item or exception value (scalars anywhere in `v`) has a bad escape, or
// nothing.
std::optional<std::string> BadEscape(const YAML::Node& v) {
  if (v.IsSequence()) {
    for (const YAML::Node& e : v) {
      if (auto bad = BadEscape(e)) return bad;
    }
    return std::nullopt;
  }
  if (!v.IsScalar()) return std::nullopt;
  const std::string s = v.as<std::string>();
  if (!IsQuoted(s)) return std::nullopt;
  auto text = cond::UnescapeQuoted(std::string_view(s).substr(1, s.size() - 2), s.front());
  if (text) return std::nullopt;
  return s + ": " + text.error().second;
}

// "proc.aname[2]" -> name, arg
void SplitField(const std::string& f, std::string* name, std::string* arg, bool* has_arg) {
  size_t b = f.find('[');
  *has_arg = b != std::string::npos && f.back() == ']';
  if (!*has_arg) {
    *name = f;
    return;
  }
  *name = f.substr(0, b);
  *arg = f.substr(b + 1, f.size() - b - 2);
}

}  // namespace

// Friend of RuleSet: builds one.
class RuleLoader {
 public:
  void AddSource(const RuleSource& src);
  void AddError(RuleDiagnostic d) {
    files_.push_back(d.file);
    diags_.push_back(std::move(d));
  }
  RuleSetLoad Finish();

 private:
  using Lines = std::vector<std::string_view>;

  void Diag(bool warning, const std::string& file, int line, int column, std::string item,
            std::string message) {
    std::string key = file + ":" + std::to_string(line) + ":" + std::to_string(column) + item + message;
    if (!seen_.insert(key).second) return;
    diags_.push_back(RuleDiagnostic{file, line, column, std::move(item), std::move(message), warning});
  }
  void Error(const std::string& file, const YAML::Node& n, std::string item, std::string message) {
    Diag(false, file, n.Mark().line + 1, n.Mark().column + 1, std::move(item), std::move(message));
  }
  void Warn(const std::string& file, const YAML::Node& n, std::string item, std::string message) {
    Diag(true, file, n.Mark().line + 1, n.Mark().column + 1, std::move(item), std::move(message));
  }

  Text MakeText(const YAML::Node& n, const std::string& file, const Lines& lines);
  bool ScalarString(const YAML::Node& item, const char* key, const std::string& file,
                    const std::string& what, std::string* out);

  void AddItems(const YAML::Node& doc, const std::string& file, const Lines& lines);
  void AddRule(const YAML::Node& item, const std::string& file, const Lines& lines);
  void AddMacro(const YAML::Node& item, const std::string& file, const Lines& lines);
  void AddList(const YAML::Node& item, const std::string& file);
  bool ParseExceptions(const YAML::Node& n, const std::string& file, const std::string& what,
                       std::vector<ExceptionSpec>* out);
  void MergeExceptions(std::vector<ExceptionSpec> in, RuleDef* r, const std::string& file,
                       const YAML::Node& at, const std::string& what);

  void ExpandList(const ListDef& def);
  cond::NodePtr ExceptionAst(const RuleDef& r, const ExceptionSpec& x);
  void CompileRule(const RuleDef& def, RuleSet* set);

  void AddRequiredEngineVersion(const YAML::Node& item, const std::string& file);
  void AddRequiredPluginVersions(const YAML::Node& item, const std::string& file);
  void CheckPluginRequirements();
  void CheckMacroVisibility();
  // A user file's definition replaces one of a shipped file: say so, naming both places.
  void WarnShippedRedefinition(const std::string& kind, const std::string& name, const std::string& prev_file,
                               int prev_line, const std::string& file, const YAML::Node& at);

  std::vector<std::string> files_;  // in load order
  std::set<std::string> shipped_files_;
  uint32_t next_index_ = 0;  // Falco's load order: each definition, append, override
  std::vector<PluginRequirement> plugin_requirements_;
  std::vector<RuleDiagnostic> diags_;
  std::set<std::string> seen_;
  std::vector<RuleDef> rules_;
  std::map<std::string, size_t, std::less<>> rule_index_;
  std::map<std::string, MacroDef, std::less<>> macros_;
  std::map<std::string, ListDef, std::less<>> lists_;
  std::map<std::string, std::vector<std::string>, std::less<>> expanded_;
  std::set<std::string, std::less<>> broken_macros_;
};

// Maps the value of a scalar back to file positions: each source line of the scalar is
// found, in order, in the value (block and multi-line scalars fold lines into spaces).
Text RuleLoader::MakeText(const YAML::Node& n, const std::string& file, const Lines& lines) {
  Text t;
  t.value = n.as<std::string>();
  t.file = file;
  t.line = n.Mark().line + 1;
  t.column = n.Mark().column + 1;
  size_t line = static_cast<size_t>(std::max(0, n.Mark().line));
  size_t col = static_cast<size_t>(std::max(0, n.Mark().column));
  if (line >= lines.size()) return t;
  std::string_view first = lines[line];
  if (col < first.size() && (first[col] == '>' || first[col] == '|')) {
    ++line;  // block scalar: content starts on the next line
    col = std::string_view::npos;
  } else if (col < first.size() && (first[col] == '"' || first[col] == '\'')) {
    ++col;
  }
  size_t cursor = 0;
  for (size_t l = line; l < lines.size() && cursor < t.value.size() && l < line + 10000; ++l) {
    std::string_view s = lines[l];
    size_t start = 0;
    if (col != std::string_view::npos && l == line) {
      start = std::min(col, s.size());
    } else {
      while (start < s.size() && (s[start] == ' ' || s[start] == '\t')) ++start;
    }
    std::string_view seg = s.substr(start);
    while (!seg.empty() && (seg.back() == ' ' || seg.back() == '\t' || seg.back() == '\r')) {
      seg.remove_suffix(1);
    }
    if (seg.empty()) continue;
    size_t at = t.value.find(seg, cursor);
    if (at == std::string::npos) {
      // The closing quote of a quoted scalar, or an escape: match the longest prefix.
      size_t k = 0;
      while (cursor + k < t.value.size() && k < seg.size() && t.value[cursor + k] == seg[k]) ++k;
      if (k == 0) break;
      at = cursor;
      seg = seg.substr(0, k);
    }
    int c = 1;
    for (size_t i = 0; i < start; ++i) {
      if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++c;
    }
    t.anchors.push_back(Anchor{at, static_cast<int>(l) + 1, c});
    cursor = at + seg.size();
  }
  return t;
}

bool RuleLoader::ScalarString(const YAML::Node& item, const char* key, const std::string& file,
                              const std::string& what, std::string* out) {
  const YAML::Node n = item[key];
  if (!n.IsDefined() || n.IsNull()) return false;
  if (!n.IsScalar()) {
    Error(file, n, what, std::string("'") + key + "' must be a string");
    return false;
  }
  *out = n.as<std::string>();
  return true;
}

void RuleLoader::AddSource(const RuleSource& src) {
  const std::string& file = src.name;
  files_.push_back(file);
  Lines lines;
  {
    std::string_view c = src.content;
    size_t start = 0;
    while (start <= c.size()) {
      size_t nl = c.find('\n', start);
      if (nl == std::string_view::npos) {
        lines.push_back(c.substr(start));
        break;
      }
      lines.push_back(c.substr(start, nl - start));
      start = nl + 1;
    }
  }
  if (src.shipped) shipped_files_.insert(file);
  // Every document of the file (`---`), as Falco reads them.
  std::vector<YAML::Node> docs;
  try {
    docs = LoadYamlDocuments(src.content);
  } catch (const YAML::Exception& e) {
    Diag(false, file, e.mark.line + 1, e.mark.column + 1, "", "YAML: " + e.msg);
    return;
  }
  for (const YAML::Node& doc : docs) {
    if (doc.IsNull()) continue;  // empty document
    // Aliases (*name) share a node that every step below copies: nested ones make a few
    // KiB read as billions of nodes. Counted with the aliases expanded, up to a bound.
    if (size_t budget = kMaxExpandedNodes; !WithinNodes(doc, &budget)) {
      Diag(false, file, doc.Mark().line + 1, doc.Mark().column + 1, "",
           "over " + std::to_string(kMaxExpandedNodes) +
               " YAML nodes once its aliases are expanded");
      continue;
    }
    if (!doc.IsSequence()) {
      Diag(false, file, doc.Mark().line + 1, doc.Mark().column + 1, "",
           "a rules file is a YAML list of rule, macro and list items");
      continue;
    }
    AddItems(doc, file, lines);
  }
}

void RuleLoader::AddItems(const YAML::Node& doc, const std::string& file, const Lines& lines) {
  for (const YAML::Node& item : doc) {
    try {
      if (!item.IsMap()) {
        Error(file, item, "", "each item must be a map with a rule, macro or list key");
        continue;
      }
      if (item["rule"]) {
        AddRule(item, file, lines);
      } else if (item["macro"]) {
        AddMacro(item, file, lines);
      } else if (item["list"]) {
        AddList(item, file);
      } else if (item["required_engine_version"]) {
        AddRequiredEngineVersion(item, file);
      } else if (item["required_plugin_versions"]) {
        AddRequiredPluginVersions(item, file);
      } else {
        std::string first = item.begin()->first.IsScalar() ? item.begin()->first.as<std::string>() : "?";
        Warn(file, item, "", "unknown item '" + first + "' ignored");
      }
    } catch (const YAML::Exception& e) {
      Diag(false, file, e.mark.line + 1, e.mark.column + 1, "", "YAML: " + e.msg);
    }
  }
}

void RuleLoader::AddRequiredEngineVersion(const YAML::Node& item, const std::string& file) {
  const YAML::Node v = item["required_engine_version"];
  if (!v.IsScalar()) {
    Error(file, v, "", "'required_engine_version' must be a version such as 0.57.0");
    return;
  }
  // An integer N is the old form: engine 0.N.0 (Falco's get_implicit_engine_version).
  const std::string text = v.as<std::string>();
  std::optional<std::array<uint64_t, 3>> want;
  uint64_t minor = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), minor);
  if (r.ec == std::errc() && r.ptr == text.data() + text.size()) {
    want = std::array<uint64_t, 3>{0, minor, 0};
  } else {
    want = ParseSemver(text);
  }
  if (!want) {
    Error(file, v, "", "Unable to parse engine version '" + text + "' as a semver string. Expected \"x.y.z\" semver format.");
    return;
  }
  const auto have = *ParseSemver(kFalcoEngineVersion);
  if (!CompatibleWith(have, *want)) {
    Error(file, v, "", "Rules require engine version " + SemverText(*want) +
                           ", but driftwatch implements Falco engine version " + SemverText(have));
  }
}

void RuleLoader::AddRequiredPluginVersions(const YAML::Node& item, const std::string& file) {
  const YAML::Node list = item["required_plugin_versions"];
  if (!list.IsSequence()) {
    Error(file, list, "", "Value of required_plugin_versions must be a sequence");
    return;
  }
  for (const YAML::Node& plugin : list) {
    PluginRequirement req;
    req.file = file;
    req.line = plugin.Mark().line + 1;
    req.column = plugin.Mark().column + 1;
    std::vector<YAML::Node> entries = {plugin};
    if (plugin.IsMap() && plugin["alternatives"]) {
      if (!plugin["alternatives"].IsSequence()) {
        Error(file, plugin["alternatives"], "", "Value of plugin version alternatives must be a sequence");
        continue;
      }
      for (const YAML::Node& alt : plugin["alternatives"]) entries.push_back(alt);
    }
    bool ok = true;
    for (const YAML::Node& e : entries) {
      if (!e.IsMap() || !e["name"] || !e["name"].IsScalar() || !e["version"] || !e["version"].IsScalar()) {
        Error(file, e, "", "Plugin version must be a mapping with a name and a version");
        ok = false;
        break;
      }
      std::string name = e["name"].as<std::string>(), version = e["version"].as<std::string>();
      if (!ParseSemver(version)) {
        Error(file, e, "", "Invalid required version '" + version + "' for plugin '" + name + "'");
        ok = false;
        break;
      }
      for (const auto& [n, v] : req.alternatives) {
        if (n == name) {
          Error(file, e, "", "Defined multiple alternative version requirements for plugin '" + name + "'");
          ok = false;
        }
      }
      req.alternatives.emplace_back(std::move(name), std::move(version));
    }
    if (ok) plugin_requirements_.push_back(std::move(req));
  }
}

// Falco checks each requirement against the plugins it loaded once all files are read
// (falco_engine::check_plugin_requirements); driftwatch's "plugins" are built in.
void RuleLoader::CheckPluginRequirements() {
  for (const PluginRequirement& req : plugin_requirements_) {
    std::string error;
    bool satisfied = false;
    for (const auto& [name, version] : req.alternatives) {
      for (const BuiltinPlugin& b : kBuiltinPlugins) {
        if (name != b.name || !error.empty() || satisfied) continue;
        if (CompatibleWith(*ParseSemver(b.version), *ParseSemver(version))) {
          satisfied = true;
        } else {
          error = "Plugin '" + name + "' version '" + b.version +
                  "' is not compatible with required plugin version '" + version + "' (built into driftwatch)";
        }
      }
    }
    if (satisfied) continue;
    if (error.empty()) {
      for (const auto& [name, version] : req.alternatives) {
        error += error.empty() ? "" : ", ";
        error += name + " (>= " + version + ")";
      }
      std::string builtin;
      for (const BuiltinPlugin& b : kBuiltinPlugins) builtin += std::string(builtin.empty() ? "" : ", ") + b.name + " " + b.version;
      error = "Plugin requirement not satisfied, must load one of: " + error +
              " (driftwatch loads no plugins; built in: " + builtin + ")";
    }
    Diag(false, req.file, req.line, req.column, "", error);
  }
}

void RuleLoader::WarnShippedRedefinition(const std::string& kind, const std::string& name,
                                         const std::string& prev_file, int prev_line, const std::string& file,
                                         const YAML::Node& at) {
  if (!shipped_files_.contains(prev_file) || shipped_files_.contains(file)) return;
  Warn(file, at, kind + " '" + name + "'",
       "redefines the " + kind + " of the shipped rules at " + prev_file + ":" + std::to_string(prev_line) +
           ", which is replaced here (say so with override: replace, or give it another name)");
}

bool RuleLoader::ParseExceptions(const YAML::Node& n, const std::string& file, const std::string& what,
                                 std::vector<ExceptionSpec>* out) {
  if (!n.IsSequence()) {
    Error(file, n, what, "'exceptions' must be a list");
    return false;
  }
  bool ok = true;
  for (const YAML::Node& e : n) {
    ExceptionSpec x;
    x.file = file;
    x.line = e.Mark().line + 1;
    x.column = e.Mark().column + 1;
    if (!e.IsMap() || !e["name"] || !e["name"].IsScalar()) {
      Error(file, e, what, "each exception needs a name");
      ok = false;
      continue;
    }
    x.name = e["name"].as<std::string>();
    std::string ewhat = what + ", exception '" + x.name + "'";
    const YAML::Node fields = e["fields"];
    const YAML::Node comps = e["comps"];
    if (fields) {
      if (fields.IsScalar()) {
        x.single_field = true;
        x.fields.push_back(fields.as<std::string>());
        if (comps && !comps.IsScalar()) {
          Error(file, comps, ewhat, "with a single field, 'comps' is a single operator");
          ok = false;
          continue;
        }
        x.comps.push_back(comps ? comps.as<std::string>() : "in");
      } else if (fields.IsSequence()) {
        for (const YAML::Node& f : fields) x.fields.push_back(f.as<std::string>());
        if (comps) {
          if (!comps.IsSequence() || comps.size() != fields.size()) {
            Error(file, comps, ewhat, "'comps' must list one operator per field");
            ok = false;
            continue;
          }
          for (const YAML::Node& c : comps) x.comps.push_back(c.as<std::string>());
        } else {
          x.comps.assign(x.fields.size(), "=");
        }
      } else {
        Error(file, fields, ewhat, "'fields' must be a field or a list of fields");
        ok = false;
        continue;
      }
      bool fields_ok = true;
      for (size_t i = 0; i < x.fields.size(); ++i) {
        std::string name, arg;
        bool has_arg;
        SplitField(x.fields[i], &name, &arg, &has_arg);
        if (!FindField(name)) {
          Error(file, fields, ewhat, "unknown field '" + name + "'");
          fields_ok = false;
        }
        if (!CompOp(x.comps[i])) {
          Error(file, comps ? comps : e, ewhat, "unknown operator '" + x.comps[i] + "'");
          fields_ok = false;
        }
      }
      if (!fields_ok) {
        ok = false;
        continue;
      }
    }
    if (const YAML::Node values = e["values"]) {
      if (!values.IsSequence()) {
        Error(file, values, ewhat, "'values' must be a list");
        ok = false;
        continue;
      }
      if (auto bad = BadEscape(values)) {
        Error(file, values, ewhat, "value " + *bad);
        ok = false;
        continue;
      }
      for (const YAML::Node& v : values) x.values.push_back(v);
    }
    out->push_back(std::move(x));
  }
  return ok;
}

// Appends exceptions: values of an exception already defined (by name) are added to it; a
// new name adds a new exception.
void RuleLoader::MergeExceptions(std::vector<ExceptionSpec> in, RuleDef* r, const std::string& file,
                                 const YAML::Node& at, const std::string& what) {
  for (ExceptionSpec& x : in) {
    auto it = std::find_if(r->exceptions.begin(), r->exceptions.end(),
                           [&](const ExceptionSpec& e) { return e.name == x.name; });
    if (it == r->exceptions.end()) {
      if (x.fields.empty()) {
        Error(file, at, what, "exception '" + x.name + "' is new here and needs 'fields'");
        continue;
      }
      r->exceptions.push_back(std::move(x));
      continue;
    }
    if (!x.fields.empty() && x.fields != it->fields) {
      Error(file, at, what, "exception '" + x.name + "': appended fields differ from its definition");
      continue;
    }
    for (YAML::Node& v : x.values) it->values.push_back(v);
  }
}

void RuleLoader::AddRule(const YAML::Node& item, const std::string& file, const Lines& lines) {
  std::string name;
  if (!ScalarString(item, "rule", file, "rule", &name) || name.empty()) {
    Error(file, item, "rule", "a rule needs a name");
    return;
  }
  const std::string what = "rule '" + name + "'";
  static const std::set<std::string, std::less<>> kKeys = {
      "rule", "condition", "output", "desc", "priority", "tags", "enabled", "exceptions", "override",
      "append", "source", "skip-if-unknown-filter", "warn_evttypes", "capture", "capture_duration"};
  for (const auto& kv : item) {
    std::string k = kv.first.as<std::string>();
    if (!kKeys.contains(k)) Warn(file, kv.first, what, "unknown key '" + k + "' ignored");
  }
  auto existing = rule_index_.find(name);
  RuleDef* prev = existing == rule_index_.end() ? nullptr : &rules_[existing->second];
  bool append = item["append"] && item["append"].as<bool>();
  if (append) Warn(file, item, what, kWarningAppend);
  const YAML::Node override = item["override"];
  // Falco refuses a rule redefined, appended to or overridden with another source
  // (find_prev_rule); without a `source` key an append or override keeps the rule's.
  const std::string source_key = item["source"] && item["source"].IsScalar() ? item["source"].as<std::string>() : "";
  {
    const bool defines = !override && !append && (item["condition"] || item["output"] || item["desc"] || item["priority"]);
    const std::string source = defines && source_key.empty() ? "syscall" : source_key;
    if (prev && !source.empty() && source != prev->source) {
      Error(file, item["source"] ? item["source"] : item, what,
            "Rule has been re-defined with a different source ('" + source + "', was '" + prev->source + "' at " +
                prev->file + ":" + std::to_string(prev->line) + ")");
      return;
    }
  }

  auto priority_of = [&](Priority* out) {
    std::string p;
    if (!ScalarString(item, "priority", file, what, &p)) return false;
    auto pr = ParsePriority(p);
    if (!pr) {
      Error(file, item["priority"], what,
            "unknown priority '" + p + "' (emergency, alert, critical, error, warning, notice, informational, debug)");
      return false;
    }
    *out = *pr;
    return true;
  };
  auto tags_of = [&](std::vector<std::string>* out) {
    const YAML::Node t = item["tags"];
    if (!t.IsSequence()) {
      Error(file, t, what, "'tags' must be a list");
      return false;
    }
    for (const YAML::Node& x : t) out->push_back(x.as<std::string>());
    return true;
  };
  auto text_of = [&](const char* key, Text* out) {
    const YAML::Node n = item[key];
    if (!n.IsScalar()) {
      Error(file, n, what, std::string("'") + key + "' must be a string");
      return false;
    }
    *out = MakeText(n, file, lines);
    return true;
  };

  if (override && append) {
    Error(file, override, what,
          "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. "
          "'condition: append') under 'override' instead.");
    return;
  }
  if (override) {
    if (!prev) {
      Error(file, item, what, "override of a rule that is not defined (define it first, or load its file first)");
      return;
    }
    if (!override.IsMap()) {
      Error(file, override, what, "'override' must map keys to append or replace");
      return;
    }
    static const std::set<std::string, std::less<>> kAppendable = {"condition", "output", "desc", "tags", "exceptions"};
    static const std::set<std::string, std::less<>> kReplaceable = {
        "condition", "output", "desc", "priority", "tags", "exceptions", "enabled",
        "skip-if-unknown-filter", "warn_evttypes", "capture", "capture_duration"};
    std::map<std::string, std::string> modes;
    for (const auto& kv : override) {
      std::string k = kv.first.as<std::string>();
      std::string m = kv.second.IsScalar() ? kv.second.as<std::string>() : "";
      if (m != "append" && m != "replace") {
        Error(file, kv.second, what, "override mode of '" + k + "' must be append or replace");
        return;
      }
      if ((m == "append" && !kAppendable.contains(k)) || (m == "replace" && !kReplaceable.contains(k))) {
        Error(file, kv.first, what, "key '" + k + "' cannot be overridden with " + m);
        return;
      }
      if (!item[k]) {
        Error(file, kv.first, what, "override names '" + k + "' but the item has no such key");
        return;
      }
      modes[k] = m;
    }
    for (const auto& kv : item) {
      std::string k = kv.first.as<std::string>();
      // `source` selects the rule (checked above); it cannot be changed.
      if (k != "rule" && k != "override" && k != "source" && kKeys.contains(k) && !modes.contains(k)) {
        Error(file, kv.first, what, "key '" + k + "' has no override mode (add it under override)");
        return;
      }
    }
    RuleDef next = *prev;
    for (const auto& [k, m] : modes) {
      bool app = m == "append";
      if (k == "condition") {
        Text t;
        if (!text_of("condition", &t)) return;
        if (app) next.cond.Append(std::move(t)); else next.cond.Replace(std::move(t));
      } else if (k == "output") {
        Text t;
        if (!text_of("output", &t)) return;
        if (app) {
          next.output.value += " " + t.value;
        } else {
          next.output = std::move(t);
        }
      } else if (k == "desc") {
        std::string d;
        ScalarString(item, "desc", file, what, &d);
        next.desc = app ? next.desc + " " + d : d;
      } else if (k == "tags") {
        std::vector<std::string> t;
        if (!tags_of(&t)) return;
        if (!app) next.tags.clear();
        for (auto& x : t) {
          if (std::find(next.tags.begin(), next.tags.end(), x) == next.tags.end()) next.tags.push_back(x);
        }
      } else if (k == "priority") {
        if (!priority_of(&next.priority)) return;
      } else if (k == "enabled") {
        next.enabled = item["enabled"].as<bool>();
      } else if (k == "exceptions") {
        std::vector<ExceptionSpec> ex;
        if (!ParseExceptions(item["exceptions"], file, what, &ex)) return;
        if (app) {
          MergeExceptions(std::move(ex), &next, file, item["exceptions"], what);
        } else {
          next.exceptions = std::move(ex);
        }
      } else if (k == "skip-if-unknown-filter") {
        next.skip_if_unknown_filter = item[k].as<bool>();
      }
    }
    *prev = std::move(next);
    return;
  }
  if (append) {
    if (!prev) {
      Error(file, item, what, "append to a rule that is not defined (define it first, or load its file first)");
      return;
    }
    if (item["condition"]) {
      Text t;
      if (!text_of("condition", &t)) return;
      prev->cond.Append(std::move(t));
    }
    if (item["exceptions"]) {
      std::vector<ExceptionSpec> ex;
      if (!ParseExceptions(item["exceptions"], file, what, &ex)) return;
      MergeExceptions(std::move(ex), prev, file, item["exceptions"], what);
    }
    if (item["enabled"]) prev->enabled = item["enabled"].as<bool>();
    for (const char* k : {"output", "desc", "priority", "tags"}) {
      if (item[k]) Warn(file, item[k], what, std::string("append: true ignores '") + k + "' (use override: replace)");
    }
    return;
  }
  // `enabled` alone toggles a rule defined earlier.
  if (!item["condition"] && !item["output"] && !item["desc"] && !item["priority"] && item["enabled"]) {
    Warn(file, item, what, kWarningEnabled);
    if (!prev) {
      Error(file, item, what, "'enabled' for a rule that is not defined");
      return;
    }
    prev->enabled = item["enabled"].as<bool>();
    return;
  }
  // A definition; a later definition of the same name replaces the earlier one.
  RuleDef r;
  r.name = name;
  r.file = file;
  r.line = item.Mark().line + 1;
  r.column = item.Mark().column + 1;
  bool ok = true;
  for (const char* k : {"condition", "output", "desc", "priority"}) {
    if (!item[k]) {
      Error(file, item, what, std::string("missing '") + k + "'");
      ok = false;
    }
  }
  if (!ok) return;
  Text c;
  if (!text_of("condition", &c)) return;
  r.cond.Replace(std::move(c));
  if (!text_of("output", &r.output)) return;
  if (!ScalarString(item, "desc", file, what, &r.desc)) return;
  // A bad priority or tags is reported; the rule is still compiled so that the errors of
  // its condition and output show in the same run.
  priority_of(&r.priority);
  if (item["tags"]) tags_of(&r.tags);
  if (item["enabled"]) r.enabled = item["enabled"].as<bool>();
  if (item["skip-if-unknown-filter"]) r.skip_if_unknown_filter = item["skip-if-unknown-filter"].as<bool>();
  if (!source_key.empty()) r.source = source_key;
  if (r.source != "syscall") {
    // Falco skips rules of a source no plugin of its provides; driftwatch has only syscall.
    r.unknown_source = true;
    Warn(file, item["source"], what, "Unknown source " + r.source + ", skipping");
  }
  if (item["exceptions"]) {
    std::vector<ExceptionSpec> ex;
    if (!ParseExceptions(item["exceptions"], file, what, &ex)) return;
    for (const ExceptionSpec& x : ex) {
      if (x.fields.empty()) {
        Error(file, item["exceptions"], what, "exception '" + x.name + "' needs 'fields'");
        return;
      }
    }
    r.exceptions = std::move(ex);
  }
  if (prev) {
    *prev = std::move(r);
  } else {
    rule_index_[name] = rules_.size();
    rules_.push_back(std::move(r));
  }
}

void RuleLoader::AddMacro(const YAML::Node& item, const std::string& file, const Lines& lines) {
  std::string name;
  if (!ScalarString(item, "macro", file, "macro", &name) || name.empty()) {
    Error(file, item, "macro", "a macro needs a name");
    return;
  }
  const std::string what = "macro '" + name + "'";
  const YAML::Node c = item["condition"];
  if (!c || !c.IsScalar()) {
    Error(file, item, what, "a macro needs a 'condition' string");
    return;
  }
  Text t = MakeText(c, file, lines);
  auto it = macros_.find(name);
  bool append = item["append"] && item["append"].as<bool>();
  if (append) Warn(file, item, what, kWarningAppend);
  if (append && item["override"]) {
    Error(file, item["override"], what,
          "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. "
          "'condition: append') under 'override' instead.");
    return;
  }
  if (const YAML::Node o = item["override"]) {
    std::string mode = o.IsMap() && o["condition"] ? o["condition"].as<std::string>() : "";
    if (mode != "append" && mode != "replace") {
      Error(file, o, what, "a macro's override is {condition: append} or {condition: replace}");
      return;
    }
    if (it == macros_.end()) {
      Error(file, item, what, "override of a macro that is not defined");
      return;
    }
    append = mode == "append";
    if (!append) {
      it->second.cond.Replace(std::move(t));
      it->second.visibility = next_index_++;
      return;
    }
  }
  if (append) {
    if (it == macros_.end()) {
      Error(file, item, what, "append to a macro that is not defined");
      return;
    }
    it->second.cond.Append(std::move(t));
    it->second.visibility = next_index_++;
    return;
  }
  MacroDef m;
  m.name = name;
  m.file = file;
  m.line = item.Mark().line + 1;
  m.column = item.Mark().column + 1;
  m.cond.Replace(std::move(t));
  // A redefinition keeps the first definition's place, as Falco's define_info.
  m.index = next_index_;
  if (it != macros_.end()) {
    // Falco's file redefining a shipped macro with the same condition changes nothing.
    if (it->second.cond.joined != m.cond.joined)
      WarnShippedRedefinition("macro", name, it->second.file, it->second.line, file, item);
    m.index = it->second.index;
  }
  m.visibility = next_index_++;
  macros_[name] = std::move(m);
}

void RuleLoader::AddList(const YAML::Node& item, const std::string& file) {
  std::string name;
  if (!ScalarString(item, "list", file, "list", &name) || name.empty()) {
    Error(file, item, "list", "a list needs a name");
    return;
  }
  const std::string what = "list '" + name + "'";
  const YAML::Node items = item["items"];
  std::vector<std::string> values;
  if (items && !items.IsNull()) {
    if (!items.IsSequence()) {
      Error(file, items, what, "'items' must be a list");
      return;
    }
    for (const YAML::Node& v : items) {
      if (!v.IsScalar()) {
        Error(file, v, what, "list items must be strings");
        return;
      }
      if (auto bad = BadEscape(v)) {
        Error(file, v, what, "item " + *bad);
        return;
      }
      values.push_back(v.as<std::string>());
    }
  } else if (!items) {
    Error(file, item, what, "a list needs 'items'");
    return;
  }
  auto it = lists_.find(name);
  bool append = item["append"] && item["append"].as<bool>();
  if (append) Warn(file, item, what, kWarningAppend);
  if (append && item["override"]) {
    Error(file, item["override"], what,
          "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. "
          "'items: append') under 'override' instead.");
    return;
  }
  if (const YAML::Node o = item["override"]) {
    std::string mode = o.IsMap() && o["items"] ? o["items"].as<std::string>() : "";
    if (mode != "append" && mode != "replace") {
      Error(file, o, what, "a list's override is {items: append} or {items: replace}");
      return;
    }
    if (it == lists_.end()) {
      Error(file, item, what, "override of a list that is not defined");
      return;
    }
    append = mode == "append";
    if (!append) {
      it->second.items = std::move(values);
      it->second.visibility = next_index_++;
      return;
    }
  }
  if (append) {
    if (it == lists_.end()) {
      Error(file, item, what, "append to a list that is not defined");
      return;
    }
    for (auto& v : values) it->second.items.push_back(std::move(v));
    it->second.visibility = next_index_++;
    return;
  }
  ListDef l{name, std::move(values), file, item.Mark().line + 1, item.Mark().column + 1, next_index_, next_index_};
  if (it != lists_.end()) {
    if (it->second.items != l.items)
      WarnShippedRedefinition("list", name, it->second.file, it->second.line, file, item);
    l.index = it->second.index;
  }
  ++next_index_;
  lists_[name] = std::move(l);
}

// A list's items with the lists it names pasted in, as Falco's compile_list_infos: an item
// (not in quotes) that names a list defined before this list's latest definition or
// append is replaced by that list's own items as written, one level deep; any other item
// is the string itself.
void RuleLoader::ExpandList(const ListDef& def) {
  std::vector<std::string> out;
  for (const std::string& raw : def.items) {
    auto [text, quoted] = Unquote(raw);
    auto ref = quoted ? lists_.end() : lists_.find(text);
    if (ref != lists_.end() && ref->second.index < def.visibility) {
      for (const std::string& item : ref->second.items) out.push_back(Unquote(item).first);
    } else {
      out.push_back(std::move(text));
    }
  }
  expanded_[def.name] = std::move(out);
}

// Falco resolves each macro against the macros before it (compile_macros_infos): one that
// names a later or unknown macro is an error even when no rule uses it.
void RuleLoader::CheckMacroVisibility() {
  std::vector<MacroDef*> order;
  for (auto& [name, m] : macros_) {
    if (m.ast) order.push_back(&m);
  }
  std::sort(order.begin(), order.end(), [](const MacroDef* a, const MacroDef* b) { return a->index < b->index; });
  for (MacroDef* m : order) {
    std::vector<const cond::Node*> stack = {m->ast.get()};
    while (!stack.empty()) {
      const cond::Node* n = stack.back();
      stack.pop_back();
      for (const auto& c : n->children) stack.push_back(c.get());
      if (n->kind != cond::NodeKind::kMacro) continue;
      auto used = macros_.find(n->field);
      if (used != macros_.end() && used->second.index < m->visibility) {
        if (broken_macros_.contains(n->field)) broken_macros_.insert(m->name);  // reported there
        continue;
      }
      if (used == macros_.end() && lists_.contains(n->field)) continue;  // the compiler says why
      std::string file = m->file;
      int line = m->line, col = m->column;
      m->cond.Locate(n->offset, &file, &line, &col);
      std::string why = "Undefined macro '" + n->field + "' used in filter.";
      if (used != macros_.end()) {
        why += " (it is defined later, at " + used->second.file + ":" + std::to_string(used->second.line) +
               ": a macro may use only macros defined before it)";
      }
      Diag(false, file, line, col, "macro '" + m->name + "'", why);
      broken_macros_.insert(m->name);
    }
  }
}

// (f1 c1 v1 and f2 c2 v2) or ... for one exception of the rule; null when it has no values.
cond::NodePtr RuleLoader::ExceptionAst(const RuleDef& r, const ExceptionSpec& x) {
  // A value that is not a scalar (a map or list where one text belongs) compares as empty
  // text: never a throw out of the loader (yaml-cpp's as<string>() throws on it).
  auto text_of = [](const YAML::Node& v) { return v.IsScalar() ? v.Scalar() : std::string(); };
  auto make_check = [&text_of](const std::string& field, const std::string& comp,
                               const YAML::Node& value) {
    auto n = std::make_unique<cond::Node>();
    n->kind = cond::NodeKind::kCheck;
    SplitField(field, &n->field, &n->field_arg, &n->has_field_arg);
    n->op = *CompOp(comp);
    if (IsListComp(comp)) {
      if (value.IsSequence()) {
        for (const YAML::Node& v : value) {
          auto [text, quoted] = Unquote(text_of(v));
          n->values.push_back(cond::Value{std::move(text), quoted, 0});
        }
      } else {
        // A single value for a list operator names a list (or is one literal item).
        auto [text, quoted] = Unquote(text_of(value));
        n->values.push_back(cond::Value{std::move(text), quoted, 0});
      }
    } else {
      auto [text, quoted] = Unquote(text_of(value));
      n->values.push_back(cond::Value{std::move(text), true, 0});
    }
    return n;
  };
  auto any = std::make_unique<cond::Node>();
  any->kind = cond::NodeKind::kOr;
  if (x.single_field) {
    if (x.values.empty()) return nullptr;
    if (IsListComp(x.comps[0])) {
      YAML::Node seq(YAML::NodeType::Sequence);
      for (const YAML::Node& v : x.values) seq.push_back(v);
      any->children.push_back(make_check(x.fields[0], x.comps[0], seq));
    } else {
      for (const YAML::Node& v : x.values) any->children.push_back(make_check(x.fields[0], x.comps[0], v));
    }
  } else {
    for (const YAML::Node& tuple : x.values) {
      if (!tuple.IsSequence() || tuple.size() != x.fields.size()) {
        Diag(false, x.file, tuple.Mark().line + 1, tuple.Mark().column + 1, "rule '" + r.name + "'",
             "exception '" + x.name + "': each value must list " + std::to_string(x.fields.size()) +
                 " item(s), one per field");
        continue;
      }
      auto all = std::make_unique<cond::Node>();
      all->kind = cond::NodeKind::kAnd;
      for (size_t i = 0; i < x.fields.size(); ++i) {
        all->children.push_back(make_check(x.fields[i], x.comps[i], tuple[i]));
      }
      if (all->children.size() == 1) {
        any->children.push_back(std::move(all->children[0]));
      } else {
        any->children.push_back(std::move(all));
      }
    }
  }
  if (any->children.empty()) return nullptr;
  return any;
}

void RuleLoader::CompileRule(const RuleDef& def, RuleSet* set) {
  const std::string what = "rule '" + def.name + "'";
  // Errors of a disabled rule are warnings: it never runs, but `rules check` shows them.
  bool as_warning = !def.enabled;
  size_t errors_before = std::count_if(diags_.begin(), diags_.end(), [](const RuleDiagnostic& d) { return !d.warning; });
  auto report_cond = [&](const cond::Error& e) {
    std::string file = def.file;
    int line = def.line, col = def.column;
    if (!e.macro.empty()) {
      auto m = macros_.find(e.macro);
      if (m != macros_.end()) {
        m->second.cond.Locate(e.offset, &file, &line, &col);
        Diag(as_warning, file, line, col, "macro '" + e.macro + "'", e.message + " (used by " + what + ")");
        return;
      }
    }
    def.cond.Locate(e.offset, &file, &line, &col);
    Diag(as_warning, file, line, col, what, e.message);
  };

  if (def.unknown_source) return;  // warned where it was defined
  auto parsed = cond::Parse(def.cond.joined);
  cond::NodePtr root;
  if (!parsed) {
    report_cond(parsed.error());
  } else {
    root = std::move(*parsed);
  }
  auto rule = std::make_unique<Rule>();
  rule->name = def.name;
  rule->desc = def.desc;
  rule->condition = def.cond.joined;
  rule->priority = def.priority;
  rule->tags = def.tags;
  rule->enabled = def.enabled;
  rule->source_file = def.file;
  rule->line = def.line;
  for (const ExceptionSpec& x : def.exceptions) rule->exception_names.push_back(x.name);
  // Outputs fold into one line: Falco prints one line per alert.
  std::string out = def.output.value;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ' || out.back() == '\r')) out.pop_back();
  for (char& ch : out) {
    if (ch == '\n') ch = ' ';
  }
  rule->output = out;
  auto fmt = OutputFormat::Parse(rule->output);
  if (!fmt) {
    int line, col;
    def.output.Locate(fmt.error().offset, &line, &col);
    // Falco checks the output first and skips the rule on an unknown field there too.
    if (def.skip_if_unknown_filter && fmt.error().unknown_field) {
      Diag(true, def.output.file, line, col, what, fmt.error().message + ": rule skipped (skip-if-unknown-filter)");
      return;
    }
    Diag(as_warning, def.output.file, line, col, what, fmt.error().message);
  } else {
    rule->format = std::move(*fmt);
  }
  if (root) {
    cond::Names names;
    names.macro = [this](std::string_view n) -> const cond::Node* {
      auto it = macros_.find(n);
      if (it == macros_.end() || broken_macros_.contains(it->first)) return nullptr;
      return it->second.ast.get();
    };
    names.list = [this](std::string_view n) -> const std::vector<std::string>* {
      auto it = expanded_.find(n);
      return it == expanded_.end() ? nullptr : &it->second;
    };
    // False: the rule is skipped (skip-if-unknown-filter), or dropped on an error.
    auto compile = [&](const cond::Node& ast, cond::CompiledCondition* out) {
      auto compiled = cond::Compile(ast, names);
      if (compiled) {
        *out = std::move(*compiled);
        return true;
      }
      const cond::Error& e = compiled.error();
      const bool broken_macro = e.kind == cond::Error::Kind::kUndefinedMacro &&
                                broken_macros_.count(e.name) != 0;
      if (def.skip_if_unknown_filter &&
          (e.kind == cond::Error::Kind::kUnknownField || e.kind == cond::Error::Kind::kUnknownEventType)) {
        Diag(true, def.file, def.line, def.column, what, e.message + ": rule skipped (skip-if-unknown-filter)");
        return false;
      }
      if (!broken_macro) report_cond(e);
      return as_warning;
    };
    if (!compile(*root, &rule->compiled)) return;
    rule->inactive_reason = rule->compiled.inactive_reason();
    // Each exception on its own, tried once the condition holds: a match it excepts is
    // told apart from no match (allowed drift is summarized, not forgotten).
    for (const ExceptionSpec& x : def.exceptions) {
      cond::NodePtr ast = ExceptionAst(def, x);
      if (!ast) continue;
      RuleException ex;
      ex.name = x.name;
      if (!compile(*ast, &ex.compiled)) return;
      rule->exceptions.push_back(std::move(ex));
    }
  }
  size_t errors_after = std::count_if(diags_.begin(), diags_.end(), [](const RuleDiagnostic& d) { return !d.warning; });
  if (errors_after != errors_before) return;
  if (!root) return;
  if (rule->enabled && rule->inactive_reason.empty()) set->active_.push_back(rule.get());
  if (rule->enabled && !rule->inactive_reason.empty()) ++set->inactive_;
  set->rules_.push_back(std::move(rule));
}

RuleSetLoad RuleLoader::Finish() {
  // Lists, expanded.
  for (const auto& [name, def] : lists_) ExpandList(def);
  // Macros, parsed once; rules expand them in place.
  for (auto& [name, m] : macros_) {
    auto p = cond::Parse(m.cond.joined);
    if (!p) {
      std::string file = m.file;
      int line = m.line, col = m.column;
      m.cond.Locate(p.error().offset, &file, &line, &col);
      Diag(false, file, line, col, "macro '" + name + "'", p.error().message);
      broken_macros_.insert(name);
      continue;
    }
    m.ast = std::move(*p);
  }
  CheckMacroVisibility();
  CheckPluginRequirements();
  auto set = std::unique_ptr<RuleSet>(new RuleSet());
  for (const RuleDef& r : rules_) CompileRule(r, set.get());
  // In file order, then by position: the item pass and the compile pass interleave.
  std::map<std::string, size_t> file_order;
  for (const std::string& f : files_) file_order.emplace(f, file_order.size());
  for (const RuleDiagnostic& d : diags_) file_order.emplace(d.file, file_order.size());
  std::stable_sort(diags_.begin(), diags_.end(), [&](const RuleDiagnostic& a, const RuleDiagnostic& b) {
    size_t fa = file_order[a.file], fb = file_order[b.file];
    if (fa != fb) return fa < fb;
    if (a.line != b.line) return a.line < b.line;
    return a.column < b.column;
  });
  bool failed = std::any_of(diags_.begin(), diags_.end(), [](const RuleDiagnostic& d) { return !d.warning; });
  if (failed) return std::unexpected(std::move(diags_));
  set->warnings_ = std::move(diags_);
  return set;
}

RuleSetLoad LoadRuleSources(const std::vector<RuleSource>& sources) {
  RuleLoader loader;
  // yaml-cpp throws where a node is not what a step expects; each step checks, and this is
  // the backstop: a rule file is refused, never the end of the program that loads it.
  try {
    for (const RuleSource& s : sources) loader.AddSource(s);
    return loader.Finish();
  } catch (const YAML::Exception& e) {
    RuleDiagnostic d;
    d.file = sources.empty() ? std::string() : sources.back().name;
    d.line = e.mark.is_null() ? 0 : e.mark.line + 1;
    d.column = e.mark.is_null() ? 0 : e.mark.column + 1;
    d.message = "unexpected YAML structure: " + e.msg;
    return std::unexpected(std::vector<RuleDiagnostic>{std::move(d)});
  }
}

namespace {

bool SameFile(const std::string& a, const std::string& b) {
  std::error_code ec;
  return a == b || std::filesystem::equivalent(a, b, ec);
}

bool IsShipped(const std::string& path) {
  for (const std::string& s : ShippedRuleFiles()) {
    if (SameFile(path, s)) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> RuleFilesToLoad(const std::vector<std::string>& user_files, bool no_shipped) {
  std::vector<std::string> files;
  if (!no_shipped) files = ShippedRuleFiles();
  for (const std::string& f : user_files) {
    if (std::none_of(files.begin(), files.end(), [&](const std::string& s) { return SameFile(f, s); })) {
      files.push_back(f);
    }
  }
  return files;
}

RuleSetLoad LoadRuleFiles(const std::vector<std::string>& paths) {
  RuleLoader loader;
  for (const std::string& p : paths) {
    std::ifstream in(p, std::ios::binary);
    if (!in) {
      loader.AddError(RuleDiagnostic{p, 0, 0, "", "cannot read the file", false});
      continue;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
      loader.AddError(RuleDiagnostic{p, 0, 0, "", "read error", false});
      continue;
    }
    loader.AddSource(RuleSource{p, ss.str(), IsShipped(p)});
  }
  return loader.Finish();
}

std::string ShippedRulesDir() {
  if (const char* env = std::getenv("DRIFTWATCH_RULES_DIR"); env && *env) return env;
  // Installed: <prefix>/bin/driftwatch* beside <prefix>/share/driftwatch/rules, whatever the
  // prefix the package or `cmake --install --prefix` chose (so no path is compiled in that
  // a relocated install would miss, and a stale install never shadows a build tree's rules).
  std::error_code ec;
  std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    std::filesystem::path installed = exe.parent_path().parent_path() / "share/driftwatch/rules";
    if (std::filesystem::is_directory(installed, ec)) return installed.string();
  }
  // A binary in its build tree: the source tree's rules.
  return DW_RULES_SOURCE_DIR;
}

std::vector<std::string> ShippedRuleFiles() {
  std::string d = ShippedRulesDir();
  return {d + "/driftwatch_macros.yaml", d + "/driftwatch_rules.yaml"};
}

}  // namespace driftwatch
