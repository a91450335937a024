// libFuzzer target: one line of event JSON, as `driftwatch rules test --events` and
// `analyze --events` read from files users and other tools write (any bytes: non-UTF-8
// names, numbers out of range, deep nesting, duplicate keys). A line that parses is written
// back as the sensor's events print (AppendEventJson), and that text must parse again: what
// the tool prints, it reads.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "lib/event/event_json.h"
#include "lib/event/event_json_read.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto read = driftwatch::ParseEventJson(line);
  if (!read) {
    DW_FUZZ_CHECK(!read.error().message().empty());
    return 0;
  }
  std::string again;
  const driftwatch::v1::ContainerInfo* c = read->container ? &*read->container : nullptr;
  if (!driftwatch::AppendEventJson(read->event, c, &again)) return 0;
  auto back = driftwatch::ParseEventJson(again);
  if (!back) std::fprintf(stderr, "%s\n-> %s\n", again.c_str(), back.error().c_str());
  DW_FUZZ_CHECK(back.has_value());
  return 0;
}
