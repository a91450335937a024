// container.* and k8s.* fields: the event's container as the sensor discovered it, and its
// image against the approved-images policy.
#include "lib/event/image_ref.h"
#include "lib/event/event_json.h"
#include "lib/event/event_view.h"
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

using fields::ContainerOf;
using fields::SetBool;
using fields::SetNum;
using fields::SetStr;

std::string_view FullId(const RuleContext& c) {
  if (KindOf(*c.event) == Kind::kContainer && !c.event->container().id().empty())
    return c.event->container().id();
  if (c.event->container_id().empty()) return "host";
  return c.event->container_id();
}

bool ContainerId(const RuleContext& c, FieldArg, FieldValue* out) {
  return SetStr(ShortContainerIdView(FullId(c)), out);
}

bool ContainerFullId(const RuleContext& c, FieldArg, FieldValue* out) {
  return SetStr(FullId(c), out);
}

bool ContainerName(const RuleContext& c, FieldArg, FieldValue* out) {
  if (FullId(c) == "host") return SetStr("host", out);
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(i->name(), out);
}

bool ContainerImage(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(i->image(), out);
}

bool ContainerImageRepository(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(i->image_repository(), out);
}

bool ContainerImageTag(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(i->image_tag(), out);
}

// The registry digest; locally imported images have none (their image_ref is an image id).
bool ContainerImageDigest(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  if (!i) return false;
  if (!i->image_digest().empty()) return SetStr(i->image_digest(), out);
  out->buf = RepoDigestOf(i->image_ref());
  out->str = out->buf;
  return !out->buf.empty();
}

bool ContainerImageId(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(i->image_ref(), out);
}

bool ContainerType(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(i->runtime(), out);
}

bool ContainerState(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(i->state(), out);
}

bool ContainerPrivileged(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetBool(i->privileged(), out);
}

bool ContainerReadOnlyRootfs(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetBool(i->read_only_rootfs(), out);
}

// Unset when no approved-images policy is loaded: no image is judged then.
bool ContainerImageApproved(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!c.image.checked) return false;
  return SetBool(c.image.approved, out);
}

// Known without a policy: the reference has a tag and no digest.
bool ContainerImageMutableTag(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!ContainerOf(c)) return false;
  return SetBool(c.image.mutable_tag, out);
}

bool ContainerImageVerdict(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!c.image.checked) return false;
  return SetStr(c.image.reason, out);
}

bool ContainerStartTs(const RuleContext& c, FieldArg, FieldValue* out) {
  if (c.container_start_ns != 0) return SetNum(c.container_start_ns, out);
  const v1::ContainerInfo* i = ContainerOf(c);
  if (!i || i->start_time_ns() == 0) return false;
  return SetNum(i->start_time_ns(), out);
}

bool ContainerEntrypoint(const RuleContext& c, FieldArg, FieldValue* out) {
  return SetStr(c.container_entrypoint, out);
}

// Falco's %container.info shorthand for outputs.
bool ContainerInfoText(const RuleContext& c, FieldArg, FieldValue* out) {
  out->buf = "container_id=";
  out->buf.append(ShortContainerIdView(FullId(c)));
  out->buf.append(" container_name=");
  const v1::ContainerInfo* i = ContainerOf(c);
  if (FullId(c) == "host") {
    out->buf.append("host");
  } else if (i && !i->name().empty()) {
    out->buf.append(i->name());
  } else {
    out->buf.append("<NA>");
  }
  out->str = out->buf;
  return true;
}

bool K8sPodName(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(i->pod_name(), out);
}

bool K8sNsName(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(i->pod_namespace(), out);
}

bool K8sPodUid(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(i->pod_uid(), out);
}

bool K8sPodSandboxId(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(ShortContainerIdView(i->sandbox_id()), out);
}

bool K8sPodFullSandboxId(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && SetStr(i->sandbox_id(), out);
}

// Falco's "key:value,key:value"; unset when there are none.
bool JoinLabels(const google::protobuf::RepeatedPtrField<v1::Label>& labels, FieldValue* out) {
  if (labels.empty()) return false;
  for (const v1::Label& l : labels) {
    if (!out->buf.empty()) out->buf += ',';
    out->buf.append(l.key()).append(":").append(l.value());
  }
  out->str = out->buf;
  return true;
}

bool ContainerLabels(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && JoinLabels(i->labels(), out);
}

