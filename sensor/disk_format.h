// disk_format: the byte-level pieces the sensor's on-disk files share (spool segments, the
// ack file, the loss file): little-endian integers and LevelDB-style masked crc32s.
#pragma once

#include <zlib.h>

#include <cstddef>
#include <cstdint>

namespace driftwatch::sensor::disk {

inline void PutU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline void PutU64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
inline uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

inline uint32_t Crc(uint32_t crc, const void* data, size_t n) {
  // zlib takes uInt lengths; records are bounded well below 4 GiB.
  return static_cast<uint32_t>(crc32(crc, static_cast<const Bytef*>(data), static_cast<uInt>(n)));
}

// As LevelDB does: a crc stored next to data that is itself crc'ed (a spool inside a spool)
// should not look like a valid crc of it.
inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace driftwatch::sensor::disk
