// libFuzzer target: the verbose info JSON of CRI ContainerStatus / PodSandboxStatus (the
// runtime's answer, which carries the container's OCI spec as the workload asked for it)
// through ApplyContainerInfo and ApplyPodInfo. Any shape must be an error or ignored, never
// an exception (nlohmann::json throws on a wrong type) or a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "lib/k8s/cri_client.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  driftwatch::CriContainer c;
  auto rc = driftwatch::ApplyContainerInfo(json, c);
  DW_FUZZ_CHECK(c.pid >= 0);
  driftwatch::CriPod p;
  auto rp = driftwatch::ApplyPodInfo(json, p);
  DW_FUZZ_CHECK(p.pid >= 0);
  DW_FUZZ_CHECK(rc.has_value() == rp.has_value());  // both parse the same JSON
  return 0;
}
