// cri_client: a client of the Kubernetes Container Runtime Interface (CRI, gRPC package
// runtime.v1) over the runtime's unix socket: containerd, CRI-O, k3s, cri-dockerd.
// The sensor's container registry reads container and pod facts through it; `dw-cri` (a
// small kubelet stand-in) and the tests also drive pod and container lifecycle with it.
//
// Thread-safety: a CriClient is immutable after Connect() and every method is const; one
// client may be used from several threads at once (gRPC channels and stubs are thread-safe).
//
// Costs: every method but version()/RuntimeName()/RuntimeVersion() is one unary gRPC round
// trip on the unix socket, bounded by the deadline given to Connect() (StopContainer adds
// its grace period; a runtime that is restarting is waited for within the deadline). The
// verbose status calls also carry the container's full OCI spec as JSON (a few KB) that is
// parsed here. List calls return every item in one message (16 MB cap, as the kubelet's).
// RunPodSandbox and CreateContainer+StartContainer take tens of ms on containerd 1.6.
//
// Errors are Results (lib/base/result.h): the message names the call, the socket and the gRPC
// status, e.g. "CRI ContainerStatus on /run/containerd/containerd.sock: UNAVAILABLE: ...";
// the code tells a container or pod the runtime does not know (kNotFound) from a runtime that
// is down or slow (kUnavailable), so a registry can tell "gone" from "runtime down".
//
// Strings the runtime keeps as it was given them (names, labels, annotations, images) are
// its bytes as they are, UTF-8 or not: containerd 1.6 does not check them, and an answer
// holding one is still read whole (proto/cri declares them `bytes`).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/result.h"

namespace driftwatch {

using CriLabels = std::map<std::string, std::string>;

// Kubelet label keys (pkg/kubelet/types/labels.go): set on pod sandboxes and containers.
inline constexpr const char* kCriLabelPodName = "io.kubernetes.pod.name";
inline constexpr const char* kCriLabelPodNamespace = "io.kubernetes.pod.namespace";
inline constexpr const char* kCriLabelPodUid = "io.kubernetes.pod.uid";
inline constexpr const char* kCriLabelContainerName = "io.kubernetes.container.name";

// A bind mount of a container (CRI Mount): what the kubelet asked for.
struct CriMount {
  std::string container_path;
  std::string host_path;
  bool readonly = false;
  bool selinux_relabel = false;
  // "private", "rslave", "rshared" (CRI PROPAGATION_PRIVATE, _HOST_TO_CONTAINER,
  // _BIDIRECTIONAL, named as Falco names them), "unknown" for other values.
  std::string propagation = "private";
};

struct CriContainer {
  // From ListContainers and ContainerStatus.
  std::string id;              // 64 hex digits on containerd and CRI-O
  std::string pod_sandbox_id;  // ContainerStatus: from verbose info (sandboxID), else ""
  std::string name;            // metadata.name: the container name in the pod spec
  uint32_t attempt = 0;        // metadata.attempt (restart count)
  std::string image;           // as the runtime normalized it: docker.io/library/x:1
  std::string image_ref;       // digest, or the image id (sha256:<config>) when no digest
  std::string state;           // "created", "running", "exited" or "unknown"
  int64_t created_at_ns = 0;   // Unix epoch nanoseconds
  CriLabels labels;
  CriLabels annotations;

  // ContainerStatus only (0 / "" / false when unknown or not reported by the runtime).
  int64_t started_at_ns = 0;
  int64_t finished_at_ns = 0;
  int32_t exit_code = 0;
  // From the verbose info JSON (containerd and CRI-O put `pid` there; containerd the rest).
  int32_t pid = 0;            // host PID of the container's init process, 0 if not running
  std::string snapshotter;    // "overlayfs"
  std::string snapshot_key;   // the snapshot holding the rootfs (containerd: the container id)
  bool read_only_rootfs = false;  // runtimeSpec root.readonly
  // The CRI config's linux.security_context.privileged when the runtime echoes the config
  // (containerd does); else guessed from the OCI spec: CAP_SYS_ADMIN and no masked paths.
  bool privileged = false;
  std::string cgroup_path;    // runtimeSpec linux.cgroupsPath: /kubepods/.../pod<uid>/<id>
  // runtimeSpec root.path: relative to the OCI bundle ("rootfs": containerd, which mounts it
  // at <state>/io.containerd.runtime.v2.task/<namespace>/<id>/rootfs) or absolute (CRI-O).
  std::string root_path;
  std::vector<CriMount> mounts;  // ContainerStatus mounts, in the runtime's order
};

struct CriPod {
  std::string id;
  std::string name;       // metadata.name
  std::string namespace_;  // metadata.namespace
  std::string uid;        // metadata.uid
  uint32_t attempt = 0;
  std::string state;      // "ready" or "notready"
  int64_t created_at_ns = 0;
  CriLabels labels;
  CriLabels annotations;

