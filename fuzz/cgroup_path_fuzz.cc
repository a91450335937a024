// libFuzzer target: /proc/<pid>/cgroup text (a container's processes can create and name
// sub-cgroups where delegated) through ContainerFromProcCgroup, and the whole input as one
// cgroup path through ContainerFromCgroupPath; both must agree on a single v2 line.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "lib/node/cgroup_path.h"

namespace {

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// What cgroup_path.h promises about a match.
void CheckMatch(const std::optional<driftwatch::CgroupContainer>& m) {
  if (!m) return;
  const std::string& rt = m->runtime;
  DW_FUZZ_CHECK(rt == "docker" || rt == "cri-containerd" || rt == "cri-o" || rt == "podman" ||
                rt == "nerdctl" || rt == "containerd");
  if (rt == "containerd") {
    DW_FUZZ_CHECK(!m->id.empty() && m->id.size() <= 76 && !m->ctr_namespace.empty());
  } else {
    DW_FUZZ_CHECK(IsHex64(m->id));
    DW_FUZZ_CHECK(m->ctr_namespace.empty());
  }
  DW_FUZZ_CHECK(m->pod_uid.empty() || m->pod_uid.size() == 32 || m->pod_uid.size() == 36);
  DW_FUZZ_CHECK(m->pod_uid.find('_') == std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckMatch(driftwatch::ContainerFromProcCgroup(text));
  auto by_path = driftwatch::ContainerFromCgroupPath(text);
  CheckMatch(by_path);
  if (text.find('\n') == std::string_view::npos) {
    const std::string line = "0::" + std::string(text);
    DW_FUZZ_CHECK(driftwatch::ContainerFromProcCgroup(line) == by_path);
  }
  return 0;
}
