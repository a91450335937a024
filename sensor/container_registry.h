// container_registry: which containers run on this node, with their pod, image and rootfs
// overlay, kept current from two sources:
//   - cgroups: an inotify watch on every directory of one cgroup hierarchy sees a container's
//     cgroup appear the moment runc creates it (Debian's containerd 1.6 has no CRI event
//     stream), so a container started 100 ms ago is known;
//   - the CRI API (runtime.v1) on the runtime's socket, for names, pod labels and images,
//     listed at start and every `resync` period; without a runtime answering, the registry
//     works from cgroup paths alone.
// The rootfs overlay (device, upperdir, lowerdirs) comes first from the mount the runtime
// made for the container's root in the host's mount namespace (/proc/1/mountinfo: containerd
// mounts <bundle>/rootfs before `runc create`, so it is there when the cgroup appears, and a
// container that exits within milliseconds still has its writes and execs attributed), then
// from its init process's /proc/<pid>/mountinfo (the mount id in the container's namespace,
// the init pid).
//
// Short-lived containers (issue 19): the CRI is asked as soon as the cgroup appears, and a
// container's info goes out before any event of it: the event sources call Announce() before
// they write one, which waits (bounded) until the registry's thread has reported the
// container with what the runtime says of it. A container's removal is reported
// kRemovalDelay after its cgroup went, so that its last events (still in the audit parser or
// the hash worker) go out before it; meanwhile its overlay device, upper directory and
// volumes still attribute them.
//
// Thread-safety: all public methods may be called from any thread; lookups take a shared
// lock and do no I/O except ByPid (reads /proc/<pid>/cgroup). Two threads of its own: the
// cgroup thread (inotify, the runtime's mounts: nothing that waits on the runtime) and the
// registry's thread (CRI, /proc reads of init processes, the listener, outside the lock).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/mutex.h"
#include "lib/node/mountinfo.h"
#include "sensor/fanotify_watcher.h"

namespace driftwatch {
class CriClient;
}

namespace driftwatch::sensor {

class DockerSource;

class ContainerRegistry : public ContainerResolver {
 public:
  struct Options {
    bool use_cri = true;
    std::vector<std::string> cri_endpoints;  // tried in order; empty: the usual sockets
    std::chrono::milliseconds cri_timeout{2000};
    std::string cgroup_root;                 // hierarchy to watch; empty: chosen at start
    std::chrono::milliseconds resync{5000};  // full CRI list / cgroup walk period
    // Not owned; outlives the registry. Asked first for each container (its cache, else one
    // inspect): a Docker container is described by its engine, not CRI (docker_source.h).
    DockerSource* docker = nullptr;
  };
  // Called for a container that appeared, changed (CRI metadata arrived, overlay found) or
  // went away (state "removed"). `report`: the collector should hear of it (the first time,
  // on removal, and when what CRI says changed; not for the init pid, overlay or start time
  // alone, which would make it a second start). On the registry's thread (after Start;
  // before, on Start's caller's): it must not call Announce.
  using Listener = std::function<void(const v1::ContainerInfo&, bool report)>;

  // How long Announce waits for the registry's thread at most.
  static constexpr std::chrono::milliseconds kAnnounceWait{500};
  static constexpr std::chrono::milliseconds kAnnounceCooldown{5000};
  // How long a container's removal is held back after its cgroup went.
  static constexpr std::chrono::milliseconds kRemovalDelay{1000};

  ContainerRegistry(Options options, Listener listener);
  ~ContainerRegistry() override;

  // Picks the cgroup hierarchy, connects to the first CRI endpoint that answers (none is
  // not an error: cgroup-only discovery), records the containers running now and starts the
  // cgroup thread and the registry's thread. Fails only when no cgroup hierarchy can be
  // watched.
  std::optional<std::string> Start();  // error text, or nullopt
  void Stop();

  // Before an event of container `id` is written: returns once the container's info has
  // gone to the listener (at once when it has: a lock and a set lookup), so the collector
  // knows the pod, image and names of the container its first events come from. Otherwise
  // asks the registry's thread to report the container now (the CRI asked first, if it has
  // not answered yet) and waits for that at most `wait`; a container it cannot report by
  // then (the runtime slow, no such cgroup) is counted in announce_timeouts() and not
  // waited for again. After a timeout no container is waited for during kAnnounceCooldown:
  // containers that never become known (a container making cgroups that look like
  // containers, a runtime that stopped answering) cannot stall the caller, the audit
  // parser, more than kAnnounceWait in every kAnnounceCooldown. "host" and "" return at
  // once. Any thread but the registry's.
  void Announce(const std::string& id, std::chrono::milliseconds wait = kAnnounceWait);
  // The Docker source has new facts of container `id` (its listener): the registry's thread
  // applies them, and reports the container again when what it reported changes (the engine
  // did not answer when the container was found; a rename). Any thread; returns at once.
  void DockerUpdated(const std::string& id);
  // Containers whose events went out before their info (Announce timed out).
  uint64_t announce_timeouts() const { return announce_timeouts_.load(); }
  // Pods whose fields the registry keeps (a cache by sandbox id; bounded by the pods known).
  size_t pods_cached() const { return pods_cached_.load(); }

