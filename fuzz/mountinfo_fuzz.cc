// libFuzzer target: /proc/<pid>/mountinfo text (the kernel's, but of any process the sensor
// looks at, so a container can shape its own mount table: paths, sources, overlay options)
// through ParseMountinfo, then every entry through OverlayFromMount, and the whole input as
// a lowerdir= value.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "lib/node/mountinfo.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string err = "stale";
  const std::vector<driftwatch::MountEntry> mounts = driftwatch::ParseMountinfo(text, &err);
  DW_FUZZ_CHECK(err.empty() || err.starts_with("line "));
  for (const driftwatch::MountEntry& m : mounts) {
    DW_FUZZ_CHECK(!m.root.empty() && !m.mount_point.empty());
    if (auto o = driftwatch::OverlayFromMount(m)) {
      DW_FUZZ_CHECK(m.fstype == "overlay");
      DW_FUZZ_CHECK(!o->lowerdirs.empty() || !o->upperdir.empty());
      DW_FUZZ_CHECK(o->read_only || !o->upperdir.empty());
      for (const std::string& l : o->lowerdirs) DW_FUZZ_CHECK(!l.empty());
    }
  }
  for (const std::string& l : driftwatch::SplitLowerdirOption(text)) DW_FUZZ_CHECK(!l.empty());
  return 0;
}
