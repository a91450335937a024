// drift_inventory: what a container changed in its filesystem, read from its overlay's
// upper layer and compared with the image's lower layers (what `driftwatch diff` prints).
//
// Overlay on-disk conventions used (kernel Documentation/filesystems/overlayfs.rst):
//   - a whiteout (char device 0/0, or an empty file with the trusted./user.overlay.whiteout
//     xattr) hides a lower entry: the container deleted it;
//   - an opaque directory (xattr trusted./user.overlay.opaque = "y") hides all lower entries
//     below it: the container removed the directory and made a new one ("x" marks a
//     directory holding xattr whiteouts, not an opaque one);
//   - any other upper entry is new (added) or replaces a lower entry (modified).
// Not handled: redirect_dir renames (a renamed lower directory shows as added, with only
// its copied-up children) and metacopy files (their data stays in a lower layer: listed as
// modified, not hashed).
//
// Thread-safe: no shared state; reads the layers with openat relative to directory fds,
// never following symlinks and never leaving the upper layer's filesystem.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "lib/base/result.h"
#include "lib/node/mountinfo.h"

namespace driftwatch {

enum class DriftKind { kAdded, kModified, kDeleted };

// "added", "modified", "deleted"
const char* DriftKindName(DriftKind k);

struct DriftEntry {
  std::string path;  // as the container sees it: "/etc/passwd"
  DriftKind kind = DriftKind::kAdded;
  // 'f' regular, 'd' directory, 'l' symlink, 'c' char device, 'b' block device, 'p' fifo,
  // 's' socket; for kDeleted the type of the image's entry.
  char type = 'f';
  uint64_t size = 0;
  uint32_t mode = 0;        // permission bits (st_mode & 07777)
  bool opaque_dir = false;  // directory replaced whole: image entries below it are gone
  bool executable = false;  // regular file: ELF, #! script, or any x bit
  std::string sha256_hex;   // executables up to the hash cap; "" otherwise
};

// Caps on one walk: a container controls its upper layer, so its tree may be arbitrarily
// deep or wide. The walk is iterative (an explicit stack of directory fds), so depth costs
// one open fd per level (plus one per lower layer holding that directory), never stack.
struct InventoryOptions {
  uint64_t hash_max_bytes = 64ull << 20;  // sha256 of executables up to this size
  // Directories more than this many levels below the root are listed but not entered.
  uint32_t max_depth = 128;
  // Directory entries read (upper layer, and lower layers under opaque directories); at
  // the cap no more are read (those read are still listed).
  uint64_t max_entries = 200000;
  // Sum of the lengths of the paths listed; the walk stops before going over.
  uint64_t max_path_bytes = 16ull << 20;
  // Tests only: called with an entry's container path after its type was read and before
  // it is opened for hashing (to swap the file meanwhile, as a container can).
  std::function<void(const std::string& path)> before_open;
};

// Which caps cut the walk, and how far it got. Empty (truncated() false) when complete.
struct InventoryTruncation {
  bool depth = false;       // directories below max_depth were not entered
  bool entries = false;     // the walk stopped reading at max_entries
  bool path_bytes = false;  // the walk stopped at max_path_bytes
  uint64_t dirs_not_entered = 0;
  std::string first_not_entered;  // container path of the first directory not entered
  uint64_t entries_examined = 0;
  uint64_t path_bytes_listed = 0;
  uint32_t max_depth = 0;  // the caps in force
  uint64_t max_entries = 0;
  uint64_t max_path_bytes = 0;
  bool truncated() const { return depth || entries || path_bytes; }
};

// "" when not truncated, else one line saying which caps hit and the counts, e.g.
// "incomplete: the walk stopped at the entry cap (200000 entries examined, cap 200000)".
// Paths in it are as given (callers escape for terminals).
std::string TruncationText(const InventoryTruncation& t);

struct DriftInventoryResult {
  std::vector<DriftEntry> entries;
  InventoryTruncation truncation;
};

// The container's drift, sorted by path. Directories that are in the upper layer only
// because something below them changed are not listed (unless their mode or owner
// changed, or they are opaque); a deleted directory is one entry, its contents are not
// listed. Lower layers that can't be opened are an error (the result would call every
// upper file added). Entries vanishing during the walk (a running container) are skipped.
// Hashing never opens a file by name: it is opened O_PATH|O_NOFOLLOW relative to its
// directory's fd, refused unless a regular file with the (device, inode) the listing saw,
// and only then reopened for reading through /proc/self/fd; device nodes, FIFOs, sockets
// and symlinks are never opened. When a cap hits, the entries found so far are returned
// with `truncation` saying so.
Result<DriftInventoryResult> DriftInventory(const OverlayRoot& root, const InventoryOptions& opt);

// The runtime makes mount targets (/run, /etc/hostname, /dev/termination-log, ...) in the
// upper layer before the container starts: not the workload's drift. Drops the entries
// added at a path in `mount_points` (MountPointsOfPid of the container); returns how many.
size_t DropMountTargets(std::vector<DriftEntry>* entries,
                        const std::set<std::string>& mount_points);

}  // namespace driftwatch