bool K8sPodLabels(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && JoinLabels(i->pod_labels(), out);
}

// One label by key: `field[key]` (a key that reads as a number arrives as an index).
bool LabelByKey(const google::protobuf::RepeatedPtrField<v1::Label>& labels, FieldArg a,
                FieldValue* out) {
  std::string number;
  std::string_view key;
  if (a.key) {
    key = *a.key;
  } else if (a.index >= 0) {
    number = std::to_string(a.index);
    key = number;
  } else {
    return false;
  }
  for (const v1::Label& l : labels) {
    if (l.key() == key) {
      out->buf = l.value();
      out->str = out->buf;
      return true;
    }
  }
  return false;
}

bool ContainerLabel(const RuleContext& c, FieldArg a, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && LabelByKey(i->labels(), a, out);
}

bool K8sPodLabel(const RuleContext& c, FieldArg a, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && LabelByKey(i->pod_labels(), a, out);
}

bool K8sPodAnnotation(const RuleContext& c, FieldArg a, FieldValue* out) {
  const v1::ContainerInfo* i = ContainerOf(c);
  return i && LabelByKey(i->pod_annotations(), a, out);
}

// Since the container started, at the event's time.
bool ContainerDuration(const RuleContext& c, FieldArg a, FieldValue* out) {
  if (KindOf(*c.event) == Kind::kContainer || !ContainerStartTs(c, a, out)) return false;
  return SetNum(c.event->time_ns() - out->num, out);
}

constexpr FieldInfo kContainerFields[] = {
    {"container.id", FieldType::kString, "12-character short id; \"host\" for host processes",
     ContainerId},
    {"container.full_id", FieldType::kString, "full container id; \"host\" for host processes",
     ContainerFullId},
    {"container.name", FieldType::kString, "container name; \"host\" for host processes",
     ContainerName},
    {"container.image", FieldType::kString, "image name as the runtime reports it",
     ContainerImage},
    {"container.image.repository", FieldType::kString, "image repository",
     ContainerImageRepository},
    {"container.image.tag", FieldType::kString, "image tag", ContainerImageTag},
    {"container.image.digest", FieldType::kString, "registry digest of the image",
     ContainerImageDigest},
    {"container.image.id", FieldType::kString, "CRI image_ref (repo digest or image id)",
     ContainerImageId},
    {"container.type", FieldType::kString, "runtime (containerd, cri-o, docker, ...)",
     ContainerType},
    {"container.state", FieldType::kString, "running, exited or removed", ContainerState},
    {"container.privileged", FieldType::kBool, "the container runs privileged",
     ContainerPrivileged},
    {"container.read_only_rootfs", FieldType::kBool, "the root filesystem is read-only",
     ContainerReadOnlyRootfs},
    {"container.image.approved", FieldType::kBool,
     "the image is in the approved-images policy (unset without a policy)",
     ContainerImageApproved},
    {"container.image.mutable_tag", FieldType::kBool,
     "the image is referenced by a tag, not pinned by digest (unset without a policy)",
     ContainerImageMutableTag},
    {"container.image.verdict", FieldType::kString, "why the image is not approved",
     ContainerImageVerdict},
    {"container.start_ts", FieldType::kNumber, "container start time, ns since the epoch",
     ContainerStartTs},
    {"container.entrypoint", FieldType::kString,
     "executable path of the container's first process, if seen", ContainerEntrypoint},
    {"container.info", FieldType::kString, "output shorthand: container id and name",
     ContainerInfoText},
    {"container.duration", FieldType::kNumber,
     "ns from the container's start (container.start_ts) to the event", ContainerDuration},
    {"container.labels", FieldType::kString,
     "the container's labels as the runtime reports them, \"key:value,key:value\"",
     ContainerLabels},
    {"container.label", FieldType::kString, "one of the container's labels, by key",
     ContainerLabel, FieldArgMode::kIndexOrKey},
    {"k8s.pod.labels", FieldType::kString,
     "the pod's labels (without the kubelet's io.kubernetes.pod.*), \"key:value,key:value\"",
     K8sPodLabels},
    {"k8s.pod.label", FieldType::kString, "one of the pod's labels, by key", K8sPodLabel,
     FieldArgMode::kIndexOrKey},
    {"k8s.pod.annotation", FieldType::kString,
     "one of the pod's annotations under driftwatch.io/, by key (driftwatch's; not in Falco)",
     K8sPodAnnotation, FieldArgMode::kIndexOrKey},
    {"k8s.pod.sandbox_id", FieldType::kString, "pod sandbox id, first 12 characters",
     K8sPodSandboxId},
    {"k8s.pod.full_sandbox_id", FieldType::kString, "pod sandbox id", K8sPodFullSandboxId},
    {"k8s.pod.id", FieldType::kString, "Falco's legacy name of k8s.pod.uid", K8sPodUid},
    {"k8s.pod.name", FieldType::kString, "Kubernetes pod name", K8sPodName},
    {"k8s.ns.name", FieldType::kString, "Kubernetes namespace", K8sNsName},
    {"k8s.pod.uid", FieldType::kString, "Kubernetes pod uid", K8sPodUid},
};

