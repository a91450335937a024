// cgroup_path: which container (if any) a cgroup path names, from the path alone.
//
// A pure function over a table of the layouts that runtimes and kubelets create (see the
// table in cgroup_path.cc and tests/unit/cgroup_path_test.cc for real shapes): docker
// (cgroupfs and systemd), CRI containerd and CRI-O under kubepods (cgroupfs and systemd
// drivers, guaranteed/burstable/besteffort), podman, nerdctl, and containerd's own
// `/<namespace>/<id>` as `ctr run` makes it. The deepest path component that names a
// container wins, so nested cgroups (`.../libpod-<id>.scope/container`, a container's own
// sub-cgroups, docker-in-docker) resolve to the innermost container.
//
// Thread-safe: pure functions (ContainerOfPid reads /proc).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace driftwatch {

struct CgroupContainer {
  // "docker", "cri-containerd", "cri-o", "podman", "nerdctl", or "containerd" for the
  // `/<namespace>/<id>` layout of containerd's own namespaces (ctr run).
  std::string runtime;
  // 64 lowercase hex chars, except for runtime "containerd", where it is the name `ctr`
  // was given (any containerd identifier: [A-Za-z0-9]+([._-][A-Za-z0-9]+)*).
  std::string id;
  // Kubernetes pod UID with dashes ("" outside a pod). Static pods have a 32-hex UID.
  std::string pod_uid;
  // runtime "containerd" only: the first path component, which is the containerd
  // namespace when ctr picked the cgroup (k8s.io, default, ...); "" otherwise.
  std::string ctr_namespace;

  bool operator==(const CgroupContainer&) const = default;
};

// The container a cgroup path (as in /proc/<pid>/cgroup, starting with '/') belongs to;
// nullopt for host cgroups ("/", "/user.slice/...", "/system.slice/containerd.service",
// "/process_api/<32 hex>", ...) and for runtime helpers (conmon scopes).
std::optional<CgroupContainer> ContainerFromCgroupPath(std::string_view path);

// The container of a process from the text of /proc/<pid>/cgroup: cgroup v1 lines
// "N:controllers:/path", v2 "0::/path", or both (hybrid). The first line whose path names
// a container wins, except that a 64-hex layout is preferred over the weaker containerd
// `/<namespace>/<name>` guess (on hybrid hosts some hierarchies may sit elsewhere).
// Malformed lines are skipped.
std::optional<CgroupContainer> ContainerFromProcCgroup(std::string_view proc_pid_cgroup_text);

// Reads /proc/<pid>/cgroup; nullopt if it can't be read or names no container.
std::optional<CgroupContainer> ContainerOfPid(pid_t pid);

}  // namespace driftwatch
