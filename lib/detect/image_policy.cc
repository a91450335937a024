#include "lib/detect/image_policy.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "lib/base/yaml_documents.h"
#include "lib/event/image_ref.h"

namespace driftwatch {
namespace {

bool IsHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "sha256:<hex>" normalized, or "" when `d` is not a sha256 digest.
std::string NormalizeDigest(std::string_view d) {
  if (d.size() > 7 && Lower(d.substr(0, 7)) == "sha256:") d.remove_prefix(7);
  if (!IsHex64(d)) return "";
  return "sha256:" + Lower(d);
}

// The digest a reference pins: "repo@sha256:..", "sha256:..", or a bare 64-hex id.
std::string PinnedDigest(std::string_view ref) {
  if (IsHex64(ref)) return NormalizeDigest(ref);
  return NormalizeDigest(ParseImageName(ref).digest);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool IsYamlName(std::string_view name) {
  return name.ends_with(".yaml") || name.ends_with(".yml");
}

// A map child, or an undefined node when `n` is not a map or lacks the key. yaml-cpp throws
// on a scalar's subscript and on any use of the "zombie" node a missing key gives.
YAML::Node Child(const YAML::Node& n, const char* key) {
  if (!n.IsDefined() || !n.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  YAML::Node child = n[key];
  if (!child.IsDefined()) return YAML::Node(YAML::NodeType::Undefined);
  return child;
}

}  // namespace

Result<ImagePolicy> ImagePolicy::LoadFiles(const std::vector<std::string>& paths) {
  ImagePolicy p;
  for (const std::string& path : paths) {
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      // The message as ever; the code open(2)'s errno implies (missing: kNotFound).
      return std::unexpected(Error(Error::FromErrno(errno, path).code(), path + ": cannot open"));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return std::unexpected(Error::Io(path + ": read error"));
    if (auto ok = p.AddText(ss.str(), path); !ok) return std::unexpected(ok.error());
  }
  return p;
}

Result<ImagePolicy> ImagePolicy::LoadText(std::string_view text, std::string_view name) {
  ImagePolicy p;
  if (auto ok = p.AddText(text, name); !ok) return std::unexpected(ok.error());
  return p;
}

Result<> ImagePolicy::AddText(std::string_view text, std::string_view name) {
  return IsYamlName(name) ? AddYaml(text, name) : AddList(text, name);
}

Result<> ImagePolicy::AddList(std::string_view text, std::string_view name) {
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = Trim(line);
    if (line.empty()) continue;
    std::string d = PinnedDigest(line);
    if (d.empty()) {
      return std::unexpected(Error::InvalidInput(
          std::string(name) + ":" + std::to_string(line_no) + ": '" + std::string(line) +
          "' is not pinned by digest (expected repo@sha256:<64 hex> or sha256:<64 hex>)"));
    }
    digests_.insert(std::move(d));
  }
  return {};
}

Result<> ImagePolicy::AddYaml(std::string_view text, std::string_view name) {
  std::vector<YAML::Node> docs;
  try {
    docs = LoadYamlDocuments(std::string(text));
  } catch (const YAML::Exception& e) {
    return std::unexpected(Error::InvalidInput(YamlPlace(name, e.mark) + ": " + e.msg));
  }
  std::vector<std::pair<std::string, std::string>> found;  // digest, where
  std::vector<std::string> warnings;
  auto add_pod_spec = [&](const YAML::Node& spec) {
    for (const char* list : {"containers", "initContainers", "ephemeralContainers"}) {
      YAML::Node cs = Child(spec, list);
      if (!cs.IsSequence()) continue;
      for (const YAML::Node& c : cs) {
        YAML::Node image = Child(c, "image");
        if (!image.IsScalar()) continue;
        const std::string& ref = image.Scalar();
        std::string d = PinnedDigest(ref);
        if (d.empty()) {
          warnings.push_back(YamlPlace(name, image.Mark()) + ": image " + ref +
                             " is not pinned by digest: it approves nothing");
        } else {
          found.emplace_back(std::move(d), YamlPlace(name, image.Mark()));
        }
      }
    }
  };
  // Objects nest: a List holds items, workloads hold a pod template.
  std::vector<YAML::Node> todo(docs.rbegin(), docs.rend());
  try {
    while (!todo.empty()) {
      YAML::Node obj = todo.back();
      todo.pop_back();
      if (!obj.IsMap()) continue;  // empty documents, comments only
      YAML::Node kind_node = Child(obj, "kind");
      if (!kind_node.IsScalar()) continue;
      const std::string& kind = kind_node.Scalar();
      YAML::Node spec = Child(obj, "spec");
      if (kind == "List") {
        YAML::Node items = Child(obj, "items");
        if (items.IsSequence()) {
          for (size_t i = items.size(); i-- > 0;) todo.push_back(items[i]);
        }
      } else if (kind == "Pod") {
        add_pod_spec(spec);
      } else if (kind == "PodTemplate") {
        add_pod_spec(Child(Child(obj, "template"), "spec"));
      } else if (kind == "Deployment" || kind == "DaemonSet" || kind == "StatefulSet" ||
                 kind == "ReplicaSet" || kind == "Job" || kind == "ReplicationController") {
        add_pod_spec(Child(Child(spec, "template"), "spec"));
      } else if (kind == "CronJob") {
        add_pod_spec(Child(Child(Child(Child(spec, "jobTemplate"), "spec"), "template"), "spec"));
      }
    }
  } catch (const YAML::Exception& e) {
    return std::unexpected(Error::InvalidInput(YamlPlace(name, e.mark) + ": " + e.msg));
  }
  for (auto& [d, where] : found) digests_.insert(std::move(d));
  for (auto& w : warnings) warnings_.push_back(std::move(w));
  return {};
}

bool ImagePolicy::Approves(std::string_view digest) const {
  std::string d = NormalizeDigest(digest);
  return !d.empty() && digests_.contains(d);
}

std::vector<std::string> ContainerDigests(const v1::ContainerInfo& c) {
  std::vector<std::string> out;
  auto add = [&out](std::string d) {
    if (!d.empty() && std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
  };
  add(NormalizeDigest(c.image_digest()));
  add(NormalizeDigest(RepoDigestOf(c.image_ref())));
  if (c.image_ref().find('@') == std::string::npos) add(NormalizeDigest(c.image_ref()));
  add(PinnedDigest(c.image()));
  return out;
}

ImageVerdict CheckPosture(const v1::ContainerInfo& c) {
  ImageVerdict v;
  // The reference the container was created from: a digest pins it, a tag does not.
  std::string ref = c.image();
  if (ref.empty() && !c.image_repository().empty()) {
    ref = c.image_repository();
    if (!c.image_tag().empty()) ref += ":" + c.image_tag();
    if (!c.image_digest().empty()) ref += "@" + c.image_digest();
  }
  if (!ref.empty() && PinnedDigest(ref).empty()) v.mutable_tag = true;
  // Only where the runtime or the overlay said what the root filesystem is.
  v.writable_rootfs = !c.read_only_rootfs() && (c.source() == "cri" || !c.upperdir().empty());
  return v;
}

ImageVerdict ImagePolicy::Check(const v1::ContainerInfo& c) const {
  ImageVerdict v = CheckPosture(c);
  v.checked = true;
  std::vector<std::string> digests = ContainerDigests(c);
  for (const std::string& d : digests) {
    if (digests_.contains(d)) {
      v.approved = true;
      return v;
    }
  }
  const std::string image = c.image().empty() ? c.image_repository() : c.image();
  if (digests.empty()) {
    v.reason = image.empty() ? "image unknown: the runtime did not report it"
                             : "image " + image + " has no digest to check";
  } else {
    v.reason = "image " + (image.empty() ? std::string("?") : image) + " (" + digests.front() +
               ") is not in the approved images";
  }
  return v;
}

}  // namespace driftwatch
