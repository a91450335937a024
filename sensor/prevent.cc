#include "sensor/prevent.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "lib/base/atomic_file.h"
#include "lib/base/clock.h"
#include "lib/base/log.h"
#include "lib/event/file_digest.h"
#include "lib/node/procfs.h"

namespace driftwatch::sensor {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t PackFsid(const void* fsid) {
  uint64_t v = 0;
  std::memcpy(&v, fsid, sizeof v);
  return v;
}

uint64_t NsSince(Clock::time_point t) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count());
}

constexpr std::string_view kDeleted = " (deleted)";
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U  // Linux 6.8: a mount id never handed out again
#endif

// The unique id of the mount `fd` was opened through, for a regular file; 0 when the kernel
// has none (before 6.8) or the fd is something else.
uint64_t UniqueMountOf(int fd) {
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_TYPE | STATX_MNT_ID_UNIQUE,
            &sx) != 0)
    return 0;
  if (!(sx.stx_mask & STATX_MNT_ID_UNIQUE) || !S_ISREG(sx.stx_mode)) return 0;
  return sx.stx_mnt_id;
}
constexpr decltype(statfs::f_type) kOverlayMagic = 0x794c7630;  // OVERLAYFS_SUPER_MAGIC

}  // namespace

std::string_view PreventModeName(PreventMode mode) {
  return mode == PreventMode::kDrift ? "drift" : "off";
}

std::optional<PreventMode> ParsePreventMode(std::string_view name) {
  if (name == "off") return PreventMode::kOff;
  if (name == "drift") return PreventMode::kDrift;
  return std::nullopt;
}

std::optional<PreventEvents> ParsePreventEvents(std::string_view name) {
  if (name == "auto") return PreventEvents::kAuto;
  if (name == "exec") return PreventEvents::kExec;
  if (name == "open") return PreventEvents::kOpen;
  return std::nullopt;
}

std::optional<PreventMarks> ParsePreventMarks(std::string_view name) {
  if (name == "auto") return PreventMarks::kAuto;
  if (name == "filesystem") return PreventMarks::kFilesystem;
  if (name == "mount") return PreventMarks::kMount;
  return std::nullopt;
}

bool ThreadInExec(pid_t tid, bool opening) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/syscall", static_cast<int>(tid));
  char buf[32];
  // A thread that has queued its permission event may not be asleep yet: the kernel then
  // says "running" instead of the syscall. The opening thread waits for our answer, so it
  // is asleep within microseconds: read again, for 2 ms at most (a busy node was seen to
  // let a script's exec through as a plain open).
  for (int attempt = 0;; ++attempt) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    if (!opening || std::strncmp(buf, "running", 7) != 0 || attempt >= 40) break;
    if (attempt < 20) {
      sched_yield();
    } else {
      usleep(100);
    }
  }
  // "NR arg1 ... sp pc", "running", or "-1 sp pc" (not in a syscall).
  char* end = nullptr;
  const long nr = std::strtol(buf, &end, 10);
  if (end == buf) return false;
  // The numbers a 32-bit task reports are its own ABI's: 11 and 358 (i386), 11 and 387
  // (arm). 358 and 387 are unassigned in the native tables; 11 is munmap (x86_64) or
  // listxattr (arm64), which open no file: it means execve only for a thread known to be
  // opening one.
#if defined(__x86_64__)
  return nr == SYS_execve || nr == SYS_execveat || nr == 358 || (opening && nr == 11);
#elif defined(__aarch64__)
  return nr == SYS_execve || nr == SYS_execveat || nr == 387 || (opening && nr == 11);
#else
  return nr == SYS_execve || nr == SYS_execveat;
#endif
}

