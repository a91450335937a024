#include "lib/node/prevent_policy.h"

#include <fnmatch.h>

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
      bool any = false;
      for (const auto& kv : n) {
        const std::string& k = kv.first.Scalar();
        if (k == "name") {
          e.name = kv.second.Scalar();
        } else if (k == "namespaces" || k == "pods" || k == "paths" || k == "sha256") {
          auto list = Strings(n, k.c_str(), name);
          if (!list) return std::unexpected(list.error());
          any |= !list->empty();
          if (k == "namespaces") e.namespaces = std::move(*list);
          if (k == "pods") e.pods = std::move(*list);
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
        } else if (k == "labels") {
          if (!kv.second.IsMap())
            return std::unexpected(Error::InvalidInput(YamlPlace(name, kv.second.Mark()) +
                                                       ": labels: a map of label to value"));
          for (const auto& l : kv.second) e.labels[l.first.Scalar()] = l.second.Scalar();
          any |= !e.labels.empty();
        } else {
          return std::unexpected(Error::InvalidInput(
              YamlPlace(name, kv.first.Mark()) + ": unknown key " + k +
              " (name, namespaces, pods, labels, paths, sha256)"));
        }
      }
      // An entry without a selector would allow all drift: say so instead.
      if (!any)
        return std::unexpected(Error::InvalidInput(
            YamlPlace(name, n.Mark()) + ": an entry needs at least one of namespaces, pods, labels, "
                                    "paths, sha256 (it would allow every drifted exec)"));
      p.wants_container_ |= !e.namespaces.empty() || !e.pods.empty() || !e.labels.empty();
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

std::optional<std::string> PreventPolicy::Allows(const Exec& x) const {
  std::optional<std::string> hex;  // computed once, for the first entry that asks
  bool hashed = false;
  for (const Entry& e : entries_) {
    if (!AnyGlob(e.paths, x.path, FNM_PATHNAME)) continue;
    if (!e.namespaces.empty() || !e.pods.empty() || !e.labels.empty()) {
      if (x.container == nullptr) continue;
      if (!AnyGlob(e.namespaces, x.container->pod_namespace())) continue;
      if (!AnyGlob(e.pods, x.container->pod_name())) continue;
      bool labels = true;
      for (const auto& [k, v] : e.labels) {
        bool found = false;
        for (const v1::Label& l : x.container->labels()) found |= l.key() == k && l.value() == v;
        labels &= found;
      }
      if (!labels) continue;
    }
    if (!e.sha256.empty()) {
      if (!hashed) {
        hashed = true;
        if (x.sha256) {
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
