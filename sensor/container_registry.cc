#include "sensor/container_registry.h"

#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "lib/node/cgroup_path.h"
#include "lib/k8s/cri_client.h"
#include "lib/event/image_ref.h"
#include "lib/node/mountinfo.h"
#include "lib/base/log.h"
#include "sensor/docker_source.h"

namespace driftwatch::sensor {
namespace {

constexpr uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_ONLYDIR | IN_DONT_FOLLOW;
// How long a container may stay incomplete (no process in its cgroup yet, root not yet an
// overlay, CRI not answering) before it is reported with what is known.
constexpr auto kPendingLimit = std::chrono::seconds(10);
// How long a container CRI does not know yet may still turn out to be a CRI one.
constexpr auto kCriGrace = std::chrono::seconds(3);
// How often CRI is asked again about a container it does not know (yet).
constexpr auto kCriRetry = std::chrono::milliseconds(10);
// How long after its cgroup appeared a container's root is looked for among the runtime's
// mounts (there from the start where the runtime mounts it in the host's namespace; other
// runtimes never show it there, and the host's mount table is not read for them forever).
constexpr auto kRuntimeRootWindow = std::chrono::seconds(2);
// How often it is looked for there meanwhile (and whenever CRI names another root path).
constexpr auto kRuntimeRootRetry = std::chrono::milliseconds(100);

bool IsDir(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// First PID listed in a cgroup directory (the container's init, or runc init before it).
pid_t FirstPid(const std::string& cgroup_dir) {
  std::ifstream f(cgroup_dir + "/cgroup.procs");
  long pid = 0;
  if (f >> pid && pid > 0) return static_cast<pid_t>(pid);
  return 0;
}

// The hierarchy to watch: cgroup v2 when mounted alone, else a v1 hierarchy every runtime
// creates container directories in.
std::string ChooseCgroupRoot() {
  if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) return "/sys/fs/cgroup";
  for (const char* h : {"pids", "memory", "cpu,cpuacct", "cpu", "systemd", "unified"}) {
    std::string p = std::string("/sys/fs/cgroup/") + h;
    if (access((p + "/cgroup.procs").c_str(), F_OK) == 0) return p;
  }
  return "";
}

// The host's mount table, where runtimes mount containers' roots: PID 1's (the sensor runs
// with the host's PID namespace, maybe in a mount namespace of its own), else the sensor's.
std::vector<MountEntry> HostMounts() {
  for (const char* path : {"/proc/1/mountinfo", "/proc/self/mountinfo"}) {
    std::ifstream in(path);
    if (!in) continue;
    std::stringstream text;
    text << in.rdbuf();
    std::vector<MountEntry> mounts = ParseMountinfo(text.str(), nullptr);
    if (!mounts.empty()) return mounts;
  }
  return {};
}

// What of a container's info the collector is told again when it changes: all but what the
// registry reads from the container's processes and mounts (init pid, overlay, start time),
// which its first report has, or does without. (Reported again for those alone, each
// container would be "started" twice for the rules.)
std::string Reportable(v1::ContainerInfo info) {
  info.clear_init_pid();
  info.clear_rootfs_dev_major();
  info.clear_rootfs_dev_minor();
  info.clear_upperdir();
  info.clear_lowerdirs();
  info.clear_start_time_ns();
  return info.SerializeAsString();
}

// A pod's sandbox (its infrastructure container), as ApplyCri labels it.
bool IsSandbox(const v1::ContainerInfo& i) {
  for (const v1::Label& l : i.labels())
    if (l.key() == "io.kubernetes.pod.sandbox") return l.value() == "true";
  return false;
}

int64_t ToNs(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// ContainerInfo.labels: the runtime's labels, sorted by key (a std::map's order).
void SetLabels(v1::ContainerInfo* i, const CriLabels& labels) {
  i->clear_labels();
  for (const auto& [k, v] : labels) {
    v1::Label* l = i->add_labels();
    l->set_key(k);
    l->set_value(v);
  }
}

// The pod's labels and driftwatch.io/ annotations (ContainerInfo.pod_labels, pod_annotations).
void SetPodLabels(v1::ContainerInfo* i, const CriPod& pod) {
  i->clear_pod_labels();
  for (const auto& [k, v] : pod.labels) {
    if (k.starts_with("io.kubernetes.pod.")) continue;  // the kubelet's: pod_name, ... say it
    v1::Label* l = i->add_pod_labels();
    l->set_key(k);
    l->set_value(v);
  }
  i->clear_pod_annotations();
  for (const auto& [k, v] : pod.annotations) {
    if (!k.starts_with("driftwatch.io/")) continue;
    v1::Label* l = i->add_pod_annotations();
    l->set_key(k);
    l->set_value(v);
  }
}

// One label set or replaced; the others kept.
void SetLabel(v1::ContainerInfo* i, const std::string& key, const std::string& value) {
  CriLabels labels;
  for (const v1::Label& l : i->labels()) labels[l.key()] = l.value();
  labels[key] = value;
  SetLabels(i, labels);
}

}  // namespace

ContainerRegistry::ContainerRegistry(Options options, Listener listener)
    : options_(std::move(options)), listener_(std::move(listener)) {}

ContainerRegistry::~ContainerRegistry() {
  Stop();
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

std::optional<std::string> ContainerRegistry::Start() {
  cgroup_root_ = options_.cgroup_root.empty() ? ChooseCgroupRoot() : options_.cgroup_root;
  while (cgroup_root_.size() > 1 && cgroup_root_.back() == '/') cgroup_root_.pop_back();
  if (cgroup_root_.empty() || !IsDir(cgroup_root_))
    return "no cgroup hierarchy to watch (looked under /sys/fs/cgroup; set --cgroup-root)";
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0) return std::string("inotify_init1: ") + strerror(errno);
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop_fd_ < 0) return std::string("eventfd: ") + strerror(errno);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return std::string("eventfd: ") + strerror(errno);

