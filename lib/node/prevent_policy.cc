#include "lib/node/prevent_policy.h"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <fstream>

#include <yaml-cpp/yaml.h>

#include "lib/base/yaml_documents.h"
#include "lib/event/file_digest.h"

namespace driftwatch {
namespace {

bool Glob(const std::string& pattern, std::string_view value, int flags = 0) {
  return fnmatch(pattern.c_str(), std::string(value).c_str(), flags) == 0;
}

bool AnyGlob(const std::vector<std::string>& globs, std::string_view value, int flags = 0) {
  if (globs.empty()) return true;
  for (const std::string& g : globs)
    if (Glob(g, value, flags)) return true;
  return false;
}

// A list of strings under `key`, or a clear error.
Result<std::vector<std::string>> Strings(const YAML::Node& entry, const char* key,
                                         std::string_view name) {
  std::vector<std::string> out;
  const YAML::Node n = entry[key];
  if (!n.IsDefined() || n.IsNull()) return out;
  if (!n.IsSequence())
    return std::unexpected(Error::InvalidInput(YamlPlace(name, n.Mark()) + ": " + key +
                                               ": a list of strings"));
  for (const YAML::Node& v : n) {
    if (!v.IsScalar() || v.Scalar().empty())
      return std::unexpected(Error::InvalidInput(YamlPlace(name, v.Mark()) + ": " + key +
                                                 ": each item a non-empty string"));
    out.push_back(v.Scalar());
  }
  return out;
}

constexpr char kAnnotationPrefix[] = "driftwatch.io/";

// A map of string to string under `key` (labels, annotations), or a clear error.
Result<std::map<std::string, std::string>> StringMap(const YAML::Node& n, const std::string& key,
                                                     std::string_view name) {
  std::map<std::string, std::string> out;
  if (n.IsNull()) return out;
  if (!n.IsMap())
    return std::unexpected(Error::InvalidInput(YamlPlace(name, n.Mark()) + ": " + key +
                                               ": a map of key to value"));
  for (const auto& kv : n) {
    if (!kv.first.IsScalar() || kv.first.Scalar().empty() || !kv.second.IsScalar())
      return std::unexpected(Error::InvalidInput(YamlPlace(name, kv.first.Mark()) + ": " + key +
                                                 ": each key and value a string"));
    if (key == "annotations" && !kv.first.Scalar().starts_with(kAnnotationPrefix))
      return std::unexpected(Error::InvalidInput(
          YamlPlace(name, kv.first.Mark()) + ": annotations: " + kv.first.Scalar() +
          ": only keys under " + std::string(kAnnotationPrefix) + " (the sensor carries no other)"));
    out[kv.first.Scalar()] = kv.second.Scalar();
  }
  return out;
}

bool HasLabel(const google::protobuf::RepeatedPtrField<v1::Label>& labels, const std::string& k,
              const std::string& v) {
  for (const v1::Label& l : labels)
    if (l.key() == k) return l.value() == v;
  return false;
}

const std::string* FindLabel(const google::protobuf::RepeatedPtrField<v1::Label>& labels,
                             std::string_view k) {
  for (const v1::Label& l : labels)
    if (l.key() == k) return &l.value();
  return nullptr;
}

// Whether a glob matches the container's image under any of its names.
bool ImageMatches(const std::vector<std::string>& globs, const v1::ContainerInfo& c) {
  if (globs.empty()) return true;
  std::vector<std::string> names = {c.image(), c.image_ref()};
  if (!c.image_repository().empty()) {
    names.push_back(c.image_repository());
    if (!c.image_tag().empty()) names.push_back(c.image_repository() + ":" + c.image_tag());
    if (!c.image_digest().empty()) names.push_back(c.image_repository() + "@" + c.image_digest());
  }
  for (const std::string& n : names)
    if (!n.empty() && AnyGlob(globs, n)) return true;
  return false;
}

// A pod's own glob is whoever wrote the pod spec's, and fnmatch backtracks: one with many
// wildcards against a long path costs time exponential in them, on the prevention verdict's
// path too. Such globs allow nothing.
constexpr size_t kMaxAnnotationGlobBytes = 512;
constexpr size_t kMaxAnnotationGlobWildcards = 4;
constexpr size_t kMaxAnnotationGlobs = 64;

// Whether the path matches one of the comma-separated globs of the pod's annotation.
bool AnnotatedPath(const v1::ContainerInfo& c, const std::string& key, std::string_view path) {
  const std::string* globs = FindLabel(c.pod_annotations(), key);
  if (globs == nullptr) return false;
  size_t at = 0;
  for (size_t n = 0; at <= globs->size() && n < kMaxAnnotationGlobs; ++n) {
    size_t comma = globs->find(',', at);
    if (comma == std::string::npos) comma = globs->size();
    std::string g = globs->substr(at, comma - at);
    while (!g.empty() && g.front() == ' ') g.erase(g.begin());
    while (!g.empty() && g.back() == ' ') g.pop_back();
    const size_t wildcards = static_cast<size_t>(std::count_if(
        g.begin(), g.end(), [](char ch) { return ch == '*' || ch == '?' || ch == '['; }));
    if (g.starts_with("/") && g.size() <= kMaxAnnotationGlobBytes &&
        wildcards <= kMaxAnnotationGlobWildcards && Glob(g, path, FNM_PATHNAME))
      return true;
    at = comma + 1;
  }
  return false;
}

}  // namespace

Result<PreventPolicy> PreventPolicy::Parse(std::string_view text, std::string_view name) {
  PreventPolicy p;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return std::unexpected(Error::InvalidInput(YamlPlace(name, e.mark) + ": " + e.msg));
  }
  try {
    if (!root.IsDefined() || root.IsNull()) return p;  // empty: allows nothing
    if (!root.IsMap())
      return std::unexpected(Error::InvalidInput(YamlPlace(name, root.Mark()) +
                                                 ": a map with the key `allow`"));
    for (const auto& kv : root) {
      if (kv.first.Scalar() != "allow")
        return std::unexpected(Error::InvalidInput(YamlPlace(name, kv.first.Mark()) +
                                                   ": unknown key " + kv.first.Scalar() +
                                                   " (the file has one key: allow)"));
    }
    const YAML::Node allow = root["allow"];
    if (allow.IsNull()) return p;
    if (!allow.IsSequence())
      return std::unexpected(
          Error::InvalidInput(YamlPlace(name, allow.Mark()) + ": allow: a list of entries"));
    for (const YAML::Node& n : allow) {
      if (!n.IsMap())
        return std::unexpected(Error::InvalidInput(YamlPlace(name, n.Mark()) + ": an entry is a map"));
      Entry e;
      bool any = false;  // a selector: `rules` says which rules, not which drift
      for (const auto& kv : n) {
        const std::string& k = kv.first.Scalar();
        if (k == "name") {
          e.name = kv.second.Scalar();
        } else if (k == "namespaces" || k == "pods" || k == "paths" || k == "sha256" ||
                   k == "images" || k == "rules") {
          auto list = Strings(n, k.c_str(), name);
          if (!list) return std::unexpected(list.error());
          if (k != "rules") any |= !list->empty();
          if (k == "namespaces") e.namespaces = std::move(*list);
          if (k == "pods") e.pods = std::move(*list);
          if (k == "images") e.images = std::move(*list);
          if (k == "rules") e.rules = std::move(*list);
          if (k == "paths") {
            for (const std::string& g : *list) {
              if (g[0] != '/')
                return std::unexpected(Error::InvalidInput(
                    YamlPlace(name, kv.second.Mark()) + ": paths: " + g +
                    ": a path inside the container starts with /"));
            }
            e.paths = std::move(*list);
          }
          if (k == "sha256") {
            for (std::string h : *list) {
              for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
              if (h.size() != 64 || h.find_first_not_of("0123456789abcdef") != std::string::npos)
                return std::unexpected(Error::InvalidInput(
                    YamlPlace(name, kv.second.Mark()) + ": sha256: " + h + ": 64 hex digits"));
              e.sha256.insert(std::move(h));
            }
          }
        } else if (k == "labels" || k == "annotations") {
          auto map = StringMap(kv.second, k, name);
          if (!map) return std::unexpected(map.error());
          any |= !map->empty();
          (k == "labels" ? e.labels : e.annotations) = std::move(*map);
        } else if (k == "path_annotation") {
          if (!kv.second.IsScalar() || !kv.second.Scalar().starts_with(kAnnotationPrefix))
            return std::unexpected(Error::InvalidInput(
                YamlPlace(name, kv.second.Mark()) + ": path_annotation: an annotation key under " +
                kAnnotationPrefix + " (the sensor carries no other)"));
          e.path_annotation = kv.second.Scalar();
          any = true;
        } else {
          return std::unexpected(Error::InvalidInput(
              YamlPlace(name, kv.first.Mark()) + ": unknown key " + k +
              " (name, namespaces, pods, labels, annotations, images, paths, path_annotation, "
              "sha256, rules)"));
        }
      }
      // An entry without a selector would allow all drift: say so instead.
      if (!any)
        return std::unexpected(Error::InvalidInput(
            YamlPlace(name, n.Mark()) + ": an entry needs at least one of namespaces, pods, labels, "
                                    "annotations, images, paths, path_annotation, sha256 (it "
                                    "would allow all drift)"));
      p.wants_container_ |= !e.namespaces.empty() || !e.pods.empty() || !e.labels.empty() ||
                            !e.annotations.empty() || !e.images.empty() ||
                            !e.path_annotation.empty();
      p.entries_.push_back(std::move(e));
    }
  } catch (const YAML::Exception& e) {
    return std::unexpected(Error::InvalidInput(YamlPlace(name, e.mark) + ": " + e.msg));
  }
  return p;
}

