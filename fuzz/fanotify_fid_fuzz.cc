// libFuzzer target: a read() buffer of a fanotify group in FID mode (FAN_REPORT_DFID_NAME):
// events one after another as NextFanotifyEvent walks them in the sensor, each
// event's info records through WalkFidRecords (sensor/fanotify_fid.h, what
// FanotifyWatcher::HandleFidEvent uses). The kernel writes these bytes, but names in them
// are chosen by whoever creates files in a container. Each event is copied to a heap block
// that ends where the event does, so that ASan sees any read past event_len; the handle is
// then copied out as FanotifyWatcher::Dir does for open_by_handle_at.
#include <fcntl.h>
#include <sys/fanotify.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "fuzz/fuzz_check.h"
#include "sensor/fanotify_fid.h"

namespace {

void CheckName(const driftwatch::sensor::FidName& n, const char* ev, size_t len) {
  if (n.handle == nullptr) return;
  DW_FUZZ_CHECK(n.handle > ev && n.handle_len >= sizeof(file_handle) &&
                n.handle_len <= sizeof(file_handle) + MAX_HANDLE_SZ);
  DW_FUZZ_CHECK(n.handle + n.handle_len <= n.name.data());
  DW_FUZZ_CHECK(n.name.data() + n.name.size() <= ev + len);  // no NUL needed at the end
  DW_FUZZ_CHECK(std::memchr(n.name.data(), 0, n.name.size()) == nullptr);
  alignas(file_handle) char h[sizeof(file_handle) + MAX_HANDLE_SZ];
  std::memcpy(h, n.handle, n.handle_len);
  volatile char sink = 0;
  for (char c : n.name) sink = sink ^ c;
  (void)sink;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* buf = reinterpret_cast<const char*>(data);
  size_t off = 0;
  fanotify_event_metadata md;
  const char* at = nullptr;
  // The walk the sensor's HandleBuffer does: misaligned events copied out, never cast.
  while (driftwatch::sensor::NextFanotifyEvent(buf, size, &off, &md, &at)) {
    DW_FUZZ_CHECK(at >= buf && md.event_len >= FAN_EVENT_METADATA_LEN &&
                  at + md.event_len == buf + off && off <= size);
    // At the alignment it has in the sensor's 8-aligned read buffer, ending where the heap
    // block does.
    const size_t skew = static_cast<size_t>(at - buf) % 8;
    std::unique_ptr<char[]> block(new char[skew + md.event_len]);
    char* ev = block.get() + skew;
    std::memcpy(ev, at, md.event_len);
    auto names = driftwatch::sensor::WalkFidRecords(ev);
    CheckName(names.cur, ev, md.event_len);
    CheckName(names.old, ev, md.event_len);
  }
  return 0;
}