LayerLookup LookUpInLayer(int layer_fd, std::string_view path, const struct stat& file,
                          bool overlay_file) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (path.empty()) return LayerLookup::kOther;  // the layer's root is no file to run
  const std::string rel(path);
  struct open_how how {};
  how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  struct stat st;
  int fd = static_cast<int>(syscall(SYS_openat2, layer_fd, rel.c_str(), &how, sizeof how));
  if (fd >= 0) {
    const int rc = fstat(fd, &st);
    close(fd);
    if (rc != 0) return LayerLookup::kError;
  } else if (errno == ENOSYS) {
    // Before 5.6: a plain lookup. The name came from the kernel (no "..", no symlink in its
    // last component); a symlinked directory on the way can only make it miss.
    if (fstatat(layer_fd, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return errno == ENOENT || errno == ENOTDIR ? LayerLookup::kMissing : LayerLookup::kError;
  } else {
    if (errno == ENOENT || errno == ENOTDIR) return LayerLookup::kMissing;
    if (errno == ELOOP || errno == EXDEV) return LayerLookup::kOther;
    return LayerLookup::kError;
  }
  const bool same_dev = overlay_file || st.st_dev == file.st_dev;
  return same_dev && st.st_ino == file.st_ino ? LayerLookup::kFound : LayerLookup::kOther;
}

ExecGuard::Layers::~Layers() {
  if (upper_fd >= 0) close(upper_fd);
  for (int fd : lower_fds) close(fd);
}

ExecGuard::ExecGuard(PreventOptions options, const ContainerResolver* resolver, Sink sink)
    : options_(std::move(options)), resolver_(resolver), sink_(std::move(sink)),
      self_pid_(getpid()) {}

ExecGuard::~ExecGuard() {
  Stop();
  if (fan_fd_ >= 0) close(fan_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

Result<std::unique_ptr<ExecGuard>> ExecGuard::Open(PreventOptions options,
                                                   const ContainerResolver* resolver,
                                                   Sink sink) {
  if (options.filesystems.empty()) options.filesystems = RuntimeFilesystems();
  if (options.deadline <= std::chrono::milliseconds(0))
    return std::unexpected(Error::InvalidInput("--prevent-deadline-ms must be at least 1"));
  auto policy = LoadLocalPolicy(options);
  if (!policy) return std::unexpected(policy.error());
  std::unique_ptr<ExecGuard> g(new ExecGuard(std::move(options), resolver, std::move(sink)));
  {
    MutexLock lock(g->policy_mu_);
    g->local_ = std::move(*policy);
    g->CombinePolicies();
  }
  g->LoadSavedFleetPolicy();
  // Non-blocking: the verdict thread and the watchdog both read it. For open events, the
  // opening thread's id (4.20+): the one whose syscall says whether the open is an exec.
  const bool want_open = g->options_.events == PreventEvents::kOpen;
  auto init = [&](bool tid) {
    return fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | (tid ? FAN_REPORT_TID : 0),
                         O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  };
  g->fan_fd_ = init(want_open);
  g->tid_events_ = want_open && g->fan_fd_ >= 0;
  if (g->fan_fd_ < 0 && want_open && errno == EINVAL) g->fan_fd_ = init(false);
  if (g->fan_fd_ < 0)
    return std::unexpected(Error::FromErrno(
        errno, "--prevent: fanotify_init(FAN_CLASS_CONTENT) (needs CAP_SYS_ADMIN)"));
  g->open_events_ = want_open;
  g->mount_marks_ = g->options_.marks == PreventMarks::kMount ||
                    (g->options_.marks == PreventMarks::kAuto && !OverlayIoReachesFilesystemMarks());
  if (g->mount_marks_) {
    // The marks come with WatchContainerRoot. No mark to try the event type on here: the
    // kernel's version says (marking a live mount to find out would hold its execs).
    if (!want_open && !KernelAtLeast(5, 0)) {
      if (g->options_.events == PreventEvents::kExec)
        return std::unexpected(Error::InvalidInput(
            "--prevent-events exec: exec permission events need Linux 5.0+"));
      LogWarn("--prevent: this kernel has no exec permission events (Linux 5.0+): every "
              "open in the marked containers waits for a verdict (FAN_OPEN_PERM)\n");
      close(g->fan_fd_);
      g->fan_fd_ = init(true);
      g->tid_events_ = g->fan_fd_ >= 0;
      if (g->fan_fd_ < 0 && errno == EINVAL) g->fan_fd_ = init(false);
      if (g->fan_fd_ < 0) return std::unexpected(Error::FromErrno(errno, "--prevent: fanotify_init"));
      g->open_events_ = true;
    }
    if (g->options_.marks == PreventMarks::kAuto)
      LogInfo("--prevent: kernel before 6.5: overlayfs hides containers' execs from "
              "filesystem marks, so each container's overlay mount is marked\n");
  }
  std::vector<uint64_t> fsids;
  for (const std::string& path : g->mount_marks_ ? std::vector<std::string>{} : g->options_.filesystems) {
    struct statfs sfs;
    if (statfs(path.c_str(), &sfs) != 0)
      return std::unexpected(Error::FromErrno(errno, "--prevent: statfs " + path));
    const uint64_t fsid = PackFsid(&sfs.f_fsid);
    bool seen = false;
    for (uint64_t f : fsids) seen |= f == fsid;
    if (seen) continue;
    auto mark = [&] {
      return fanotify_mark(g->fan_fd_, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
                           g->open_events_ ? FAN_OPEN_PERM : FAN_OPEN_EXEC_PERM, AT_FDCWD,
                           path.c_str());
    };
    int rc = mark();
    if (rc != 0 && errno == EINVAL && !g->open_events_ &&
        g->options_.events == PreventEvents::kAuto && fsids.empty()) {
      // No FAN_OPEN_EXEC_PERM (before 5.0): every open, the exec ones told apart.
      LogWarn("--prevent: this kernel has no exec permission events (Linux 5.0+): every "
              "open on the marked filesystems waits for a verdict (FAN_OPEN_PERM)\n");
      close(g->fan_fd_);
      g->fan_fd_ = init(true);
      g->tid_events_ = g->fan_fd_ >= 0;
      if (g->fan_fd_ < 0 && errno == EINVAL) g->fan_fd_ = init(false);
      if (g->fan_fd_ < 0)
        return std::unexpected(Error::FromErrno(errno, "--prevent: fanotify_init"));
      g->open_events_ = true;
      rc = mark();
    }
    if (rc != 0) {
      const int e = errno;
      std::string why = std::string("--prevent: fanotify_mark(FAN_MARK_FILESYSTEM, ") +
                        (g->open_events_ ? "FAN_OPEN_PERM, " : "FAN_OPEN_EXEC_PERM, ") + path +
                        ")";
      if (e == EINVAL)
        why += g->open_events_ ? " refused: filesystem marks need Linux 4.20+"
                               : " refused: exec permission events need Linux 5.0+ and "
                                 "filesystem marks 4.20+ (--prevent-events auto or open "
                                 "falls back to open permission events)";
      return std::unexpected(Error::FromErrno(e, why));
    }
    fsids.push_back(fsid);
    g->marked_.push_back(path);
  }
  g->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (g->stop_fd_ < 0) return std::unexpected(Error::FromErrno(errno, "eventfd"));
  return g;
}

void ExecGuard::Start() {
  verdict_thread_ = std::thread([this] { VerdictLoop(); });
  watchdog_thread_ = std::thread([this] { WatchdogLoop(); });
  report_thread_ = std::thread([this] { ReportLoop(); });
}

void ExecGuard::Stop() {
  if (stopping_.exchange(true)) return;
  // No exec waits for us from here on; then what was read is answered, and closing the
  // group allows whatever the kernel still holds.
  if (fan_fd_ >= 0) {
    fanotify_mark(fan_fd_, FAN_MARK_FLUSH | FAN_MARK_FILESYSTEM, 0, AT_FDCWD, "/");
    fanotify_mark(fan_fd_, FAN_MARK_FLUSH | FAN_MARK_MOUNT, 0, AT_FDCWD, "/");
  }
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
  }
  watchdog_cv_.NotifyAll();
  if (verdict_thread_.joinable()) verdict_thread_.join();
  if (watchdog_thread_.joinable()) watchdog_thread_.join();
  AnswerQueued();
  if (fan_fd_ >= 0) {
    close(fan_fd_);
    fan_fd_ = -1;
  }
  {
    MutexLock lock(reports_mu_);
    reports_done_ = true;
  }
  reports_cv_.NotifyAll();
  if (report_thread_.joinable()) report_thread_.join();
}

Result<PreventPolicy> ExecGuard::LoadLocalPolicy(const PreventOptions& o) {
  for (const std::string& g : o.allow_paths) {
    if (g.empty() || g[0] != '/')
      return std::unexpected(Error::InvalidInput(
          "--prevent-allow " + g + ": a path inside the container starts with /"));
  }
  PreventPolicy p;
  if (!o.policy_file.empty()) {
    auto loaded = PreventPolicy::Load(o.policy_file);
    if (!loaded) return std::unexpected(loaded.error().Prefix("--prevent-policy"));
    p = std::move(*loaded);
  }
  p.AddPaths(o.allow_paths);
  return p;
}

void ExecGuard::CombinePolicies() {
  PreventPolicy p = local_;
  if (fleet_) p.Add(*fleet_, "fleet policy");
  policy_ = std::make_shared<const PreventPolicy>(std::move(p));
}

Result<> ExecGuard::ReloadPolicy() {
  auto policy = LoadLocalPolicy(options_);
  if (!policy) return std::unexpected(policy.error());
  MutexLock lock(policy_mu_);
  local_ = std::move(*policy);
  CombinePolicies();
  return {};
}

void ExecGuard::LoadSavedFleetPolicy() {
  const std::string& path = options_.fleet_policy_file;
  if (path.empty() || access(path.c_str(), F_OK) != 0) return;
  auto text = PreventPolicy::ReadText(path);
  auto p = text ? PreventPolicy::Parse(*text, path) : std::unexpected(text.error());
  if (!p) {
    LogWarn("prevent: the saved fleet policy is not used (the collector sends it again): %s\n",
            p.error().message().c_str());
    return;
  }
  const std::string sha = Sha256Hex(*text);
  MutexLock lock(policy_mu_);
  fleet_state_.sha256 = sha;
  fleet_state_.entries = p->size();
  fleet_state_.source = path;
  fleet_ = std::move(*p);
  CombinePolicies();
}

namespace {

}  // namespace

Result<> ExecGuard::SetFleetPolicy(const v1::PreventPolicy& pushed) {
  const std::string& path = options_.fleet_policy_file;
  if (!pushed.configured()) {
    {
      MutexLock lock(policy_mu_);
      if (!fleet_) return {};
      fleet_.reset();
      fleet_state_.sha256.clear();
      fleet_state_.entries = 0;
      fleet_state_.source.clear();
      fleet_state_.error.clear();
      ++fleet_state_.updates;
      CombinePolicies();
    }
    if (!path.empty() && unlink(path.c_str()) != 0 && errno != ENOENT) {
      return std::unexpected(Error::FromErrno(errno, path + ": the dropped fleet policy stays "
                                                            "on disk (used after a restart)"));
    }
    return {};
  }
  const std::string sha = Sha256Hex(pushed.text());  // not under policy_mu_: verdicts take it
  {
    // The same policy again (every new stream gets it): nothing to parse or write.
    MutexLock lock(policy_mu_);
    if (fleet_ && fleet_state_.error.empty() && fleet_state_.sha256 == sha) return {};
  }
  const std::string name = "fleet policy " + pushed.name() + " (from the collector)";
  Result<PreventPolicy> p =
      pushed.text().size() > PreventPolicy::kMaxTextBytes
          ? std::unexpected(Error::InvalidInput(
                name + ": " + std::to_string(pushed.text().size()) + " bytes, more than " +
                std::to_string(PreventPolicy::kMaxTextBytes)))
          : PreventPolicy::Parse(pushed.text(), name);
  {
    // Verdicts take policy_mu_: no I/O under it.
    MutexLock lock(policy_mu_);
    if (!p) {
      ++fleet_state_.refused;
      fleet_state_.error = p.error().message();
      return std::unexpected(p.error());
    }
    fleet_state_.sha256 = sha;
    fleet_state_.entries = p->size();
    fleet_state_.source = "collector (" + pushed.name() + ")";
    fleet_state_.error.clear();
    ++fleet_state_.updates;
    fleet_ = std::move(*p);
    CombinePolicies();
  }
  if (!path.empty()) {
    if (auto ok = WriteFileAtomic(path, pushed.text()); !ok) {
      return std::unexpected(ok.error().Prefix("fleet policy applied but not kept for a restart"));
    }
  }
  return {};
}

ExecGuard::FleetPolicyState ExecGuard::fleet_policy() const {
  MutexLock lock(policy_mu_);
  return fleet_state_;
}

size_t ExecGuard::policy_entries() const {
  MutexLock lock(policy_mu_);
  return policy_->size();
}

ExecGuard::HashKey ExecGuard::KeyOf(const struct stat& st) {
  return {st.st_dev, st.st_ino, st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
          st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec,
          static_cast<int64_t>(st.st_size)};
}

std::optional<std::string> ExecGuard::PolicyHash(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return std::nullopt;
  if (static_cast<uint64_t>(st.st_size) > kPolicyHashMaxBytes) return std::nullopt;
  const HashKey key = KeyOf(st);
  if (auto it = hash_cache_.find(key); it != hash_cache_.end()) return it->second;
  FileFacts f;
  HashFile(fd, kPolicyHashMaxBytes, &f);
  std::optional<std::string> h;
  if (f.hashed) h = f.sha256;
  if (hash_cache_.size() >= 4096) hash_cache_.clear();  // a bound, not an LRU: rare
  hash_cache_.emplace(key, h);
  return h;
}

Result<> ExecGuard::WatchContainerRoot(const std::string& container_id, pid_t pid) {
  if (!mount_marks_ || stopping_.load()) return {};
  const std::string root = "/proc/" + std::to_string(pid) + "/root/";
  MutexLock lock(roots_mu_);
  if (roots_.contains(container_id)) return {};
  // The mark goes on the mount of the process's root: a container process that changed its
  // root to a volume would get that marked, not the overlay its image and drift live on.
  struct statfs sfs;
  if (statfs(root.c_str(), &sfs) != 0)
    return std::unexpected(Error::FromErrno(errno, "--prevent: statfs " + root + " for " + container_id));
  if (sfs.f_type != kOverlayMagic) {
    ++counters_.errors;
    return std::unexpected(Error::InvalidInput(
        "--prevent: the root of " + container_id + " (" + root + ") is no overlay mount (its "
        "process changed its root?): its execs are not held"));
  }
  if (fanotify_mark(fan_fd_, FAN_MARK_ADD | FAN_MARK_MOUNT,
                    open_events_ ? FAN_OPEN_PERM : FAN_OPEN_EXEC_PERM, AT_FDCWD, root.c_str()) != 0)
    return std::unexpected(Error::FromErrno(
        errno, "--prevent: fanotify_mark(FAN_MARK_MOUNT, " + root + ") for " + container_id));
  roots_.insert(container_id);
  return {};
}

void ExecGuard::ForgetContainer(const std::string& container_id) {
  {
    MutexLock lock(roots_mu_);
    // No FAN_MARK_REMOVE: the mark goes with the container's mount, and its pid may already
    // be another container's process, whose mount a removal by /proc/PID/root would unmark.
    roots_.erase(container_id);
  }
  MutexLock lock(layers_mu_);
  layers_.erase(container_id);
}

std::shared_ptr<ExecGuard::Layers> ExecGuard::LayersOf(const std::string& container_id) {
  {
    MutexLock lock(layers_mu_);
    auto it = layers_.find(container_id);
    if (it != layers_.end()) return it->second;
  }
  // Once per container: the runtime's directories on the host, not the container's to
  // change (the container sees their contents, never these paths).
  std::optional<ContainerLayers> l = resolver_->LayersOf(container_id);
  if (!l) return nullptr;
  auto layers = std::make_shared<Layers>();
  layers->upper_path = l->upperdir;
  layers->upper_fd = open(l->upperdir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct stat st;
  if (layers->upper_fd < 0 || fstat(layers->upper_fd, &st) != 0) {
    ++counters_.errors;
    return nullptr;
  }
  layers->upper_dev = st.st_dev;
  for (const std::string& dir : l->lowerdirs) {
    int fd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) layers->lower_fds.push_back(fd);
  }
  MutexLock lock(layers_mu_);
  return layers_.try_emplace(container_id, std::move(layers)).first->second;
}

ExecGuard::Verdict ExecGuard::Undecided() {
  ++counters_.undecided;
  Verdict v;
  v.deny = options_.fail_closed;
  return v;
}

ExecGuard::Verdict ExecGuard::DriftVerdict(int fd, std::string container_id, std::string path,
                                           std::string upper_path) {
  Verdict v;
  std::shared_ptr<const PreventPolicy> policy;
  {
    MutexLock lock(policy_mu_);
    policy = policy_;
  }
  if (!policy->empty()) {
    // Drift is rare: what the policy needs is looked up here only.
    std::optional<v1::ContainerInfo> info;
    if (policy->wants_container()) info = resolver_->Describe(container_id);
    PreventPolicy::Exec x{path, info ? &*info : nullptr, [this, fd] { return PolicyHash(fd); }};
    if (policy->Allows(x)) {
      ++counters_.allowed_by_policy;
      return v;
    }
  }
  v.report = true;
  v.deny = !options_.dry_run;
  v.container_id = std::move(container_id);
  v.path = std::move(path);
  v.upper_path = std::move(upper_path);
  return v;
}

bool ExecGuard::FailAllows(pid_t pid) const {
  if (!options_.fail_closed) return true;
  return open_events_ && !IsExecOpen(pid);
}

bool ExecGuard::IsExecOpen(pid_t pid) const {
  if (tid_events_) return ThreadInExec(pid, true);
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/task", static_cast<int>(pid));
  DIR* d = opendir(path);
  if (d == nullptr) return false;
  bool exec = false;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    if ((exec = ThreadInExec(static_cast<pid_t>(std::atoi(e->d_name)), false))) break;
  }
  closedir(d);
  return exec;
}

ExecGuard::Verdict ExecGuard::Decide(pid_t pid, int fd, uint64_t unique_mnt) {
  struct stat st;
  if (pid == self_pid_) return {};
  if (fstat(fd, &st) != 0) return Undecided();
  if (!S_ISREG(st.st_mode)) return {};
  std::optional<std::string> cid = resolver_->ByPid(pid);
  if (!cid) return {};  // a host process (or one gone: its exec cannot go on anyway)
  std::shared_ptr<Layers> layers = LayersOf(*cid);
  if (!layers) return Undecided();  // a container whose overlay is not known yet
  if (mount_marks_) return DecideOverlayFile(fd, st, std::move(*cid), *layers);

  // The path the fd reads as: relative to the root of the layer the file is in (an overlay
  // opens its files through private mounts of each layer).
  std::string path = FdPath(fd);
  if (path.empty()) {
    // No name (a path past PATH_MAX the container built to hide the file): the upper
    // layer's private mount, once known, still says drift.
    const int mnt = FdMountId(fd);
    if (mnt >= 0 && mnt == layers->upper_mnt_id.load())
      return DriftVerdict(fd, std::move(*cid), std::string(), std::string());
    return Undecided();
  }
  // Run through an fd after its last name went: a file of the upper layer (the image's
  // files are never unlinked while mounted).
  if (st.st_nlink == 0 || path.ends_with(kDeleted)) {
    if (path.ends_with(kDeleted)) path.resize(path.size() - kDeleted.size());
    if (st.st_dev == layers->upper_dev)
      return DriftVerdict(fd, std::move(*cid), std::move(path), std::string());
    ++counters_.outside_layers;
    return {};
  }
  // The name is the container's to change while we look: a rename can make a lookup miss,
  // never match another file. Look again with the name the fd reads as now.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) {
      std::string again = FdPath(fd);
      if (again.empty()) break;
      path = std::move(again);
    }
    switch (LookUpInLayer(layers->upper_fd, path, st)) {
      case LayerLookup::kFound: {
        if (layers->upper_mnt_id.load() < 0) layers->upper_mnt_id = FdMountId(fd);
        return DriftVerdict(fd, std::move(*cid), path, layers->upper_path + path);
      }
      case LayerLookup::kError: ++counters_.errors; break;
      case LayerLookup::kMissing:
      case LayerLookup::kOther: break;
    }
    for (int lower : layers->lower_fds) {
      if (LookUpInLayer(lower, path, st) == LayerLookup::kFound) {  // the image's
        // Not the upper layer's mount (the file is in no upper layer: looked up above).
        if (unique_mnt != 0) {
          if (image_mounts_.size() >= 4096) image_mounts_.clear();  // a bound: rare
          image_mounts_.insert(unique_mnt);
        }
        return {};
      }
    }
  }
  // In neither layer under its current name: a file the upper layer's private mount
  // opened is drift whatever its name did meanwhile; anything else is not in the layers (a
  // volume or host path the container mounted).
  const int mnt = FdMountId(fd);
  if (mnt >= 0 && mnt == layers->upper_mnt_id.load())
    return DriftVerdict(fd, std::move(*cid), std::move(path), std::string());
  if (st.st_dev != layers->upper_dev) {
    ++counters_.outside_layers;
    return {};
  }
  return Undecided();
}

