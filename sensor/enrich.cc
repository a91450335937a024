#include "sensor/enrich.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "lib/cgroup_path.h"
#include "lib/procfs.h"

namespace driftwatch::sensor {
namespace {

constexpr int64_t kNs = 1000000000;

int64_t ClockNs(clockid_t c) {
  timespec ts{};
  clock_gettime(c, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNs + ts.tv_nsec;
}

}  // namespace

Enricher::Enricher(const ContainerRegistry* registry, size_t cache_limit)
    : registry_(registry), cache_limit_(cache_limit), ticks_per_sec_(sysconf(_SC_CLK_TCK)) {
  if (ticks_per_sec_ <= 0) ticks_per_sec_ = 100;
}

int64_t Enricher::WallToBootNs(int64_t wall_ns) {
  int64_t now = ClockNs(CLOCK_MONOTONIC_COARSE);
  if (offset_read_at_ == 0 || now - offset_read_at_ > 10 * kNs) {
    boot_offset_ns_ = ClockNs(CLOCK_REALTIME) - ClockNs(CLOCK_BOOTTIME);
    offset_read_at_ = now;
  }
  return wall_ns - boot_offset_ns_;
}

bool Enricher::Lookup(pid_t pid, int64_t event_boot_ns, std::string* container) {
  if (pid <= 0) return false;
  std::optional<ProcStat> stat = ReadProcStat(pid);
  if (!stat) {
    // Gone: the cache still knows container processes that exited since.
    auto it = cache_.find(pid);
    if (it == cache_.end()) return false;
    int64_t start_ns = static_cast<int64_t>(it->second.start_ticks) * (kNs / ticks_per_sec_);
    if (start_ns > event_boot_ns + kNs / ticks_per_sec_) return false;
    *container = it->second.container;
    return true;
  }
  // Start times have clock-tick resolution: allow one tick.
  const uint64_t start = stat->start_ticks;
  int64_t start_ns = static_cast<int64_t>(start) * (kNs / ticks_per_sec_);
  if (start_ns > event_boot_ns + kNs / ticks_per_sec_) {
    ++stats_.pid_reused;
    return false;
  }
  auto it = cache_.find(pid);
  if (it != cache_.end() && it->second.start_ticks == start) {
    *container = it->second.container;
    return true;
  }
  std::string text;
  if (!ReadSmallFile("/proc/" + std::to_string(pid) + "/cgroup", &text)) return false;
  auto c = ContainerFromProcCgroup(text);
  *container = c ? c->id : "";
  // Only container answers are cached: a process moves from the host's cgroup into a
  // container's (runc init) but never back, so a cached "host" could go stale.
  if (c) {
    if (cache_.size() >= cache_limit_) cache_.clear();  // rare; costs only re-reads
    cache_[pid] = Proc{start, c->id};
  } else {
    cache_.erase(pid);
  }
  return true;
}

void Enricher::Enrich(v1::Event* ev) {
  uint32_t pid = 0, ppid = 0, dev_major = 0, dev_minor = 0;
  bool has_dev = false;
  if (ev->has_exec()) {
    const auto& x = ev->exec();
    pid = x.pid();
    ppid = x.ppid();
    dev_major = x.exe_dev_major();
    dev_minor = x.exe_dev_minor();
    has_dev = x.exe_inode() != 0;
  } else if (ev->has_chmod()) {
    const auto& c = ev->chmod();
    pid = c.pid();
    ppid = c.ppid();
    // The changed file's device: a container's rootfs overlay names the container.
    dev_major = c.dev_major();
    dev_minor = c.dev_minor();
    has_dev = c.inode() != 0;
  } else {
    return;
  }
  int64_t boot_ns = WallToBootNs(ev->time_ns());
  std::string container;
  v1::Attribution how = v1::ATTRIBUTION_UNKNOWN;
  if (Lookup(static_cast<pid_t>(pid), boot_ns, &container)) {
    how = v1::ATTRIBUTION_CGROUP;
    ++stats_.by_cgroup;
  } else {
    std::string parent;
    bool parent_known = Lookup(static_cast<pid_t>(ppid), boot_ns, &parent);
    std::optional<std::string> by_dev;
    if (has_dev && registry_) by_dev = registry_->ByDevice(dev_major, dev_minor);
    if (parent_known && !parent.empty()) {
      container = parent;
      how = v1::ATTRIBUTION_PARENT;
      ++stats_.by_parent;
    } else if (by_dev) {  // before a host parent: runc, the parent of a container's init
      container = *by_dev;
      how = v1::ATTRIBUTION_DEVICE;
      ++stats_.by_device;
    } else if (parent_known) {
      how = v1::ATTRIBUTION_PARENT;
      ++stats_.by_parent;
    } else {
      ++stats_.unknown;
    }
  }
  ev->set_container_id(container.empty() ? "host" : container);
  ev->set_attribution(how);
  if (ev->has_exec() && !container.empty() && registry_ && ev->exec().success()) {
    if (auto upper = registry_->IsInUpperLayer(container, ev->exec().exe()))
      ev->mutable_exec()->set_is_exe_upper_layer(*upper);
  }
}

}  // namespace driftwatch::sensor
