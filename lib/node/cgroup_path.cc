#include "lib/node/cgroup_path.h"

#include <array>
#include <vector>

#include "lib/node/procfs.h"

namespace driftwatch {
namespace {

bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// A pod UID as kubelets write it: a UUID with '-' (cgroupfs) or '_' (systemd driver), or
// the 32-hex config hash of a static pod. Returned with dashes, lowercase kept as is.
std::optional<std::string> PodUid(std::string_view s) {
  if (s.size() == 32) {
    for (char c : s) {
      if (!IsHex(c)) return std::nullopt;
    }
    return std::string(s);
  }
  if (s.size() != 36) return std::nullopt;
  std::string out(s);
  for (size_t i = 0; i < out.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (out[i] != '-' && out[i] != '_') return std::nullopt;
      out[i] = '-';
    } else if (!IsHex(out[i])) {
      return std::nullopt;
    }
  }
  return out;
}

// "pod<uid>" (cgroupfs driver) or "kubepods[-<qos>]-pod<uid>.slice" (systemd driver).
std::optional<std::string> PodUidOfComponent(std::string_view c) {
  if (StartsWith(c, "pod")) return PodUid(c.substr(3));
  if (StartsWith(c, "kubepods") && EndsWith(c, ".slice")) {
    size_t at = c.rfind("-pod");
    if (at == std::string_view::npos) return std::nullopt;
    std::string_view uid = c.substr(at + 4);
    return PodUid(uid.substr(0, uid.size() - 6));
  }
  return std::nullopt;
}

// containerd's identifier rule (namespaces and container ids): alphanumeric runs joined by
// single '.', '_' or '-', at most 76 characters.
bool IsContainerdIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 76) return false;
  bool prev_sep = true;  // a separator may neither lead nor repeat
  for (char c : s) {
    bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (alnum) {
      prev_sep = false;
    } else if (c == '.' || c == '_' || c == '-') {
      if (prev_sep) return false;
      prev_sep = true;
    } else {
      return false;
    }
  }
  return !prev_sep;
}

bool IsSystemdUnit(std::string_view s) {
  for (std::string_view suffix : {".slice", ".scope", ".service", ".mount", ".socket", ".swap"}) {
    if (EndsWith(s, suffix)) return true;
  }
  return false;
}

// Top-level cgroups that look like `/<namespace>/<name>` but are not containerd's: they
// hold host services or other runtimes. "process_api" is this machine's sandbox.
constexpr std::array<std::string_view, 12> kNotContainerdNamespaces = {
    "process_api", "kubepods", "docker", "lxc", "lxc.payload", "lxc.monitor",
    "libpod_parent", "machine", "system", "user", "init", "actions_job"};

// Prefix/suffix layouts of one path component around a 64-hex id.
struct ScopeLayout {
  std::string_view prefix;
  std::string_view suffix;
  std::string_view runtime;
};
constexpr std::array<ScopeLayout, 9> kScopeLayouts = {{
    {"docker-", ".scope", "docker"},                  // docker, systemd driver
    {"cri-containerd-", ".scope", "cri-containerd"},  // kubelet + containerd, systemd driver
    {"crio-", ".scope", "cri-o"},                     // CRI-O, systemd driver
    {"crio-", "", "cri-o"},                           // CRI-O, cgroupfs driver
    {"libpod-payload-", "", "podman"},                // podman --cgroups=split
    {"libpod-payload-", ".scope", "podman"},
    {"libpod-", ".scope", "podman"},  // podman, systemd (the payload may sit in .../container)
    {"libpod-", "", "podman"},        // podman, cgroupfs
    {"nerdctl-", ".scope", "nerdctl"},
}};

// Runtime helpers that sit beside a container in its pod or slice but are not it.
constexpr std::array<std::string_view, 2> kHelperPrefixes = {"crio-conmon-", "libpod-conmon-"};

std::optional<std::string> PodUidAbove(const std::vector<std::string_view>& comps, size_t i) {
  for (size_t j = i; j-- > 0;) {
    if (auto uid = PodUidOfComponent(comps[j])) return uid;
  }
  return std::nullopt;
}

