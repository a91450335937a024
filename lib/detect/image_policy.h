// image_policy: the approved-images manifest and the verdict on a running container's image.
//
// A manifest is one or more files of either form:
//   - a list (any name not ending in .yaml/.yml): one reference per line, `#` comments and
//     blank lines ignored; each line `repo@sha256:<64 hex>` or `sha256:<64 hex>` (an image
//     id: locally imported images have no registry digest and their CRI image_ref is the
//     image id). A line without a digest is an error naming file and line.
//   - Kubernetes YAML (.yaml/.yml, multi-document, `kind: List` too): the images of Pod,
//     Deployment, DaemonSet, StatefulSet, ReplicaSet, Job, CronJob and PodTemplate objects,
//     in containers, initContainers and ephemeralContainers. Other kinds are skipped. An
//     image not pinned by digest approves nothing and gives a warning (file:line).
//
// A container is approved when one of its digests (ContainerInfo.image_digest, the digest of
// a `repo@sha256:` image_ref, or an image_ref that is a bare image id) is in the manifest.
// Digests name content, so the repository part of an entry is not compared.
//
// Thread-safety: immutable after loading; Check may be called from any thread.
#pragma once

#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "lib/alerts/alert.h"
#include "lib/base/result.h"
#include "lib/rules/rule_context.h"

namespace driftwatch {

class ImagePolicy {
 public:
  // Loads and merges every file. The error names the file and line ("deploy.yaml:12:3:
  // ..."); nothing is loaded then. Codes: a file that cannot be opened: what open's errno
  // implies (kNotFound when missing); a read error: kIo; a bad line or YAML: kInvalidInput.
  [[nodiscard]] static Result<ImagePolicy> LoadFiles(const std::vector<std::string>& paths);
  // `name` is the file name: it picks the format (.yaml/.yml) and prefixes messages.
  [[nodiscard]] static Result<ImagePolicy> LoadText(std::string_view text, std::string_view name);

  // The verdict for a container (checked = true). Also fills mutable_tag and
  // writable_rootfs, which need no manifest (CheckPosture).
  ImageVerdict Check(const v1::ContainerInfo& c) const;

  bool Approves(std::string_view digest) const;  // "sha256:<hex>", any case
  size_t size() const { return digests_.size(); }
  // Non-fatal findings while loading ("deploy.yaml:7:16: image nginx:1.25 is not pinned by
  // digest").
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  Result<> AddText(std::string_view text, std::string_view name);
  Result<> AddList(std::string_view text, std::string_view name);
  Result<> AddYaml(std::string_view text, std::string_view name);

  std::unordered_set<std::string> digests_;  // "sha256:<lowercase hex>"
  std::vector<std::string> warnings_;
};

// The verdict without a manifest: checked = false; mutable_tag (the image reference the
// container was created from has no digest) and writable_rootfs.
ImageVerdict CheckPosture(const v1::ContainerInfo& c);

// The digests a container's image is known by ("sha256:<lowercase hex>"), de-duplicated.
std::vector<std::string> ContainerDigests(const v1::ContainerInfo& c);


}  // namespace driftwatch
