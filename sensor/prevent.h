// prevent: drift prevention (--prevent drift). An exec of a file that lives in a container's
// upper layer (written at run time, or there before the sensor started: not in its image)
// is denied before it happens; image (lower-layer) binaries and host execs always run.
//
// How: a fanotify group of its own (FAN_CLASS_CONTENT) marks the filesystems that hold the
// containers' upper dirs with FAN_OPEN_EXEC_PERM (Linux 5.0+). The kernel then holds every
// exec that opens a file on them (the exec'd file and its ELF interpreter) until the group
// answers FAN_ALLOW or FAN_DENY; a denied execve fails with EPERM (a shell says exit 126).
// The event's fd reads as the path inside the container and fstats as the file on the host
// filesystem, so the verdict is: the caller's container (its cgroup), then whether that
// container's upper dir holds this very inode at that path (openat2 beneath a directory fd
// opened once per container, no symlink followed), or the inode is unlinked on the upper
// dir's filesystem (a deleted dropped file run through its fd).
//
// Why a group of its own, not the write watcher's: permission events need FAN_CLASS_CONTENT,
// which the kernel refuses together with the watcher's FID reporting; and a verdict must
// never wait behind the watcher's reads and hashing.
//
// Never hang the host: the verdict path reads only /proc (the caller's cgroup, the fd's
// path) and one openat2 relative to a trusted directory fd; no network, no spool. A
// watchdog thread answers (fail-open: allow; --prevent-fail closed: deny) whatever has
// waited past the deadline, and while the verdict thread is stuck it reads and answers new
// events itself. Everything the kernel still holds is allowed when the group's fd closes:
// on Stop (marks flushed first), and when the sensor dies, SIGKILL included.
//
// After the answer, a reporter thread describes each denial (caller's comm and exe, the
// file's size, mode and sha256) as a v1::Event{prevented} for the sink.
//
// Thread-safety: Open/Start/Stop from one controlling thread; ForgetContainer from any
// thread; counters() from any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "driftwatch/v1/collector.pb.h"
#include "driftwatch/v1/event.pb.h"
#include "lib/base/mutex.h"
#include "lib/base/result.h"
#include "sensor/fanotify_watcher.h"
#include "lib/node/prevent_policy.h"

struct stat;

