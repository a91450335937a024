// sensitive_reads: sensitive files (/etc/shadow, service account tokens, SSH keys, cloud
// credentials) opened for reading inside containers, as v1::Event{read}.
//
//   container appears (registry) ─► each --sensitive-paths entry resolved inside its root
//   (openat2 RESOLVE_IN_ROOT from /proc/<init pid>/root: the container's symlinks stay
//   inside it) ─► an inode mark FAN_CLOSE_NOWRITE (a directory entry "/root/.ssh/": the
//   directory, with FAN_EVENT_ON_CHILD: the files directly in it, also those made later)
//   ─► a reader closes the file ─► event: the reader's pid, comm, exe, container (by its
//   cgroup; a reader gone before the event was read: the file's container), the file's path
//   as the reader saw it.
//
// FAN_CLOSE_NOWRITE, not FAN_OPEN: it fires only for a file that was opened without write
// access, which is what "opened for reading" means (FAN_OPEN fires for writers too and does
// not say how). The event comes when the reader closes the file (or exits).
// Marks are on inodes: a read by any name (a hard link, the host through /proc/PID/root) is
// seen. A file replaced (the kubelet's token rotation swaps a directory; an SSH key written
// after start) is a new inode: every `rescan` each container's entries are resolved again and
// new inodes marked. Cost: a few marks per container, one event per read of a marked file.
//
// Coalescing: a read of the same file by the same process within `coalesce` of the one
// reported is not reported by itself; the next report (at the latest `coalesce` later)
// says how many it stands for (FileRead.repeats). A loop of reads costs an event a second.
// The kernel already merges identical events still queued (same file, same process), so
// repeats counts the reads the sensor saw: at least one per report, at most the reads made.
//
// Its own fanotify group (FAN_CLASS_NOTIF, fd events): the write watcher's may be in FID
// mode, and its queue is shared with filesystem-wide write events.
// Nothing is dropped silently: queue overflows, marks that failed and entries that could
// not be resolved safely are counted (SensitiveReadCounters); overflows are a loss.
//
// Thread-safety: Open/Start/Stop from one controlling thread; Watch and Forget from any
// thread; the sink runs on the drain thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/mutex.h"
#include "sensor/fanotify_watcher.h"

struct fanotify_event_metadata;

namespace driftwatch::sensor {

// What the sensor watches by default: credentials and keys a workload rarely reads.
std::vector<std::string> DefaultSensitivePaths();

struct SensitiveReadOptions {
  // Absolute paths inside containers; a trailing '/' names a directory (its files).
  std::vector<std::string> paths = DefaultSensitivePaths();
  std::chrono::milliseconds rescan{30000};
  std::chrono::milliseconds coalesce{1000};
};

struct SensitiveReadCounters {
  std::atomic<uint64_t> events{0};        // handed to the sink
  std::atomic<uint64_t> overflows{0};     // FAN_Q_OVERFLOW: reads lost
  std::atomic<uint64_t> dropped_self{0};  // the sensor's own reads
  std::atomic<uint64_t> marks{0};         // inodes marked (new ones; rescans add to it)
  std::atomic<uint64_t> mark_errors{0};   // a resolved file the kernel would not mark
  std::atomic<uint64_t> unsafe{0};        // entries not resolved: symlinks without openat2
  std::atomic<uint64_t> coalesced{0};     // reads folded into another event's repeats
};

class SensitiveReads {
 public:
  using Sink = std::function<void(v1::Event&)>;
  // Checks the paths (absolute, no ".." component) and creates the group.
  static std::expected<std::unique_ptr<SensitiveReads>, std::string> Open(
      SensitiveReadOptions opt, const ContainerResolver* resolver, Sink sink);
  ~SensitiveReads();

  void Start();
  void Stop();
  // Marks the entries inside a container's root (its init process's); again at each rescan.
  void Watch(const std::string& container_id, pid_t init_pid);
  void Forget(const std::string& container_id);

  const SensitiveReadCounters& counters() const { return counters_; }
  size_t paths() const { return opt_.paths.size(); }

 private:
  SensitiveReads(SensitiveReadOptions opt, const ContainerResolver* resolver, Sink sink)
      : opt_(std::move(opt)), resolver_(resolver), sink_(std::move(sink)) {}
  void Run();
  void MarkContainer(const std::string& id, pid_t pid);
  void Handle(const fanotify_event_metadata& m);
  // Reports the reads coalesced at least `coalesce` ago (all when `all`); forgets the
  // readers whose last report is that old.
  void FlushCoalesced(bool all);

  struct Marked {
    std::string container_id;
    std::string entry;
  };
  const SensitiveReadOptions opt_;
  const ContainerResolver* resolver_;
  Sink sink_;
  int fan_fd_ = -1;
  int stop_fd_ = -1;  // eventfd
  std::thread thread_;
  SensitiveReadCounters counters_;
  Mutex mu_;
  std::map<std::pair<dev_t, ino_t>, Marked> marked_ DW_GUARDED_BY(mu_);
  std::map<std::string, pid_t> containers_ DW_GUARDED_BY(mu_);
  std::map<dev_t, std::string> root_dev_ DW_GUARDED_BY(mu_);  // a root overlay's device
  std::vector<std::pair<std::string, pid_t>> to_mark_ DW_GUARDED_BY(mu_);
  // Drain thread only: (pid, dev, ino) -> the last report and the reads since.
  struct Recent {
    v1::Event reported;   // the last report (its time: when it was made)
    uint32_t since = 0;   // reads not reported since
    int64_t last_ns = 0;  // the newest of them
  };
  // Reports `since` reads as one event (a copy of `reported` with repeats); none when 0.
  void ReportRepeats(Recent* r);
  std::map<std::tuple<pid_t, dev_t, ino_t>, Recent> recent_;
};

}  // namespace driftwatch::sensor
