// Capture files: the sensor's event stream on disk, for replay with `driftwatch analyze`.
// Format: the 8-byte magic "DWCAP01\n", then each v1::Event as a varint length followed
// by its serialized bytes (protobuf's length-delimited form). Thread-compatible.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "driftwatch/v1/event.pb.h"
#include "lib/audit/log_input.h"

namespace driftwatch {

inline constexpr std::string_view kCaptureMagic{"DWCAP01\n", 8};

class CaptureWriter {
 public:
  // Writes to `out` (not owned). The magic is written at once.
  explicit CaptureWriter(std::FILE* out);
  // False when the write failed (errno says why).
  bool Write(const v1::Event& ev);
  bool Flush();

 private:
  std::FILE* out_;
  std::string buf_;
};

// True when the stream starts with the capture magic (which it then consumes).
bool IsCapture(InputStream* in);

// Next event of a capture. Returns 1 for an event, 0 at a clean end, -1 on a corrupt or
// truncated record (*error names it).
int ReadCaptureEvent(InputStream* in, v1::Event* ev, std::string* error);

}  // namespace driftwatch