ExecGuard::Verdict ExecGuard::DecideOverlayFile(int fd, const struct stat& st,
                                                std::string container_id, const Layers& layers) {
  // The fd is the overlay's file: it reads as the path inside the container, and its inode
  // number is the layer file's (overlayfs keeps it for non-directories), its device the
  // overlay's. The upper layer shadows the lower ones, so a match there is what ran.
  std::string path = FdPath(fd);
  if (path.empty()) return Undecided();
  if (st.st_nlink == 0 || path.ends_with(kDeleted)) {
    // Unlinked and run through its fd: the classic dropped binary. (An image file removed in
    // the container and then run through an fd it kept open is taken for drift too: a lower
    // file cannot be told from here once its name is gone.)
    if (path.ends_with(kDeleted)) path.resize(path.size() - kDeleted.size());
    return DriftVerdict(fd, std::move(container_id), std::move(path), std::string());
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (attempt > 0) {
      std::string again = FdPath(fd);
      if (again.empty()) break;
      path = std::move(again);
    }
    switch (LookUpInLayer(layers.upper_fd, path, st, true)) {
      case LayerLookup::kFound:
        return DriftVerdict(fd, std::move(container_id), path, layers.upper_path + path);
      case LayerLookup::kError: ++counters_.errors; break;
      case LayerLookup::kMissing:
      case LayerLookup::kOther: break;
    }
    for (int lower : layers.lower_fds) {
      if (LookUpInLayer(lower, path, st, true) == LayerLookup::kFound) return {};  // the image's
    }
  }
  return Undecided();
}

