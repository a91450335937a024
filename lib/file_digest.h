// file_digest: what a freshly written file is (executable? script? ELF?) and its sha256.
// Shared by the fanotify watcher (hash at close-write) and `driftwatch diff` (inventory).
// Thread-safe: no shared state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace driftwatch {

struct FileFacts {
  bool elf = false;         // starts with "\x7fELF"
  bool script = false;      // starts with "#!"
  bool exec_bit = false;    // any of the mode's x bits
  bool executable = false;  // elf || script || exec_bit
  bool hashed = false;      // sha256 holds the digest of the whole file
  bool over_cap = false;    // executable but larger than the cap: not hashed
  std::string sha256;       // 32 raw bytes when hashed
  std::string error;        // why reading failed (the facts above are then partial)
};

// Reads the file behind `fd` from offset 0 with pread (the fd's own offset is left alone).
// `mode` and `size` come from the caller's fstat. Only executables are hashed, and only up
// to `hash_max_bytes`.
FileFacts InspectFile(int fd, mode_t mode, uint64_t size, uint64_t hash_max_bytes);

// Lowercase hex of raw bytes ("" for "").
std::string HexOf(const std::string& raw);

}  // namespace driftwatch
