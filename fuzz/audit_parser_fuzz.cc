// libFuzzer target: arbitrary bytes through the whole offline pipeline (line split,
// record parse, reassembly, event building, attribution, JSON). Bad input must only ever
// be reported, never crash or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lib/audit/audit_reassembler.h"
#include "lib/base/diagnostics.h"
#include "lib/event/event_json.h"
#include "lib/event/process_tree.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  static const std::string kSource = "fuzz";
  driftwatch::Diagnostics diag(nullptr);
  driftwatch::ProcessTree tree;
  std::string json;
  driftwatch::AuditReassembler::Options opt;
  opt.max_in_flight = 8;  // small, so that eviction runs too
  driftwatch::AuditReassembler r(
      opt,
      [&](driftwatch::v1::Event& ev) {
        tree.Attribute(&ev);
        json.clear();
        driftwatch::AppendEventJson(ev, &json);
      },
      &diag);
  uint64_t line_no = 0;
  while (!in.empty()) {
    size_t nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
    driftwatch::AuditRecord rec;
    ++line_no;
    // The first byte of a line picks the path: log text, or a netlink payload.
    if (!line.empty() && line[0] == '@' && line.size() > 3) {
      uint16_t type = static_cast<uint16_t>(1300 + (static_cast<uint8_t>(line[1]) % 32));
      if (driftwatch::ParseNetlinkRecord(type, line.substr(2), &rec) != nullptr) continue;
    } else if (driftwatch::ParseLogLine(line, &rec) != nullptr) {
      continue;
    }
    rec.source = &kSource;
    rec.line = line_no;
    r.Push(rec);
    if ((line_no & 7) == 0) r.Expire(r.stream_time_ms());
  }
  r.Flush();
  return 0;
}
