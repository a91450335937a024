#pragma once

#include <string>

namespace driftwatch::cli {

struct StatusOptions {
  std::string sensor = "127.0.0.1:9464";  // the sensor's --metrics-address
  bool json = false;                       // the sensor's (or collector's) document as is
  std::string collector;                   // non-empty: the collector's fleet view instead
  std::string db;                          // non-empty: the fleet as this store records it
};

// `driftwatch status --collector` without an address: the collector's --metrics-address default.
inline constexpr const char* kCollectorStatusAddress = "127.0.0.1:9465";

// `driftwatch status`: the node's sensor, as its /status endpoint reports it; with
// `collector` set, the fleet as the collector's /status reports it (one line per node); with
// `db` set, the fleet as the store records it (EventQueries::Status), no collector asked:
// with several collectors on PostgreSQL, each one's /status shows only the nodes it serves.
// Returns the exit status: 0, or 1 when the sensor, collector or store cannot be read.
int RunStatus(const StatusOptions& opt);

}  // namespace driftwatch::cli