namespace driftwatch::sensor {

enum class PreventMode { kOff, kDrift };
// "off", "drift".
std::string_view PreventModeName(PreventMode mode);
std::optional<PreventMode> ParsePreventMode(std::string_view name);

// Which permission events tell the sensor about execs. kExec: FAN_OPEN_EXEC_PERM (Linux
// 5.0+), only exec opens. kOpen: FAN_OPEN_PERM, every open on the marked filesystems, the
// exec ones told apart by the caller being inside execve/execveat (/proc/TID/syscall, read
// while it waits for the answer): older kernels, at the price of a verdict per open. kAuto:
// kExec where the kernel has it, else kOpen.
enum class PreventEvents { kAuto, kExec, kOpen };
std::optional<PreventEvents> ParsePreventEvents(std::string_view name);  // auto, exec, open

// Where the permission marks go. kFilesystem: FAN_MARK_FILESYSTEM on the filesystems of the
// upper dirs (4.20+; one mark for every container, also those started later). kMount:
// FAN_MARK_MOUNT on each container's overlay mount (/proc/PID/root/, added as the registry
// reports containers): needed before Linux 6.5, where overlayfs hides its layers' file opens
// from filesystem marks (FMODE_NONOTIFY), so a filesystem mark denies nothing; there the
// event's fd is the overlay's file (the path inside the container; the inode number of the
// layer's file). kAuto: kFilesystem on 6.5+, else kMount.
enum class PreventMarks { kAuto, kFilesystem, kMount };
std::optional<PreventMarks> ParsePreventMarks(std::string_view name);  // auto, filesystem, mount

// Whether thread `tid` is inside execve or execveat now (native or 32-bit compat), from
// /proc/TID/syscall; false when that cannot be read (the thread is gone). `opening`: the
// thread is known to be opening a file (it is the one a permission event waits for), which
// tells i386's execve (11) from x86_64's munmap; otherwise 11 is not taken for an exec
// (a false denial of a plain open is worse than missing a 32-bit exec on a pre-4.20 kernel).
bool ThreadInExec(pid_t tid, bool opening);

struct PreventOptions {
  PreventMode mode = PreventMode::kOff;
  PreventEvents events = PreventEvents::kAuto;
  PreventMarks marks = PreventMarks::kAuto;
  bool dry_run = false;     // answer allow, report what would have been denied
  bool fail_closed = false;  // past the deadline or undecidable: deny (default: allow)
  // How long an exec may wait for a verdict before the watchdog answers for it.
  std::chrono::milliseconds deadline{100};
  // Host paths whose filesystems get the marks; empty: RuntimeFilesystems().
  std::vector<std::string> filesystems;
  // Paths inside containers (globs, fnmatch with FNM_PATHNAME: "*" stays within a
  // directory) whose upper-layer files may run (--prevent-allow).
  std::vector<std::string> allow_paths;
  // The policy file (lib/node/prevent_policy.h), read at Open and by ReloadPolicy; "": none.
  std::string policy_file;
  // Where the fleet policy the collector pushed is kept (beside the spool), read at Open
  // when present so that a restart without the collector keeps it; "": not kept.
  std::string fleet_policy_file;
  bool realtime = true;  // the verdict thread at SCHED_FIFO 1 (best effort)
  uint64_t hash_max_bytes = 64ull << 20;  // denied files hashed up to this size
  size_t report_queue = 4096;             // denials waiting for their description
};

// What the verdicts were. Latency buckets: answers written within 10, 100 us, 1, 10, 100 ms,
// and later.
struct PreventCounters {
  std::atomic<uint64_t> events{0};          // permission events answered
  std::atomic<uint64_t> allowed{0};         // allowed: host, image layer, outside the layers
  std::atomic<uint64_t> image_mount{0};     // allowed at once: opened through an image
                                            // layer's mount that an earlier verdict proved
  std::atomic<uint64_t> not_exec{0};        // FAN_OPEN_PERM events of opens that are no exec
  std::atomic<uint64_t> denied{0};          // denied: drift
  std::atomic<uint64_t> would_deny{0};      // dry run: allowed, reported
  std::atomic<uint64_t> allowed_by_policy{0};  // drift the policy lets run
  std::atomic<uint64_t> deadline_answers{0};   // answered by the watchdog (fail mode's verdict)
  std::atomic<uint64_t> outside_layers{0};  // allowed: a container's file in neither layer
                                            // (a volume on the same filesystem)
  std::atomic<uint64_t> undecided{0};       // no verdict possible (overlay not known yet,
                                            // the name raced): fail mode's verdict
  std::atomic<uint64_t> reports_dropped{0};  // denials not described (report queue full)
  std::atomic<uint64_t> errors{0};          // unreadable events, failed answers
  std::atomic<uint64_t> latency_buckets[6] = {};
  std::atomic<uint64_t> latency_max_ns{0};
};
// The upper limits of the latency buckets, ns (the last is unbounded).
inline constexpr uint64_t kPreventLatencyBounds[5] = {10'000, 100'000, 1'000'000, 10'000'000,
                                                      100'000'000};

// Where the file `file` (an fstat of the exec'd file) is in a container's layers, by the
// path the event's fd reads as (relative to the layer it is in), looked up beneath the
// layer's directory fd without following symlinks or leaving the filesystem.
enum class LayerLookup {
  kFound,     // this very inode is at that path in the layer
  kMissing,   // nothing at that path
  kOther,     // another file, or a lookup refused (a symlink on the way, another mount)
  kError,     // the lookup failed otherwise
};
// `overlay_file`: `file` is the stat of an overlay's file (mount marks), whose st_dev is the
// overlay's and st_ino the layer file's: the inode number alone is compared.
LayerLookup LookUpInLayer(int layer_fd, std::string_view path, const struct stat& file,
                          bool overlay_file = false);

class ExecGuard {
 public:
  using Sink = std::function<void(v1::Event&)>;

  // Opens the group and marks the filesystems. Errors name the kernel's refusal (Linux
  // 5.0+ is needed for FAN_OPEN_EXEC_PERM, CAP_SYS_ADMIN for the group).
  // REQUIRES: `resolver` outlives the guard; options.mode == kDrift.
  static Result<std::unique_ptr<ExecGuard>> Open(PreventOptions options,
                                                 const ContainerResolver* resolver, Sink sink);
  ~ExecGuard();
  ExecGuard(const ExecGuard&) = delete;
  ExecGuard& operator=(const ExecGuard&) = delete;

