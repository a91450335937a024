// mountinfo: /proc/<pid>/mountinfo parsing, and the overlay that is a container's root.
//
// Line format (proc(5)):
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//   id parent maj:min root mount_point options [optional fields...] - fstype source super_options
// The kernel writes space, tab, newline and backslash in root, mount point and source as
// octal escapes (\040, \011, \012, \134); in super options seq_show_option also escapes
// ',' (\054) and '='. Overlay's own syntax then applies inside lowerdir=: layers separated
// by ':', a literal ':' or '\' written "\:" / "\\", and "::" before data-only layers. Layers
// added one by one through fsconfig ("lowerdir+=", kernel 6.8+) are printed one option per
// layer, unescaped for overlay (seen on 6.18: "lowerdir+=/x/a:b,lowerdir+=/x/c\054d").
//
// Thread-safe: pure functions, plus reads of /proc and the upper layer.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/result.h"

namespace driftwatch {

struct MountEntry {
  int id = 0;
  int parent = 0;
  uint32_t major = 0, minor = 0;
  std::string root;         // decoded
  std::string mount_point;  // decoded; relative to the reading process's root
  std::string options;      // per-mount options (rw,relatime,...)
  std::string fstype;
  std::string source;         // decoded
  std::string super_options;  // as printed (still escaped): OverlayFromMount decodes it
};

// Parses the whole text. On a malformed line returns what was parsed before it and sets
// *err (if non-null) to "line N: why"; *err is cleared on success.
std::vector<MountEntry> ParseMountinfo(std::string_view text, std::string* err);

struct OverlayRoot {
  uint32_t dev_major = 0, dev_minor = 0;  // the overlay's anonymous device (audit's dev=)
  int mount_id = 0;
  std::vector<std::string> lowerdirs;  // topmost first; data-only layers left out
  std::string upperdir, workdir;       // "" for a read-only overlay without upper layer
  bool read_only = false;              // mounted ro, or no upperdir
};

// The layers of an overlay mount; nullopt if the entry is not an overlay or names no layer.
// Paths are as the mounter gave them (normally absolute paths in the host's mount
// namespace; a relative one cannot be resolved from here).
std::optional<OverlayRoot> OverlayFromMount(const MountEntry& m);

// The overlay mounted at "/" as process `pid` sees it (the last mount stacked there).
// Errors say why: no such process, mountinfo unreadable or malformed, root not an overlay.
Result<OverlayRoot> RootOverlayOfPid(pid_t pid);

// True when the file a container sees at `path_in_container` (absolute, e.g. "/tmp/x")
// comes from the upper layer: it exists in `upperdir` and is not a whiteout (a 0/0 char
// device, or an empty file carrying the trusted./user.overlay.whiteout xattr). No symlink
// is followed: a symlink among the directories means false (the container would resolve
// it against its own root, never the host's); the last component is looked at as lstat
// does. ".." components give false.
bool IsInUpperLayer(const std::string& upperdir, std::string_view path_in_container);
// The same from an O_PATH descriptor of the upper directory: one openat2() walk
// (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) and one lstat, where the kernel has openat2.
bool IsInUpperLayerAt(int upper_fd, std::string_view path_in_container);

// The directory holding `path`'s last component (absolute, taken as relative to `dir_fd`),
// opened O_PATH beneath `dir_fd` with no symlink followed, no ".." and, with `same_mount`,
// no mount crossed: a container controls every component of a path in its layers or
// volumes, and the host must not resolve them. Returns `dir_fd` itself for a one-component
// path (close the result only when it differs), -1 when the walk is refused or fails.
int OpenParentBeneath(int dir_fd, std::string_view path, bool same_mount, std::string* last);
// lstat() of `path` beneath `dir_fd` (or the directory `dir`) by that walk.
bool StatBeneath(int dir_fd, std::string_view path, bool same_mount, struct stat* st);
bool StatBeneath(const std::string& dir, std::string_view path, bool same_mount,
                 struct stat* st);

// The overlay a container runtime mounted as container `id`'s root in its own mount
// namespace (the host's, for containerd and CRI-O) before the container's first process
// exists: the root that process will see, there before it runs and after it exits.
// `root_path` is the OCI spec's root.path: absolute (CRI-O: the mount point itself) or
// relative to the bundle, whose directory containerd names after the container
// (<state>/io.containerd.runtime.v2.task/<namespace>/<id>/rootfs); "" stands for "rootfs".
// The last overlay stacked there (its mount_id is the host's mount, not the container's);
// nullopt when none is, or for a relative root_path with "..".
std::optional<OverlayRoot> RuntimeRootOverlay(const std::vector<MountEntry>& mounts,
                                              std::string_view id, std::string_view root_path);

// Mount points as process `pid` sees them (its /proc/<pid>/mountinfo), "/" left out: in a
// container these are the runtime's mount targets (/proc, /etc/hostname, /run, ...).
std::set<std::string> MountPointsOfPid(pid_t pid);

// A lowerdir= value in overlay syntax ("/a:/b\\:c", "::" before data-only layers, which
// are left out) split into layer paths, topmost first.
std::vector<std::string> SplitLowerdirOption(std::string_view value);

// --- shared with drift_inventory (overlay on-disk conventions) ---

// Whiteout test for the entry `name` in directory `dirfd`, given its lstat result.
bool IsOverlayWhiteout(int dirfd, const char* name, const struct stat& st);

// Value of xattr `key` on entry `name` of `dirfd` (no symlink following); nullopt if absent.
std::optional<std::string> GetXattrAt(int dirfd, const char* name, const char* key);

}  // namespace driftwatch
