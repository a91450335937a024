#include "lib/k8s/cri_client.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "cri/runtime/v1/api.grpc.pb.h"
#include "lib/k8s/json_access.h"

namespace driftwatch {

namespace rt = ::runtime::v1;
using Json = nlohmann::json;

struct CriClient::Impl {
  std::string socket_path;
  std::chrono::milliseconds timeout{0};
  std::shared_ptr<grpc::Channel> channel;
  // Stub methods are non-const but thread-safe; the pointer keeps them callable from const.
  std::unique_ptr<rt::RuntimeService::Stub> stub;
  CriVersion version;
};

namespace {

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN_CODE";
  }
}

struct CallError {
  grpc::StatusCode code;
  std::string message;
};

// What a gRPC status means to a caller.
ErrorCode CodeOf(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::NOT_FOUND:
      return ErrorCode::kNotFound;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::UNIMPLEMENTED:
      return ErrorCode::kUnavailable;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::ALREADY_EXISTS:
      return ErrorCode::kInvalidInput;
    case grpc::StatusCode::DATA_LOSS:
      return ErrorCode::kCorruption;
    default:
      return ErrorCode::kIo;
  }
}

// One unary call with the client's deadline (+ `extra`). wait_for_ready: a channel that is
// reconnecting (runtime restarted) is waited for within the deadline instead of failing.
template <class Req, class Resp, class Fn>
std::expected<Resp, CallError> Call(const CriClient::Impl& impl, const char* method, Fn fn,
                                    const Req& req,
                                    std::chrono::milliseconds extra = std::chrono::milliseconds(0)) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + impl.timeout + extra);
  ctx.set_wait_for_ready(true);
  Resp resp;
  grpc::Status st = ((*impl.stub).*fn)(&ctx, req, &resp);
  if (st.ok()) return resp;
  std::string msg = "CRI " + std::string(method) + " on " + impl.socket_path + ": " +
                    CodeName(st.error_code());
  if (!st.error_message().empty()) msg += ": " + st.error_message();
  if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    msg += " (no answer within " + std::to_string((impl.timeout + extra).count()) + " ms)";
  } else if (st.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    msg += " (the runtime does not serve CRI runtime.v1: containerd's CRI plugin disabled?)";
  }
  return std::unexpected(CallError{st.error_code(), std::move(msg)});
}

template <class T>
std::unexpected<Error> Fail(CallError&& e) {
  return std::unexpected(Error(CodeOf(e.code), std::move(e.message)));
}

// Labels and annotations come as map entries (bytes: see proto/cri); a key sent twice
// keeps its last value, as a map parser would.
CriLabels ToMap(const google::protobuf::RepeatedPtrField<rt::BytesEntry>& entries) {
  CriLabels m;
  for (const rt::BytesEntry& e : entries) m[e.key()] = e.value();
  return m;
}

void FillMap(google::protobuf::RepeatedPtrField<rt::BytesEntry>* out, const CriLabels& in) {
  for (const auto& [k, v] : in) {
    rt::BytesEntry* e = out->Add();
    e->set_key(k);
    e->set_value(v);
  }
}

void FillMap(google::protobuf::Map<std::string, std::string>* out, const CriLabels& in) {
  for (const auto& [k, v] : in) (*out)[k] = v;
}

const char* ContainerStateName(rt::ContainerState s) {
  switch (s) {
    case rt::CONTAINER_CREATED: return "created";
    case rt::CONTAINER_RUNNING: return "running";
    case rt::CONTAINER_EXITED: return "exited";
    default: return "unknown";
  }
}

const char* PodStateName(rt::PodSandboxState s) {
  return s == rt::SANDBOX_READY ? "ready" : "notready";
}

CriVersion FromProto(const rt::VersionResponse& r) {
  return CriVersion{r.version(), r.runtime_name(), r.runtime_version(), r.runtime_api_version()};
}

