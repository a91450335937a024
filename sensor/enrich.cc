#include "sensor/enrich.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "lib/node/cgroup_path.h"
#include "lib/event/event_json.h"
#include "lib/event/exe_file.h"
#include "lib/node/procfs.h"

namespace driftwatch::sensor {
namespace {

constexpr int64_t kNs = 1000000000;

int64_t ClockNs(clockid_t c) {
  timespec ts{};
  clock_gettime(c, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNs + ts.tv_nsec;
}

// readlinkat into a string; "" on failure. For an fd opened under a process's root, the
// kernel prints the path from the root of that fd's mount namespace: the path the process
// sees.
std::string ReadLinkAt(int dirfd, const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = readlinkat(dirfd, path.c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// "fd/N" for a path naming the process's own fd N (/proc/self/fd/N, /dev/fd/N, ...).
std::optional<std::string> OwnFdOf(std::string_view path) {
  for (std::string_view prefix : {"/proc/self/fd/", "/proc/thread-self/fd/", "/dev/fd/"}) {
    if (!path.starts_with(prefix)) continue;
    std::string_view n = path.substr(prefix.size());
    if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string_view::npos)
      return std::nullopt;
    return "fd/" + std::string(n);
  }
  return std::nullopt;
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

bool Enricher::StartedBy(uint64_t start_ticks, int64_t event_boot_ns) const {
  // Start times have clock-tick resolution: allow one tick.
  int64_t start_ns = static_cast<int64_t>(start_ticks) * (kNs / ticks_per_sec_);
  return start_ns <= event_boot_ns + kNs / ticks_per_sec_;
}

bool Enricher::Lookup(pid_t pid, int64_t event_boot_ns, std::string* container) {
  if (pid <= 0) return false;
  std::optional<ProcStat> stat = ReadProcStat(pid);
  if (!stat) {
    // Gone: the cache still knows container processes that exited since.
    auto it = cache_.find(pid);
    if (it == cache_.end() || !StartedBy(it->second.start_ticks, event_boot_ns)) return false;
    *container = it->second.container;
    return true;
  }
  const uint64_t start = stat->start_ticks;
  if (!StartedBy(start, event_boot_ns)) {
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
  if (!ev->has_exec()) return;
  v1::ProcessExec* x = ev->mutable_exec();
  if (!x->exe_file().empty()) LookAtExeFile(x, container, boot_ns);
  if (container.empty() || !x->success()) return;
  // Drift is in what ran: the executable or the file it runs (a script, a loader's program).
  std::optional<bool> upper = InUpperLayer(container, x->exe());
  if (!x->exe_file().empty() && upper != true) {
    std::optional<bool> file_upper;
    if (x->exe_file_stat() == v1::EXE_FILE_STAT_OK) file_upper = InUpperLayer(container, x->exe_file());
    upper = file_upper == true ? file_upper : (upper == false ? file_upper : std::nullopt);
  }
  if (upper) x->set_is_exe_upper_layer(*upper);
}

std::optional<bool> Enricher::InUpperLayer(const std::string& container,
                                           const std::string& path) const {
  if (IsMemfdExe(path)) return false;  // in no layer at all
  if (IsDeletedExe(path) || registry_ == nullptr) return std::nullopt;
  return registry_->IsInUpperLayer(container, path);
}

int Enricher::OpenProcess(pid_t pid, int64_t event_boot_ns) const {
  if (pid <= 0) return -1;
  int pfd = open(("/proc/" + std::to_string(pid)).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) return -1;
  int sfd = openat(pfd, "stat", O_RDONLY | O_CLOEXEC);
  char buf[1024];
  ssize_t n = sfd >= 0 ? read(sfd, buf, sizeof buf) : -1;
  if (sfd >= 0) close(sfd);
  std::optional<ProcStat> st =
      n > 0 ? ParseProcStat(std::string_view(buf, static_cast<size_t>(n))) : std::nullopt;
  if (st && st->state != 'Z' && st->state != 'X' && StartedBy(st->start_ticks, event_boot_ns))
    return pfd;
  close(pfd);
  return -1;
}

int Enricher::OpenRoot(int pfd, const std::string& container) const {
  if (pfd >= 0) {
    int root = openat(pfd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root >= 0) return root;
  }
  // Gone: its container's init sees the same root (the host's init for host processes).
  pid_t init = 1;
  if (!container.empty()) {
    std::optional<v1::ContainerInfo> info = registry_ ? registry_->Find(container) : std::nullopt;
    if (!info || info->init_pid() == 0 || info->state() != "running") return -1;
    init = static_cast<pid_t>(info->init_pid());
  }
  return open(("/proc/" + std::to_string(init) + "/root").c_str(),
              O_PATH | O_DIRECTORY | O_CLOEXEC);
}

void Enricher::LookAtExeFile(v1::ProcessExec* x, const std::string& container,
                             int64_t event_boot_ns) {
  const int pfd = OpenProcess(static_cast<pid_t>(x->pid()), event_boot_ns);
  // A loader given one of the process's own fds (`ld.so /proc/self/fd/3`, a memfd or a
  // file unlinked since): only the process itself, while it runs, says what that fd is.
  if (std::optional<std::string> fd = OwnFdOf(x->exe_file())) {
    struct stat st;
    std::string target = pfd >= 0 ? ReadLinkAt(pfd, *fd) : "";
    if (target.empty() || fstatat(pfd, fd->c_str(), &st, 0) != 0) {
      x->set_exe_file_stat(pfd >= 0 ? v1::EXE_FILE_STAT_NOT_FOUND : v1::EXE_FILE_STAT_NO_ROOT);
    } else {
      if (IsMemfdExe(target)) x->set_is_exe_from_memfd(true);
      SetExeFileStat(x, st, target);
    }
    if (pfd >= 0) close(pfd);
    return;
  }
  int root = OpenRoot(pfd, container);
  if (pfd >= 0) close(pfd);
  if (root < 0) {
    x->set_exe_file_stat(v1::EXE_FILE_STAT_NO_ROOT);
    return;
  }
  // A name glibc's loader found by its library path: its directories, in its order.
  std::vector<std::string> candidates;
  if (x->exe_file().starts_with("/")) {
    candidates.push_back(x->exe_file());
  } else if (auto prog = ProgramOfLoader(Basename(x->exe()), x->args())) {
    for (const std::string& d : prog->library_path)
      candidates.push_back(JoinPath(d + "/" + x->exe_file(), x->cwd()));
    for (const std::string& d : LoaderDefaultDirs(x->arch()))
      candidates.push_back(d + "/" + x->exe_file());
  }
  int fd = -1;
  int err = ENOENT;
  for (const std::string& c : candidates) {
    fd = OpenInRoot(root, c);
    if (fd >= 0) break;
    if (errno != ENOENT) err = errno;
  }
  close(root);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    x->set_exe_file_stat(fd < 0 && err == ENOENT ? v1::EXE_FILE_STAT_NOT_FOUND
                                                 : v1::EXE_FILE_STAT_FAILED);
    if (fd >= 0) close(fd);
    return;
  }
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  std::string real = ReadLinkAt(AT_FDCWD, link);
  close(fd);
  SetExeFileStat(x, st, IsDeletedExe(real) ? "" : real);
}

void Enricher::SetExeFileStat(v1::ProcessExec* x, const struct stat& st,
                              const std::string& path) {
  if (!S_ISREG(st.st_mode)) {
    x->set_exe_file_stat(v1::EXE_FILE_STAT_NOT_REGULAR);
    return;
  }
  const uint32_t ma = major(st.st_dev), mi = minor(st.st_dev);
  if (x->exe_file_inode() != 0 &&
      (x->exe_file_inode() != st.st_ino || x->exe_file_dev_major() != ma ||
       x->exe_file_dev_minor() != mi)) {
    x->set_exe_file_stat(v1::EXE_FILE_STAT_CHANGED);
    return;
  }
  x->set_exe_file_stat(v1::EXE_FILE_STAT_OK);
  x->set_exe_file_inode(st.st_ino);
  x->set_exe_file_dev_major(ma);
  x->set_exe_file_dev_minor(mi);
  if (path.starts_with("/")) x->set_exe_file(path);
}

}  // namespace driftwatch::sensor