  if (options_.use_cri) {
    std::vector<std::string> endpoints = options_.cri_endpoints;
    if (endpoints.empty()) endpoints = CriClient::DefaultEndpoints();
    std::string tried;
    for (const auto& ep : endpoints) {
      auto c = CriClient::Connect(ep, options_.cri_timeout);
      if (c) {
        cri_ = std::move(*c);
        endpoint_ = ep;
        runtime_name_ = cri_->RuntimeName();
        break;
      }
      tried += "\n  " + c.error().message();
    }
    if (!cri_)
      LogWarn(
                   "no CRI runtime answered; containers from cgroup paths "
                   "only:%s\n",
                   tried.c_str());
  }
  // Before the first walk: what the engine learns from now on reaches the containers found.
  if (options_.docker != nullptr)
    options_.docker->SetListener([this](const std::string& id) { DockerUpdated(id); });
  WatchTree(cgroup_root_);
  LearnFresh();
  Resync();
  Complete();
  stop_ = false;
  cgroup_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "dw-cgroups");
    WatchCgroups();
  });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "dw-registry");
    Run();
  });
  return std::nullopt;
}

void ContainerRegistry::Stop() {
  // The source outlives the registry: no call into it from now on.
  if (options_.docker != nullptr) options_.docker->SetListener(nullptr);
  stop_ = true;
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(stop_fd_, &one, sizeof one);
  }
  {
    MutexLock lock(announce_mu_);
    announced_.NotifyAll();
  }
  if (cgroup_thread_.joinable()) cgroup_thread_.join();
  if (thread_.joinable()) thread_.join();
}

void ContainerRegistry::Wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void ContainerRegistry::Announce(const std::string& id, std::chrono::milliseconds wait) {
  if (id.empty() || id == "host") return;
  MutexLock lock(announce_mu_);
  if (told_.contains(id) || stop_ || wake_fd_ < 0) return;
  wanted_.insert(id);
  Wake();
  const auto now = std::chrono::steady_clock::now();
  if (now < no_wait_until_) wait = std::chrono::milliseconds(0);
  if (announced_.WaitFor(lock, wait,
                         [&]() DW_REQUIRES(announce_mu_) { return told_.contains(id) || stop_; }))
    return;
  wanted_.erase(id);
  if (wait.count() > 0) no_wait_until_ = std::chrono::steady_clock::now() + kAnnounceCooldown;
  // Not waited for again: its info goes out when the registry learns it.
  told_.insert(id);
  told_gone_.push_back(id);
  while (told_gone_.size() > kToldGone) {
    told_.erase(told_gone_.front());
    told_gone_.pop_front();
  }
  // Said the 1st, 2nd, 4th, ... time: a runtime that stopped answering costs no log volume.
  const uint64_t k = ++announce_timeouts_;
  if ((k & (k - 1)) == 0)
    LogWarn("container %s: its first events went out before its info (not learnt within %lld "
            "ms; %llu containers so far)\n",
            id.c_str(), static_cast<long long>(wait.count()), static_cast<unsigned long long>(k));
}

void ContainerRegistry::Told(const std::string& id, bool gone) {
  MutexLock lock(announce_mu_);
  told_.insert(id);
  wanted_.erase(id);
  if (gone) {
    told_gone_.push_back(id);
    while (told_gone_.size() > kToldGone) {
      told_.erase(told_gone_.front());
      told_gone_.pop_front();
    }
  }
  announced_.NotifyAll();
}

std::string ContainerRegistry::endpoint() const { return endpoint_; }

size_t ContainerRegistry::size() const {
  ReaderMutexLock lock(mu_);
  return entries_.size();
}

