// node_state: what the collector knows of a sensor node, in memory and in the store's
// `nodes` table (written by lib/store/event_store, read by lib/store/event_reader).
#pragma once

#include <cstdint>
#include <string>

namespace driftwatch {

// Hello fields as the node state keeps them (the collector fills this from v1::Hello).
struct NodeHello {
  std::string boot_id;
  int64_t sensor_start_ns = 0;
  std::string sensor_version;
  std::string kernel_version;
  std::string audit_mode;
  std::string fanotify_mode;
  uint64_t spool_dropped = 0;
  std::string peer;             // last peer address
};

// What the collector knows of a node; `connected_streams` and the last Hello are in memory
// and in the `nodes` table.
struct NodeState {
  std::string node;
  uint32_t connected_streams = 0;
  int64_t last_seen_ns = 0;     // last connect, disconnect or stored batch
  uint64_t events_stored = 0;
  uint64_t duplicates = 0;
  uint64_t events_missing = 0;  // sequence numbers that never arrived (gaps), this process
  NodeHello hello;
};

}  // namespace driftwatch
