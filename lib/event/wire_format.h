// wire_format: just enough of the protobuf wire format to walk a message's fields without
// parsing it (the collector scans batches and rewrites stored events as received bytes).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

namespace driftwatch::wire {

// A base-128 varint from the front of `in`. False when truncated or longer than 64 bits.
inline bool ReadVarint(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in->empty(); shift += 7) {
    const uint8_t b = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

// One field from the front of `in`: its number, wire type, and its varint value (type 0) or
// length-delimited bytes (type 2, a view into `in`'s data). False on malformed or truncated
// input, groups included (no driftwatch message has one).
inline bool NextField(std::string_view* in, uint64_t* field, uint64_t* wire_type,
                      uint64_t* value, std::string_view* bytes) {
  uint64_t tag = 0;
  if (!ReadVarint(in, &tag)) return false;
  *field = tag >> 3;
  *wire_type = tag & 7;
  switch (*wire_type) {
    case 0: return ReadVarint(in, value);
    case 1:
      if (in->size() < 8) return false;
      in->remove_prefix(8);
      return true;
    case 2: {
      uint64_t len = 0;
      if (!ReadVarint(in, &len) || len > in->size()) return false;
      *bytes = in->substr(0, len);
      in->remove_prefix(len);
      return true;
    }
    case 5:
      if (in->size() < 4) return false;
      in->remove_prefix(4);
      return true;
    default: return false;
  }
}

}  // namespace driftwatch::wire