std::optional<v1::ContainerInfo> ContainerRegistry::Find(const std::string& id) const {
  ReaderMutexLock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second.info;
}

std::vector<v1::ContainerInfo> ContainerRegistry::List() const {
  ReaderMutexLock lock(mu_);
  std::vector<v1::ContainerInfo> out;
  for (const auto& [id, e] : entries_) out.push_back(e.info);
  return out;
}

std::optional<std::string> ContainerRegistry::ByDevice(uint32_t major, uint32_t minor) const {
  ReaderMutexLock lock(mu_);
  auto it = by_dev_.find({major, minor});
  if (it == by_dev_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> ContainerRegistry::UpperDir(const std::string& id) const {
  ReaderMutexLock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.info.upperdir().empty()) return std::nullopt;
  return it->second.info.upperdir();
}

std::optional<UpperMatch> ContainerRegistry::ByUpperDir(std::string_view host_dir) const {
  // Upper directories never nest: try the directory and each of its ancestors.
  ReaderMutexLock lock(mu_);
  std::string probe(host_dir);
  while (probe.size() > 1 && probe.back() == '/') probe.pop_back();
  for (;;) {
    auto it = by_upper_.find(probe);
    if (it != by_upper_.end()) {
      UpperMatch m{it->second, "/"};
      if (probe.size() < host_dir.size()) m.dir_in_container.assign(host_dir, probe.size());
      return m;
    }
    size_t slash = probe.rfind('/');
    if (slash == 0 || slash == std::string::npos) return std::nullopt;
    probe.resize(slash);
  }
}

std::vector<VolumeMatch> ContainerRegistry::ByVolumePath(std::string_view host_path) const {
  // Volumes may nest (one container mounts /a, another /a/b): every ancestor is tried.
  std::vector<VolumeMatch> out;
  if (host_path.empty() || host_path[0] != '/') return out;
  ReaderMutexLock lock(mu_);
  if (by_volume_.empty()) return out;
  std::string probe(host_path);
  while (probe.size() > 1 && probe.back() == '/') probe.pop_back();
  for (;;) {
    auto it = by_volume_.find(probe);
    if (it != by_volume_.end()) {
      std::string_view rest = host_path.substr(std::min(probe.size(), host_path.size()));
      for (const auto& [id, dest] : it->second) {
        std::string p = dest;
        if (!rest.empty() && rest != "/") {
          while (p.size() > 1 && p.back() == '/') p.pop_back();
          if (p == "/") p.clear();
          p.append(rest);
        }
        out.push_back({id, std::move(p)});
      }
    }
    if (probe == "/") return out;
    size_t slash = probe.rfind('/');
    if (slash == std::string::npos) return out;
    probe.resize(slash == 0 ? 1 : slash);
  }
}

std::vector<VolumeMatch> ContainerRegistry::ByVolumeFile(std::string_view path_in_container,
                                                         dev_t dev, ino_t ino) const {
  std::vector<VolumeMatch> out;
  if (path_in_container.empty() || path_in_container[0] != '/') return out;
  std::vector<std::pair<std::string, std::string>> sources;  // host source, destination
  {
    ReaderMutexLock lock(mu_);
    for (const auto& [source, mounts] : by_volume_)
      for (const auto& [id, dest] : mounts) sources.emplace_back(source, dest);
  }
  // The volume whose destination holds the path and whose source holds this very file; then
  // every container that mounts that source (each by its own path).
  for (const auto& [source, dest] : sources) {
    std::string_view d = dest;
    while (d.size() > 1 && d.back() == '/') d.remove_suffix(1);
    if (!path_in_container.starts_with(d) ||
        (d != "/" && path_in_container.size() > d.size() && path_in_container[d.size()] != '/'))
      continue;
    const std::string_view rest = path_in_container.substr(d == "/" ? 0 : d.size());
    // The container controls the path below the volume's source: walked beneath it.
    struct stat st;
    if (!(rest.empty() ? lstat(source.c_str(), &st) == 0 : StatBeneath(source, rest, false, &st)) ||
        st.st_dev != dev || st.st_ino != ino)
      continue;
    return ByVolumePath(source + std::string(rest));
  }
  return out;
}

std::optional<std::string> ContainerRegistry::ByMountId(int mnt_id) const {
  ReaderMutexLock lock(mu_);
  auto it = by_mount_.find(mnt_id);
  if (it == by_mount_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> ContainerRegistry::ByPid(pid_t pid) const {
  auto c = ContainerOfPid(pid);
  if (!c) return std::nullopt;
  return c->id;
}

std::optional<std::string> ContainerRegistry::ByUpperFile(std::string_view path_in_container,
                                                          dev_t dev, ino_t ino) const {
  if (path_in_container.empty() || path_in_container[0] != '/') return std::nullopt;
  std::vector<std::pair<std::string, std::string>> uppers;  // id, upperdir
  {
    ReaderMutexLock lock(mu_);
    for (const auto& [upper, id] : by_upper_) uppers.emplace_back(id, upper);
  }
  for (const auto& [id, upper] : uppers) {
    // The path is the container's: walked beneath its upper directory, not by the host.
    struct stat st;
    if (StatBeneath(upper, path_in_container, true, &st) && st.st_dev == dev && st.st_ino == ino)
      return id;
  }
  return std::nullopt;
}

std::optional<ContainerLayers> ContainerRegistry::LayersOf(const std::string& container_id) const {
  ReaderMutexLock lock(mu_);
  auto it = entries_.find(container_id);
  if (it == entries_.end() || it->second.info.upperdir().empty()) return std::nullopt;
  const v1::ContainerInfo& info = it->second.info;
  return ContainerLayers{info.upperdir(), {info.lowerdirs().begin(), info.lowerdirs().end()}};
}

void ContainerRegistry::Index(const std::string& id, const Entry& e) {
  if (!e.info.upperdir().empty()) by_upper_[e.info.upperdir()] = id;
  if (e.mount_id >= 0) by_mount_[e.mount_id] = id;
  if (e.overlay_known) by_dev_[{e.info.rootfs_dev_major(), e.info.rootfs_dev_minor()}] = id;
  for (const v1::Mount& m : e.info.mounts()) {
    // The host's whole root (a node agent's hostPath "/") is no volume: every short-lived
    // host writer would be taken for the container's.
    if (m.read_only() || m.source().empty() || m.source()[0] != '/' || m.source() == "/")
      continue;
    by_volume_[m.source()].emplace_back(id, m.destination());
  }
}

void ContainerRegistry::Unindex(const std::string& id, const Entry& e) {
  auto drop = [&id](auto& map, const auto& key) {
    auto it = map.find(key);
    if (it != map.end() && it->second == id) map.erase(it);
  };
  drop(by_upper_, e.info.upperdir());
  drop(by_mount_, e.mount_id);
  drop(by_dev_, std::make_pair(e.info.rootfs_dev_major(), e.info.rootfs_dev_minor()));
  for (const v1::Mount& m : e.info.mounts()) {
    auto it = by_volume_.find(m.source());
    if (it == by_volume_.end()) continue;
    std::erase_if(it->second, [&id](const auto& v) { return v.first == id; });
    if (it->second.empty()) by_volume_.erase(it);
  }
}

bool ContainerRegistry::MarkReported(Entry* e) {
  std::string now = Reportable(e->info);
  if (now == e->reported) return false;
  e->reported = std::move(now);
  return true;
}

void ContainerRegistry::Emit(const v1::ContainerInfo& info, bool report) {
  if (listener_) listener_(info, report);
  Told(info.id(), info.state() == "removed");
}

void ContainerRegistry::WatchTree(const std::string& dir) {
  int wd = inotify_add_watch(inotify_fd_, dir.c_str(), kWatchMask);
  if (wd < 0) {
    if (errno != ENOENT)
      LogWarn("inotify watch %s: %s\n", dir.c_str(),
                   strerror(errno));
    return;
  }
  watch_dirs_[wd] = dir;
  if (dir != cgroup_root_) CgroupAppeared(dir);
  // Subdirectories made before the watch existed are found by listing after adding it.
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  std::vector<std::string> subdirs;
  while (dirent* de = readdir(d)) {
    if (de->d_type != DT_DIR || de->d_name[0] == '.') continue;
    subdirs.push_back(dir + "/" + de->d_name);
  }
  closedir(d);
  for (const auto& s : subdirs) WatchTree(s);
}

void ContainerRegistry::CgroupAppeared(const std::string& abs_dir) {
  std::string_view rel(abs_dir);
  rel.remove_prefix(cgroup_root_ == "/" ? 0 : cgroup_root_.size());
  auto c = ContainerFromCgroupPath(rel);
  if (!c) return;
  // Only the container's own directory (`<id>`, `docker-<id>.scope`, `...:cri-containerd:<id>`:
  // its last component names it), not cgroups it creates below it.
  const size_t slash = rel.rfind('/');
  if (rel.substr(slash == std::string_view::npos ? 0 : slash + 1).find(c->id) ==
      std::string_view::npos)
    return;
  WriterMutexLock lock(mu_);
  if (entries_.count(c->id)) return;
  Entry& e = entries_[c->id];
  e.info.set_id(c->id);
  e.info.set_runtime(c->runtime);
  e.info.set_pod_uid(c->pod_uid);
  e.info.set_cgroup_path(std::string(rel));
  e.info.set_state("running");
  e.info.set_source("cgroup");
  e.cgroup_dir = abs_dir;
  e.seen = std::chrono::steady_clock::now();
  pending_.insert(c->id);
  fresh_.push_back(c->id);
}

void ContainerRegistry::LearnFresh() {
  if (fresh_.empty()) return;
  const std::vector<MountEntry> host = HostMounts();
  WriterMutexLock lock(mu_);
  for (const std::string& id : fresh_) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.overlay_known) continue;
    Unindex(id, it->second);
    ApplyRuntimeRoot(&it->second, host);
    Index(id, it->second);
  }
  fresh_.clear();
}

void ContainerRegistry::CgroupGone(const std::string& abs_dir) {
  WriterMutexLock lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second.cgroup_dir != abs_dir) continue;
    Remove(it);
    return;
  }
}

