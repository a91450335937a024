#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "lib/node/drift_inventory.h"

namespace driftwatch::cli {

struct DiffOptions {
  // Exactly one of the three sources:
  std::string container;  // full container id, a unique prefix of one, or a name: a CRI
                          // NAME, POD/NAME or NAMESPACE/POD/NAME, or a Docker NAME
  pid_t pid = 0;          // a process whose root is the container's overlay
  std::string upperdir;   // offline: an upper layer (e.g. a stopped container's snapshot)
  std::string lowerdir;   // with upperdir: lower layers, ':'-separated, topmost first

  bool json = false;                  // one JSON object per entry instead of the table
  uint64_t hash_max = 64ull << 20;    // sha256 of executables up to this size
  bool include_mount_points = false;  // keep mount targets the runtime created
  std::vector<std::string> cri_endpoints;  // for names; empty: the usual sockets
  // For names of Docker (or Podman) containers; "" : the engine's usual socket if it exists.
  std::string docker_endpoint;
};

// Prints the container's drift against its image. Returns the exit status: 0, or 1 with a
// message on stderr (no container matches, ambiguous prefix, root not an overlay, ...).
int RunDiff(const DiffOptions& opt);

// The diff's renderings, shared with `driftwatch inventory`: one entry as a JSON object (no
// newline), and the table with its summary line naming `what` was compared.
std::string DriftEntryJson(const DriftEntry& e);
void PrintDriftTable(const std::vector<DriftEntry>& entries, const std::string& what);

}  // namespace driftwatch::cli