  std::string endpoint() const;     // CRI socket in use; "" for cgroup-only
  std::string cgroup_root() const { return cgroup_root_; }
  size_t size() const;

  std::optional<v1::ContainerInfo> Find(const std::string& id) const;
  std::vector<v1::ContainerInfo> List() const;
  // The container whose rootfs overlay has this device (audit PATH dev=).
  std::optional<std::string> ByDevice(uint32_t major, uint32_t minor) const;
  // The host path of a container's upper directory; nullopt when the container or its
  // upperdir is unknown.
  std::optional<std::string> UpperDir(const std::string& id) const;

  // ContainerResolver (the fanotify watcher's view).
  std::optional<UpperMatch> ByUpperDir(std::string_view host_dir) const override;
  std::vector<VolumeMatch> ByVolumePath(std::string_view host_path) const override;
  std::vector<VolumeMatch> ByVolumeFile(std::string_view path_in_container, dev_t dev,
                                        ino_t ino) const override;
  std::optional<std::string> ByMountId(int mnt_id) const override;
  std::optional<std::string> ByPid(pid_t pid) const override;
  std::optional<std::string> ByUpperFile(std::string_view path_in_container, dev_t dev,
                                         ino_t ino) const override;
  std::optional<ContainerLayers> LayersOf(const std::string& container_id) const override;
  std::optional<v1::ContainerInfo> Describe(const std::string& container_id) const override {
    return Find(container_id);
  }

 private:
  struct Entry {
    v1::ContainerInfo info;
    int mount_id = -1;
    std::string cgroup_dir;  // absolute, under cgroup_root_
    bool overlay_known = false;  // device and layers: from the runtime's mount or the init's
    bool root_read = false;      // the init process's own root read (mount id, init pid)
    bool cri_done = false;   // CRI answered (or said it does not know the container)
    bool cri_found = false;  // CRI knows it, as a container or a pod's sandbox
    bool cri_not_container = false;  // ContainerStatus did not know it: asked no more
    std::chrono::steady_clock::time_point cri_asked;  // last ContainerStatus
    std::string root_path;   // the OCI spec's root.path, from CRI ("": not known)
    // The last look for the runtime's mount of the root (ApplyRuntimeRoot), for which path.
    std::chrono::steady_clock::time_point root_looked;
    std::string root_looked_for;
    std::string reported;  // Reportable() of the info last reported ("": none)
    std::chrono::steady_clock::time_point seen;
  };
  // A container whose cgroup went: reported removed at `due`, indexed until then.
  struct Removal {
    std::chrono::steady_clock::time_point due;
    std::string id;
    Entry entry;
  };