Result<std::string> PreventPolicy::ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::unexpected(Error::FromErrno(errno, path));
  std::string text(kMaxTextBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return std::unexpected(Error::Io(path + ": read failed"));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxTextBytes) {
    return std::unexpected(Error::InvalidInput(path + ": longer than " +
                                               std::to_string(kMaxTextBytes) +
                                               " bytes, the most a policy holds"));
  }
  return text;
}

Result<std::string> PreventPolicy::ReadChecked(const std::string& path) {
  auto text = ReadText(path);
  if (!text) return std::unexpected(text.error());
  if (auto p = Parse(*text, path); !p) return std::unexpected(p.error());
  return text;
}

Result<PreventPolicy> PreventPolicy::Load(const std::string& path) {
  auto text = ReadText(path);
  if (!text) return std::unexpected(text.error());
  return Parse(*text, path);
}

void PreventPolicy::Add(const PreventPolicy& other, const std::string& name) {
  for (const Entry& e : other.entries_) {
    entries_.push_back(e);
    if (entries_.back().name.empty()) entries_.back().name = name;
  }
  wants_container_ |= other.wants_container_;
}

void PreventPolicy::AddPaths(const std::vector<std::string>& globs) {
  if (globs.empty()) return;
  Entry e;
  e.name = "--prevent-allow";
  e.paths = globs;
  entries_.push_back(std::move(e));
}

