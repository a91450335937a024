// prepared_batch: a batch of events as the store's writer takes it. The ingest path parses
// every event once to validate it (ValidateEvent), strips the id and container id the store
// keeps as columns, and keeps the bytes otherwise as they came (lib/store/event_store.h).
#pragma once

#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/repeated_ptr_field.h>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/result.h"

namespace driftwatch {

// "exec", "chmod", "write", "container", "status"; "" for an event without a body.
std::string_view EventKind(const v1::Event& ev);

// Checks what the store relies on; the error names the field ("event 3: id.seq is 0").
[[nodiscard]] Result<> ValidateEvent(const v1::Event& ev);

// The body's field number in v1::Event (10 exec ... 14 status) for a kind name; 0 if none.
int EventKindNumber(std::string_view kind);

// One event ready for the writer; its bytes live in PreparedBatch::data.
struct PreparedEvent {
  uint32_t run = 0;        // index into PreparedBatch::runs
  uint32_t container = 0;  // index into PreparedBatch::containers
  uint64_t seq = 0;
  int64_t time_ns = 0;
  int kind = 0;            // v1::Event::body_case()
  // The serialized Event without id and container_id (the store keeps them as columns).
  uint32_t payload_offset = 0, payload_size = 0;
  // Container events: the ContainerInfo serialized, upserted into `containers`.
  bool has_info = false;
  uint32_t info_offset = 0, info_size = 0;
};

struct PreparedRun {
  std::string boot_id;
  int64_t sensor_start_ns = 0;
};

// One allocation per batch for all event bytes: the writer frees a batch cheaply.
struct PreparedBatch {
  std::string node;
  std::vector<PreparedRun> runs;        // the batch's distinct runs
  std::vector<std::string> containers;  // the batch's distinct container ids
  std::vector<PreparedEvent> events;
  std::string data;

  std::string_view payload(const PreparedEvent& e) const {
    return std::string_view(data).substr(e.payload_offset, e.payload_size);
  }
  std::string_view info(const PreparedEvent& e) const {
    return std::string_view(data).substr(e.info_offset, e.info_size);
  }
  // The memory the batch holds: its bytes, events, and the container ids and runs kept
  // beside them (a batch of 10,000 events may name 10,000 containers).
  size_t MemoryBytes() const;
};

// Each element is one serialized v1::Event as the sensor sent it. Every event is parsed
// (malformed bytes and the ValidateEvent checks refuse the batch; the first bad event's index
// is in the error) and filed under `node`, the authenticated name, whatever its id.node says.
// Unknown fields are kept. Paths, argv, names and labels are `bytes` (event.proto) and are
// stored as they are, UTF-8 or not; only a `string` field (the sensor's own vocabulary) that
// is not UTF-8 makes an event unparsable, which only a broken sensor sends. Thread-safe.
[[nodiscard]] Result<PreparedBatch> PrepareEncodedBatch(
    const std::string& node, std::span<const std::string_view> events);

// Event `i` of a prepared batch as the reader would return it: the payload parsed, the id
// (node = the batch's) and container id put back. For consumers of the ingest path that need
// parsed events (detection); costs one parse. False if the payload does not parse.
bool DecodePreparedEvent(const PreparedBatch& b, size_t i, v1::Event* out);

// The same for parsed events (tests, tools): serializes them and calls PrepareEncodedBatch.
[[nodiscard]] Result<PreparedBatch> PrepareBatch(
    const std::string& node, google::protobuf::RepeatedPtrField<v1::Event>* events);

}  // namespace driftwatch
