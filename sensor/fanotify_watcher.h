// fanotify_watcher: files written inside containers, as fanotify reports them, turned into
// v1::Event{write} with the container they belong to (see DESIGN.md, "fanotify").
//
// Thread-safety: Open/Start/Stop from one controlling thread. WatchContainerRoot
// may be called from any thread, also while the drain thread runs. The
// sink runs on the drain thread or the hash worker (sensor/hash_worker.h), never on both at
// once. counters() and mode() may be read from any thread.
//
// The drain thread hashes no large file: it opens a written file (never by name for reading:
// see ReopenRegular in lib/event/file_digest.h), reads its first bytes and hands an executable
// over hash_inline_bytes to the hash worker; each container's events leave in the order they
// were read.
//
// Modes, best first (kAuto takes the first the kernel accepts):
//   fid-filesystem  FAN_REPORT_DFID_NAME + FAN_MARK_FILESYSTEM on the host filesystems that
//                   hold the overlay upper dirs (5.9+). The directory handle resolves to the
//                   upper dir on the host: attribution by upper dir, full event set.
//   fd-filesystem   fd events + FAN_MARK_FILESYSTEM on the same filesystems (4.20+). The fd
//                   is the upper file; its path reads as the path inside the container.
//                   Attribution by mount id, else by the writer's pid.
//   fd-mount        fd events + FAN_MARK_MOUNT on each container's root through
//                   /proc/<pid>/root/ (2.6.37+): the caller calls WatchContainerRoot.
// Before Linux 6.5, overlayfs opened the real files of its layers with FMODE_NONOTIFY: a
// filesystem mark on the filesystem of the upper dirs then sees a container's directory
// changes (create, attrib, delete, rename) but none of its file I/O (no modify, no
// close-write, no exec permission event). kAuto therefore takes fd-mount there, whose marks
// are on the containers' own overlay mounts (OverlayIoReachesFilesystemMarks).
// The sensor's own writes are never reported (its pid is dropped and counted).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/mutex.h"
#include "sensor/hash_worker.h"

struct fanotify_event_metadata;  // <sys/fanotify.h>

