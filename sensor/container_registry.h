// container_registry: which containers run on this node, with their pod, image and rootfs
// overlay, kept current from two sources:
//   - cgroups: an inotify watch on every directory of one cgroup hierarchy sees a container's
//     cgroup appear the moment runc creates it (Debian's containerd 1.6 has no CRI event
//     stream), so a container started 100 ms ago is known;
//   - the CRI API (runtime.v1) on the runtime's socket, for names, pod labels and images,
//     listed at start and every `resync` period; without a runtime answering, the registry
//     works from cgroup paths alone.
// The rootfs overlay (device, upperdir, lowerdirs) comes from the container's init process's
// /proc/<pid>/mountinfo.
//
// Thread-safety: all public methods may be called from any thread; lookups take a shared
// lock and do no I/O except ByPid (reads /proc/<pid>/cgroup). The listener runs on the
// registry's own thread, outside the lock.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/mutex.h"
#include "sensor/fanotify_watcher.h"

namespace driftwatch {
class CriClient;
}

namespace driftwatch::sensor {

class ContainerRegistry : public ContainerResolver {
 public:
  struct Options {
    bool use_cri = true;
    std::vector<std::string> cri_endpoints;  // tried in order; empty: the usual sockets
    std::chrono::milliseconds cri_timeout{2000};
    std::string cgroup_root;                 // hierarchy to watch; empty: chosen at start
    std::chrono::milliseconds resync{5000};  // full CRI list / cgroup walk period
  };
  // Called for a container that appeared, changed (CRI metadata arrived, overlay found) or
  // went away (state "removed").
  using Listener = std::function<void(const v1::ContainerInfo&)>;

  ContainerRegistry(Options options, Listener listener);
  ~ContainerRegistry() override;

  // Picks the cgroup hierarchy, connects to the first CRI endpoint that answers (none is
  // not an error: cgroup-only discovery), records the containers running now and starts the
  // watch thread. Fails only when no cgroup hierarchy can be watched.
  std::optional<std::string> Start();  // error text, or nullopt
  void Stop();

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
    bool overlay_known = false;
    bool cri_done = false;   // CRI answered (or said it does not know the container)
    std::chrono::steady_clock::time_point seen;
  };

  void Run();
  void WatchTree(const std::string& dir);  // adds watches, reports containers found
  void HandleInotify();
  void CgroupAppeared(const std::string& abs_dir);
  void CgroupGone(const std::string& abs_dir);
  // Completes pending entries (pid, overlay, CRI); returns whether some are still pending.
  bool Complete();
  void Resync();
  void ApplyCri(Entry* e);
  void Index(const std::string& id, const Entry& e) DW_REQUIRES(mu_);
  void Unindex(const std::string& id, const Entry& e) DW_REQUIRES(mu_);
  void Emit(const v1::ContainerInfo& info);

  Options options_;
  Listener listener_;
  std::string cgroup_root_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the thread for Stop()
  std::unordered_map<int, std::string> watch_dirs_;  // inotify wd -> absolute dir (thread only)
  std::unique_ptr<CriClient> cri_;                   // thread only after Start()
  std::string endpoint_;
  std::string runtime_name_;
  std::map<std::string, v1::ContainerInfo> pods_;    // sandbox id -> pod fields (thread only)
  std::thread thread_;
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
};

}  // namespace driftwatch::sensor
