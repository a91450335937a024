// enrich: ties live exec and chmod events to their container (the "enrich" stage of
// DESIGN.md's data flow) and marks execs of files from a container's upper layer.
//
// Attribution, in order, each event saying which one answered:
//   1. cgroup: the process itself, read from /proc/<pid>/cgroup, trusted only when
//      /proc/<pid>/stat's start time is not later than the event (else the pid was reused);
//      container answers are cached by (pid, start time);
//   2. parent: the same for the parent, from the cache when it has exited already;
//   3. device: the executable's (chmod: the file's) device is a known container's rootfs
//      overlay, which survives a process that exited within a millisecond of its exec;
//   otherwise "host", attributed as parent (the parent said host) or unknown.
//
// Thread-safety: not thread-safe; one Enricher per parser thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_map>

#include "driftwatch/v1/event.pb.h"
#include "sensor/container_registry.h"

namespace driftwatch::sensor {

class Enricher {
 public:
  // REQUIRES: `registry` outlives this object (it may be null: no device attribution and
  // no upper-layer check).
  explicit Enricher(const ContainerRegistry* registry, size_t cache_limit = 1 << 16);

  // Sets container_id and attribution on exec and chmod events, and
  // proc.is_exe_upper_layer on execs in containers. Other events are left alone.
  void Enrich(v1::Event* ev);

  struct Stats {
    uint64_t by_cgroup = 0, by_parent = 0, by_device = 0, unknown = 0, pid_reused = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  struct Proc {
    uint64_t start_ticks = 0;  // /proc/<pid>/stat field 22
    std::string container;     // container id ("" = host)
  };
  // Reads the process's start time and container. False when it is gone or started after
  // `event_boot_ns` (pid reused).
  bool Lookup(pid_t pid, int64_t event_boot_ns, std::string* container);
  int64_t WallToBootNs(int64_t wall_ns);

  const ContainerRegistry* registry_;
  size_t cache_limit_;
  std::unordered_map<pid_t, Proc> cache_;  // container processes only
  int64_t boot_offset_ns_ = 0;             // realtime - boottime, refreshed now and then
  int64_t offset_read_at_ = 0;
  long ticks_per_sec_;
  Stats stats_;
};

}  // namespace driftwatch::sensor
