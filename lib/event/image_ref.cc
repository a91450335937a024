#include "lib/event/image_ref.h"

namespace driftwatch {

ImageName ParseImageName(std::string_view ref) {
  ImageName out;
  if (ref.starts_with("sha256:")) {
    out.digest = std::string(ref);
    return out;
  }
  if (auto at = ref.find('@'); at != std::string_view::npos) {
    out.digest = std::string(ref.substr(at + 1));
    ref = ref.substr(0, at);
  }
  // A tag is a ':' after the last '/': earlier ones belong to a registry host:port.
  size_t slash = ref.rfind('/');
  size_t colon = ref.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    out.tag = std::string(ref.substr(colon + 1));
    ref = ref.substr(0, colon);
  }
  out.repository = std::string(ref);
  return out;
}

std::string RepoDigestOf(std::string_view image_ref) {
  auto at = image_ref.find('@');
  if (at == std::string_view::npos) return "";
  return std::string(image_ref.substr(at + 1));
}

}  // namespace driftwatch
