// id_name_cache: user and group names of the ids in exec events (user.name, user.loginname,
// group.name), as the process's own system names them: its container's /etc/passwd and
// /etc/group, read through the container's root (the host's for host processes), never
// the sensor's.
//
// Those files belong to whoever runs in the container: each is opened with
// OpenInRoot (lib/event/exe_file.h: symlinks and ".." never leave the root), read only
// when it is a regular file, at most kMaxIdFileBytes of it, and parsed by ParseIdNames
// (lib/node/id_names.h: bounded, malformed lines skipped, names as bytes). A container
// that makes them a FIFO, a device, a symlink out or a huge file gets no names.
//
// Costs: names are cached per root key (container id, "host") with the files' identity
// (inode, size, mtime, ctime); a key is checked again at most every `recheck` (one
// openat2 and fstat per file; read and parsed again only when changed). At most
// `max_keys` keys are kept (all dropped when full: they are re-read).
//
// Thread-safety: not thread-safe; one per Enricher.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "lib/node/id_names.h"

namespace driftwatch::sensor {

inline constexpr size_t kMaxIdFileBytes = 1 << 20;

class IdNameCache {
 public:
  explicit IdNameCache(int64_t recheck_ns = 1000000000, size_t max_keys = 4096)
      : recheck_ns_(recheck_ns), max_keys_(max_keys) {}

  struct Names {
    const IdNames* users = nullptr;   // null: the root or file could not be read
    const IdNames* groups = nullptr;
  };
  // The names under the root `key` stands for. `open_root` opens that root (an O_PATH
  // directory fd the cache closes) or returns -1; it is called only when the key is
  // (re)checked. `now_ns`: a monotonic clock. The pointers stay valid until the next call.
  Names Get(const std::string& key, const std::function<int()>& open_root, int64_t now_ns);

  struct Stats {
    uint64_t reads = 0;       // files read and parsed
    uint64_t refused = 0;     // files not read: not regular, unreadable, or cut at the cap
  };
  const Stats& stats() const { return stats_; }

 private:
  struct File {
    bool ok = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    IdNames names;
  };
  struct Entry {
    int64_t checked_ns = 0;
    File passwd, group;
  };
  // Re-reads `path` under `root` into *f unless it is the file already parsed.
  void Refresh(int root, const char* path, File* f);

  int64_t recheck_ns_;
  size_t max_keys_;
  std::unordered_map<std::string, Entry> entries_;
  Stats stats_;
};

}  // namespace driftwatch::sensor
