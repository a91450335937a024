// The collector's wire-format scan of sensor messages (collector/message_scan.h): tables of
// well-formed and hostile inputs, each malformed one refused with the field named.
#include "collector/message_scan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace driftwatch {
namespace {

using M = v1::SensorMessage;

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

// A batch of `n` empty events (2 bytes each: tag 0x12, length 0) with batch_id `id`.
std::string BatchOf(uint64_t id, size_t n) {
  v1::EventBatch b;
  b.set_batch_id(id);
  std::string body = b.SerializeAsString();
  for (size_t i = 0; i < n; ++i) body += Bytes({0x12, 0x00});
  std::string out = Bytes({0x12});
  for (uint64_t v = body.size(); ; v >>= 7) {
    out += static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    if (v <= 0x7f) break;
  }
  return out + body;
}

std::string HelloOf(const std::string& node) {
  M m;
  m.mutable_hello()->set_node(node);
  return m.SerializeAsString();
}

struct ScanRow {
  std::string name;
  std::string bytes;
  size_t max_views;
  std::string error;  // "" accepted; else the whole error
  M::BodyCase body = M::BODY_NOT_SET;
  uint64_t batch_id = 0, event_count = 0, views = 0, parts = 0;
};

TEST(ScanSensorMessage, Table) {
  const size_t all = static_cast<size_t>(-1);
  const std::vector<ScanRow> rows = {
      {"empty: no body", "", all, "", M::BODY_NOT_SET},
      {"hello", HelloOf("node-a"), all, "", M::kHello, 0, 0, 0, 1},
      {"batch", BatchOf(5, 3), all, "", M::kBatch, 5, 3, 3, 0},
      {"empty batch", Bytes({0x12, 0x00}), all, "", M::kBatch},
      {"huge count: views capped, all counted", BatchOf(9, 100000), 10, "", M::kBatch, 9,
       100000, 10, 0},
      {"two batch fields merge", BatchOf(1, 2) + BatchOf(4, 3), all, "", M::kBatch, 4, 5, 5, 0},
      {"a later body replaces the earlier", HelloOf("a") + BatchOf(2, 1), all, "", M::kBatch, 2,
       1, 1, 0},
      {"two hellos: both parts kept, in order", HelloOf("a") + HelloOf("b"), all, "", M::kHello,
       0, 0, 0, 2},
      {"unknown fields skipped", Bytes({0x4a, 0x01, 0x00, 0x50, 0x07}) + HelloOf("a"), all, "",
       M::kHello, 0, 0, 0, 1},
      {"fixed-width unknown fields skipped",
       Bytes({0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x4d, 1, 2, 3, 4}), all, "", M::BODY_NOT_SET},
      // Hostile
      {"tag cut short", Bytes({0x80}), all,
       "malformed SensorMessage: the tag at byte 0 is cut short"},
      {"length past the end", Bytes({0x12, 0x05, 'a', 'b'}), all,
       "malformed SensorMessage: field 2 (byte 0): its length 5 runs past the 2 bytes left"},
      {"length cut short", Bytes({0x12, 0x80}), all,
       "malformed SensorMessage: field 2 (byte 0): its length is cut short"},
      {"huge length", Bytes({0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}),
       all,
       "malformed SensorMessage: field 2 (byte 0): its length 18446744073709551615 runs past "
       "the 0 bytes left"},
      {"varint cut short", Bytes({0x50, 0xff}), all,
       "malformed SensorMessage: field 10 (byte 0): its varint value is cut short"},
      {"fixed64 cut short", Bytes({0x09, 1, 2}), all,
       "malformed SensorMessage: field 1 (byte 0): its 8-byte value is cut short"},
      {"fixed32 cut short", Bytes({0x0d, 1}), all,
       "malformed SensorMessage: field 1 (byte 0): its 4-byte value is cut short"},
      {"group", Bytes({0x0b, 0x0c}), all,
       "malformed SensorMessage: field 1 (byte 0): wire type 3 (a group or no type), which "
       "no driftwatch message has"},
      {"wire type 7", Bytes({0x0f}), all,
       "malformed SensorMessage: field 1 (byte 0): wire type 7 (a group or no type), which "
       "no driftwatch message has"},
      {"the offset of a later field", HelloOf("a") + Bytes({0x12, 0x09}), all,
       "malformed SensorMessage: field 2 (byte 5): its length 9 runs past the 0 bytes left"},
      {"event length past the batch", Bytes({0x12, 0x03, 0x12, 0x05, 0x00}), all,
       "malformed EventBatch: field 2 (byte 0): its length 5 runs past the 1 bytes left"},
      {"batch_id cut short", Bytes({0x12, 0x02, 0x08, 0x80}), all,
       "malformed EventBatch: field 1 (byte 0): its varint value is cut short"},
  };
  ScannedSensorMessage out;  // reused, as a stream reuses its own
  for (const ScanRow& r : rows) {
    SCOPED_TRACE(r.name);
    auto ok = ScanSensorMessage(r.bytes, &out, r.max_views);
    if (!r.error.empty()) {
      ASSERT_FALSE(ok);
      EXPECT_EQ(ok.error(), r.error);
      continue;
    }
    ASSERT_TRUE(ok) << ok.error();
    EXPECT_EQ(out.body, r.body);
    EXPECT_EQ(out.batch_id, r.batch_id);
    EXPECT_EQ(out.event_count, r.event_count);
    EXPECT_EQ(out.events.size(), r.views);
    EXPECT_EQ(out.parts.size(), r.parts);
    for (std::string_view v : out.events) {
      EXPECT_GE(v.data(), r.bytes.data());
      EXPECT_LE(v.data() + v.size(), r.bytes.data() + r.bytes.size());
    }
  }
}

struct ChunkRow {
  std::string name;
  std::vector<std::string> parts;
  std::string error;
  uint64_t command_id = 0, chunk_index = 0;
  bool has_last = false, last_chunk = false;
  uint64_t entries = 0;
};

std::string Reply(uint64_t cmd, uint32_t index, int last, int entries) {
  v1::InventoryReply r;
  r.set_command_id(cmd);
  r.set_chunk_index(index);
  if (last >= 0) r.set_last_chunk(last != 0);
  for (int i = 0; i < entries; ++i) r.add_entries()->set_path("/x");
  return r.SerializeAsString();
}

TEST(ScanInventoryChunk, Table) {
  const std::vector<ChunkRow> rows = {
      {"no parts", {}, "", 0, 0, false, false, 0},
      {"one message, no last_chunk", {Reply(7, 0, -1, 2)}, "", 7, 0, false, false, 2},
      {"a middle chunk", {Reply(7, 3, 0, 1)}, "", 7, 3, true, false, 1},
      {"the last chunk", {Reply(7, 4, 1, 0)}, "", 7, 4, true, true, 0},
      {"parts merge, later fields win", {Reply(7, 0, 0, 1), Reply(8, 2, 1, 2)}, "", 8, 2, true,
       true, 3},
      {"chunk_index read as a uint32", {Bytes({0x28, 0x81, 0x80, 0x80, 0x80, 0x10})}, "", 0, 1,
       false, false, 0},
      {"entries of another wire type are not entries", {Bytes({0x20, 0x05})}, "", 0, 0, false,
       false, 0},
      {"cut short in the second part", {Reply(7, 0, 0, 1), Bytes({0x08})},
       "malformed InventoryReply: field 1 (byte 0): its varint value is cut short"},
      {"entry length past the end", {Bytes({0x22, 0x10, 0x0a})},
       "malformed InventoryReply: field 4 (byte 0): its length 16 runs past the 1 bytes left"},
      {"empty entry", {Bytes({0x22, 0x00})}, "", 0, 0, false, false, 1},
  };
  for (const ChunkRow& r : rows) {
    SCOPED_TRACE(r.name);
    std::vector<std::string_view> parts(r.parts.begin(), r.parts.end());
    InventoryChunkScan c;
    auto ok = ScanInventoryChunk(parts, &c);
    if (!r.error.empty()) {
      ASSERT_FALSE(ok);
      EXPECT_EQ(ok.error(), r.error);
      continue;
    }
    ASSERT_TRUE(ok) << ok.error();
    EXPECT_EQ(c.command_id, r.command_id);
    EXPECT_EQ(c.chunk_index, r.chunk_index);
    EXPECT_EQ(c.has_last_chunk, r.has_last);
    EXPECT_EQ(c.last_chunk, r.last_chunk);
    EXPECT_EQ(c.entries, r.entries);
    uint64_t bytes = 0;
    for (const std::string& p : r.parts) bytes += p.size();
    EXPECT_EQ(c.bytes, bytes);
  }
}

}  // namespace
}  // namespace driftwatch
