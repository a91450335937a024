// procfs: small reads of /proc (and other pseudo-files) shared by the sensor and the CLI.
// Thread-safe (no shared state).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace driftwatch {

// The whole file, read with plain read(2) until EOF (pseudo-files report no size). False
// when it cannot be opened or is empty (a process that is gone).
bool ReadSmallFile(const std::string& path, std::string* out);
// The same for `name` under the directory fd `dirfd` (openat), at most `max_bytes` of it.
bool ReadSmallFileAt(int dirfd, const char* name, std::string* out, size_t max_bytes = SIZE_MAX);

// readlinkat into a string; "" on failure. For an fd opened under a process's root, the
// kernel prints the path from the root of that fd's mount namespace: the path the process
// sees.
std::string ReadLinkAt(int dirfd, const std::string& path);
// The path an fd of this process reads as (/proc/self/fd/N); "" on failure.
std::string FdPath(int fd);
// The mount id of an fd of this process (mnt_id in /proc/self/fdinfo/N); -1 if unknown.
int FdMountId(int fd);

struct ProcStat {
  std::string_view comm;     // field 2, between the first '(' and the last ')'; a view into
                             // the parsed text
  char state = '?';          // field 3: R, S, D, Z (zombie), X (dead), ...
  int64_t ppid = -1;         // field 4
  int64_t pgrp = -1;         // field 5: process group, in the pid namespace of the procfs read
  int64_t session = -1;      // field 6: session id, likewise
  uint64_t start_ticks = 0;  // field 22: start time, clock ticks since boot
  // Fields 50 and 51 (Linux 3.5+; 0 when the reader may not ptrace the process): where the
  // environment lies in its memory, so env_end - env_start is /proc/<pid>/environ's size.
  uint64_t env_start = 0, env_end = 0;
};

// Fields of /proc/<pid>/stat, counted after the comm's last ')' (comm may hold spaces and
// parentheses). nullopt for text that is not a stat line (fields up to 22 are required).
std::optional<ProcStat> ParseProcStat(std::string_view text);

// What the sensor reads of /proc/<pid>/status. Ids are the last of each NS* line: as seen
// from the process's own pid namespace (NSpid, NSpgid, NSsid: Linux 4.1+).
struct ProcStatus {
  std::optional<uint32_t> vpid, vpgid, vsid;
  std::optional<uint64_t> cap_inheritable, cap_permitted, cap_effective;  // CapInh, CapPrm, CapEff
};
// Lines that are missing or malformed leave their member unset. Never fails.
ProcStatus ParseProcStatus(std::string_view text);

// The NAME=value entries of /proc/<pid>/environ text (NUL-separated), as exact bytes.
// Keeps whole entries while their bytes (NULs included) fit `max_bytes`, and drops the
// rest: `dropped_bytes` counts the bytes of those dropped, plus `beyond` more the caller
// knows lie past the end of `text` (a read cut short: then a last entry without its NUL is
// a piece of one and is dropped too; otherwise it counts as a whole entry). Empty entries
// are skipped.
struct Environ {
  std::vector<std::string_view> entries;  // views into text
  bool capped = false;
  uint64_t dropped_bytes = 0;
};
Environ SplitEnviron(std::string_view text, size_t max_bytes, uint64_t beyond = 0);
std::optional<ProcStat> ReadProcStat(pid_t pid);

// A process with this pid exists (kill(pid, 0) succeeds, or is refused with EPERM).
bool ProcessAlive(pid_t pid);

}  // namespace driftwatch