void ContainerRegistry::Remove(std::unordered_map<std::string, Entry>::iterator it) {
  pending_.erase(it->first);
  removals_.push_back({std::chrono::steady_clock::now() + kRemovalDelay, it->first,
                       std::move(it->second)});
  entries_.erase(it);
}

void ContainerRegistry::FinishRemovals(bool all) {
  std::vector<v1::ContainerInfo> gone;
  {
    WriterMutexLock lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    while (!removals_.empty() && (all || removals_.front().due <= now)) {
      Removal& r = removals_.front();
      // (A live entry of that id keeps its keys.)
      if (!entries_.contains(r.id)) Unindex(r.id, r.entry);
      r.entry.info.set_state("removed");
      gone.push_back(std::move(r.entry.info));  // reported: its state changed
      removals_.pop_front();
    }
  }
  for (const v1::ContainerInfo& info : gone) {
    if (IsSandbox(info)) {
      pods_.erase(info.sandbox_id());
      pods_cached_ = pods_.size();
    }
    Emit(info, true);
  }
}

void ContainerRegistry::PrunePods() {
  std::set<std::string> named;
  {
    ReaderMutexLock lock(mu_);
    for (const auto& [id, e] : entries_) named.insert(e.info.sandbox_id());
    for (const Removal& r : removals_) named.insert(r.entry.info.sandbox_id());
  }
  std::erase_if(pods_, [&named](const auto& p) { return !named.contains(p.first); });
  pods_cached_ = pods_.size();
}