CriPod FromProto(const rt::PodSandbox& p) {
  CriPod pod;
  pod.id = p.id();
  pod.name = p.metadata().name();
  pod.namespace_ = p.metadata().namespace_();
  pod.uid = p.metadata().uid();
  pod.attempt = p.metadata().attempt();
  pod.state = PodStateName(p.state());
  pod.created_at_ns = p.created_at();
  pod.labels = ToMap(p.labels());
  pod.annotations = ToMap(p.annotations());
  return pod;
}

rt::PodSandboxConfig SandboxConfig(const CriPodSpec& pod) {
  rt::PodSandboxConfig cfg;
  auto* md = cfg.mutable_metadata();
  md->set_name(pod.name);
  md->set_namespace_(pod.namespace_);
  md->set_uid(pod.uid);
  md->set_attempt(pod.attempt);
  cfg.set_hostname(pod.hostname);
  cfg.set_log_directory(pod.log_directory);
  CriLabels labels = pod.labels;
  // The kubelet's own labels win over same-named pod labels, as in kubelet's newPodLabels.
  labels[kCriLabelPodName] = pod.name;
  labels[kCriLabelPodNamespace] = pod.namespace_;
  labels[kCriLabelPodUid] = pod.uid;
  FillMap(cfg.mutable_labels(), labels);
  FillMap(cfg.mutable_annotations(), pod.annotations);
  auto* linux = cfg.mutable_linux();
  linux->set_cgroup_parent(pod.cgroup_parent);
  auto* sc = linux->mutable_security_context();
  sc->set_privileged(pod.privileged);
  auto* ns = sc->mutable_namespace_options();
  ns->set_network(pod.host_network ? rt::NODE : rt::POD);
  // hostPID: NODE; else what a kubelet asks unless shareProcessNamespace.
  ns->set_pid(pod.host_pid ? rt::NODE : rt::CONTAINER);
  ns->set_ipc(rt::POD);
  return cfg;
}

using json_access::Member;
using json_access::Path;

bool GetString(const Json* j, std::string& out) {
  if (j == nullptr || !j->is_string()) return false;
  out = j->get<std::string>();
  return true;
}

bool GetBool(const Json* j, bool& out) {
  if (j == nullptr || !j->is_boolean()) return false;
  out = j->get<bool>();
  return true;
}

bool GetInt32(const Json* j, int32_t& out) {
  if (j == nullptr || !j->is_number_integer()) return false;
  int64_t v = j->get<int64_t>();
  if (v < 0 || v > INT32_MAX) return false;
  out = static_cast<int32_t>(v);
  return true;
}

Result<Json> ParseInfo(std::string_view info_json) {
  Json j = Json::parse(info_json.begin(), info_json.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return std::unexpected(Error::InvalidInput("verbose info is not valid JSON"));
  if (!j.is_object())
    return std::unexpected(Error::InvalidInput("verbose info is not a JSON object"));
  return j;
}

// containerd and CRI-O both put the verbose info JSON under the key "info".
std::string_view InfoJson(const google::protobuf::Map<std::string, std::string>& info) {
  auto it = info.find("info");
  if (it != info.end()) return it->second;
  return {};
}

}  // namespace