// The container named by component i alone (its ancestors only supply the pod UID).
std::optional<CgroupContainer> MatchComponent(const std::vector<std::string_view>& comps,
                                              size_t i) {
  std::string_view c = comps[i];
  for (std::string_view helper : kHelperPrefixes) {
    if (StartsWith(c, helper)) return std::nullopt;
  }
  CgroupContainer out;
  // "<pod slice>:cri-containerd:<id>": containerd's systemd-style cgroupsPath written
  // through cgroupfs (k3s/rke2 and containerd-managed kubelets on cgroup v2).
  if (size_t at = c.find(":cri-containerd:"); at != std::string_view::npos) {
    std::string_view id = c.substr(at + 16);
    if (!IsHex64(id)) return std::nullopt;
    out.runtime = "cri-containerd";
    out.id = std::string(id);
    auto uid = PodUidOfComponent(c.substr(0, at));
    if (!uid) uid = PodUidAbove(comps, i);
    out.pod_uid = uid.value_or("");
    return out;
  }
  for (const ScopeLayout& l : kScopeLayouts) {
    if (!StartsWith(c, l.prefix) || !EndsWith(c, l.suffix)) continue;
    std::string_view id = c.substr(l.prefix.size(), c.size() - l.prefix.size() - l.suffix.size());
    if (!IsHex64(id)) continue;
    out.runtime = std::string(l.runtime);
    out.id = std::string(id);
    out.pod_uid = PodUidAbove(comps, i).value_or("");
    return out;
  }
  if (IsHex64(c)) {
    out.id = std::string(c);
    if (auto uid = PodUidAbove(comps, i)) {
      // kubelet's cgroupfs driver: /kubepods[/<qos>]/pod<uid>/<id>. cri-dockerd makes the
      // same shape; containerd is what Kubernetes runs on today.
      out.runtime = "cri-containerd";
      out.pod_uid = *uid;
    } else if (i == 1 && comps[0] != "docker" && IsContainerdIdentifier(comps[0]) &&
               !IsSystemdUnit(comps[0])) {
      out.runtime = "containerd";  // ctr run with a 64-hex id: /<namespace>/<id>
      out.ctr_namespace = std::string(comps[0]);
    } else {
      out.runtime = "docker";  // /docker/<id>, or a --cgroup-parent of docker's
    }
    return out;
  }
  return std::nullopt;
}

}  // namespace

std::optional<CgroupContainer> ContainerFromCgroupPath(std::string_view path) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  std::vector<std::string_view> comps;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    if (next > pos) comps.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  for (std::string_view c : comps) {
    if (c == "." || c == "..") return std::nullopt;  // not a path the kernel prints
  }
  for (size_t i = comps.size(); i-- > 0;) {
    if (auto m = MatchComponent(comps, i)) return m;
  }
  // containerd's own namespaces (ctr run): exactly /<namespace>/<name>, any identifier as
  // the name. Weaker than the layouts above, so only for two-component paths whose first
  // component is neither a systemd unit nor a known host or runtime group.
  if (comps.size() == 2 && IsContainerdIdentifier(comps[0]) &&
      IsContainerdIdentifier(comps[1]) && !IsSystemdUnit(comps[0]) &&
      !IsSystemdUnit(comps[1])) {
    for (std::string_view no : kNotContainerdNamespaces) {
      if (comps[0] == no) return std::nullopt;
    }
    CgroupContainer out;
    out.runtime = "containerd";
    out.id = std::string(comps[1]);
    out.ctr_namespace = std::string(comps[0]);
    return out;
  }
  return std::nullopt;
}

std::optional<CgroupContainer> ContainerFromProcCgroup(std::string_view text) {
  std::optional<CgroupContainer> weak;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    // "hierarchy-ID:controller-list:cgroup-path"; the path itself may hold ':'.
    size_t c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    auto m = ContainerFromCgroupPath(line.substr(c2 + 1));
    if (!m) continue;
    if (m->runtime != "containerd") return m;
    if (!weak) weak = std::move(m);
  }
  return weak;
}

std::optional<CgroupContainer> ContainerOfPid(pid_t pid) {
  std::string text;
  if (!ReadSmallFile("/proc/" + std::to_string(pid) + "/cgroup", &text)) return std::nullopt;
  return ContainerFromProcCgroup(text);
}

}  // namespace driftwatch