  void Run();
  void WatchTree(const std::string& dir);  // adds watches, reports containers found
  void HandleInotify();
  void CgroupAppeared(const std::string& abs_dir);
  // Indexes the overlays of the containers whose cgroups just appeared (fresh_), from the
  // runtime's mounts: their writes and execs are attributed from their very first one.
  void LearnFresh();
  // The cgroup thread: inotify and LearnFresh only, never a CRI round trip nor the listener
  // (both can take long on a busy node), so a container is indexed within a millisecond of
  // its cgroup, however slow the runtime answers about another one.
  void WatchCgroups();
  void Wake();  // the registry's thread
  void CgroupGone(const std::string& abs_dir);
  // Completes pending entries (pid, overlay, CRI); returns whether some are still pending.
  bool Complete();
  void Resync();
  void ApplyCri(Entry* e);
  // Fills `e` from the Docker engine and marks it done when the engine knows the container
  // (defined in docker_source.cc); false otherwise: CRI is asked.
  bool ApplyDocker(Entry* e);
  // The containers DockerUpdated named (defined in docker_source.cc).
  void ApplyDockerUpdates();
  // The overlay's device and layers into the entry; overlay_known.
  static void SetOverlay(Entry* e, const OverlayRoot& ov);
  // Sets the overlay from the runtime's mount of the container's root in `host_mounts`
  // (read once per pass by the caller, when an entry needs it); false if not found.
  bool ApplyRuntimeRoot(Entry* e, const std::vector<MountEntry>& host_mounts);
  // Writes back an entry the thread worked on (unless it went meanwhile), with the overlay
  // the cgroup thread learnt meanwhile; `done`: no longer pending. False when it went.
  bool Store(const std::string& id, Entry* e, bool done);
  // Reports now the containers Announce waits for.
  void ServeAnnounces();
  // Writes back a removed container's entry (its CRI answer) while its removal is held back.
  void StoreRemoving(const std::string& id, const Entry& e);
  // Moves a container into removals_ (reported later by FinishRemovals).
  void Remove(std::unordered_map<std::string, Entry>::iterator it) DW_REQUIRES(mu_);
  // Reports the removals that are due (all of them with `all`).
  void FinishRemovals(bool all);
  // Drops the pod cache entries no known container or sandbox names.
  void PrunePods();
  // The info went to the listener: Announce need not wait for it (`gone`: not any more,
  // and only for a while: told_ keeps kToldGone of those).
  void Told(const std::string& id, bool gone);
  void Index(const std::string& id, const Entry& e) DW_REQUIRES(mu_);
  void Unindex(const std::string& id, const Entry& e) DW_REQUIRES(mu_);
  // Whether the info says something the collector has not heard (then noted as heard).
  bool MarkReported(Entry* e);
  void Emit(const v1::ContainerInfo& info, bool report);
  // The init process's own root (init pid, mount id, overlay); false while not an overlay.
  bool ReadInitRoot(Entry* e);

  Options options_;
  Listener listener_;
  std::string cgroup_root_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the thread for Stop()
  int wake_fd_ = -1;  // eventfd: wakes the thread for Announce()
  // The cgroup thread's (and Start's, before it runs):
  std::unordered_map<int, std::string> watch_dirs_;  // inotify wd -> absolute dir
  std::vector<std::string> fresh_;                   // ids CgroupAppeared added
  std::unique_ptr<CriClient> cri_;                   // registry's thread only after Start()
  std::string endpoint_;
  std::string runtime_name_;
  // Sandbox id -> pod fields (registry's thread): an entry goes with its sandbox's removal,
  // and at each resync when no container or sandbox the registry knows names it.
  std::map<std::string, v1::ContainerInfo> pods_;
  std::atomic<size_t> pods_cached_{0};  // pods_.size(), for other threads
  std::thread cgroup_thread_;  // WatchCgroups
  std::thread thread_;         // Run: CRI, /proc reads, the listener
  std::atomic<bool> stop_{false};

  mutable SharedMutex mu_;
  std::unordered_map<std::string, Entry> entries_ DW_GUARDED_BY(mu_);
  std::unordered_map<std::string, std::string> by_upper_ DW_GUARDED_BY(mu_);  // upperdir -> id
  std::unordered_map<int, std::string> by_mount_ DW_GUARDED_BY(mu_);          // mount id -> id
  // A writable bind mount's host source -> (id, destination) of each container mounting it.
  std::unordered_map<std::string, std::vector<std::pair<std::string, std::string>>> by_volume_
      DW_GUARDED_BY(mu_);
  std::map<std::pair<uint32_t, uint32_t>, std::string> by_dev_ DW_GUARDED_BY(mu_);  // overlay dev
  std::set<std::string> pending_ DW_GUARDED_BY(mu_);  // ids not yet complete
  std::deque<Removal> removals_ DW_GUARDED_BY(mu_);   // by due time

  // Announce's side. Lock order: mu_ before announce_mu_ (never the other way).
  static constexpr size_t kToldGone = 4096;
  Mutex announce_mu_;
  CondVar announced_;
  std::unordered_set<std::string> told_ DW_GUARDED_BY(announce_mu_);  // info went out
  std::deque<std::string> told_gone_ DW_GUARDED_BY(announce_mu_);  // removed, oldest first
  std::set<std::string> wanted_ DW_GUARDED_BY(announce_mu_);       // Announce waits for them
  std::chrono::steady_clock::time_point no_wait_until_ DW_GUARDED_BY(announce_mu_);
  std::atomic<uint64_t> announce_timeouts_{0};

  // DockerUpdated's queue, drained by the registry's thread. Taken with no other lock held.
  Mutex docker_mu_;
  std::set<std::string> docker_updates_ DW_GUARDED_BY(docker_mu_);
};

}  // namespace driftwatch::sensor