Result<void> ApplyContainerInfo(std::string_view info_json, CriContainer& c) {
  auto parsed = ParseInfo(info_json);
  if (!parsed) return std::unexpected(parsed.error());
  const Json& j = *parsed;
  GetInt32(Member(j, "pid"), c.pid);
  GetString(Member(j, "sandboxID"), c.pod_sandbox_id);
  GetString(Member(j, "snapshotter"), c.snapshotter);
  GetString(Member(j, "snapshotKey"), c.snapshot_key);
  if (const Json* spec = Member(j, "runtimeSpec")) {
    GetBool(Path(*spec, {"root", "readonly"}), c.read_only_rootfs);
    GetString(Path(*spec, {"linux", "cgroupsPath"}), c.cgroup_path);
    GetString(Path(*spec, {"root", "path"}), c.root_path);
    // Fallback for runtimes that do not echo the CRI config: a privileged container has
    // the full capability set and nothing masked.
    bool sys_admin = false;
    if (const Json* caps = Path(*spec, {"process", "capabilities", "bounding"});
        caps != nullptr && caps->is_array()) {
      for (const Json& cap : *caps) {
        if (cap.is_string() && cap.get<std::string>() == "CAP_SYS_ADMIN") sys_admin = true;
      }
    }
    const Json* masked = Path(*spec, {"linux", "maskedPaths"});
    bool nothing_masked = masked == nullptr || (masked->is_array() && masked->empty());
    c.privileged = sys_admin && nothing_masked;
  }
  // containerd echoes the CreateContainer config (Go JSON of the CRI message): exact answer.
  if (const Json* sc = Path(j, {"config", "linux", "security_context"})) {
    bool priv = false;
    c.privileged = GetBool(Member(*sc, "privileged"), priv) && priv;
  }
  return {};
}

Result<void> ApplyPodInfo(std::string_view info_json, CriPod& p) {
  auto parsed = ParseInfo(info_json);
  if (!parsed) return std::unexpected(parsed.error());
  const Json& j = *parsed;
  GetInt32(Member(j, "pid"), p.pid);
  GetString(Path(j, {"config", "linux", "cgroup_parent"}), p.cgroup_parent);
  return {};
}

CriClient::CriClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CriClient::~CriClient() = default;

const std::string& CriClient::endpoint() const { return impl_->socket_path; }
const CriVersion& CriClient::version() const { return impl_->version; }

std::vector<std::string> CriClient::DefaultEndpoints() {
  return {"/run/containerd/containerd.sock", "/run/crio/crio.sock", "/var/run/crio/crio.sock",
          "/run/k3s/containerd/containerd.sock", "/run/cri-dockerd.sock"};
}

Result<std::unique_ptr<CriClient>> CriClient::Connect(const std::string& endpoint,
                                                      std::chrono::milliseconds timeout) {
  std::string path = endpoint;
  if (path.starts_with("unix://")) path.erase(0, 7);
  if (path.empty() || path[0] != '/') {
    return std::unexpected(Error::InvalidInput(
        "CRI endpoint '" + endpoint + "': want an absolute unix socket path or unix:///path"));
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    const Error e = Error::FromErrno(errno, "CRI socket " + path);
    return std::unexpected(Error(e.code(), e.message() + " (is the container runtime running?)"));
  }
  if (!S_ISSOCK(st.st_mode))
    return std::unexpected(Error::InvalidInput("CRI socket " + path + ": not a socket"));

  auto impl = std::make_unique<Impl>();
  impl->socket_path = path;
  impl->timeout = timeout;
  grpc::ChannelArguments args;
  // Big nodes list many containers in one message; 16 MB is what the kubelet allows.
  args.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  // After a runtime restart, reconnect within a second rather than gRPC's default backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  impl->channel = grpc::CreateCustomChannel("unix://" + path, grpc::InsecureChannelCredentials(),
                                            args);
  impl->stub = rt::RuntimeService::NewStub(impl->channel);

  rt::VersionRequest req;
  req.set_version("v1");
  auto resp = Call<rt::VersionRequest, rt::VersionResponse>(*impl, "Version",
                                                             &rt::RuntimeService::Stub::Version, req);
  if (!resp) {
    std::string msg = std::move(resp.error().message);
    if (resp.error().code == grpc::StatusCode::DEADLINE_EXCEEDED ||
        resp.error().code == grpc::StatusCode::UNAVAILABLE) {
      msg += " (is a CRI runtime listening on " + path + "?)";
    }
    return std::unexpected(Error(CodeOf(resp.error().code), std::move(msg)));
  }
  impl->version = FromProto(*resp);
  return std::unique_ptr<CriClient>(new CriClient(std::move(impl)));
}

