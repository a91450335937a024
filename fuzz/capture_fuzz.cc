// libFuzzer target: a capture file (`driftwatch analyze` reads what a sensor wrote, or
// anything named on its command line) through InputStream (which also sniffs gzip and xz),
// IsCapture and ReadCaptureEvent, with every event written out as JSON as analyze does.
// The input is handed over as a memfd, the way a real file is read.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz/fuzz_check.h"
#include "lib/audit/capture.h"
#include "lib/event/event_json.h"
#include "lib/audit/log_input.h"

namespace dw = driftwatch;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("capture_fuzz", MFD_CLOEXEC);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  DW_FUZZ_CHECK(fd >= 0);
  DW_FUZZ_CHECK(ftruncate(fd, 0) == 0);
  DW_FUZZ_CHECK(pwrite(fd, data, size, 0) == static_cast<ssize_t>(size));
  auto opened = dw::InputStream::Open(path);
  DW_FUZZ_CHECK(opened.has_value());
  std::unique_ptr<dw::InputStream> in = std::move(*opened);
  if (!dw::IsCapture(in.get())) return 0;
  dw::v1::Event ev;
  std::string json;
  dw::Result<bool> more;
  while ((more = dw::ReadCaptureEvent(in.get(), &ev)) && *more) {
    json.clear();
    dw::AppendEventJson(ev, ev.has_container() ? &ev.container() : nullptr, &json);
  }
  DW_FUZZ_CHECK(more || !more.error().message().empty());
  return 0;
}