void ExecGuard::WriteAnswer(int fd, bool allow) {
  struct fanotify_response r {};
  r.fd = fd;
  r.response = allow ? FAN_ALLOW : FAN_DENY;
  if (write(fan_fd_, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) ++counters_.errors;
  ++counters_.events;
}

bool ExecGuard::Answer(size_t i, bool allow) {
  MutexLock lock(mu_);
  Pending& p = batch_[i];
  if (p.answered) return false;
  WriteAnswer(p.fd, allow);
  p.answered = true;
  return true;
}

void ExecGuard::CountLatency(uint64_t ns) {
  size_t b = 0;
  while (b < std::size(kPreventLatencyBounds) && ns > kPreventLatencyBounds[b]) ++b;
  ++counters_.latency_buckets[b];
  uint64_t max = counters_.latency_max_ns.load();
  while (ns > max && !counters_.latency_max_ns.compare_exchange_weak(max, ns)) {
  }
}

void ExecGuard::VerdictLoop() {
  pthread_setname_np(pthread_self(), "dw-prevent");
  // Verdicts are short and every exec on the marked filesystems waits for one: ahead of
  // the sensor's other threads when the cores are busy (best effort: needs CAP_SYS_NICE).
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), -10);
  if (options_.realtime) {
    // The lowest real-time priority: a woken verdict thread runs before any ordinary task,
    // so an exec waits for the verdict, not for a core (p99 in an exec storm: ~5 ms under
    // nice -10, ~0.3 ms). Its work per event is bounded; the kernel's RT throttling leaves
    // the others a share even if it were not.
    struct sched_param sp {};
    sp.sched_priority = 1;
    if (int e = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp); e != 0) {
      LogWarn("--prevent-priority realtime: SCHED_FIFO refused (%s): verdicts run at nice "
              "-10\n", std::strerror(e));
    } else {
      realtime_ = true;
    }
  }
  alignas(struct fanotify_event_metadata) char buf[4096];
  while (!stopping_) {
    struct pollfd fds[2] = {{fan_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      ++counters_.errors;
      break;
    }
    if (fds[1].revents != 0 || stopping_) break;
    ssize_t len = read(fan_fd_, buf, sizeof buf);
    if (len <= 0) continue;  // EAGAIN: the watchdog took them
    const auto read_at = Clock::now();
    std::vector<const fanotify_event_metadata*> events;
    for (auto* md = reinterpret_cast<const fanotify_event_metadata*>(buf);
         FAN_EVENT_OK(md, len); md = FAN_EVENT_NEXT(md, len))
      events.push_back(md);
    {
      MutexLock lock(mu_);
      batch_.clear();
      for (const auto* md : events) batch_.push_back({md->fd, md->pid, read_at, md->fd < 0});
      busy_ = true;
      busy_since_ = read_at;
    }
    // The watchdog looks on its own tick: waking it for every batch cost a context switch
    // per exec (a fifth of the sensor's CPU in an exec storm).
    for (size_t i = 0; i < events.size(); ++i) {
      const fanotify_event_metadata& md = *events[i];
      if (md.fd < 0) {  // FAN_NOFD (a queue overflow): nothing to answer
        ++counters_.errors;
        continue;
      }
      if (md.vers != FANOTIFY_METADATA_VERSION) {  // unreadable: let it run, keep no fd
        ++counters_.errors;
        Answer(i, true);
        close(md.fd);
        continue;
      }
      {
        MutexLock lock(mu_);
        busy_since_ = Clock::now();
      }
      const uint64_t mnt = mount_marks_ ? 0 : UniqueMountOf(md.fd);
      if (mnt != 0 && image_mounts_.contains(mnt)) {  // an image layer's file: no exec of drift
        if (Answer(i, true)) ++counters_.image_mount;
        CountLatency(NsSince(read_at));
        close(md.fd);
        continue;
      }
      if (open_events_ && !IsExecOpen(md.pid)) {
        // An open that is no exec: allowed at once.
        if (Answer(i, true)) ++counters_.not_exec;
        CountLatency(NsSince(read_at));
        close(md.fd);
        continue;
      }
      Verdict v = (md.mask & (FAN_OPEN_EXEC_PERM | FAN_OPEN_PERM)) ? Decide(md.pid, md.fd, mnt)
                                                                    : Verdict{};
      const bool mine = Answer(i, !v.deny);
      CountLatency(NsSince(read_at));
      if (mine) {
        if (v.report) ++(v.deny ? counters_.denied : counters_.would_deny);
        else ++counters_.allowed;
      }
      if (!mine || !v.report) {
        close(md.fd);
        continue;
      }
      Report r{md.fd, md.pid, !v.deny, NsSince(read_at), std::move(v.container_id),
               std::move(v.path), std::move(v.upper_path)};
      MutexLock lock(reports_mu_);
      if (reports_.size() >= options_.report_queue) {
        ++counters_.reports_dropped;
        close(r.fd);
        continue;
      }
      reports_.push_back(std::move(r));
      reports_cv_.NotifyOne();
    }
    MutexLock lock(mu_);
    batch_.clear();
    busy_ = false;
  }
}