Result<CriVersion> CriClient::Version() const {
  rt::VersionRequest req;
  req.set_version("v1");
  auto resp = Call<rt::VersionRequest, rt::VersionResponse>(*impl_, "Version",
                                                             &rt::RuntimeService::Stub::Version, req);
  if (!resp) return Fail<CriVersion>(std::move(resp.error()));
  return FromProto(*resp);
}

Result<std::vector<CriContainer>> CriClient::ListContainers(
    const CriContainerFilter& filter) const {
  rt::ListContainersRequest req;
  auto* f = req.mutable_filter();
  f->set_pod_sandbox_id(filter.pod_sandbox_id);
  if (filter.running_only) f->mutable_state()->set_state(rt::CONTAINER_RUNNING);
  FillMap(f->mutable_label_selector(), filter.label_selector);
  auto resp = Call<rt::ListContainersRequest, rt::ListContainersResponse>(
      *impl_, "ListContainers", &rt::RuntimeService::Stub::ListContainers, req);
  if (!resp) return Fail<std::vector<CriContainer>>(std::move(resp.error()));
  std::vector<CriContainer> out;
  out.reserve(resp->containers_size());
  for (const rt::Container& c : resp->containers()) {
    CriContainer cc;
    cc.id = c.id();
    cc.pod_sandbox_id = c.pod_sandbox_id();
    cc.name = c.metadata().name();
    cc.attempt = c.metadata().attempt();
    cc.image = c.image().image();
    cc.image_ref = c.image_ref();
    cc.state = ContainerStateName(c.state());
    cc.created_at_ns = c.created_at();
    cc.labels = ToMap(c.labels());
    cc.annotations = ToMap(c.annotations());
    out.push_back(std::move(cc));
  }
  return out;
}

Result<CriContainer> CriClient::ContainerStatus(const std::string& id,
                                                std::string* raw_info) const {
  rt::ContainerStatusRequest req;
  req.set_container_id(id);
  req.set_verbose(true);
  auto resp = Call<rt::ContainerStatusRequest, rt::ContainerStatusResponse>(
      *impl_, "ContainerStatus", &rt::RuntimeService::Stub::ContainerStatus, req);
  if (!resp) return Fail<CriContainer>(std::move(resp.error()));
  CriContainer cc;
  const rt::ContainerStatus& s = resp->status();
  cc.id = s.id().empty() ? id : s.id();
  cc.name = s.metadata().name();
  cc.attempt = s.metadata().attempt();
  cc.image = s.image().image();
  cc.image_ref = s.image_ref();
  cc.state = ContainerStateName(s.state());
  cc.created_at_ns = s.created_at();
  cc.started_at_ns = s.started_at();
  cc.finished_at_ns = s.finished_at();
  cc.exit_code = s.exit_code();
  cc.labels = ToMap(s.labels());
  cc.annotations = ToMap(s.annotations());
  for (const rt::Mount& m : s.mounts()) {
    CriMount& cm = cc.mounts.emplace_back();
    cm.container_path = m.container_path();
    cm.host_path = m.host_path();
    cm.readonly = m.readonly();
    cm.selinux_relabel = m.selinux_relabel();
    switch (m.propagation()) {
      case rt::PROPAGATION_PRIVATE: cm.propagation = "private"; break;
      case rt::PROPAGATION_HOST_TO_CONTAINER: cm.propagation = "rslave"; break;
      case rt::PROPAGATION_BIDIRECTIONAL: cm.propagation = "rshared"; break;
      default: cm.propagation = "unknown"; break;
    }
  }
  // Best effort: a runtime without (or with odd) verbose info still gives the status above.
  std::string_view info = InfoJson(resp->info());
  if (raw_info != nullptr) raw_info->assign(info);
  if (!info.empty()) (void)ApplyContainerInfo(info, cc);
  return cc;
}

