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
// Thread-safe: no shared state; reads the layers with openat, never following symlinks
// and never leaving the upper layer's filesystem.
#pragma once

#include <cstdint>
#include <expected>
#include <set>
#include <string>
#include <vector>

#include "lib/mountinfo.h"

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

// The container's drift, sorted by path. Directories that are in the upper layer only
// because something below them changed are not listed (unless their mode or owner
// changed, or they are opaque); a deleted directory is one entry, its contents are not
// listed. Lower layers that can't be opened are an error (the result would call every
// upper file added). Entries vanishing during the walk (a running container) are skipped.
std::expected<std::vector<DriftEntry>, std::string> DriftInventory(const OverlayRoot& root,
                                                                   uint64_t hash_max_bytes);

// The runtime makes mount targets (/run, /etc/hostname, /dev/termination-log, ...) in the
// upper layer before the container starts: not the workload's drift. Drops the entries
// added at a path in `mount_points` (MountPointsOfPid of the container); returns how many.
size_t DropMountTargets(std::vector<DriftEntry>* entries,
                        const std::set<std::string>& mount_points);

}  // namespace driftwatch