void ContainerRegistry::HandleInotify() {
  alignas(inotify_event) char buf[64 << 10];
  for (;;) {
    ssize_t n = read(inotify_fd_, buf, sizeof buf);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<inotify_event*>(p);
      p += sizeof(inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        // Events were lost: the periodic walk finds what they would have said; do it now.
        WatchTree(cgroup_root_);
        continue;
      }
      if (ev->mask & IN_IGNORED) {
        watch_dirs_.erase(ev->wd);
        continue;
      }
      auto it = watch_dirs_.find(ev->wd);
      if (it == watch_dirs_.end() || ev->len == 0 || !(ev->mask & IN_ISDIR)) continue;
      std::string path = it->second + "/" + ev->name;
      if (ev->mask & IN_CREATE) WatchTree(path);
      if (ev->mask & IN_DELETE) CgroupGone(path);
    }
  }
}

void ContainerRegistry::ApplyCri(Entry* e) {
  if (ApplyDocker(e)) return;  // a Docker container: its engine has described it
  if (!cri_) {
    e->cri_done = true;
    return;
  }
  e->cri_asked = std::chrono::steady_clock::now();
  // CRI stores a container before its cgroup exists (CreateContainer, then StartContainer):
  // one it did not know when asked is no CRI container, maybe a pod's sandbox.
  Result<CriContainer> st = std::unexpected(Error::NotFound("not a CRI container"));
  if (!e->cri_not_container) st = cri_->ContainerStatus(e->info.id());
  if (!st && st.error().code() != ErrorCode::kNotFound) {
    return;  // runtime not answering: retried while the entry is pending
  }
  if (!st) {
    e->cri_not_container = true;
    // A pod's sandbox (pause) container is known to CRI as the pod, not as a container.
    if (auto pod = cri_->PodSandboxStatus(e->info.id()); pod) {
      e->cri_found = true;
      v1::ContainerInfo& i = e->info;
      i.set_source("cri");
      i.set_name("POD");  // the kubelet's name for a pod's infrastructure container
      i.set_sandbox_id(pod->id);
      i.set_pod_name(pod->name);
      i.set_pod_namespace(pod->namespace_);
      i.set_pod_uid(pod->uid);
      SetPodLabels(&i, *pod);
      SetLabel(&i, "io.kubernetes.pod.sandbox", "true");
      if (pod->pid > 0 && i.init_pid() == 0) i.set_init_pid(static_cast<uint32_t>(pod->pid));
    }
    // Else not a CRI container (ctr, docker, podman): the cgroup is all there is. But a
    // sandbox enters CRI's store only once RunPodSandbox has started it, after its cgroup
    // appeared: ask again for a while before concluding.
    else if (std::chrono::steady_clock::now() - e->seen < kCriGrace)
      return;
    e->cri_done = true;
    return;
  }
  const CriContainer& c = *st;
  e->cri_found = true;
  v1::ContainerInfo& i = e->info;
  i.set_source("cri");
  i.set_runtime(runtime_name_.empty() ? i.runtime() : runtime_name_);
  i.set_name(c.name);
  i.set_image(c.image);
  i.set_image_ref(c.image_ref);
  ImageName img = ParseImageName(c.image);
  i.set_image_repository(img.repository);
  i.set_image_tag(img.tag);
  i.set_image_digest(img.digest.empty() ? RepoDigestOf(c.image_ref) : img.digest);
  i.set_sandbox_id(c.pod_sandbox_id);
  if (c.started_at_ns) i.set_start_time_ns(c.started_at_ns);
  i.set_privileged(c.privileged);
  i.set_read_only_rootfs(c.read_only_rootfs);
  e->root_path = c.root_path;
  i.clear_mounts();
  for (const CriMount& m : c.mounts) {
    v1::Mount* vm = i.add_mounts();
    // As the kernel names it (fanotify's paths): no symlink in it, no trailing slash.
    char* real = realpath(m.host_path.c_str(), nullptr);
    vm->set_source(real != nullptr ? real : m.host_path);
    free(real);
    vm->set_destination(m.container_path);
    vm->set_read_only(m.readonly);
    vm->set_propagation(m.propagation);
    vm->set_selinux_relabel(m.selinux_relabel);
  }
  if (c.pid > 0 && i.init_pid() == 0) i.set_init_pid(static_cast<uint32_t>(c.pid));
  SetLabels(&i, c.labels);
  // Pod fields: from the sandbox, else the labels the kubelet puts on every container.
  auto label = [&c](const char* k) {
    auto it = c.labels.find(k);
    return it == c.labels.end() ? std::string() : it->second;
  };
  i.set_pod_name(label("io.kubernetes.pod.name"));
  i.set_pod_namespace(label("io.kubernetes.pod.namespace"));
  if (auto uid = label("io.kubernetes.pod.uid"); !uid.empty()) i.set_pod_uid(uid);
  if (!c.pod_sandbox_id.empty()) {
    auto pod = pods_.find(c.pod_sandbox_id);
    if (pod == pods_.end()) {
      if (auto p = cri_->PodSandboxStatus(c.pod_sandbox_id); p) {
        v1::ContainerInfo pi;
        pi.set_pod_name(p->name);
        pi.set_pod_namespace(p->namespace_);
        pi.set_pod_uid(p->uid);
        SetPodLabels(&pi, *p);
        pod = pods_.emplace(c.pod_sandbox_id, pi).first;
        pods_cached_ = pods_.size();
      }
    }
    if (pod != pods_.end()) {
      i.set_pod_name(pod->second.pod_name());
      i.set_pod_namespace(pod->second.pod_namespace());
      i.set_pod_uid(pod->second.pod_uid());
      *i.mutable_pod_labels() = pod->second.pod_labels();
      *i.mutable_pod_annotations() = pod->second.pod_annotations();
    }
  }
  if (e->cgroup_dir.empty() && !c.cgroup_path.empty()) {
    i.set_cgroup_path(c.cgroup_path);
    std::string dir = cgroup_root_ + c.cgroup_path;
    if (IsDir(dir)) e->cgroup_dir = dir;
  }
  e->cri_done = true;
}