Result<CriPod> CriClient::PodSandboxStatus(const std::string& id, std::string* raw_info) const {
  rt::PodSandboxStatusRequest req;
  req.set_pod_sandbox_id(id);
  req.set_verbose(true);
  auto resp = Call<rt::PodSandboxStatusRequest, rt::PodSandboxStatusResponse>(
      *impl_, "PodSandboxStatus", &rt::RuntimeService::Stub::PodSandboxStatus, req);
  if (!resp) return Fail<CriPod>(std::move(resp.error()));
  CriPod pod;
  const rt::PodSandboxStatus& s = resp->status();
  pod.id = s.id().empty() ? id : s.id();
  pod.name = s.metadata().name();
  pod.namespace_ = s.metadata().namespace_();
  pod.uid = s.metadata().uid();
  pod.attempt = s.metadata().attempt();
  pod.state = PodStateName(s.state());
  pod.created_at_ns = s.created_at();
  pod.labels = ToMap(s.labels());
  pod.annotations = ToMap(s.annotations());
  pod.ip = s.network().ip();
  pod.host_network = s.linux().namespaces().options().network() == rt::NODE;
  pod.host_pid = s.linux().namespaces().options().pid() == rt::NODE;
  std::string_view info = InfoJson(resp->info());
  if (raw_info != nullptr) raw_info->assign(info);
  if (!info.empty()) (void)ApplyPodInfo(info, pod);
  return pod;
}

Result<std::vector<CriPod>> CriClient::ListPodSandbox() const {
  rt::ListPodSandboxRequest req;
  auto resp = Call<rt::ListPodSandboxRequest, rt::ListPodSandboxResponse>(
      *impl_, "ListPodSandbox", &rt::RuntimeService::Stub::ListPodSandbox, req);
  if (!resp) return Fail<std::vector<CriPod>>(std::move(resp.error()));
  std::vector<CriPod> out;
  out.reserve(resp->items_size());
  for (const rt::PodSandbox& p : resp->items()) out.push_back(FromProto(p));
  return out;
}

Result<std::string> CriClient::RunPodSandbox(const CriPodSpec& pod) const {
  rt::RunPodSandboxRequest req;
  *req.mutable_config() = SandboxConfig(pod);
  auto resp = Call<rt::RunPodSandboxRequest, rt::RunPodSandboxResponse>(
      *impl_, "RunPodSandbox", &rt::RuntimeService::Stub::RunPodSandbox, req);
  if (!resp) return Fail<std::string>(std::move(resp.error()));
  return resp->pod_sandbox_id();
}

Result<std::string> CriClient::CreateContainer(const std::string& pod_id, const CriPodSpec& pod,
                                               const CriContainerSpec& c) const {
  rt::CreateContainerRequest req;
  req.set_pod_sandbox_id(pod_id);
  *req.mutable_sandbox_config() = SandboxConfig(pod);
  auto* cfg = req.mutable_config();
  cfg->mutable_metadata()->set_name(c.name);
  cfg->mutable_image()->set_image(c.image);
  for (const auto& s : c.command) cfg->add_command(s);
  for (const auto& s : c.args) cfg->add_args(s);
  CriLabels labels = c.labels;
  // As kubelet's newContainerLabels: the pod identity and the container name.
  labels[kCriLabelPodName] = pod.name;
  labels[kCriLabelPodNamespace] = pod.namespace_;
  labels[kCriLabelPodUid] = pod.uid;
  labels[kCriLabelContainerName] = c.name;
  FillMap(cfg->mutable_labels(), labels);
  FillMap(cfg->mutable_annotations(), c.annotations);
  for (const CriMount& m : c.mounts) {
    rt::Mount* rm = cfg->add_mounts();
    rm->set_container_path(m.container_path);
    rm->set_host_path(m.host_path);
    rm->set_readonly(m.readonly);
    rm->set_selinux_relabel(m.selinux_relabel);
    rm->set_propagation(m.propagation == "rshared"  ? rt::PROPAGATION_BIDIRECTIONAL
                        : m.propagation == "rslave" ? rt::PROPAGATION_HOST_TO_CONTAINER
                                                    : rt::PROPAGATION_PRIVATE);
  }
  for (const auto& [k, v] : c.envs) {
    auto* kv = cfg->add_envs();
    kv->set_key(k);
    kv->set_value(v);
  }
  cfg->set_log_path(c.log_path);
  auto* sc = cfg->mutable_linux()->mutable_security_context();
  sc->set_privileged(c.privileged);
  sc->set_readonly_rootfs(c.read_only_rootfs);
  sc->set_no_new_privs(c.no_new_privs);
  if (c.run_as_user >= 0) sc->mutable_run_as_user()->set_value(c.run_as_user);
  for (const auto& cap : c.add_capabilities) sc->mutable_capabilities()->add_add_capabilities(cap);
  for (const auto& cap : c.drop_capabilities) sc->mutable_capabilities()->add_drop_capabilities(cap);
  auto* ns = sc->mutable_namespace_options();
  ns->set_network(pod.host_network ? rt::NODE : rt::POD);
  ns->set_pid(pod.host_pid ? rt::NODE : rt::CONTAINER);
  ns->set_ipc(rt::POD);
  auto resp = Call<rt::CreateContainerRequest, rt::CreateContainerResponse>(
      *impl_, "CreateContainer", &rt::RuntimeService::Stub::CreateContainer, req);
  if (!resp) return Fail<std::string>(std::move(resp.error()));
  return resp->container_id();
}