// Fields of Falco's container plugin (falcosecurity/plugins, plugins/container) that
// driftwatch never gives a value. Its container.mount* fields are the sensor's /proc reading
// (lib/rules/fields_proc_state.cc), not listed here.
constexpr std::string_view kProbes = "health probes: the sensor does not collect them";
constexpr std::string_view kNet = "network addresses: the sensor does not collect them";
constexpr std::string_view kNs = "namespace sharing: the sensor does not collect it";
constexpr std::string_view kK8s =
    "Kubernetes objects beyond the pod: the sensor asks only the container runtime";
#define DW_NEVER(name, type, arg, doc, why) \
  FieldInfo { name, FieldType::type, doc, nullptr, FieldArgMode::arg, FieldType::kString, false, why }
constexpr FieldInfo kContainerPluginNever[] = {
    DW_NEVER("container.healthcheck", kString, kNone, "the container's health check", kProbes),
    DW_NEVER("container.liveness_probe", kString, kNone, "the pod's liveness probe", kProbes),
    DW_NEVER("container.readiness_probe", kString, kNone, "the pod's readiness probe", kProbes),
    DW_NEVER("proc.is_container_healthcheck", kBool, kNone,
             "the process is the container's health check", kProbes),
    DW_NEVER("proc.is_container_liveness_probe", kBool, kNone,
             "the process is the pod's liveness probe", kProbes),
    DW_NEVER("proc.is_container_readiness_probe", kBool, kNone,
             "the process is the pod's readiness probe", kProbes),
    DW_NEVER("container.ip", kString, kNone, "the container's primary IPv4 address", kNet),
    DW_NEVER("container.cni.json", kString, kNone, "the pod's CNI result (JSON)", kNet),
    DW_NEVER("k8s.pod.ip", kString, kNone, "the pod's IPv4 address", kNet),
    DW_NEVER("k8s.pod.cni.json", kString, kNone, "the pod's CNI result (JSON)", kNet),
    DW_NEVER("container.host_pid", kBool, kNone, "the container shares the host's PID namespace",
             kNs),
    DW_NEVER("container.host_network", kBool, kNone,
             "the container shares the host's network namespace", kNs),
    DW_NEVER("container.host_ipc", kBool, kNone, "the container shares the host's IPC namespace",
             kNs),
    DW_NEVER("k8s.ns.id", kString, kNone, "namespace id (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.ns.label", kString, kRequired, "namespace label (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.ns.labels", kString, kNone, "namespace labels (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.rc.name", kString, kNone, "replication controller (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.rc.id", kString, kNone, "replication controller (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.rc.label", kString, kRequired, "replication controller (deprecated in Falco)",
             kK8s),
    DW_NEVER("k8s.rc.labels", kString, kNone, "replication controller (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.svc.name", kString, kNone, "service (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.svc.id", kString, kNone, "service (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.svc.label", kString, kRequired, "service (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.svc.labels", kString, kNone, "service (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.rs.name", kString, kNone, "replica set (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.rs.id", kString, kNone, "replica set (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.rs.label", kString, kRequired, "replica set (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.rs.labels", kString, kNone, "replica set (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.deployment.name", kString, kNone, "deployment (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.deployment.id", kString, kNone, "deployment (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.deployment.label", kString, kRequired, "deployment (deprecated in Falco)", kK8s),
    DW_NEVER("k8s.deployment.labels", kString, kNone, "deployment (deprecated in Falco)", kK8s),
};
#undef DW_NEVER

}  // namespace

std::span<const FieldInfo> ContainerPluginNeverFields() { return kContainerPluginNever; }

std::span<const FieldInfo> ContainerFields() { return kContainerFields; }

}  // namespace driftwatch
