#include "sensor/sensitive_reads.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <set>

#include "lib/base/clock.h"
#include "lib/base/log.h"
#include "lib/node/procfs.h"

namespace driftwatch::sensor {
namespace {

constexpr uint64_t kFileMask = FAN_CLOSE_NOWRITE;
constexpr uint64_t kDirMask = FAN_CLOSE_NOWRITE | FAN_EVENT_ON_CHILD;
constexpr size_t kMaxRecent = 4096;  // readers coalesced at once; beyond: all reported now

// An O_PATH fd of `path` (absolute, in the container) inside the root `root_fd`, following
// symlinks only within that root; -1 with errno.
int OpenInRoot(int root_fd, const std::string& path, bool* unsafe) {
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const std::string rel = path.substr(path.find_first_not_of('/'));
  int fd = static_cast<int>(syscall(SYS_openat2, root_fd, rel.c_str(), &how, sizeof how));
  if (fd >= 0 || errno != ENOSYS) return fd;
  // Before 5.6: component by component, no symlink followed (an entry behind one is
  // counted as unsafe rather than resolved against the host's root).
  int cur = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
  size_t at = 0;
  while (cur >= 0 && at < rel.size()) {
    size_t end = rel.find('/', at);
    if (end == std::string::npos) end = rel.size();
    const std::string part = rel.substr(at, end - at);
    at = end + 1;
    if (part.empty()) continue;
    int next = openat(cur, part.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    const int err = errno;
    close(cur);
    cur = next;
    if (cur < 0) {
      errno = err;
      return -1;
    }
    struct stat st;
    if (fstat(cur, &st) == 0 && S_ISLNK(st.st_mode)) {
      *unsafe = true;
      close(cur);
      errno = ELOOP;
      return -1;
    }
  }
  return cur;
}

}  // namespace

std::vector<std::string> DefaultSensitivePaths() {
  return {"/etc/shadow",
          "/etc/gshadow",
          "/etc/sudoers",
          "/etc/sudoers.d/",
          "/root/.ssh/",
          "/root/.aws/credentials",
          "/root/.config/gcloud/credentials.db",
          "/root/.azure/accessTokens.json",
          "/root/.docker/config.json",
          "/root/.kube/config",
          "/var/run/secrets/kubernetes.io/serviceaccount/token",
          "/run/secrets/kubernetes.io/serviceaccount/token",
          "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
          "/etc/ssl/private/"};
}

std::expected<std::unique_ptr<SensitiveReads>, std::string> SensitiveReads::Open(
    SensitiveReadOptions opt, const ContainerResolver* resolver, Sink sink) {
  for (const std::string& p : opt.paths) {
    if (p.empty() || p[0] != '/' || p.find_first_not_of('/') == std::string::npos)
      return std::unexpected("--sensitive-paths " + p + ": not an absolute path of a file or directory");
    if (("/" + p + "/").find("/../") != std::string::npos)
      return std::unexpected("--sensitive-paths " + p + ": '..' is not allowed");
  }
  std::unique_ptr<SensitiveReads> r(new SensitiveReads(std::move(opt), resolver, std::move(sink)));
  r->fan_fd_ = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK,
                             O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (r->fan_fd_ < 0)
    return std::unexpected(std::string("sensitive reads: fanotify_init: ") + std::strerror(errno) +
                           " (needs CAP_SYS_ADMIN; --sensitive-reads off)");
  r->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r->stop_fd_ < 0) return std::unexpected(std::string("eventfd: ") + std::strerror(errno));
  return r;
}

SensitiveReads::~SensitiveReads() {
  Stop();
  if (fan_fd_ >= 0) close(fan_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

void SensitiveReads::Start() {
  thread_ = std::thread([this] { Run(); });
}

void SensitiveReads::Stop() {
  if (!thread_.joinable()) return;
  const uint64_t one = 1 << 20;  // above any count of Watch wake-ups: stop
  (void)!write(stop_fd_, &one, sizeof one);
  thread_.join();
}

void SensitiveReads::Watch(const std::string& container_id, pid_t init_pid) {
  if (init_pid <= 0) return;
  {
    MutexLock lk(mu_);
    auto it = containers_.find(container_id);
    if (it != containers_.end() && it->second == init_pid) return;  // the rescans keep it
    containers_[container_id] = init_pid;
    to_mark_.emplace_back(container_id, init_pid);
  }
  const uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof one);
}

void SensitiveReads::Forget(const std::string& container_id) {
  MutexLock lk(mu_);
  containers_.erase(container_id);
  for (auto it = root_dev_.begin(); it != root_dev_.end();)
    it = it->second == container_id ? root_dev_.erase(it) : std::next(it);
  for (auto it = marked_.begin(); it != marked_.end();)
    it = it->second.container_id == container_id ? marked_.erase(it) : std::next(it);
}

void SensitiveReads::MarkContainer(const std::string& id, pid_t pid) {
  const std::string root = "/proc/" + std::to_string(pid) + "/root";
  const int root_fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return;  // gone: the registry forgets it
  if (struct stat rs; fstat(root_fd, &rs) == 0) {
    MutexLock lk(mu_);
    root_dev_[rs.st_dev] = id;
  }
  std::set<std::pair<dev_t, ino_t>> now_marked;  // this container's, as resolved now
  for (const std::string& entry : opt_.paths) {
    bool unsafe = false;
    const int fd = OpenInRoot(root_fd, entry, &unsafe);
    if (fd < 0) {
      if (unsafe) ++counters_.unsafe;
      continue;  // absent in this image: the usual case
    }
    struct stat st;
    const bool dir = entry.back() == '/';
    if (fstat(fd, &st) != 0 || (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
      close(fd);  // a device node or fifo at a sensitive path is no file to mark
      continue;
    }
    const auto key = std::pair{st.st_dev, st.st_ino};
    now_marked.insert(key);
    bool known;
    {
      MutexLock lk(mu_);
      known = marked_.contains(key);
    }
    if (!known) {
      // An O_PATH fd cannot be marked by itself (fanotify_mark's dirfd must be a real
      // open); its /proc/self/fd link names exactly that object.
      const std::string self = "/proc/self/fd/" + std::to_string(fd);
      if (fanotify_mark(fan_fd_, FAN_MARK_ADD, dir ? kDirMask : kFileMask, AT_FDCWD,
                        self.c_str()) != 0) {
        if (counters_.mark_errors++ == 0)
          LogWarn("sensitive reads: fanotify_mark %s in container %.12s: %s\n", entry.c_str(),
                  id.c_str(), std::strerror(errno));
      } else {
        ++counters_.marks;
        MutexLock lk(mu_);
        marked_[key] = Marked{id, entry};
      }
    }
    close(fd);
  }
  close(root_fd);
  // Files replaced since the last look (a rotated token, a rewritten key) leave the map:
  // a container rewriting one in a loop does not grow it.
  MutexLock lk(mu_);
  for (auto it = marked_.begin(); it != marked_.end();) {
    it = it->second.container_id == id && !now_marked.contains(it->first) ? marked_.erase(it)
                                                                         : std::next(it);
  }
}

void SensitiveReads::Run() {
  pthread_setname_np(pthread_self(), "dw-sensitive");
  alignas(fanotify_event_metadata) char buf[16384];
  auto next_rescan = std::chrono::steady_clock::now() + opt_.rescan;
  for (;;) {
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        next_rescan - std::chrono::steady_clock::now());
    if (!recent_.empty()) wait = std::min(wait, std::chrono::milliseconds(250));
    pollfd fds[2] = {{fan_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int n = poll(fds, 2, static_cast<int>(std::max<int64_t>(0, wait.count())));
    if (n < 0 && errno != EINTR) {
      LogWarn("sensitive reads: poll: %s\n", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (fds[1].revents & POLLIN) {
      uint64_t v = 0;
      if (read(stop_fd_, &v, sizeof v) == sizeof v && v >= (1u << 20)) {
        FlushCoalesced(/*all=*/true);  // nothing counted is left unreported
        return;
      }
    }
    FlushCoalesced(/*all=*/false);
    std::vector<std::pair<std::string, pid_t>> todo;
    {
      MutexLock lk(mu_);
      todo.swap(to_mark_);
      if (std::chrono::steady_clock::now() >= next_rescan) {
        todo.assign(containers_.begin(), containers_.end());
        next_rescan = std::chrono::steady_clock::now() + opt_.rescan;
      }
    }
    for (const auto& [id, pid] : todo) MarkContainer(id, pid);
    for (;;) {
      ssize_t len = read(fan_fd_, buf, sizeof buf);
      if (len <= 0) break;
      for (auto* m = reinterpret_cast<const fanotify_event_metadata*>(buf); FAN_EVENT_OK(m, len);
           m = FAN_EVENT_NEXT(m, len)) {
        if (m->vers != FANOTIFY_METADATA_VERSION) continue;
        if (m->mask & FAN_Q_OVERFLOW) {
          if (counters_.overflows++ == 0)
            LogWarn("sensitive reads: fanotify queue overflow: reads lost (counted)\n");
        } else if (m->fd >= 0) {
          Handle(*m);
        }
        if (m->fd >= 0) close(m->fd);
      }
    }
  }
}

void SensitiveReads::Handle(const fanotify_event_metadata& m) {
  if (m.pid == getpid()) {
    ++counters_.dropped_self;
    return;
  }
  struct stat st;
  if (fstat(m.fd, &st) != 0) return;
  // A repeat within the window is only counted: nothing else read (a loop is cheap).
  const int64_t now = NowNs();
  const auto key = std::tuple{m.pid, st.st_dev, st.st_ino};
  auto it = recent_.find(key);
  if (it != recent_.end() && now - it->second.reported.time_ns() < opt_.coalesce.count() * 1000000) {
    ++it->second.since;
    it->second.last_ns = now;
    ++counters_.coalesced;
    return;
  }
  v1::Event ev;
  ev.set_time_ns(now);
  v1::FileRead* r = ev.mutable_read();
  r->set_pid(static_cast<uint32_t>(m.pid));
  r->set_inode(st.st_ino);
  r->set_dev_major(major(st.st_dev));
  r->set_dev_minor(minor(st.st_dev));
  // The path as the reader's mount namespace names it: the path inside its container.
  r->set_path(FdPath(m.fd));
  {
    MutexLock lk(mu_);
    auto it = marked_.find({st.st_dev, st.st_ino});
    if (it != marked_.end()) {
      r->set_entry(it->second.entry);
      r->set_file_container_id(it->second.container_id);
    }
  }
  if (r->entry().empty()) {  // a file in a marked directory
    for (const std::string& e : opt_.paths)
      if (e.back() == '/' && r->path().starts_with(e)) r->set_entry(e);
  }
  const std::string proc = "/proc/" + std::to_string(m.pid);
  std::string comm;
  if (ReadSmallFile(proc + "/comm", &comm) && !comm.empty() && comm.back() == '\n') comm.pop_back();
  r->set_comm(comm);
  r->set_exe(ReadLinkAt(AT_FDCWD, proc + "/exe"));
  auto by_pid = resolver_ ? resolver_->ByPid(m.pid) : std::nullopt;
  // A reader that closed the file as it exited may be gone (or a zombie) by now: its cgroup
  // says nothing then. Only a live reader outside every container is the host's.
  auto stat = by_pid ? std::nullopt : ReadProcStat(m.pid);
  const bool gone = !by_pid && (!stat || stat->state == 'Z' || stat->state == 'X');
  if (by_pid) {
    ev.set_container_id(*by_pid);
    ev.set_attribution(v1::ATTRIBUTION_CGROUP);
  } else if (gone && !r->file_container_id().empty()) {
    // The file's container: where a reader of its files almost always runs.
    ev.set_container_id(r->file_container_id());
    ev.set_attribution(v1::ATTRIBUTION_OVERLAY);
  } else if (gone) {
    // A file in a marked directory (not in the map): the container whose root filesystem
    // (each overlay mount has a device of its own) holds it, else unknown.
    std::string owner;
    {
      MutexLock lk(mu_);
      auto d = root_dev_.find(st.st_dev);
      if (d != root_dev_.end()) owner = d->second;
    }
    ev.set_container_id(owner.empty() ? "host" : owner);
    ev.set_attribution(owner.empty() ? v1::ATTRIBUTION_UNKNOWN : v1::ATTRIBUTION_OVERLAY);
  } else {
    ev.set_container_id("host");
    ev.set_attribution(v1::ATTRIBUTION_UNKNOWN);
  }
  if (it != recent_.end()) {
    ReportRepeats(&it->second);  // the window passed before a flush reported them
    it->second = Recent{ev, 0, 0};
  } else {
    if (recent_.size() >= kMaxRecent) FlushCoalesced(/*all=*/true);
    recent_.emplace(key, Recent{ev, 0, 0});
  }
  ++counters_.events;
  sink_(ev);
}

void SensitiveReads::ReportRepeats(Recent* r) {
  if (r->since == 0) return;
  // The same reader, the same file: the reported event again, at the newest read's time,
  // standing for all of them.
  v1::Event ev = r->reported;
  ev.set_time_ns(r->last_ns);
  ev.mutable_read()->set_repeats(r->since - 1);
  r->reported.set_time_ns(NowNs());
  r->since = 0;
  ++counters_.events;
  sink_(ev);
}

void SensitiveReads::FlushCoalesced(bool all) {
  const int64_t now = NowNs();
  const int64_t window = opt_.coalesce.count() * 1000000;
  for (auto it = recent_.begin(); it != recent_.end();) {
    Recent& r = it->second;
    if (!all && now - r.reported.time_ns() < window) {
      ++it;
      continue;
    }
    if (r.since > 0) {
      ReportRepeats(&r);
      ++it;
      continue;
    }
    it = recent_.erase(it);
  }
  if (all) recent_.clear();
}

}  // namespace driftwatch::sensor
