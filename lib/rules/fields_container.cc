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
    {"k8s.pod.name", FieldType::kString, "Kubernetes pod name", K8sPodName},
    {"k8s.ns.name", FieldType::kString, "Kubernetes namespace", K8sNsName},
    {"k8s.pod.uid", FieldType::kString, "Kubernetes pod uid", K8sPodUid},
};

}  // namespace

std::span<const FieldInfo> ContainerFields() { return kContainerFields; }

}  // namespace driftwatch
