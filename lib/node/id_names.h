// id_names: user and group names by id, from the text of an /etc/passwd or /etc/group file
// (`name:password:id:...`), as getpwuid(3) and getgrgid(3) would answer from files alone.
//
// The files the sensor reads are a container's: whoever runs in it writes them. Parsing is
// bounded and total: lines that are not well-formed entries are counted and skipped, never
// an error; names are bytes (not UTF-8 checked), at most kMaxIdNameBytes each; at most
// `max_entries` ids are kept. The first entry of an id wins, as with getpwuid.
//
// Thread-safety: pure functions; an IdNames is plain data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace driftwatch {

inline constexpr size_t kMaxIdNameBytes = 256;

struct IdNames {
  std::unordered_map<uint32_t, std::string> by_id;
  size_t bad_lines = 0;  // lines skipped as malformed (comments and blank lines are not)
  bool capped = false;   // entries past max_entries were left out

  // The name of `id`, or "" when the file has none.
  std::string_view Find(uint32_t id) const {
    auto it = by_id.find(id);
    return it == by_id.end() ? std::string_view() : std::string_view(it->second);
  }
};

// Parses passwd or group text (both keep the id in the third field).
IdNames ParseIdNames(std::string_view text, size_t max_entries = 65536);

}  // namespace driftwatch