Result<void> CriClient::StartContainer(const std::string& id) const {
  rt::StartContainerRequest req;
  req.set_container_id(id);
  auto resp = Call<rt::StartContainerRequest, rt::StartContainerResponse>(
      *impl_, "StartContainer", &rt::RuntimeService::Stub::StartContainer, req);
  if (!resp) return Fail<void>(std::move(resp.error()));
  return {};
}

Result<void> CriClient::StopContainer(const std::string& id, int64_t timeout_s) const {
  rt::StopContainerRequest req;
  req.set_container_id(id);
  req.set_timeout(timeout_s < 0 ? 0 : timeout_s);
  // The runtime waits out the grace period before it answers.
  auto extra = std::chrono::milliseconds(std::max<int64_t>(timeout_s, 0) * 1000);
  auto resp = Call<rt::StopContainerRequest, rt::StopContainerResponse>(
      *impl_, "StopContainer", &rt::RuntimeService::Stub::StopContainer, req, extra);
  if (!resp) return Fail<void>(std::move(resp.error()));
  return {};
}

Result<void> CriClient::RemoveContainer(const std::string& id) const {
  rt::RemoveContainerRequest req;
  req.set_container_id(id);
  auto resp = Call<rt::RemoveContainerRequest, rt::RemoveContainerResponse>(
      *impl_, "RemoveContainer", &rt::RuntimeService::Stub::RemoveContainer, req);
  if (!resp) return Fail<void>(std::move(resp.error()));
  return {};
}

Result<void> CriClient::StopPodSandbox(const std::string& id) const {
  rt::StopPodSandboxRequest req;
  req.set_pod_sandbox_id(id);
  auto resp = Call<rt::StopPodSandboxRequest, rt::StopPodSandboxResponse>(
      *impl_, "StopPodSandbox", &rt::RuntimeService::Stub::StopPodSandbox, req);
  if (!resp) return Fail<void>(std::move(resp.error()));
  return {};
}

Result<void> CriClient::RemovePodSandbox(const std::string& id) const {
  rt::RemovePodSandboxRequest req;
  req.set_pod_sandbox_id(id);
  auto resp = Call<rt::RemovePodSandboxRequest, rt::RemovePodSandboxResponse>(
      *impl_, "RemovePodSandbox", &rt::RuntimeService::Stub::RemovePodSandbox, req);
  if (!resp) return Fail<void>(std::move(resp.error()));
  return {};
}

}  // namespace driftwatch