std::optional<std::string> PreventPolicy::Allows(const Exec& x, const RuleMatch* m) const {
  std::optional<std::string> hex;  // computed once, for the first entry that asks
  bool hashed = false;
  for (const Entry& e : entries_) {
    if (m != nullptr) {
      const std::vector<std::string>& want = e.rules;
      auto named = [&](const std::string& w) {
        return w == m->rule || std::find(m->tags->begin(), m->tags->end(), w) != m->tags->end();
      };
      // By default the drift rules, but not a denial's: the exec was stopped, which is
      // news whatever the policy says now (the sensor judged it by the policy it had).
      if (want.empty() ? !named("drift") || named("prevention")
                       : std::none_of(want.begin(), want.end(), named))
        continue;
    }
    if (!AnyGlob(e.paths, x.path, FNM_PATHNAME)) continue;
    if (!e.namespaces.empty() || !e.pods.empty() || !e.labels.empty() ||
        !e.annotations.empty() || !e.images.empty() || !e.path_annotation.empty()) {
      const v1::ContainerInfo* c = x.container;
      if (c == nullptr) continue;
      if (!AnyGlob(e.namespaces, c->pod_namespace())) continue;
      if (!AnyGlob(e.pods, c->pod_name())) continue;
      if (!std::all_of(e.labels.begin(), e.labels.end(), [c](const auto& kv) {
            return HasLabel(c->pod_labels(), kv.first, kv.second) ||
                   HasLabel(c->labels(), kv.first, kv.second);
          }))
        continue;
      if (!std::all_of(e.annotations.begin(), e.annotations.end(), [c](const auto& kv) {
            return HasLabel(c->pod_annotations(), kv.first, kv.second);
          }))
        continue;
      if (!ImageMatches(e.images, *c)) continue;
      if (!e.path_annotation.empty() && !AnnotatedPath(*c, e.path_annotation, x.path)) continue;
    }
    if (!e.sha256.empty()) {
      if (!hashed) {
        hashed = true;
        if (m != nullptr && !m->sha256_hex.empty()) {
          hex = std::string(m->sha256_hex);
        } else if (x.sha256) {
          if (auto raw = x.sha256()) hex = HexOf(*raw);
        }
      }
      if (!hex || !e.sha256.contains(*hex)) continue;
    }
    return e.name;
  }
  return std::nullopt;
}

}  // namespace driftwatch
