#include "sensor/enrich.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <algorithm>

#include "lib/node/cgroup_path.h"
#include "lib/event/event_json.h"
#include "lib/event/exe_file.h"
#include "lib/node/mountinfo.h"
#include "lib/node/procfs.h"

namespace driftwatch::sensor {
namespace {

constexpr int64_t kNs = 1000000000;

int64_t ClockNs(clockid_t c) {
  timespec ts{};
  clock_gettime(c, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNs + ts.tv_nsec;
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

// One read(2) of a /proc file under `pfd` into *out (stat and status fit one read):
// false when it cannot be opened or reads nothing (the process is gone).
bool ReadOnce(int pfd, const char* name, size_t max, std::string* out) {
  out->resize(max);
  int fd = openat(pfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return false;
  ssize_t n;
  do {
    n = read(fd, out->data(), max);
  } while (n < 0 && errno == EINTR);
  close(fd);
  out->resize(n > 0 ? static_cast<size_t>(n) : 0);
  return n > 0;
}

int64_t Ns(const struct timespec& t) { return int64_t{t.tv_sec} * kNs + t.tv_nsec; }

}  // namespace

Enricher::Enricher(const ContainerRegistry* registry, size_t cache_limit)
    : registry_(registry),
      cache_limit_(cache_limit),
      proc_fd_(open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC)),
      ticks_per_sec_(sysconf(_SC_CLK_TCK)) {
  if (ticks_per_sec_ <= 0) ticks_per_sec_ = 100;
}

Enricher::~Enricher() {
  if (proc_fd_ >= 0) close(proc_fd_);
  for (auto& [id, u] : upper_dirs_)
    if (u.fd >= 0) close(u.fd);
}

void Enricher::ObserveCursor(bool force) {
  if (!cursor_reader_.available()) return;  // unknown: every answer reads /proc
  const int64_t now = ClockNs(CLOCK_MONOTONIC);
  if (!force && cursor_.last_observed_ns() != 0 && now - cursor_.last_observed_ns() < kNs / 1000)
    return;
  if (pid_max_ == 0 || now - pid_max_read_ns_ > kNs) {
    pid_max_ = cursor_reader_.PidMax().value_or(0);
    pid_max_read_ns_ = now;
  }
  cursor_.Observe(now, cursor_reader_.LastPid(), pid_max_);
}

void Enricher::Remember(pid_t pid, uint64_t start_ticks, const std::string& container) {
  // Only container answers are cached: a process moves from the host's cgroup into a
  // container's (runc init) but never back, so a cached "host" could go stale.
  if (container.empty()) {
    cache_.erase(pid);
    return;
  }
  // The mark must stand at or past the pid (a pid just handed out lies past a mark taken
  // before), else the pid counts as ahead of the cursor.
  if (pid > cursor_.last_pid()) ObserveCursor(true);
  if (cache_.size() >= cache_limit_) cache_.clear();  // rare; costs only re-reads
  cache_[pid] = Proc{start_ticks, container, cursor_.mark(), ClockNs(CLOCK_BOOTTIME)};
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

bool Enricher::Lookup(pid_t pid, int64_t event_boot_ns, std::string* container, int pfd,
                      const ProcStat* st, bool gone) {
  if (pid <= 0) return false;
  auto it = cache_.find(pid);
  // A cached pid the cursor has not passed since is still that process (or gone, and its
  // pid not given again): its stat need not be read.
  if (st == nullptr && !gone && it != cache_.end() &&
      !cursor_.MayBeReused(pid, it->second.seen, in_batch_)) {
    if (!StartedBy(it->second.start_ticks, event_boot_ns)) return false;
    ++stats_.cache_trusted;
    *container = it->second.container;
    return true;
  }
  std::optional<ProcStat> stat = st != nullptr ? std::optional<ProcStat>(*st)
                                : gone         ? std::nullopt
                                               : ReadProcStat(pid);
  if (!stat) {
    // Gone: the cache still knows container processes that exited since, if the pid was
    // still theirs at the event: they were seen alive after it, or the cursor has not passed
    // the pid since. (The pid of a container that went half a minute ago, handed out again to
    // a new container's process that exited before its exec was read, is not the old
    // container's: seen with 500 short-lived pods, pids going round in half a minute.)
    if (it == cache_.end() || !StartedBy(it->second.start_ticks, event_boot_ns)) return false;
    if (event_boot_ns > it->second.seen_boot_ns &&
        cursor_.MayBeReused(pid, it->second.seen, in_batch_))
      return false;
    *container = it->second.container;
    return true;
  }
  const uint64_t start = stat->start_ticks;
  if (!StartedBy(start, event_boot_ns)) {
    ++stats_.pid_reused;
    return false;
  }
  if (it != cache_.end() && it->second.start_ticks == start) {
    *container = it->second.container;
    Remember(pid, start, *container);  // seen alive again: a newer mark
    return true;
  }
  std::string text;
  if (!(pfd >= 0 ? ReadSmallFileAt(pfd, "cgroup", &text)
                 : ReadSmallFile("/proc/" + std::to_string(pid) + "/cgroup", &text)))
    return false;
  auto c = ContainerFromProcCgroup(text);
  *container = c ? c->id : "";
  Remember(pid, start, *container);
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
  } else if (ev->has_network()) {
    pid = ev->network().pid();
    ppid = ev->network().ppid();
  } else {
    return;
  }
  int64_t boot_ns = WallToBootNs(ev->time_ns());
  ObserveCursor(false);
  // Execs: /proc/<pid> opened once, while it is the process that made the event.
  std::string stat_text;
  ProcStat st;
  bool gone = false;
  const int pfd =
      ev->has_exec() ? OpenProcess(static_cast<pid_t>(pid), boot_ns, &stat_text, &st, &gone) : -1;
  std::string container;
  v1::Attribution how = v1::ATTRIBUTION_UNKNOWN;
  if (pfd >= 0 ? Lookup(static_cast<pid_t>(pid), boot_ns, &container, pfd, &st)
               : Lookup(static_cast<pid_t>(pid), boot_ns, &container, -1, nullptr, gone)) {
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
      // Gone already (a `sh -c` that ends by exec'ing its last command): its next exec, of a
      // file on no container's overlay (a volume), is still this container's. Its start is
      // unknown (0): the pid cursor alone says when the pid may be another process's.
      if (pfd < 0 && gone) Remember(static_cast<pid_t>(pid), 0, container);
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
  if (!x->exe_file().empty()) LookAtExeFile(x, container, pfd);
  if (pfd >= 0) {
    ReadProcessState(x, pfd, st, container);
    close(pfd);
  } else {
    ++stats_.state_gone;
  }
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

std::optional<std::string> Enricher::CommOf(pid_t pid, int64_t wall_ns) {
  if (pid <= 0) return std::nullopt;
  std::string text;
  char name[32];
  std::snprintf(name, sizeof name, "%d/stat", static_cast<int>(pid));
  if (proc_fd_ < 0 || !ReadSmallFileAt(proc_fd_, name, &text)) return std::nullopt;
  std::optional<ProcStat> st = ParseProcStat(text);
  if (!st || !StartedBy(st->start_ticks, WallToBootNs(wall_ns))) return std::nullopt;
  return std::string(st->comm);
}

void Enricher::BeginBatch() {
  in_batch_ = true;
  ObserveCursor(true);
  batch_upper_.clear();
}

std::optional<bool> Enricher::InUpperLayer(const std::string& container,
                                           const std::string& path) {
  if (!in_batch_) return LookInUpperLayer(container, path);
  // Within a batch one look serves every exec of the file: all were made before the look.
  // (A file the container put in its upper layer and ran, then removed before the look,
  // escapes a look per exec just the same.)
  if (batch_upper_.size() >= 1024) batch_upper_.clear();  // a batch has about as many records
  upper_key_.assign(container).push_back('\0');
  upper_key_.append(path);
  if (auto it = batch_upper_.find(upper_key_); it != batch_upper_.end()) return it->second;
  std::optional<bool> upper = LookInUpperLayer(container, path);
  // Not an unknown: the registry may learn the container's layers before the next exec.
  if (upper) batch_upper_.emplace(upper_key_, *upper);
  return upper;
}

std::optional<bool> Enricher::LookInUpperLayer(const std::string& container,
                                               const std::string& path) {
  if (IsMemfdExe(path)) return false;  // in no layer at all
  if (IsDeletedExe(path) || registry_ == nullptr) return std::nullopt;
  // Descriptors of containers gone from the registry are let go now and then: a kept one
  // would hold the directory's filesystem busy.
  if (const int64_t now = ClockNs(CLOCK_MONOTONIC_COARSE); now - upper_pruned_ns_ > 10 * kNs) {
    upper_pruned_ns_ = now;
    for (auto it = upper_dirs_.begin(); it != upper_dirs_.end();) {
      if (registry_->UpperDir(it->first)) {
        ++it;
        continue;
      }
      if (it->second.fd >= 0) close(it->second.fd);
      it = upper_dirs_.erase(it);
    }
  }
  std::optional<std::string> upper = registry_->UpperDir(container);
  if (!upper) return std::nullopt;
  auto it = upper_dirs_.find(container);
  if (it == upper_dirs_.end() || it->second.path != *upper) {
    if (it == upper_dirs_.end()) {
      // Containers come and go: start over now and then rather than track each one's end.
      if (upper_dirs_.size() >= 256) {
        for (auto& [id, u] : upper_dirs_)
          if (u.fd >= 0) close(u.fd);
        upper_dirs_.clear();
      }
      it = upper_dirs_.emplace(container, UpperDir{}).first;
    }
    if (it->second.fd >= 0) close(it->second.fd);
    it->second.path = *upper;
    it->second.fd = open(upper->c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  if (it->second.fd < 0) {
    // Not there (yet, or any more): tried again at the next exec.
    upper_dirs_.erase(it);
    return false;
  }
  return IsInUpperLayerAt(it->second.fd, path);
}

int Enricher::OpenProcess(pid_t pid, int64_t event_boot_ns, std::string* stat_text,
                          ProcStat* st, bool* gone) const {
  if (pid <= 0) return -1;
  // Most short-lived processes are gone by now: a null signal says so for less than a failed
  // lookup in /proc (which builds and drops a dentry each time). EPERM (no CAP_KILL, as
  // under the systemd unit: another user's process) means it exists; where a security
  // module refuses the signal (EACCES; each refusal could be logged) it is not sent again.
  if (null_signal_ok_ && kill(pid, 0) != 0) {
    if (errno == ESRCH) {
      if (gone != nullptr) *gone = true;
      return -1;
    }
    if (errno == EACCES) null_signal_ok_ = false;
  }
  char name[16];
  std::snprintf(name, sizeof name, "%d", static_cast<int>(pid));
  int pfd = proc_fd_ >= 0 ? openat(proc_fd_, name, O_PATH | O_DIRECTORY | O_CLOEXEC)
                          : open(("/proc/" + std::string(name)).c_str(),
                                 O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) {
    if (gone != nullptr) *gone = errno == ENOENT || errno == ESRCH;
    return -1;
  }
  std::optional<ProcStat> s =
      ReadOnce(pfd, "stat", 1024, stat_text) ? ParseProcStat(*stat_text) : std::nullopt;
  if (s && s->state != 'Z' && s->state != 'X' && StartedBy(s->start_ticks, event_boot_ns)) {
    *st = *s;
    return pfd;
  }
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

void Enricher::LookAtExeFile(v1::ProcessExec* x, const std::string& container, int pfd) {
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
    return;
  }
  int root = OpenRoot(pfd, container);
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

namespace driftwatch::sensor {

void Enricher::ReadProcessState(v1::ProcessExec* x, int pfd, const ProcStat& st,
                                const std::string& container) {
  ++stats_.state_read;
  const uint32_t pid = x->pid();
  // Start time: boot time of the start, moved to the epoch as the event's own time was.
  const int64_t start_boot_ns = static_cast<int64_t>(st.start_ticks) * (kNs / ticks_per_sec_);
  x->set_start_time_ns(start_boot_ns + boot_offset_ns_);
  if (st.pgrp >= 0) x->set_pgid(static_cast<uint32_t>(st.pgrp));
  if (st.session >= 0) x->set_sid(static_cast<uint32_t>(st.session));
  // stat was read through pfd, and a later exec changes comm (audit's comm= is the one after
  // this exec): the same comm means status, environ and exe are still this exec's.
  const bool same_exec = st.comm == x->comm();
  if (ReadOnce(pfd, "status", 4096, &buf_)) {
    ProcStatus ps = ParseProcStatus(buf_);
    if (ps.vpid) x->set_vpid(*ps.vpid);
    if (ps.vpgid) x->set_vpgid(*ps.vpgid);
    if (ps.vsid) x->set_vsid(*ps.vsid);
    if (same_exec) {
      if (ps.cap_effective) x->set_cap_effective(*ps.cap_effective);
      if (ps.cap_permitted) x->set_cap_permitted(*ps.cap_permitted);
      if (ps.cap_inheritable) x->set_cap_inheritable(*ps.cap_inheritable);
    }
  }
  if (!same_exec) {
    ++stats_.state_moved;
  } else {
    if (environ_max_bytes_ > 0) {
      // stat says how big the environment is (0, 0 when it may not say): read at most the
      // cap, once. An empty environment reads nothing.
      const bool bounds = st.env_end != 0;
      const uint64_t size = st.env_end - st.env_start;
      const size_t want = bounds ? static_cast<size_t>(std::min<uint64_t>(size, environ_max_bytes_))
                                 : environ_max_bytes_ + 1;
      bool read_ok = want > 0 && ReadOnce(pfd, "environ", want, &buf_);
      if (read_ok || (bounds && size == 0)) {
        if (!read_ok) buf_.clear();
        uint64_t beyond = size > buf_.size() ? size - buf_.size() : 0;
        Environ env = SplitEnviron(buf_, environ_max_bytes_, beyond);
        x->set_env_read(true);
        for (std::string_view e : env.entries) x->add_env(std::string(e));
        if (env.capped) {
          x->set_env_capped(true);
          x->set_env_dropped_bytes(env.dropped_bytes);
          ++stats_.env_capped;
        }
      }
    }
    // The running executable (the interpreter of a script). For a plain exec it must be the
    // file the audit record names, else the process ran another since.
    struct stat es;
    if (fstatat(pfd, "exe", &es, 0) == 0 &&
        (!x->exe_file().empty() || x->exe_inode() == 0 || es.st_ino == x->exe_inode())) {
      x->set_exe_ctime_ns(Ns(es.st_ctim));
      x->set_exe_mtime_ns(Ns(es.st_mtim));
    }
  }
  if (st.session > 0) {
    if (static_cast<uint32_t>(st.session) == pid) {
      x->set_session_leader_name(std::string(st.comm));
    } else if (auto n = LeaderName(st.session, st.start_ticks)) {
      x->set_session_leader_name(*n);
    }
  }
  // The group leader's name costs no read of its own: known when the process or its
  // session leader leads the group (a shell's job, a session's first group); else unset.
  if (st.pgrp > 0) {
    if (static_cast<uint32_t>(st.pgrp) == pid) {
      x->set_pgid_leader_name(std::string(st.comm));
    } else if (st.pgrp == st.session && !x->session_leader_name().empty()) {
      x->set_pgid_leader_name(x->session_leader_name());
    }
  }
  SetNames(x, pfd, container);
}

std::optional<std::string> Enricher::LeaderName(int64_t leader, uint64_t not_after_ticks) const {
  // A session or group id stays allocated while a member lives, so a process with that pid
  // is its leader; it cannot have started after a member unless the ids went round.
  std::string text;
  char path[48];
  std::snprintf(path, sizeof path, "/proc/%lld/stat", static_cast<long long>(leader));
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  if (n <= 0) return std::nullopt;
  std::optional<ProcStat> s = ParseProcStat(std::string_view(buf, static_cast<size_t>(n)));
  if (!s || s->start_ticks > not_after_ticks) return std::nullopt;
  return std::string(s->comm);
}

void Enricher::SetNames(v1::ProcessExec* x, int pfd, const std::string& container) {
  const std::string& key = container.empty() ? std::string("host") : container;
  // The container's root (its init's), else this process's own.
  auto open_root = [&]() -> int {
    int root = OpenRoot(-1, container);
    if (root < 0 && pfd >= 0) root = openat(pfd, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
    return root;
  };
  IdNameCache::Names n = names_.Get(key, open_root, ClockNs(CLOCK_MONOTONIC_COARSE));
  if (n.users) {
    if (x->user_name().empty()) {
      if (auto u = n.users->Find(x->uid()); !u.empty()) x->set_user_name(std::string(u));
    }
    if (x->login_name().empty() && x->auid() != 4294967295u) {
      if (auto u = n.users->Find(x->auid()); !u.empty()) x->set_login_name(std::string(u));
    }
  }
  if (n.groups && x->group_name().empty()) {
    if (auto g = n.groups->Find(x->gid()); !g.empty()) x->set_group_name(std::string(g));
  }
}

}  // namespace driftwatch::sensor
