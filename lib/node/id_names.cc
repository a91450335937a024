#include "lib/node/id_names.h"

#include <charconv>

namespace driftwatch {
namespace {

// A well-formed entry's name and id: name not empty, not an NIS "+"/"-" compat line, no
// NUL; id decimal, below 2^32 - 1 ((uid_t)-1 names no one).
bool ParseEntry(std::string_view line, std::string_view* name, uint32_t* id) {
  size_t c1 = line.find(':');
  if (c1 == std::string_view::npos) return false;
  size_t c2 = line.find(':', c1 + 1);
  if (c2 == std::string_view::npos) return false;
  size_t c3 = line.find(':', c2 + 1);
  std::string_view n = line.substr(0, c1);
  std::string_view i = line.substr(c2 + 1, c3 == std::string_view::npos ? std::string_view::npos
                                                                         : c3 - c2 - 1);
  if (n.empty() || n.size() > kMaxIdNameBytes || n.front() == '+' || n.front() == '-' ||
      n.find('\0') != std::string_view::npos)
    return false;
  if (i.empty() || i.size() > 10 || i.find_first_not_of("0123456789") != std::string_view::npos)
    return false;
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(i.data(), i.data() + i.size(), v);
  if (ec != std::errc() || ptr != i.data() + i.size() || v >= 4294967295u) return false;
  *name = n;
  *id = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

IdNames ParseIdNames(std::string_view text, size_t max_entries) {
  IdNames out;
  size_t i = 0;
  while (i < text.size()) {
    size_t nl = text.find('\n', i);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(i, nl - i);
    i = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    std::string_view name;
    uint32_t id = 0;
    if (!ParseEntry(line, &name, &id)) {
      ++out.bad_lines;
      continue;
    }
    if (out.by_id.contains(id)) continue;
    if (out.by_id.size() >= max_entries) {
      out.capped = true;
      continue;
    }
    out.by_id.emplace(id, std::string(name));
  }
  return out;
}

}  // namespace driftwatch
