// procfs: small reads of /proc (and other pseudo-files) shared by the sensor and the CLI.
// Thread-safe (no shared state).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace driftwatch {

// The whole file, read with plain read(2) until EOF (pseudo-files report no size). False
// when it cannot be opened or is empty (a process that is gone).
bool ReadSmallFile(const std::string& path, std::string* out);

struct ProcStat {
  char state = '?';          // field 3: R, S, D, Z (zombie), X (dead), ...
  uint64_t start_ticks = 0;  // field 22: start time, clock ticks since boot
};

// Fields of /proc/<pid>/stat, counted after the comm's last ')' (comm may hold spaces and
// parentheses). nullopt for text that is not a stat line.
std::optional<ProcStat> ParseProcStat(std::string_view text);
std::optional<ProcStat> ReadProcStat(pid_t pid);

// A process with this pid exists (kill(pid, 0) succeeds, or is refused with EPERM).
bool ProcessAlive(pid_t pid);

}  // namespace driftwatch