void ExecGuard::AnswerQueued() {
  if (fan_fd_ < 0) return;
  alignas(struct fanotify_event_metadata) char buf[4096];
  for (;;) {
    ssize_t len = read(fan_fd_, buf, sizeof buf);
    if (len <= 0) return;
    for (auto* md = reinterpret_cast<const fanotify_event_metadata*>(buf);
         FAN_EVENT_OK(md, len); md = FAN_EVENT_NEXT(md, len)) {
      if (md->fd < 0) continue;
      WriteAnswer(md->fd, FailAllows(md->pid));
      ++counters_.deadline_answers;
      close(md->fd);
    }
  }
}

void ExecGuard::WatchdogLoop() {
  pthread_setname_np(pthread_self(), "dw-prevent-wd");
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), -10);
  const auto tick = std::max(std::chrono::milliseconds(1), options_.deadline / 4);
  while (!stopping_) {
    bool stuck = false;
    {
      MutexLock lock(mu_);
      watchdog_cv_.WaitFor(lock, tick, [&] { return stopping_.load(); });
      if (stopping_) break;
      const auto now = Clock::now();
      for (Pending& p : batch_) {
        if (p.answered || now - p.read_at < options_.deadline) continue;
        WriteAnswer(p.fd, FailAllows(p.pid));
        p.answered = true;
        ++counters_.deadline_answers;
      }
      stuck = busy_ && now - busy_since_ >= options_.deadline;
    }
    // The verdict thread is held up: new execs must not wait for it.
    if (stuck) AnswerQueued();
  }
}