namespace driftwatch::sensor {

// Where the runtimes keep container layers that exist here (containerd, CRI-O/podman,
// docker, k3s), else "/": the filesystems the watcher and the exec guard mark by default.
std::vector<std::string> RuntimeFilesystems();

// Whether a container's file I/O reaches fanotify marks on the filesystem of its upper dir:
// Linux 6.5+ (commit "ovl: enable fsnotify events on underlying real files"), from
// uname's release ("6.1.0-57-cloud-amd64" -> no). `release` "" reads the running kernel's.
bool OverlayIoReachesFilesystemMarks(std::string_view release = "");
// Whether the kernel is at least major.minor (uname's release; "" the running kernel).
bool KernelAtLeast(int major, int minor, std::string_view release = "");

enum class FanotifyMode { kAuto, kFidFilesystem, kFdFilesystem, kFdMount, kOff };

// "auto", "fid-filesystem", "fd-filesystem", "fd-mount", "off".
std::string_view FanotifyModeName(FanotifyMode mode);
std::optional<FanotifyMode> ParseFanotifyMode(std::string_view name);

struct UpperMatch {
  std::string container_id;
  std::string dir_in_container;  // e.g. "/tmp"; "/" for the upper dir itself
};

// A host path inside a container's volume (a writable bind mount: emptyDir, hostPath, ...)
// -> the container and the path it sees there.
struct VolumeMatch {
  std::string container_id;
  std::string path_in_container;
};

// A container's rootfs overlay, as host paths.
struct ContainerLayers {
  std::string upperdir;
  std::vector<std::string> lowerdirs;  // top first
};

// Maps file events to containers. Called on the drain thread for every event: lookups must
// be cheap and thread-safe.
class ContainerResolver {
 public:
  virtual ~ContainerResolver() = default;
  // A host directory inside some container's upperdir -> its container and its path there.
  virtual std::optional<UpperMatch> ByUpperDir(std::string_view host_dir) const = 0;
  // A host path -> every container that mounts it writable (a volume two containers of a
  // pod share names both), and its path there. Empty when no container mounts it.
  virtual std::vector<VolumeMatch> ByVolumePath(std::string_view /*host_path*/) const {
    return {};
  }
  // fd modes: a file written through a container's bind mount reads as its path in that
  // container: every container whose volume, at this path, holds the file with this host
  // device and inode (and its path there).
  virtual std::vector<VolumeMatch> ByVolumeFile(std::string_view /*path_in_container*/,
                                                dev_t /*dev*/, ino_t /*ino*/) const {
    return {};
  }
  // The mount id (mnt_id in /proc/self/fdinfo/<fd>) of a container's root overlay mount.
  virtual std::optional<std::string> ByMountId(int mnt_id) const = 0;
  // The writer's pid (its cgroup) -> container id.
  virtual std::optional<std::string> ByPid(pid_t pid) const = 0;
  // fd modes, writer gone: the container whose upper layer holds, at this path (as the
  // container sees it), the file with this host device and inode.
  virtual std::optional<std::string> ByUpperFile(std::string_view path_in_container, dev_t dev,
                                                 ino_t ino) const = 0;
  // A container's overlay layers; nullopt while its overlay is unknown (the exec guard's
  // view, sensor/prevent.h).
  virtual std::optional<ContainerLayers> LayersOf(const std::string& /*container_id*/) const {
    return std::nullopt;
  }
  // What is known of a container (pod, labels), for the exec guard's policy.
  virtual std::optional<v1::ContainerInfo> Describe(const std::string& /*container_id*/) const {
    return std::nullopt;
  }
};

struct FanotifyOptions {
  FanotifyMode mode = FanotifyMode::kAuto;
  // Host paths whose filesystems get FILESYSTEM marks. Empty: those of /var/lib/containerd,
  // /var/lib/containers, /var/lib/docker and k3s's containerd that exist, else "/".
  std::vector<std::string> filesystems;
  bool modify = false;                // FAN_MODIFY too (opt-in: one event per write())
  uint64_t hash_max_bytes = 64ull << 20;
  // Executables up to this size (scripts, mostly) are hashed on the drain thread: a read of
  // a few pages, no more than what writing them cost; larger ones go to the hash worker.
  uint64_t hash_inline_bytes = 16 << 10;
  HashQueueLimits hash_queue;
};

// HashCounters: hash_skipped (executables over hash_max_bytes), hash_queue_full (not hashed
// for want of room in the hash queue), errors (unreadable events and files, unresolvable
// handles).
struct FanotifyCounters : HashCounters {
  std::atomic<uint64_t> events{0};        // events handed to the sink
  std::atomic<uint64_t> overflows{0};     // FAN_Q_OVERFLOW: the kernel queue was full
  std::atomic<uint64_t> dropped_self{0};  // written by this process
  std::atomic<uint64_t> dropped_host{0};  // no container claimed it: counted, dropped
  std::atomic<uint64_t> volumes_unwatched{0};  // volume paths whose filesystem got no mark
};

// The type of the filesystem mounted at the longest mount point holding `path` (absolute,
// symlinks resolved) in a mountinfo text (the topmost of stacked mounts); "" for none.
std::string FsTypeAt(std::string_view mountinfo, std::string_view path);
// Network and user-space filesystems: a server that stops answering hangs every syscall on
// them (statfs, a mark's path lookup), and writes from other clients are not seen anyway.
bool RemoteFsType(std::string_view type);

class FanotifyWatcher {
 public:
  using Sink = std::function<void(v1::Event&)>;

  // Probes the kernel and sets the marks of the chosen mode. A forced mode the kernel
  // refuses is an error naming the mode and the errno; kAuto falls back down the chain
  // and fails only if all refuse. kOff gives a watcher that does nothing.
  // REQUIRES: `resolver` outlives the watcher.
  [[nodiscard]] static std::expected<std::unique_ptr<FanotifyWatcher>, std::string> Open(
      FanotifyOptions options, const ContainerResolver* resolver, Sink sink);
  ~FanotifyWatcher();
  FanotifyWatcher(const FanotifyWatcher&) = delete;
  FanotifyWatcher& operator=(const FanotifyWatcher&) = delete;

  void Start();
  // Stops and joins the drain thread, then the hash worker once it hashed what it holds (and
  // emitted every event read); events still queued in the kernel are not read.
  void Stop();

  // fd-mount mode: marks /proc/<pid>/root/ (the container's root mount) with
  // FAN_MARK_MOUNT. A no-op in the other modes.
  [[nodiscard]] std::expected<void, std::string> WatchContainerRoot(const std::string& container_id,
                                                                    pid_t pid);
  // Every mode: the filesystems that hold the container's writable volumes (its CRI bind
  // mounts: emptyDir on disk or tmpfs, hostPath) get filesystem marks, once each, so that a
  // file written there and then run is seen like one written to the upper layer. A
  // filesystem the kernel refuses to mark is counted (volumes_unwatched) and named in a
  // warning, once.
  void WatchVolumes(const v1::ContainerInfo& info);
  // No ForgetContainer: a mark goes with its container's mount, and removing it by
  // /proc/PID/root could unmark another container's mount once the pid is reused.

  FanotifyMode mode() const { return mode_; }
  const FanotifyCounters& counters() const { return counters_; }