// The rootfs overlay's device and layers into the entry (from either place it is read).
void ContainerRegistry::SetOverlay(Entry* e, const OverlayRoot& ov) {
  v1::ContainerInfo& i = e->info;
  i.set_rootfs_dev_major(ov.dev_major);
  i.set_rootfs_dev_minor(ov.dev_minor);
  i.set_upperdir(ov.upperdir);
  i.clear_lowerdirs();
  for (const auto& l : ov.lowerdirs) i.add_lowerdirs(l);
  if (!i.read_only_rootfs()) i.set_read_only_rootfs(ov.read_only);
  e->overlay_known = true;
}

bool ContainerRegistry::ApplyRuntimeRoot(Entry* e, const std::vector<MountEntry>& host_mounts) {
  e->root_looked = std::chrono::steady_clock::now();
  e->root_looked_for = e->root_path;
  std::optional<OverlayRoot> ov = RuntimeRootOverlay(host_mounts, e->info.id(), e->root_path);
  if (!ov) return false;
  SetOverlay(e, *ov);
  return true;
}

bool ContainerRegistry::ReadInitRoot(Entry* e) {
  pid_t pid = e->info.init_pid() ? static_cast<pid_t>(e->info.init_pid()) : 0;
  if (!pid && !e->cgroup_dir.empty()) pid = FirstPid(e->cgroup_dir);
  // runc init sits in the cgroup before it pivots into the rootfs: not an overlay yet.
  if (pid <= 0) return false;
  auto ov = RootOverlayOfPid(pid);
  if (!ov) return false;
  e->info.set_init_pid(static_cast<uint32_t>(pid));
  SetOverlay(e, *ov);
  e->mount_id = ov->mount_id;
  e->root_read = true;
  return true;
}