  void Start();
  // Flushes the marks (no new exec waits for us), answers what is pending, stops the
  // threads, closes the group (the kernel allows anything left) and reports what is queued.
  void Stop();

  // With mount marks: marks the container's overlay mount (through /proc/PID/root/ of a
  // process in it). A no-op with filesystem marks.
  Result<> WatchContainerRoot(const std::string& container_id, pid_t pid);
  // A container went away: its upper dir fd is closed (and its mount mark removed).
  void ForgetContainer(const std::string& container_id);
  // Reads the policy file again (SIGHUP). On error the policy in force stays.
  Result<> ReloadPolicy();
  size_t policy_entries() const;
  // The fleet's policy as the collector pushed it (Command{prevent_policy}): its entries are
  // added to the file's and --prevent-allow's, and it is kept in fleet_policy_file; one
  // that is not configured drops the fleet policy. On error (too long, does not parse) the
  // fleet policy in force stays and the error is kept for /status.
  Result<> SetFleetPolicy(const v1::PreventPolicy& pushed);
  struct FleetPolicyState {
    std::string sha256;  // of the text in force; "" with none
    size_t entries = 0;
    std::string source;  // "collector (NAME)", the saved file's path, or ""
    std::string error;   // the last refused push, "" when the last one was taken
    uint64_t updates = 0, refused = 0;
  };
  FleetPolicyState fleet_policy() const;

  const PreventCounters& counters() const { return counters_; }
  const PreventOptions& options() const { return options_; }
  // The filesystems marked, as given (none with mount marks).
  const std::vector<std::string>& marked() const { return marked_; }
  // Marks on each container's overlay mount (PreventMarks::kMount) rather than filesystems.
  bool mount_marks() const { return mount_marks_; }
  // The permission events in use: "exec" (FAN_OPEN_EXEC_PERM) or "open" (FAN_OPEN_PERM).
  std::string_view events() const { return open_events_ ? "open" : "exec"; }
  // Whether the verdict thread got its real-time priority (known once it runs).
  bool realtime() const { return realtime_.load(); }

 private:
  // A permission event read and not yet answered.
  struct Pending {
    int fd = -1;
    pid_t pid = 0;
    std::chrono::steady_clock::time_point read_at;
    bool answered = false;
  };
  struct Verdict {
    bool deny = false;
    bool report = false;  // denied or would-deny: describe it
    std::string container_id, path, upper_path;
  };
  struct Report {
    int fd = -1;  // the exec'd file, owned
    pid_t pid = 0;
    bool dry_run = false;
    uint64_t verdict_ns = 0;
    std::string container_id, path, upper_path;
  };
  // A container's layers, opened once (O_PATH directory fds); shared with a verdict in
  // flight, so that ForgetContainer never closes an fd under it.
  struct Layers {
    ~Layers();
    int upper_fd = -1;
    dev_t upper_dev = 0;
    std::string upper_path;
    std::vector<int> lower_fds;
    std::atomic<int> upper_mnt_id{-1};  // the upper layer's private mount, once seen
  };

  ExecGuard(PreventOptions options, const ContainerResolver* resolver, Sink sink);

