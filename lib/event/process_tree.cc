#include "lib/event/process_tree.h"
#include "lib/event/event_json.h"
#include "lib/event/event_view.h"

#include <string_view>
#include <vector>

namespace driftwatch {
namespace {

constexpr std::string_view kHost = "host";

// Value of a Go-style flag ("-id X", "--id X", "-id=X"), or "".
std::string FlagValue(const google::protobuf::RepeatedPtrField<std::string>& args,
                      std::string_view name) {
  for (int i = 1; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a.substr(0, 2) == "--") a.remove_prefix(2);
    else if (a.substr(0, 1) == "-") a.remove_prefix(1);
    else continue;
    if (a == name && i + 1 < args.size()) return args[i + 1];
    if (a.size() > name.size() && a.substr(0, name.size()) == name && a[name.size()] == '=') {
      return std::string(a.substr(name.size() + 1));
    }
  }
  return "";
}

bool IsOciRuntime(const v1::ProcessExec& e) {
  std::string_view bin = Basename(e.args_size() ? e.args(0) : e.exe());
  return bin == "runc" || bin == "crun";
}

// For "runc [global options] create|run|start|exec [options] ID": the ID, else "" (also
// for the runtime's other commands: state, kill, delete run on the host, in no container).
std::string RuntimeTarget(const google::protobuf::RepeatedPtrField<std::string>& args) {
  if (args.size() < 3) return "";
  for (int i = 1; i + 1 < args.size(); ++i) {
    std::string_view a = args[i];
    if (a == "create" || a == "run" || a == "start" || a == "exec") {
      const std::string& id = args[args.size() - 1];
      return (id.empty() || id[0] == '-') ? "" : id;
    }
  }
  return "";
}

bool IsShim(const v1::ProcessExec& e) {
  const std::string& path = !e.exe().empty() || e.args_size() == 0 ? e.exe() : e.args(0);
  return Basename(path).substr(0, 15) == "containerd-shim";
}

}  // namespace

std::string ProcessTree::RuntimeNamespace(const std::string& container_id) const {
  auto it = namespaces_.find(container_id);
  return it == namespaces_.end() ? "" : it->second;
}

void ProcessTree::Attribute(v1::Event* ev) {
  // Execs and chmods name their parent; other kinds cannot be attributed from the tree.
  const std::optional<ProcessView> view = ProcessOf(*ev);
  if (!view || !view->Carries(ProcessView::kPpid)) return;
  const uint32_t pid = view->pid, ppid = view->ppid;
  v1::ProcessExec* exec = view->exec != nullptr ? ev->mutable_exec() : nullptr;
  const bool success = exec != nullptr && exec->success();  // a chmod changes nothing in the tree
  const uint32_t dev_major = exec != nullptr ? exec->exe_dev_major() : 0;
  const uint32_t dev_minor = exec != nullptr ? exec->exe_dev_minor() : 0;

  auto pit = procs_.find(ppid);
  const Proc* parent = pit == procs_.end() ? nullptr : &pit->second;
  auto sit = procs_.find(pid);
  const Proc* self = sit == procs_.end() ? nullptr : &sit->second;
  std::string parent_name = parent ? parent->comm : "";

  // Which container, and how we know.
  std::string container(kHost);
  v1::Attribution how = v1::ATTRIBUTION_UNKNOWN;
  Role role = Role::kProcess;
  std::string target;
  uint64_t dev_key = (uint64_t{dev_major} << 32) | dev_minor;

  if (exec != nullptr && success && IsShim(*exec)) {
    role = Role::kShim;
    target = FlagValue(exec->args(), "id");
    std::string ns = FlagValue(exec->args(), "namespace");
    if (!target.empty() && !ns.empty()) namespaces_[target] = ns;
    how = v1::ATTRIBUTION_PROCESS_TREE;
  } else if (exec != nullptr && exec->runtime_plumbing()) {
    role = Role::kRuntimeInit;
    if (parent != nullptr && (parent->role == Role::kRuntime || parent->role == Role::kRuntimeInit)) {
      target = parent->target;
    } else if (self != nullptr && self->role == Role::kRuntimeInit) {
      target = self->target;  // the execveat that follows the /proc/self/exe exec
    }
    if (!target.empty()) {
      container = target;
      how = v1::ATTRIBUTION_PROCESS_TREE;
    }
  } else if (exec != nullptr && success && IsOciRuntime(*exec)) {
    role = Role::kRuntime;  // runc itself runs on the host
    how = v1::ATTRIBUTION_PROCESS_TREE;
    target = RuntimeTarget(exec->args());
    if (!target.empty() && parent != nullptr && parent->role == Role::kShim) {
      pit->second.target = target;
    }
  } else if (parent != nullptr && !parent->target.empty() &&
             (parent->role == Role::kRuntime || parent->role == Role::kRuntimeInit)) {
    container = parent->target;
    how = v1::ATTRIBUTION_PROCESS_TREE;
  } else if (parent != nullptr && parent->role == Role::kProcess) {
    container = parent->container;
    how = v1::ATTRIBUTION_PARENT;
  } else if (self != nullptr && self->role == Role::kProcess && self->container != kHost) {
    container = self->container;  // re-exec, or reparented to the shim
    how = v1::ATTRIBUTION_PROCESS_TREE;
  } else if (parent != nullptr && parent->role == Role::kShim && !parent->target.empty()) {
    container = parent->target;  // a workload's first exec after runc exited
    how = v1::ATTRIBUTION_PROCESS_TREE;
  } else if (dev_major == 0 && dev_minor != 0 && dev_to_container_.count(dev_key)) {
    container = dev_to_container_[dev_key];
    how = v1::ATTRIBUTION_DEVICE;
  } else if (parent != nullptr) {
    how = v1::ATTRIBUTION_PARENT;  // child of a runtime process that named nothing
  }

  ev->set_container_id(container);
  ev->set_attribution(how);
  SetParentName(ev, parent_name);

  // Overlay rootfs devices are anonymous (major 0): remember which container owns one.
  if (exec != nullptr && success && container != kHost && role == Role::kProcess &&
      dev_major == 0 && dev_minor != 0) {
    dev_to_container_.emplace(dev_key, container);
  }

  if (exec == nullptr || !success) return;  // the process did not change
  if (procs_.size() >= kMaxProcs && self == nullptr) {
    // Forget host processes first: containers are what attribution is for.
    for (auto it = procs_.begin(); it != procs_.end() && procs_.size() >= kMaxProcs / 2;) {
      it = (it->second.container == kHost && it->second.role == Role::kProcess) ? procs_.erase(it)
                                                                                   : std::next(it);
    }
  }
  Proc& p = procs_[pid];
  p.container = std::move(container);
  p.role = role;
  p.target = std::move(target);
  p.comm = exec->comm();
}

}  // namespace driftwatch
