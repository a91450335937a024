#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace driftwatch::cli {

struct DiffOptions {
  // Exactly one of the three sources:
  std::string container;  // full container id or a unique prefix of one
  pid_t pid = 0;          // a process whose root is the container's overlay
  std::string upperdir;   // offline: an upper layer (e.g. a stopped container's snapshot)
  std::string lowerdir;   // with upperdir: lower layers, ':'-separated, topmost first

  bool json = false;                  // one JSON object per entry instead of the table
  uint64_t hash_max = 64ull << 20;    // sha256 of executables up to this size
};

// Prints the container's drift against its image. Returns the exit status: 0, or 1 with a
// message on stderr (no container matches, ambiguous prefix, root not an overlay, ...).
int RunDiff(const DiffOptions& opt);

}  // namespace driftwatch::cli