  void VerdictLoop();
  void WatchdogLoop();
  void ReportLoop();
  // `unique_mnt`: the unique id of the mount the fd was opened through, 0 when unknown.
  Verdict Decide(pid_t pid, int fd, uint64_t unique_mnt);
  // Decide's file part for an overlay's file (mount marks).
  Verdict DecideOverlayFile(int fd, const struct stat& st, std::string container_id,
                            const Layers& layers);
  // FAN_OPEN_PERM: whether the open is an exec's: the thread's (FAN_REPORT_TID), else any
  // thread of the process inside execve (before 4.20; a thread opening a drifted file while
  // another execs is then judged as an exec).
  bool IsExecOpen(pid_t pid) const;
  // The fail mode's answer for an event the verdict thread did not answer in time: with
  // open events only an exec's open gets it (a plain open is never denied for lateness).
  bool FailAllows(pid_t pid) const;
  // Drift (deny or would-deny) or allow under the policy, counted.
  Verdict DriftVerdict(int fd, std::string container_id, std::string path,
                       std::string upper_path);
  // The fail mode's verdict for an exec nothing could be decided about, counted.
  Verdict Undecided();
  // Writes the answer for batch_[i] unless the watchdog did; true when this call wrote it.
  bool Answer(size_t i, bool allow);
  void WriteAnswer(int fd, bool allow);
  // The watchdog's rescue: reads and answers with the fail mode's verdict whatever the
  // kernel holds now.
  void AnswerQueued();
  void CountLatency(uint64_t ns);
  std::shared_ptr<Layers> LayersOf(const std::string& container_id);
  // The file's and --prevent-allow's entries.
  static Result<PreventPolicy> LoadLocalPolicy(const PreventOptions& o);
  // local_ and fleet_ together into policy_.
  void CombinePolicies() DW_REQUIRES(policy_mu_);
  // The fleet policy kept at Open, if any (errors are logged: the sensor starts without it).
  void LoadSavedFleetPolicy();
  // The sha256 of the file behind `fd` for a policy's sha256 selector, cached by the
  // file's identity and times (verdict thread only).
  std::optional<std::string> PolicyHash(int fd);

  PreventOptions options_;
  const ContainerResolver* resolver_;
  Sink sink_;
  PreventCounters counters_;
  pid_t self_pid_;
  std::vector<std::string> marked_;

  int fan_fd_ = -1;
  bool mount_marks_ = false;
  Mutex roots_mu_;
  std::set<std::string> roots_ DW_GUARDED_BY(roots_mu_);  // containers whose mount is marked
  bool open_events_ = false;  // FAN_OPEN_PERM: every open, exec ones told apart
  bool tid_events_ = false;   // FAN_REPORT_TID: an event's pid is the opening thread's
  std::atomic<bool> realtime_{false};
  int stop_fd_ = -1;  // eventfd: wakes the verdict thread for Stop()
  std::atomic<bool> stopping_{false};

  // The verdict thread's batch, shared with the watchdog.
  Mutex mu_;
  std::vector<Pending> batch_ DW_GUARDED_BY(mu_);
  bool busy_ DW_GUARDED_BY(mu_) = false;  // the verdict thread is deciding for `batch_`
  std::chrono::steady_clock::time_point busy_since_ DW_GUARDED_BY(mu_);
  CondVar watchdog_cv_;

  mutable Mutex policy_mu_;
  std::shared_ptr<const PreventPolicy> policy_ DW_GUARDED_BY(policy_mu_);  // what verdicts use
  PreventPolicy local_ DW_GUARDED_BY(policy_mu_);
  std::optional<PreventPolicy> fleet_ DW_GUARDED_BY(policy_mu_);
  FleetPolicyState fleet_state_ DW_GUARDED_BY(policy_mu_);
  struct HashKey {
    dev_t dev;
    ino_t ino;
    int64_t mtime_ns, ctime_ns, size;
    bool operator<(const HashKey& o) const {
      return std::tie(dev, ino, mtime_ns, ctime_ns, size) <
             std::tie(o.dev, o.ino, o.mtime_ns, o.ctime_ns, o.size);
    }
  };
  static HashKey KeyOf(const struct stat& st);
  std::map<HashKey, std::optional<std::string>> hash_cache_;  // verdict thread only
  // With filesystem marks an overlay opens each file through a private mount of the layer it
  // is in. Once a verdict has found a file in an image (lower) layer, every later file opened
  // through the same mount is that layer's: allowed from the mount id alone (one statx, no
  // cgroup read, no lookups). Keyed by the unique mount id (Linux 6.8), never handed out
  // again, so a mount that goes cannot leave its verdict to another. Verdict thread only.
  std::unordered_set<uint64_t> image_mounts_;

  Mutex layers_mu_;
  std::unordered_map<std::string, std::shared_ptr<Layers>> layers_ DW_GUARDED_BY(layers_mu_);

  Mutex reports_mu_;
  CondVar reports_cv_;
  std::deque<Report> reports_ DW_GUARDED_BY(reports_mu_);
  bool reports_done_ DW_GUARDED_BY(reports_mu_) = false;

  std::thread verdict_thread_, watchdog_thread_, report_thread_;
};

}  // namespace driftwatch::sensor
