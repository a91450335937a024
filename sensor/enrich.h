// enrich: ties live exec and chmod events to their container (the "enrich" stage of
// DESIGN.md's data flow) and marks execs of files from a container's upper layer.
//
// Attribution, in order, each event saying which one answered:
//   1. cgroup: the process itself, read from /proc/<pid>/cgroup, trusted only when
//      /proc/<pid>/stat's start time is not later than the event (else the pid was reused);
//      container answers are cached by (pid, start time);
//   2. parent: the same for the parent, from the cache when it has exited already;
//   3. device: the executable's (chmod: the file's) device is a known container's rootfs
//      overlay, which survives a process that exited within a millisecond of its exec;
//   otherwise "host", attributed as parent (the parent said host) or unknown.
//
// The file an exec actually runs (ProcessExec.exe_file: a script, a loader's program) is
// looked at through the root directory of the process, or of its container's init once the
// process is gone, with openat2(RESOLVE_IN_ROOT): symlinks and ".." never leave that root;
// kernels without openat2 refuse symlinks instead. The look comes milliseconds after the
// exec: a script whose inode differs from the audit record's was replaced since and is not
// used (EXE_FILE_STAT_CHANGED). proc.is_exe_upper_layer is then true when exe or exe_file
// comes from the upper layer, false when both come from the image, unset when either is
// unknown (a file unlinked after it was opened reads "... (deleted)": unknown).
//
// Process state (ProcessExec.vpid ... group_name; lib/node/procfs.h): at the exec the
// sensor opens /proc/<pid> once, and only while its stat says the process started no later
// than the event and is no zombie (an O_PATH fd of /proc/<pid> stays bound to that process:
// reads through it fail once it exits, even if the pid is reused); it then reads stat,
// status and environ through it once each, and fstat()s exe. What a later exec could have
// changed (caps, environ, exe times) is kept only while stat's comm is still the event's.
// The session leader's name costs one read of its stat when the process is not the leader
// itself; the group leader's is set only when no read is needed (the process or its
// session leader leads the group): Falco's rules name proc.sname, not proc.vpgid.name. User and group names come from IdNameCache.
//
// A cached pid is trusted without reading its stat while PidCursor says it cannot have been
// given to another process since it was seen (the pid counter has not passed it): the
// parent of a process gone before its exec was read (most short-lived processes: the parser
// sees an exec milliseconds later) costs no /proc read. Otherwise the stat decides, as
// above. A process that is still there has its own cgroup read, as before: a fork inherits
// its parent's cgroup, but a process can be moved since, and one read settles it.
// Upper-layer checks run from an O_PATH descriptor of each container's upper directory,
// kept while its registry entry names the same directory (no symlink is ever followed:
// a container's own symlinks could point the sensor at any host path, an automounter's
// included).
//
// Thread-safety: not thread-safe; one Enricher per parser thread.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "driftwatch/v1/event.pb.h"
#include "lib/node/pid_cursor.h"
#include "lib/node/procfs.h"
#include "sensor/container_registry.h"
#include "sensor/id_name_cache.h"

namespace driftwatch::sensor {

class Enricher {
 public:
  // REQUIRES: `registry` outlives this object (it may be null: no device attribution and
  // no upper-layer check).
  explicit Enricher(const ContainerRegistry* registry, size_t cache_limit = 1 << 16);
  ~Enricher();
  Enricher(const Enricher&) = delete;
  Enricher& operator=(const Enricher&) = delete;

  // Most bytes of a process's environment kept in ProcessExec.env (--environ-max-bytes);
  // 0: the environment is not read.
  static constexpr size_t kDefaultEnvironMaxBytes = 4096;
  void set_environ_max_bytes(size_t n) { environ_max_bytes_ = n; }

  // The parser calls this before the records of each batch it was handed: every event
  // enriched from then on was made before the call. The pid cursor is looked at now, so
  // what it says is known to come after those events (PidCursor: no margin); and the
  // upper-layer answer for a (container, file) is kept for the rest of the batch: looked at
  // after every exec in it, it is as late as a look per exec would be, and no later one
  // can tell an exec more (see InUpperLayer).
  void BeginBatch();

  // Sets container_id and attribution on exec and chmod events, and
  // proc.is_exe_upper_layer on execs in containers. Other events are left alone.
  void Enrich(v1::Event* ev);

  // The comm of `pid` from /proc, if it is still the process it was at `wall_ns` (started
  // by then): ParentNames' fallback for a parent whose exec it has not seen.
  std::optional<std::string> CommOf(pid_t pid, int64_t wall_ns);

