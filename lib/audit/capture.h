// Capture files: the sensor's event stream on disk, for replay with `driftwatch analyze`.
// Format: the 8-byte magic "DWCAP01\n", then each v1::Event as a varint length followed
// by its serialized bytes (protobuf's length-delimited form). Thread-compatible.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "driftwatch/v1/event.pb.h"
#include "lib/audit/log_input.h"
#include "lib/base/result.h"

namespace driftwatch {

inline constexpr std::string_view kCaptureMagic{"DWCAP01\n", 8};

class CaptureWriter {
 public:
  // Writes to `out` (not owned). The magic is written at once.
  explicit CaptureWriter(std::FILE* out);
  // False when the write failed (errno says why).
  bool Write(const v1::Event& ev);
  // The same for an event serialized already.
  bool WriteSerialized(std::string_view payload);
  bool Flush();

 private:
  std::FILE* out_;
  std::string buf_;
};

// True when the stream starts with the capture magic (which it then consumes).
bool IsCapture(InputStream* in);

// Next event of a capture into *ev: true for an event, false at a clean end. Error
// (kCorruption): a corrupt or truncated record, named.
Result<bool> ReadCaptureEvent(InputStream* in, v1::Event* ev);

}  // namespace driftwatch
