// Stage 3 (offline, and the sensor's last resort): which container an event belongs to,
// judged from the process tree that the audit events themselves show.
//
// The container runtime leaves a trail in the exec records:
//   containerd-shim-runc-v2 -namespace NS -id ID ...   names the shim and its first container
//   runc ... create|run|start|exec ... ID             names the container it works on
//   runc init (execve of /proc/self/exe, then execveat) runtime plumbing inside it
// A workload's first exec has a pid never seen before, whose parent at that moment is
// either runc (still alive) or the shim (runc already gone): both are followed. The
// overlay device of an executable attributed this way is remembered as a second signal.
// Attribution works only when the rules were active before the container started.
//
// Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>

#include "driftwatch/v1/event.pb.h"

namespace driftwatch {

class ProcessTree {
 public:
  // Sets container_id, attribution and the parent's name on an exec or chmod event, and
  // learns from it. Events of other kinds are left alone.
  void Attribute(v1::Event* ev);

  // Container runtime namespace ("k8s.io") a container id was seen with, or "".
  std::string RuntimeNamespace(const std::string& container_id) const;

  size_t size() const { return procs_.size(); }

 private:
  enum class Role : uint8_t { kProcess, kShim, kRuntime, kRuntimeInit };
  struct Proc {
    std::string container;  // "host" or a container id
    std::string target;     // shim: last container it started; runc: the one it works on
    std::string comm;
    Role role = Role::kProcess;
  };

  // Bounded: a long log of short-lived host processes must not grow without end.
  static constexpr size_t kMaxProcs = 1u << 20;

  std::unordered_map<uint32_t, Proc> procs_;
  std::unordered_map<uint64_t, std::string> dev_to_container_;  // (major << 32 | minor)
  std::unordered_map<std::string, std::string> namespaces_;
};

}  // namespace driftwatch