bool ContainerRegistry::Store(const std::string& id, Entry* e, bool done) {
  WriterMutexLock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;  // removed meanwhile
  const Entry& cur = it->second;
  if (!e->overlay_known && cur.overlay_known) {
    // Learnt by the cgroup thread (LearnFresh) while this one worked on its copy.
    v1::ContainerInfo& i = e->info;
    i.set_rootfs_dev_major(cur.info.rootfs_dev_major());
    i.set_rootfs_dev_minor(cur.info.rootfs_dev_minor());
    i.set_upperdir(cur.info.upperdir());
    *i.mutable_lowerdirs() = cur.info.lowerdirs();
    if (!i.read_only_rootfs()) i.set_read_only_rootfs(cur.info.read_only_rootfs());
    e->overlay_known = true;
  }
  Unindex(id, it->second);
  it->second = *e;
  Index(id, *e);
  if (done) pending_.erase(id);
  return true;
}

void ContainerRegistry::ServeAnnounces() {
  std::vector<std::string> ids;
  {
    MutexLock lock(announce_mu_);
    ids.assign(wanted_.begin(), wanted_.end());
  }
  std::optional<std::vector<MountEntry>> host;
  for (const std::string& id : ids) {
    Entry e;
    bool removing = false;
    {
      ReaderMutexLock lock(mu_);
      if (auto it = entries_.find(id); it != entries_.end()) {
        e = it->second;
      } else {
        auto r = std::find_if(removals_.begin(), removals_.end(),
                              [&id](const Removal& r) { return r.id == id; });
        if (r == removals_.end()) continue;  // not seen (yet): Announce gives up in time
        e = r->entry;
        removing = true;
      }
    }
    // What a pass of Complete would do, without waiting for what is still missing. Also for
    // a container whose cgroup went already (it lived a few ms, and this thread was busy or
    // starved meanwhile): the runtime still knows it until it is removed.
    if (!e.cri_done && std::chrono::steady_clock::now() - e.cri_asked >= kCriRetry) ApplyCri(&e);
    // A pod's sandbox enters CRI's store only once RunPodSandbox has started it, after its
    // first events: a container in a kubelet's pod cgroup is reported once CRI knows it
    // (asked again on the next turns; Announce stops waiting in time).
    const bool wait_cri =
        cri_ && !e.cri_found && !e.cri_done && !e.info.pod_uid().empty() && !removing;
    if (!removing) {
      if (!e.overlay_known) {
        if (!host) host = HostMounts();
        ApplyRuntimeRoot(&e, *host);
      }
      if (!e.root_read) ReadInitRoot(&e);
    }
    // Its first events are now: it started about now, if the runtime has not said when.
    if (!wait_cri && e.info.start_time_ns() == 0)
      e.info.set_start_time_ns(ToNs(std::chrono::system_clock::now()));
    const bool report = !wait_cri && MarkReported(&e);
    if (removing) {
      StoreRemoving(id, e);
    } else if (!Store(id, &e, e.cri_done && e.overlay_known && e.root_read)) {
      continue;  // gone meanwhile: the next turn finds it among the removals
    }
    if (wait_cri) continue;
    Emit(e.info, report);
  }
}

void ContainerRegistry::StoreRemoving(const std::string& id, const Entry& e) {
  WriterMutexLock lock(mu_);
  auto r = std::find_if(removals_.begin(), removals_.end(),
                        [&id](const Removal& r) { return r.id == id; });
  if (r == removals_.end()) return;
  if (!entries_.contains(id)) {
    Unindex(id, r->entry);
    Index(id, e);  // the volumes CRI named still attribute its last writes
  }
  r->entry = e;
}

