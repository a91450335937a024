#include "collector/message_scan.h"

#include "lib/event/wire_format.h"

namespace driftwatch {

std::expected<void, std::string> NextWireField(std::string_view base, std::string_view* in,
                                               const char* what, uint64_t* field,
                                               uint64_t* wire_type, uint64_t* value,
                                               std::string_view* bytes) {
  const size_t at = static_cast<size_t>(in->data() - base.data());
  std::string_view probe = *in;
  if (wire::NextField(in, field, wire_type, value, bytes)) return {};
  // Why it failed, walking the field again step by step (the error path only).
  auto error = [&](const std::string& why) {
    return std::unexpected("malformed " + std::string(what) + ": " + why);
  };
  uint64_t tag = 0;
  if (!wire::ReadVarint(&probe, &tag)) {
    return error("the tag at byte " + std::to_string(at) + " is cut short");
  }
  const std::string name = "field " + std::to_string(tag >> 3) + " (byte " +
                           std::to_string(at) + ")";
  uint64_t len = 0;
  switch (tag & 7) {
    case 0: return error(name + ": its varint value is cut short");
    case 1: return error(name + ": its 8-byte value is cut short");
    case 5: return error(name + ": its 4-byte value is cut short");
    case 2:
      if (!wire::ReadVarint(&probe, &len)) return error(name + ": its length is cut short");
      return error(name + ": its length " + std::to_string(len) + " runs past the " +
                   std::to_string(probe.size()) + " bytes left");
    default:
      return error(name + ": wire type " + std::to_string(tag & 7) +
                   " (a group or no type), which no driftwatch message has");
  }
}

std::expected<void, std::string> ScanSensorMessage(std::string_view bytes,
                                                   ScannedSensorMessage* out,
                                                   size_t max_event_views) {
  using M = v1::SensorMessage;
  auto reset = [out](M::BodyCase body) {
    out->body = body;
    out->batch_id = 0;
    out->events.clear();
    out->event_count = 0;
    out->parts.clear();
  };
  reset(M::BODY_NOT_SET);
  std::string_view in = bytes;
  while (!in.empty()) {
    uint64_t field = 0, wt = 0, value = 0;
    std::string_view sub;
    if (auto r = NextWireField(bytes, &in, "SensorMessage", &field, &wt, &value, &sub); !r) {
      return r;
    }
    if (wt != 2) continue;  // no known field here has another wire type: unknown, skipped
    const M::BodyCase body = field == M::kBatchFieldNumber       ? M::kBatch
                             : field == M::kHelloFieldNumber     ? M::kHello
                             : field == M::kInventoryFieldNumber ? M::kInventory
                                                                 : M::BODY_NOT_SET;
    if (body == M::BODY_NOT_SET) continue;
    // Another body field replaces the oneof; the same one again merges into it.
    if (body != out->body) reset(body);
    if (body != M::kBatch) {
      out->parts.push_back(sub);
      continue;
    }
    std::string_view batch = sub;
    while (!sub.empty()) {
      uint64_t f = 0, w = 0, v = 0;
      std::string_view ev;
      if (auto r = NextWireField(batch, &sub, "EventBatch", &f, &w, &v, &ev); !r) return r;
      if (f == v1::EventBatch::kBatchIdFieldNumber && w == 0) out->batch_id = v;
      if (f == v1::EventBatch::kEventsFieldNumber && w == 2) {
        ++out->event_count;
        if (out->events.size() < max_event_views) out->events.push_back(ev);
      }
    }
  }
  return {};
}

std::expected<void, std::string> ScanInventoryChunk(const std::vector<std::string_view>& parts,
                                                    InventoryChunkScan* out) {
  using R = v1::InventoryReply;
  *out = InventoryChunkScan();
  for (std::string_view p : parts) out->bytes += p.size();
  return WalkInventory(parts, [out](uint64_t f, uint64_t wt, uint64_t v, std::string_view,
                                    std::string_view) -> std::expected<void, std::string> {
    if (wt == 0 && f == R::kCommandIdFieldNumber) out->command_id = v;
    // As protobuf reads a uint32 and a bool from a varint.
    if (wt == 0 && f == R::kChunkIndexFieldNumber) out->chunk_index = static_cast<uint32_t>(v);
    if (wt == 0 && f == R::kLastChunkFieldNumber) {
      out->has_last_chunk = true;
      out->last_chunk = v != 0;
    }
    if (wt == 2 && f == R::kEntriesFieldNumber) ++out->entries;
    return {};
  });
}

}  // namespace driftwatch