  // PodSandboxStatus only.
  bool host_network = false;  // status linux.namespaces.options.network == NODE
  bool host_pid = false;      // status linux.namespaces.options.pid == NODE
  std::string ip;             // status network.ip ("" for host-network pods)
  int32_t pid = 0;            // verbose info `pid`: the sandbox (pause) process
  std::string cgroup_parent;  // verbose info config.linux.cgroup_parent
};

struct CriVersion {
  std::string version;              // kubelet API version ("0.1.0" from containerd)
  std::string runtime_name;         // "containerd", "cri-o", ...
  std::string runtime_version;      // "1.6.20~ds1"
  std::string runtime_api_version;  // "v1"
};

// What RunPodSandbox asks for; the kubelet's labels are added by the client.
struct CriPodSpec {
  std::string name;
  std::string namespace_ = "default";
  std::string uid;
  uint32_t attempt = 0;
  CriLabels labels;       // the pod's own labels; io.kubernetes.pod.{name,namespace,uid} added
  CriLabels annotations;
  std::string cgroup_parent;  // e.g. /kubepods/besteffort/pod<uid>; "" = runtime default
  bool host_network = true;   // NamespaceOption network = NODE: needs no CNI
  bool privileged = false;    // must be true to create privileged containers in the pod
  bool host_pid = false;      // NamespaceOption pid = NODE (a pod's hostPID: true)
  std::string hostname;       // "" = the node's (host network)
  std::string log_directory;  // where the runtime writes the containers' logs ("" = none)
};

// What CreateContainer asks for. Like a kubelet, the client adds the labels
// io.kubernetes.container.name and io.kubernetes.pod.{name,namespace,uid}. containerd
// refuses a privileged container unless its pod's spec is privileged too.
struct CriContainerSpec {
  std::string name;
  std::string image;                  // an image already present on the node
  std::vector<std::string> command;   // entrypoint override; empty = the image's
  std::vector<std::string> args;      // command override; empty = the image's
  CriLabels labels;
  CriLabels annotations;
  bool privileged = false;
  bool read_only_rootfs = false;
  std::vector<CriMount> mounts;       // bind mounts (propagation: "private", "rslave", "rshared")
  // securityContext.capabilities: names without CAP_ as Kubernetes writes them, "ALL" in drop.
  std::vector<std::string> add_capabilities;
  std::vector<std::string> drop_capabilities;
  bool no_new_privs = false;          // allowPrivilegeEscalation: false
  int64_t run_as_user = -1;           // runAsUser; -1 = the image's user
  std::vector<std::pair<std::string, std::string>> envs;
  std::string log_path;               // relative to the pod's log_directory ("" = none)
};

struct CriContainerFilter {
  std::string pod_sandbox_id;  // "" = any pod
  bool running_only = false;
  CriLabels label_selector;    // all must match
};

class CriClient {
 public:
  // Opens a channel to `endpoint` (a unix socket path or "unix:///path") and calls Version
  // with `timeout` as deadline; fails with a message naming the socket if nothing answers.
  // `timeout` is then the deadline of every later call.
  static Result<std::unique_ptr<CriClient>> Connect(const std::string& endpoint,
                                                    std::chrono::milliseconds timeout);

  // The sockets runtimes listen on by default, most common first: containerd, CRI-O (both
  // paths), k3s's containerd, cri-dockerd.
  static std::vector<std::string> DefaultEndpoints();

  ~CriClient();
  CriClient(const CriClient&) = delete;
  CriClient& operator=(const CriClient&) = delete;

  // The socket path this client talks to.
  const std::string& endpoint() const;

  // From the Version call made by Connect (no round trip).
  const CriVersion& version() const;
  const std::string& RuntimeName() const { return version().runtime_name; }
  const std::string& RuntimeVersion() const { return version().runtime_version; }

  // Asks again (one round trip): a cheap liveness probe.
  Result<CriVersion> Version() const;

  // Every container the runtime knows (CRI has no namespace: containerd lists k8s.io only),
  // with the fields of the non-verbose list: no pid, spec or status times.
  Result<std::vector<CriContainer>> ListContainers(const CriContainerFilter& filter = {}) const;

  // Verbose status of one container: everything in CriContainer. An unknown id is an error
  // with code kNotFound. A malformed verbose info JSON is not an error: the fields it
  // would fill stay empty. `raw_info`, if given, receives the verbose info JSON as is.
  Result<CriContainer> ContainerStatus(const std::string& id,
                                       std::string* raw_info = nullptr) const;

  // Verbose status of one pod sandbox. An unknown id: kNotFound.
  Result<CriPod> PodSandboxStatus(const std::string& id, std::string* raw_info = nullptr) const;

  Result<std::vector<CriPod>> ListPodSandbox() const;

  // Lifecycle, as a kubelet drives it. RunPodSandbox returns the pod sandbox id,
  // CreateContainer the container id. `pod` must be the spec the pod was run with, as a
  // kubelet sends it: containerd 1.6 puts the container's cgroup under this config's
  // cgroup_parent (not the pod's stored one) and checks `privileged` against it.
  Result<std::string> RunPodSandbox(const CriPodSpec& pod) const;
  Result<std::string> CreateContainer(const std::string& pod_id, const CriPodSpec& pod,
                                      const CriContainerSpec& c) const;
  Result<void> StartContainer(const std::string& id) const;
  // SIGTERM, then SIGKILL after `timeout_s` seconds (0: SIGKILL at once). Stopping a
  // stopped container is not an error; an unknown one is (NOT_FOUND).
  Result<void> StopContainer(const std::string& id, int64_t timeout_s) const;
  // Removing an unknown container or pod is not an error (the CRI makes them idempotent).
  Result<void> RemoveContainer(const std::string& id) const;
  Result<void> StopPodSandbox(const std::string& id) const;
  Result<void> RemovePodSandbox(const std::string& id) const;

  struct Impl;

 private:
  explicit CriClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<const Impl> impl_;
};

// Fills the verbose-info fields of `c` (pid, pod_sandbox_id, snapshotter, snapshot_key,
// read_only_rootfs, privileged, cgroup_path, root_path) from ContainerStatus info["info"] as
// containerd writes it (CRI-O: only pid). Pure; exposed for unit tests. Returns an error, and
// leaves the fields it could not read alone, if the JSON does not parse.
Result<void> ApplyContainerInfo(std::string_view info_json, CriContainer& c);

// Same for a pod: pid, cgroup_parent.
Result<void> ApplyPodInfo(std::string_view info_json, CriPod& p);

}  // namespace driftwatch