bool ContainerRegistry::Complete() {
  std::vector<std::string> ids;
  {
    ReaderMutexLock lock(mu_);
    ids.assign(pending_.begin(), pending_.end());
    // The runtime is asked about new containers first: the others wait for their root or
    // for CRI to know them, which can wait a round trip longer.
    auto unasked = [this](const std::string& id) DW_REQUIRES_SHARED(mu_) {
      auto it = entries_.find(id);
      return it != entries_.end() &&
             it->second.cri_asked == std::chrono::steady_clock::time_point();
    };
    std::stable_partition(ids.begin(), ids.end(), unasked);
  }
  auto now = std::chrono::steady_clock::now();
  std::optional<std::vector<MountEntry>> host;  // read once a pass, when an entry needs it
  for (const auto& id : ids) {
    ServeAnnounces();  // an event waits for those: before the next CRI round trip
    Entry e;
    {
      ReaderMutexLock lock(mu_);
      auto it = entries_.find(id);
      if (it == entries_.end()) continue;
      e = it->second;
    }
    bool changed = false;
    if (!e.cri_done && now - e.cri_asked >= kCriRetry) {
      ApplyCri(&e);
      changed = e.cri_done;
    }
    if (!e.overlay_known && now - e.seen < kRuntimeRootWindow &&
        (now - e.root_looked >= kRuntimeRootRetry || e.root_path != e.root_looked_for)) {
      if (!host) host = HostMounts();
      changed |= ApplyRuntimeRoot(&e, *host);
    }
    if (!e.root_read) changed |= ReadInitRoot(&e);
    bool done = e.cri_done && e.overlay_known && e.root_read;
    bool expired = now - e.seen > kPendingLimit;
    if (e.info.start_time_ns() == 0 && (done || expired))
      e.info.set_start_time_ns(ToNs(std::chrono::system_clock::now()));
    // Reported once complete (CRI answered, the init's root read), or when given up on; an
    // event of the container before that has it reported already (ServeAnnounces), and the
    // collector then hears again only of what CRI changed.
    const bool emit = (changed && done) || expired;
    const bool report = emit && MarkReported(&e);
    if (!Store(id, &e, done || expired)) continue;
    if (emit) Emit(e.info, report);
  }
  ReaderMutexLock lock(mu_);
  return !pending_.empty();
}

void ContainerRegistry::Resync() {
  if (cri_) {
    auto list = cri_->ListContainers();
    if (!list) {
      LogInfo("%s\n", list.error().c_str());
    } else {
      std::set<std::string> running;
      for (const auto& c : *list) {
        if (c.state != "running") continue;
        running.insert(c.id);
        WriterMutexLock lock(mu_);
        if (entries_.count(c.id)) continue;
        Entry& e = entries_[c.id];
        e.info.set_id(c.id);
        e.info.set_state("running");
        e.info.set_source("cri");
        e.seen = std::chrono::steady_clock::now();
        pending_.insert(c.id);
      }
      // CRI containers that stopped without our seeing their cgroup go.
      WriterMutexLock lock(mu_);
      for (auto it = entries_.begin(); it != entries_.end();) {
        const Entry& e = it->second;
        bool cri_owned = e.info.source() == "cri";
        bool cgroup_alive = !e.cgroup_dir.empty() && IsDir(e.cgroup_dir);
        auto next = std::next(it);
        if (cri_owned && !running.count(it->first) && !cgroup_alive) Remove(it);
        it = next;
      }
    }
  }
  // Cgroup-only containers whose directory is gone (an inotify event lost).
  std::vector<std::string> dead;
  {
    ReaderMutexLock lock(mu_);
    for (const auto& [id, e] : entries_)
      if (!e.cgroup_dir.empty() && !IsDir(e.cgroup_dir)) dead.push_back(e.cgroup_dir);
  }
  for (const auto& d : dead) CgroupGone(d);
  PrunePods();
}

void ContainerRegistry::WatchCgroups() {
  while (!stop_) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0 && errno != EINTR) {
      LogWarn("registry poll: %s\n", strerror(errno));
      break;
    }
    if (stop_) break;
    if (n > 0 && (fds[0].revents & POLLIN)) {
      HandleInotify();
      LearnFresh();
      Wake();  // the registry's thread completes what appeared
    }
  }
}

void ContainerRegistry::Run() {
  auto next_resync = std::chrono::steady_clock::now() + options_.resync;
  bool pending = true;
  while (!stop_) {
    // Pending containers are retried every 10 ms: a process in the cgroup and its overlay
    // root come a few ms after the cgroup directory. Removals are due to the 100 ms.
    bool removing;
    {
      ReaderMutexLock lock(mu_);
      removing = !removals_.empty();
    }
    int timeout_ms = pending ? 10 : removing ? 100 : 1000;
    pollfd fds[2] = {{stop_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int n = poll(fds, 2, timeout_ms);
    if (n < 0 && errno != EINTR) {
      LogWarn("registry poll: %s\n", strerror(errno));
      break;
    }
    if (stop_) break;
    if (n > 0 && (fds[1].revents & POLLIN)) {
      uint64_t count;
      [[maybe_unused]] ssize_t r = read(wake_fd_, &count, sizeof count);
    }
    ServeAnnounces();
    ApplyDockerUpdates();
    if (std::chrono::steady_clock::now() >= next_resync) {
      Resync();
      next_resync = std::chrono::steady_clock::now() + options_.resync;
    }
    pending = Complete();
    FinishRemovals(false);
  }
  // The removals still held back: reported now, the last word on those containers.
  FinishRemovals(true);
}

}  // namespace driftwatch::sensor
