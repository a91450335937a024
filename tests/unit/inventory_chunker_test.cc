// The sensor's inventory replies in chunks (sensor/uplink.h): each under the chunk size,
// numbered, the last one marked and carrying the error and the truncation, nothing lost.
#include <gtest/gtest.h>

#include <string>

#include "sensor/uplink.h"

namespace driftwatch::sensor {
namespace {

InventoryResult Result(size_t n) {
  InventoryResult r;
  r.container_id = "c0ffee";
  for (size_t i = 0; i < n; ++i) {
    DriftEntry e;
    e.path = "/data/" + std::string(200, 'n') + std::to_string(i);
    e.type = 'f';
    e.size = i;
    e.mode = 0644;
    r.inventory.entries.push_back(e);
  }
  return r;
}

TEST(InventoryChunker, ChunksUnderTheSizeInOrder) {
  InventoryResult r = Result(10000);
  r.inventory.truncation.depth = true;
  r.inventory.truncation.dirs_not_entered = 3;
  r.inventory.truncation.first_not_entered = "/deep";
  InventoryChunker chunker(42, std::move(r), 64 << 10);
  size_t entries = 0;
  uint32_t index = 0;
  while (!chunker.done()) {
    v1::SensorMessage m;
    *m.mutable_inventory() = chunker.Next();
    const v1::InventoryReply& c = m.inventory();
    SCOPED_TRACE(index);
    EXPECT_LE(m.ByteSizeLong(), 64u << 10);
    EXPECT_GT(c.entries_size(), 0);
    EXPECT_EQ(c.command_id(), 42u);
    EXPECT_EQ(c.container_id(), "c0ffee");
    EXPECT_EQ(c.chunk_index(), index++);
    ASSERT_TRUE(c.has_last_chunk());
    EXPECT_EQ(c.last_chunk(), chunker.done());
    EXPECT_EQ(c.has_truncated(), chunker.done());
    for (const v1::InventoryEntry& e : c.entries()) {
      EXPECT_EQ(e.size(), entries);
      EXPECT_EQ(e.path(), "/data/" + std::string(200, 'n') + std::to_string(entries));
      ++entries;
    }
    if (chunker.done()) {
      EXPECT_TRUE(c.truncated().depth());
      EXPECT_EQ(c.truncated().dirs_not_entered(), 3u);
      EXPECT_EQ(c.truncated().first_not_entered(), "/deep");
    }
  }
  EXPECT_EQ(entries, 10000u);
  EXPECT_GT(index, 30u);  // 2.2 MB of entries in chunks of 64 KiB
}

TEST(InventoryChunker, AnErrorOrNoDriftIsOneChunk) {
  InventoryResult failed;
  failed.container_id = "c0ffee";
  failed.error = "no running container c0ffee";
  InventoryChunker a(7, failed, 1 << 20);
  v1::InventoryReply c = a.Next();
  EXPECT_TRUE(a.done());
  EXPECT_EQ(c.chunk_index(), 0u);
  EXPECT_TRUE(c.last_chunk());
  EXPECT_EQ(c.error(), "no running container c0ffee");
  EXPECT_EQ(c.entries_size(), 0);
  EXPECT_FALSE(c.has_truncated());

  InventoryChunker b(8, Result(0), 1 << 20);
  c = b.Next();
  EXPECT_TRUE(b.done());
  EXPECT_TRUE(c.last_chunk());
  EXPECT_EQ(c.error(), "");
}

TEST(InventoryChunker, AnEntryOverTheSizeGoesAlone) {
  InventoryChunker chunker(9, Result(3), 100);  // each entry is over 200 bytes
  for (uint32_t i = 0; i < 3; ++i) {
    ASSERT_FALSE(chunker.done());
    v1::InventoryReply c = chunker.Next();
    EXPECT_EQ(c.entries_size(), 1);
    EXPECT_EQ(c.chunk_index(), i);
  }
  EXPECT_TRUE(chunker.done());
}

}  // namespace
}  // namespace driftwatch::sensor
