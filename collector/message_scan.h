// message_scan: what a sensor's message is, read by walking its protobuf wire format
// (lib/event/wire_format.h) without parsing it. The first thing the collector does with the bytes
// of a stream's message (collector/session.h decides what to do with it).
//
// Every error names the message and field that is malformed and why (a tag or value cut
// short, a length running past the bytes left, a wire type no driftwatch message has):
// the stream that sent it is refused with it (INVALID_ARGUMENT), or an inventory chunk
// discarded and counted with it (collector/session.h).
//
// Thread-safety: pure functions; they read only the bytes given.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "driftwatch/v1/collector.pb.h"

namespace driftwatch {

// One field from the front of `*in` (wire::NextField), where `base` is the whole message
// `*in` is a suffix of (for the byte offset in the error). Error: "malformed <what>: ..."
// naming the field number (or the offset of a tag cut short) and what is wrong.
[[nodiscard]] std::expected<void, std::string> NextWireField(std::string_view base,
                                                             std::string_view* in,
                                                             const char* what, uint64_t* field,
                                                             uint64_t* wire_type,
                                                             uint64_t* value,
                                                             std::string_view* bytes);

// A SensorMessage in the wire format, walked without parsing it. For a batch, `events`
// views the serialized events inside the message's bytes (which must outlive it), the
// first `max_event_views` of them, `event_count` counts them all; a Hello's or an
// InventoryReply's bytes are viewed in `parts` (protobuf would merge them, in order). As
// protobuf parses: the last body field wins, repeated batch fields merge, unknown fields
// are skipped. Error: the bytes are malformed ("malformed SensorMessage: ..." or
// "malformed EventBatch: ...").
struct ScannedSensorMessage {
  v1::SensorMessage::BodyCase body = v1::SensorMessage::BODY_NOT_SET;
  uint64_t batch_id = 0;
  std::vector<std::string_view> events;
  uint64_t event_count = 0;
  std::vector<std::string_view> parts;  // hello or inventory
};
[[nodiscard]] std::expected<void, std::string> ScanSensorMessage(
    std::string_view bytes, ScannedSensorMessage* out,
    size_t max_event_views = static_cast<size_t>(-1));

// Calls fn(field, wire_type, value, bytes, span) for each field of an InventoryReply given
// as `parts` (merged in order); `span` is the field as received (tag, length and bytes).
// Stops at fn's first error. Error: "malformed InventoryReply: ...", or fn's.
template <typename Fn>
std::expected<void, std::string> WalkInventory(const std::vector<std::string_view>& parts,
                                               Fn&& fn) {
  for (std::string_view part : parts) {
    std::string_view in = part;
    while (!in.empty()) {
      const char* begin = in.data();
      uint64_t field = 0, wt = 0, value = 0;
      std::string_view sub;
      if (auto r = NextWireField(part, &in, "InventoryReply", &field, &wt, &value, &sub); !r) {
        return r;
      }
      if (auto r = fn(field, wt, value, sub, std::string_view(begin, in.data() - begin)); !r) {
        return r;
      }
    }
  }
  return {};
}

// The fields of an InventoryReply chunk that say where it belongs, read by walking its
// wire format (`parts` as ScanSensorMessage gives them), nothing allocated. Error: the
// bytes are malformed.
struct InventoryChunkScan {
  uint64_t command_id = 0;
  uint64_t chunk_index = 0;
  bool has_last_chunk = false;  // absent: a sensor from before chunks, one message
  bool last_chunk = false;
  uint64_t entries = 0;
  uint64_t bytes = 0;  // the chunk's size
  bool last() const { return !has_last_chunk || last_chunk; }
};
[[nodiscard]] std::expected<void, std::string> ScanInventoryChunk(
    const std::vector<std::string_view>& parts, InventoryChunkScan* out);

}  // namespace driftwatch
