// image_ref: splitting container image references ("registry/repo:tag@sha256:...") into the
// parts Falco names container.image.repository / .tag / .digest. Pure functions.
#pragma once

#include <string>
#include <string_view>

namespace driftwatch {

struct ImageName {
  std::string repository;  // "docker.io/library/nginx", "localhost:5000/team/app"
  std::string tag;         // "1.25"; empty when the reference has none
  std::string digest;      // "sha256:<64 hex>"; empty when the reference has none
};

// Splits a reference as a runtime reports it. A ':' in the registry host (a port) is not a
// tag separator. A bare "sha256:<hex>" (an image id) gives only a digest.
ImageName ParseImageName(std::string_view ref);

// The registry digest of a CRI image_ref ("repo@sha256:..."), or "" when image_ref is a
// bare image id (locally imported images have no registry digest).
std::string RepoDigestOf(std::string_view image_ref);

}  // namespace driftwatch