 private:
  struct FsMark {
    int mount_fd = -1;    // FID mode: any fd on the filesystem, for open_by_handle_at
    uint64_t fsid = 0;    // statfs f_fsid, as the event's fsid reports it
    std::string path;
  };
  // Per read() batch: a burst of events mostly comes from few writers in few directories.
  struct ProcInfo {
    pid_t pid = 0;
    bool have_names = false, have_container = false;
    std::string comm, exe;
    std::optional<std::string> container;  // ByPid
  };
  struct DirInfo {
    std::string key;  // fsid + file handle bytes
    int fd = -1;      // O_PATH directory, closed at the end of the batch
    std::string host_dir;
    std::optional<UpperMatch> match;
    std::vector<VolumeMatch> volumes;  // when not in an upper dir: the volumes it is in
  };

  FanotifyWatcher(FanotifyOptions options, const ContainerResolver* resolver, Sink sink);

  // Opens the fanotify fd and sets the filesystem marks of `mode`; "" or why not.
  std::string TryMode(FanotifyMode mode);
  // A FILESYSTEM mark on the filesystem holding `path`, unless it has one; "" or why not.
  // Its syscalls (statfs, fanotify_mark, open) run without marks_mu_: a volume's filesystem
  // that hangs them must not stall the drain thread's handle lookups.
  std::string MarkFilesystem(const std::string& path, bool fid) DW_EXCLUDES(marks_mu_);
  // The containers a write under a volume belongs to when the writer's cgroup does not say:
  // nobody when the writer lives on the host (the kubelet filling a configMap); each
  // container that mounts it when the writer is gone (cp, a shell redirect).
  std::vector<VolumeMatch> VolumeWriters(pid_t writer, std::vector<VolumeMatch> volumes);
  // fd modes: the volumes that hold the file an event's fd is (`st`), named by `path` (its
  // fd's path: the path in the container it was written through, or a host path), each
  // checked to hold that very file; none when its fstat failed.
  std::vector<VolumeMatch> VolumesOfFile(const std::string& path, const struct stat* st);
  void CloseFanotify();
  uint64_t EventMask() const;

  void DrainLoop();
  void HandleBuffer(const char* buf, size_t len);
  // `md`: the event's metadata, copied out; `ev`: its bytes in the read buffer (any alignment).
  void HandleFidEvent(const ::fanotify_event_metadata& md, const char* ev);
  void HandleFdEvent(const ::fanotify_event_metadata& md);
  // `fd`: the written file, regular, open for reading (owned), `st` its fstat. Its facts into
  // `ev`, then `ev` to the hash worker: to be hashed, or to leave as it is.
  void Inspect(v1::Event ev, int fd, const struct stat& st);
  ProcInfo& Proc(pid_t pid);
  // Fills comm and exe of the writer.
  void FillProcess(pid_t pid, v1::FileWrite* w);
  std::optional<std::string> ContainerOfPid(pid_t pid);
  // The directory a FID record names, opened and resolved; nullptr if it cannot be opened.
  const DirInfo* Dir(uint64_t fsid, const char* handle, size_t handle_len);
  void CloseDirs();
  void EndBatch();
  // The mount point of `mnt_id` in our mount namespace; "" if it is not reachable from here.
  const std::string& MountPoint(int mnt_id);
  // The hash worker's sink: counts and hands to sink_.
  void Emit(v1::Event& ev);

  FanotifyOptions options_;
  const ContainerResolver* resolver_;
  Sink sink_;
  FanotifyMode mode_ = FanotifyMode::kOff;
  FanotifyCounters counters_;
  pid_t self_pid_;

  int fan_fd_ = -1;
  int stop_fd_ = -1;       // eventfd: wakes the drain thread for Stop()
  uint64_t mask_ = 0;      // what the marks ask for
  uint64_t fid_mask_ = 0;  // FID mode: what filesystem marks ask for
  // Filesystem marks: set at Open, and later for volumes (any thread), read by the drain
  // thread to resolve FID handles.
  Mutex marks_mu_;
  std::vector<FsMark> fs_marks_ DW_GUARDED_BY(marks_mu_);
  // Volume paths marked (or refused) once; WatchVolumes' callers serialize (the sensor's
  // registry listener and its start, under one mutex).
  std::set<std::string> volume_paths_;

  // Drain thread only.
  std::vector<ProcInfo> proc_cache_;               // cleared after every read() batch
  std::vector<DirInfo> dir_cache_;                 // closed after every read() batch
  std::map<int, std::string> mount_points_;        // cleared when our mount table changes
  int mountinfo_fd_ = -1;                          // polled for mount table changes

  // Declared after what its sink uses (counters_, sink_), destroyed (stopped) before them.
  HashWorker hasher_;
  std::thread thread_;
};

}  // namespace driftwatch::sensor