  struct Stats {
    uint64_t by_cgroup = 0, by_parent = 0, by_device = 0, unknown = 0, pid_reused = 0;
    uint64_t state_read = 0;   // execs whose process state was read
    uint64_t state_gone = 0;   // execs whose process was gone (or reused) first: fields unset
    uint64_t state_moved = 0;  // execs whose process had exec'd again: ids only
    uint64_t env_capped = 0;   // environments cut by the cap
    uint64_t cache_trusted = 0;  // cached pids trusted by the pid cursor: no stat read
  };
  const IdNameCache::Stats& name_stats() const { return names_.stats(); }
  const Stats& stats() const { return stats_; }

 private:
  struct Proc {
    uint64_t start_ticks = 0;  // /proc/<pid>/stat field 22
    std::string container;     // container id ("" = host)
    PidCursor::Mark seen;      // where the pid cursor stood when it was last seen alive
    int64_t seen_boot_ns = 0;  // and when (CLOCK_BOOTTIME, the events' clock here)
  };
  // Observes the pid cursor when the last look is over a millisecond old (or `force`).
  void ObserveCursor(bool force);
  // A cache entry for `pid`, seen alive now.
  void Remember(pid_t pid, uint64_t start_ticks, const std::string& container);
  // Reads the process's start time and container. False when it is gone or started after
  // `event_boot_ns` (pid reused).
  // With `pfd` >= 0 (from OpenProcess, with its stat `st`), reads through it; `gone`: the
  // caller saw /proc/<pid> missing (only the cache can answer).
  bool Lookup(pid_t pid, int64_t event_boot_ns, std::string* container, int pfd = -1,
              const ProcStat* st = nullptr, bool gone = false);
  // Whether a process that started at `start_ticks` can have made an event at this time.
  bool StartedBy(uint64_t start_ticks, int64_t event_boot_ns) const;
  // Sets exe_file's real path, inode, device and exe_file_stat.
  // `pfd`: from OpenProcess, or -1.
  void LookAtExeFile(v1::ProcessExec* x, const std::string& container, int pfd);
  // /proc/<pid> (an O_PATH fd) while it is the process that made the event, else -1; its
  // stat into *stat_text and *st (a view into *stat_text). *gone (if given): set when
  // /proc/<pid> does not exist.
  int OpenProcess(pid_t pid, int64_t event_boot_ns, std::string* stat_text, ProcStat* st,
                  bool* gone = nullptr) const;
  // Sets the process state fields of `x` (see the header comment). `pfd`, `st`: as above.
  void ReadProcessState(v1::ProcessExec* x, int pfd, const ProcStat& st,
                        const std::string& container);
  // The comm of the running process `leader`, when it started no later than `not_after`.
  std::optional<std::string> LeaderName(int64_t leader, uint64_t not_after_ticks) const;
  // Sets user_name, login_name, group_name of `x` unless they are set already.
  void SetNames(v1::ProcessExec* x, int pfd, const std::string& container);
  // The root directory the exec saw (an O_PATH fd), or -1: the process's own (`pfd` from
  // OpenProcess, or -1), else its container's init's (the host's for host processes).
  int OpenRoot(int pfd, const std::string& container) const;
  static void SetExeFileStat(v1::ProcessExec* x, const struct stat& st, const std::string& path);
  // Upper layer of one file a container process ran; nullopt when unknown.
  std::optional<bool> InUpperLayer(const std::string& container, const std::string& path);
  std::optional<bool> LookInUpperLayer(const std::string& container, const std::string& path);
  int64_t WallToBootNs(int64_t wall_ns);

  const ContainerRegistry* registry_;
  size_t cache_limit_;
  int proc_fd_;  // /proc, O_PATH
  mutable bool null_signal_ok_ = true;  // kill(pid, 0) allowed (OpenProcess)
  PidCursorReader cursor_reader_;
  PidCursor cursor_;
  int64_t pid_max_ = 0, pid_max_read_ns_ = 0;
  struct UpperDir {
    std::string path;
    int fd = -1;
  };
  std::unordered_map<std::string, UpperDir> upper_dirs_;  // by container id
  int64_t upper_pruned_ns_ = 0;
  // Since BeginBatch: upper-layer answers by container id '\0' path (see BeginBatch).
  bool in_batch_ = false;
  std::unordered_map<std::string, bool> batch_upper_;
  std::string upper_key_;
  std::unordered_map<pid_t, Proc> cache_;  // container processes only
  int64_t boot_offset_ns_ = 0;             // realtime - boottime, refreshed now and then
  int64_t offset_read_at_ = 0;
  long ticks_per_sec_;
  size_t environ_max_bytes_ = kDefaultEnvironMaxBytes;
  IdNameCache names_;
  std::string buf_;  // scratch for /proc reads
  Stats stats_;
};

}  // namespace driftwatch::sensor
