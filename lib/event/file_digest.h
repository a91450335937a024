// file_digest: what a freshly written file is (executable? script? ELF?) and its sha256, and
// how to open one for that without ever opening anything but a regular file.
// Shared by the fanotify watcher (classified at close-write, hashed on its hash worker) and
// `driftwatch diff` (inventory).
// Thread-safe: no shared state.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "lib/base/result.h"

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

  // Classified as an executable worth hashing, not hashed yet.
  bool wants_hash() const { return executable && !over_cap && !hashed && error.empty(); }
};

// Reads the file behind `fd` from offset 0 with pread (the fd's own offset is left alone).
// `mode` and `size` come from the caller's fstat. Only executables are hashed, and only up
// to `hash_max_bytes`. ClassifyFile then HashFile.
FileFacts InspectFile(int fd, mode_t mode, uint64_t size, uint64_t hash_max_bytes);

// The first bytes only (ELF magic, "#!"): the facts but no hash. over_cap when an
// executable's `size` is over `hash_max_bytes`.
FileFacts ClassifyFile(int fd, mode_t mode, uint64_t size, uint64_t hash_max_bytes);

// The sha256 of the whole file behind `fd` into `f` (hashed, sha256), reading at most
// `hash_max_bytes` (a file that grew past it: over_cap, no hash); a read error in f->error.
void HashFile(int fd, uint64_t hash_max_bytes, FileFacts* f);

// Opening a file whose name a hostile process controls. A type check followed by an open
// by name races with whoever swaps the name for a device node (a container with CAP_MKNOD)
// or a FIFO (an O_RDONLY open of which blocks until a writer comes). So: open the name with
// O_PATH|O_NOFOLLOW (opens nothing: no device open, no FIFO wait, no symlink followed),
// fstat that fd, and reopen that very inode for reading through /proc/self/fd/N only if it
// is a regular file.
//
// Reopens `path_fd` (an O_PATH or any other fd; `st` its fstat) for reading: an fd
// (O_RDONLY, blocking, close-on-exec) on the same (st_dev, st_ino), or why not. Refuses
// anything that is not a regular file without opening it. Errors: not a regular file:
// kInvalidInput; another inode reopened (swapped meanwhile): kIo; a failed syscall: what its
// errno implies ("fstat: ...").
Result<int> ReopenRegular(int path_fd, const struct stat& st);

// `name` under `dir_fd` (AT_FDCWD: the cwd; a symlink is not followed, in the last
// component) opened for reading through ReopenRegular; `st` gets its fstat. A name that is
// not there: kNotFound ("open: No such file or directory").
Result<int> OpenRegularAt(int dir_fd, const char* name, struct stat* st);

// Lowercase hex of raw bytes ("" for "").
std::string HexOf(const std::string& raw);
// The sha256 of `data`, lowercase hex.
std::string Sha256Hex(std::string_view data);

}  // namespace driftwatch
