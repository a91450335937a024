// Stage 3 in the sensor: the parent's name (Falco's proc.pname) of an exec, chmod or
// network event, from the comm of the parent's own last exec.
//
// The sensor attributes containers from the kernel (sensor/enrich.h); of ProcessTree's work
// it needs only this. One entry per exec'ing pid, 16 bytes of name and no heap string, in
// two generations: a name not used for a whole generation is forgotten, so memory stays
// bounded without exit events, while a parent that keeps spawning keeps its name. A parent
// not known (its exec not seen, or forgotten) is asked of `fallback` (the sensor reads
// /proc): a container cannot hide its parent's name by flooding the table with execs.
//
// Thread-compatible.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "driftwatch/v1/event.pb.h"

namespace driftwatch {

class ParentNames {
 public:
  // Entries per generation; at most twice that are held.
  // The comm of `pid` if it is still the process it was at `time_ns` (epoch), else nullopt.
  using Fallback = std::function<std::optional<std::string>(uint32_t pid, int64_t time_ns)>;

  explicit ParentNames(Fallback fallback = {}, size_t generation = 1 << 16)
      : fallback_(std::move(fallback)), generation_(generation ? generation : 1) {}

  // Sets the event's parent_name (empty when the parent's exec was not seen) and, for a
  // successful exec, remembers the new comm of its pid.
  void Name(v1::Event* ev);

  size_t size() const { return young_.size() + old_.size(); }

 private:
  // comm is at most TASK_COMM_LEN - 1 = 15 bytes: a longer one is cut there.
  struct Comm {
    std::array<char, 15> bytes;
    uint8_t size = 0;
    std::string_view view() const { return {bytes.data(), size}; }
  };
  const Comm* Find(uint32_t pid);
  void Remember(uint32_t pid, std::string_view comm);
  void Turn();  // the young generation becomes the old; the old is forgotten

  Fallback fallback_;
  size_t generation_;
  std::unordered_map<uint32_t, Comm> young_, old_;
};

}  // namespace driftwatch