void ExecGuard::ReportLoop() {
  pthread_setname_np(pthread_self(), "dw-prevent-rep");
  std::map<HashKey, std::string> hashes;  // sha256 by the file's identity and times
  for (;;) {
    Report r;
    {
      MutexLock lock(reports_mu_);
      reports_cv_.Wait(lock, [&]() DW_REQUIRES(reports_mu_) {
        return reports_done_ || !reports_.empty();
      });
      if (reports_.empty()) return;
      r = std::move(reports_.front());
      reports_.pop_front();
    }
    v1::Event ev;
    ev.set_time_ns(NowNs());
    ev.set_container_id(r.container_id);
    ev.set_attribution(v1::ATTRIBUTION_CGROUP);
    v1::ExecPrevented* x = ev.mutable_prevented();
    x->set_verdict(r.dry_run ? v1::ExecPrevented::WOULD_DENY : v1::ExecPrevented::DENIED);
    x->set_reason("upper layer");
    x->set_pid(static_cast<uint32_t>(r.pid));
    x->set_path(r.path);
    x->set_upper_path(r.upper_path);
    x->set_verdict_ns(r.verdict_ns);
    // The caller is still there (a denied execve returns to it; a dry run's became the
    // program): best effort.
    char p[64];
    std::string comm;
    std::snprintf(p, sizeof p, "/proc/%d/comm", r.pid);
    if (ReadSmallFile(p, &comm) && comm.back() == '\n') comm.pop_back();
    x->set_comm(comm);
    std::snprintf(p, sizeof p, "/proc/%d/exe", r.pid);
    x->set_exe(ReadLinkAt(AT_FDCWD, p));
    struct stat st;
    if (fstat(r.fd, &st) == 0) {
      x->set_inode(st.st_ino);
      x->set_dev_major(major(st.st_dev));
      x->set_dev_minor(minor(st.st_dev));
      x->set_size(static_cast<uint64_t>(st.st_size));
      x->set_mode(st.st_mode);
      // A container that runs the same dropped file in a loop is denied each time: hash it
      // once per identity and times, not once per denial.
      const HashKey key = KeyOf(st);
      auto it = hashes.find(key);
      if (it == hashes.end()) {
        FileFacts f = InspectFile(r.fd, st.st_mode, static_cast<uint64_t>(st.st_size),
                                  options_.hash_max_bytes);
        if (hashes.size() >= 4096) hashes.clear();
        it = hashes.emplace(key, f.hashed ? f.sha256 : std::string()).first;
      }
      x->set_sha256(it->second);
    }
    close(r.fd);
    sink_(ev);
  }
}

}  // namespace driftwatch::sensor
