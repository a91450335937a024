#include "sensor/fanotify_watcher.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "lib/base/clock.h"
#include "lib/base/log.h"
#include "lib/event/event_json.h"
#include "lib/event/file_digest.h"
#include "lib/node/mountinfo.h"
#include "lib/node/procfs.h"
#include "sensor/fanotify_fid.h"

namespace driftwatch::sensor {
namespace {

constexpr size_t kReadBuffer = 256 << 10;
// fd mode: the kernel opens an fd for every event a read() returns, so a read is bounded by
// events, not bytes, to stay far below RLIMIT_NOFILE (1024 by default).
constexpr size_t kFdModeReadEvents = 256;
// After a wake-up is drained, sleep this long before waiting again. A writer whose listener
// sleeps in poll() pays a wake-up per event; a napping listener costs it nothing, and the
// kernel merges what queues meanwhile (create + close-write of one file become one event).
// At most ~200 wake-ups a second; the queue (16384 events) covers 3M events/s.
constexpr int kNapMs = 5;
// FID mode: directories kept open within one batch.
constexpr size_t kMaxOpenDirs = 64;

std::string ErrnoText(int e) {
  const char* name = strerrorname_np(e);
  return std::string(name ? name : "errno " + std::to_string(e)) + " (" + strerror(e) + ")";
}

uint64_t PackFsid(const void* fsid) {
  uint64_t v = 0;
  std::memcpy(&v, fsid, sizeof v);
  return v;
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string p(dir);
  if (p.empty() || p.back() != '/') p += '/';
  p += name;
  return p;
}

// `name` in host directory `host_dir`, as container `cid` sees it through one of `volumes`
// (the volumes that hold host_dir), else by its host path.
std::string VolumePathOf(const std::vector<VolumeMatch>& volumes, const std::string& cid,
                         const std::string& host_dir, std::string_view name) {
  for (const VolumeMatch& v : volumes)
    if (v.container_id == cid) return JoinPath(v.path_in_container, name);
  return JoinPath(host_dir, name);
}

// The path of `path` below `mount_point` ("/" for the mount point itself); `path` unchanged
// when it is not below it.
// The entries of `volumes` of containers other than `cid`.
std::vector<VolumeMatch> OtherContainers(const std::vector<VolumeMatch>& volumes,
                                         const std::string& cid) {
  std::vector<VolumeMatch> out;
  for (const VolumeMatch& v : volumes)
    if (v.container_id != cid) out.push_back(v);
  return out;
}

std::string StripMountPoint(const std::string& path, const std::string& mount_point) {
  if (mount_point.empty() || mount_point == "/") return path;
  if (path == mount_point) return "/";
  if (path.size() > mount_point.size() && path.compare(0, mount_point.size(), mount_point) == 0 &&
      path[mount_point.size()] == '/')
    return path.substr(mount_point.size());
  return path;
}

void FillStat(const struct stat& st, v1::FileWrite* w) {
  w->set_inode(st.st_ino);
  w->set_dev_major(major(st.st_dev));
  w->set_dev_minor(minor(st.st_dev));
  w->set_size(static_cast<uint64_t>(st.st_size));
  w->set_mode(st.st_mode);
  w->set_executable(S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0);
}

// The kind an event reports. The kernel merges events on one object that queue up before we
// read them (create + close_write of a new file arrive as one): the most telling bit wins.
const char* KindOf(uint64_t mask) {
  if (mask & FAN_CLOSE_WRITE) return "close_write";
  if (mask & (FAN_RENAME | FAN_MOVED_TO | FAN_MOVED_FROM)) return "rename";
  if (mask & FAN_ATTRIB) return "attrib";
  if (mask & FAN_MODIFY) return "modify";
  if (mask & FAN_CREATE) return "create";
  if (mask & FAN_DELETE) return "delete";
  return nullptr;
}

// Only finished content is worth hashing: a close-write, a chmod, a file moved into place.
bool WantsContent(uint64_t mask) {
  return mask & (FAN_CLOSE_WRITE | FAN_ATTRIB | FAN_RENAME | FAN_MOVED_TO);
}

}  // namespace

std::string_view FanotifyModeName(FanotifyMode mode) {
  switch (mode) {
    case FanotifyMode::kAuto: return "auto";
    case FanotifyMode::kFidFilesystem: return "fid-filesystem";
    case FanotifyMode::kFdFilesystem: return "fd-filesystem";
    case FanotifyMode::kFdMount: return "fd-mount";
    case FanotifyMode::kOff: return "off";
  }
  return "off";
}

std::optional<FanotifyMode> ParseFanotifyMode(std::string_view name) {
  for (FanotifyMode m : {FanotifyMode::kAuto, FanotifyMode::kFidFilesystem,
                         FanotifyMode::kFdFilesystem, FanotifyMode::kFdMount, FanotifyMode::kOff})
    if (FanotifyModeName(m) == name) return m;
  return std::nullopt;
}

FanotifyWatcher::FanotifyWatcher(FanotifyOptions options, const ContainerResolver* resolver,
                                 Sink sink)
    : options_(std::move(options)), resolver_(resolver), sink_(std::move(sink)),
      self_pid_(getpid()),
      hasher_(options_.hash_queue, options_.hash_max_bytes, &counters_,
              [this](v1::Event& ev) { Emit(ev); }) {}

bool KernelAtLeast(int major, int minor, std::string_view release) {
  utsname uts{};
  if (release.empty()) {
    if (uname(&uts) != 0) return true;  // unknown: assume a current kernel
    release = uts.release;
  }
  int ma = 0, mi = 0;
  if (std::sscanf(std::string(release).c_str(), "%d.%d", &ma, &mi) != 2) return true;
  return ma != major ? ma > major : mi >= minor;
}

bool OverlayIoReachesFilesystemMarks(std::string_view release) {
  return KernelAtLeast(6, 5, release);
}

std::vector<std::string> RuntimeFilesystems() {
  // Where the runtimes keep container layers: containerd, CRI-O/podman, docker, k3s.
  std::vector<std::string> fs;
  for (const char* p : {"/var/lib/containerd", "/var/lib/containers", "/var/lib/docker",
                        "/var/lib/rancher/k3s/agent/containerd"}) {
    if (access(p, F_OK) == 0) fs.push_back(p);
  }
  if (fs.empty()) fs.push_back("/");
  return fs;
}

FanotifyWatcher::~FanotifyWatcher() {
  Stop();
  CloseFanotify();
  if (stop_fd_ >= 0) close(stop_fd_);
  if (mountinfo_fd_ >= 0) close(mountinfo_fd_);
}

std::expected<std::unique_ptr<FanotifyWatcher>, std::string> FanotifyWatcher::Open(
    FanotifyOptions options, const ContainerResolver* resolver, Sink sink) {
  if (options.filesystems.empty()) options.filesystems = RuntimeFilesystems();
  FanotifyMode wanted = options.mode;
  std::unique_ptr<FanotifyWatcher> w(
      new FanotifyWatcher(std::move(options), resolver, std::move(sink)));
  if (wanted == FanotifyMode::kOff) return w;

  std::vector<FanotifyMode> chain;
  const bool fs_marks_see_io = OverlayIoReachesFilesystemMarks();
  if (wanted == FanotifyMode::kAuto && !fs_marks_see_io) {
    LogInfo("fanotify: kernel before 6.5: overlayfs hides containers' file writes from "
            "filesystem marks, so marks go on each container's overlay mount (fd-mount)\n");
    chain = {FanotifyMode::kFdMount};
  } else if (wanted == FanotifyMode::kAuto) {
    chain = {FanotifyMode::kFidFilesystem, FanotifyMode::kFdFilesystem, FanotifyMode::kFdMount};
  } else {
    if (!fs_marks_see_io &&
        (wanted == FanotifyMode::kFidFilesystem || wanted == FanotifyMode::kFdFilesystem))
      LogWarn("fanotify mode %s on a kernel before 6.5: overlayfs hides containers' file "
              "writes from filesystem marks (only creates, chmods, deletes and renames are "
              "seen); fd-mount sees them\n",
              std::string(FanotifyModeName(wanted)).c_str());
    chain = {wanted};
  }
  std::string why;
  for (FanotifyMode m : chain) {
    std::string err = w->TryMode(m);
    if (err.empty()) {
      w->mode_ = m;
      break;
    }
    if (!why.empty()) why += "; ";
    why += err;
  }
  if (w->mode_ == FanotifyMode::kOff) return std::unexpected(why);

  w->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (w->stop_fd_ < 0) return std::unexpected("eventfd: " + ErrnoText(errno));
  // fd mode strips the mount point of reachable container roots from event paths; the
  // table is cached and this fd says when it changes.
  w->mountinfo_fd_ = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  return w;
}

uint64_t FanotifyWatcher::EventMask() const {
  uint64_t m = FAN_CLOSE_WRITE;
  if (options_.modify) m |= FAN_MODIFY;
  return m;
}

void FanotifyWatcher::CloseFanotify() {
  MutexLock lock(marks_mu_);
  for (FsMark& f : fs_marks_)
    if (f.mount_fd >= 0) close(f.mount_fd);
  fs_marks_.clear();
  if (fan_fd_ >= 0) close(fan_fd_);
  fan_fd_ = -1;
}

std::string FanotifyWatcher::TryMode(FanotifyMode mode) {
  const std::string name(FanotifyModeName(mode));
  const bool fid = mode == FanotifyMode::kFidFilesystem;
  unsigned init_flags = FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK;
  if (fid) init_flags |= FAN_REPORT_DFID_NAME;
  fan_fd_ = fanotify_init(init_flags, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (fan_fd_ < 0) return "fanotify mode " + name + ": fanotify_init: " + ErrnoText(errno);
  mask_ = EventMask();
  if (mode == FanotifyMode::kFdMount) return {};  // marks come with WatchContainerRoot

  fid_mask_ = mask_ | FAN_CREATE | FAN_ATTRIB | FAN_DELETE | FAN_RENAME;
  std::string err;
  for (const std::string& path : options_.filesystems)
    if (err = MarkFilesystem(path, fid); !err.empty()) break;
  if (!err.empty()) {
    CloseFanotify();
    return "fanotify mode " + name + ": " + err;
  }
  if (fid) mask_ = fid_mask_;
  return {};
}

std::string FanotifyWatcher::MarkFilesystem(const std::string& path, bool fid) {
  struct statfs sfs;
  if (statfs(path.c_str(), &sfs) != 0) return "statfs " + path + ": " + ErrnoText(errno);
  FsMark fm;
  fm.path = path;
  fm.fsid = PackFsid(&sfs.f_fsid);
  auto marked = [this, &fm]() {
    MutexLock lock(marks_mu_);
    for (const FsMark& o : fs_marks_)
      if (o.fsid == fm.fsid) return true;
    return false;
  };
  if (marked()) return {};
  int rc = -1;
  if (fid) {
    rc = fanotify_mark(fan_fd_, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, fid_mask_, AT_FDCWD,
                       path.c_str());
    if (rc != 0 && errno == EINVAL && (fid_mask_ & FAN_RENAME)) {
      // Before 5.17 there is no FAN_RENAME: one event per side of the rename.
      fid_mask_ = (fid_mask_ & ~FAN_RENAME) | FAN_MOVED_FROM | FAN_MOVED_TO;
      rc = fanotify_mark(fan_fd_, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, fid_mask_, AT_FDCWD,
                         path.c_str());
    }
  } else {
    rc = fanotify_mark(fan_fd_, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, mask_, AT_FDCWD,
                       path.c_str());
  }
  if (rc != 0) return "fanotify_mark(FAN_MARK_FILESYSTEM, " + path + "): " + ErrnoText(errno);
  if (fid) {
    fm.mount_fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fm.mount_fd < 0) {
      fanotify_mark(fan_fd_, FAN_MARK_REMOVE | FAN_MARK_FILESYSTEM, fid_mask_, AT_FDCWD,
                    path.c_str());
      return "open " + path + ": " + ErrnoText(errno);
    }
  }
  MutexLock lock(marks_mu_);
  for (const FsMark& o : fs_marks_) {
    if (o.fsid != fm.fsid) continue;
    if (fm.mount_fd >= 0) close(fm.mount_fd);  // marked meanwhile: the mark is the same one
    return {};
  }
  fs_marks_.push_back(std::move(fm));
  return {};
}

std::string FsTypeAt(std::string_view mountinfo, std::string_view path) {
  std::string best_type;
  size_t best = 0;
  for (const MountEntry& m : ParseMountinfo(mountinfo, nullptr)) {
    const std::string& mp = m.mount_point;
    const bool under = mp == "/" || path == mp ||
                       (path.starts_with(mp) && path.size() > mp.size() && path[mp.size()] == '/');
    if (under && mp.size() + 1 >= best) {  // the last of equal mount points is on top
      best = mp.size() + 1;
      best_type = m.fstype;
    }
  }
  return best_type;
}

bool RemoteFsType(std::string_view type) {
  static constexpr std::string_view kRemote[] = {"nfs",   "nfs4",      "cifs", "smb3",
                                                 "smbfs", "ceph",      "9p",   "afs",
                                                 "fuse",  "glusterfs", "lustre", "gfs2",
                                                 "ocfs2", "sshfs"};
  if (type.starts_with("fuse.")) return true;
  return std::find(std::begin(kRemote), std::end(kRemote), type) != std::end(kRemote);
}

namespace {

// The type of the filesystem holding `path`, from our mountinfo: read without touching the
// filesystem itself, which may be one that hangs.
std::string FsTypeOf(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream text;
  text << in.rdbuf();
  return FsTypeAt(text.str(), path);
}

}  // namespace

void FanotifyWatcher::WatchVolumes(const v1::ContainerInfo& info) {
  if (mode_ == FanotifyMode::kOff || info.state() == "removed") return;
  for (const v1::Mount& m : info.mounts()) {
    if (m.read_only() || m.source().empty() || m.source()[0] != '/' || m.source() == "/")
      continue;
    if (!volume_paths_.insert(m.source()).second) continue;
    if (const std::string type = FsTypeOf(m.source()); RemoteFsType(type)) {
      counters_.volumes_unwatched.fetch_add(1, std::memory_order_relaxed);
      LogWarn("fanotify: volume %s of container %s is not watched: a %s filesystem (a server "
              "that stops answering would hang the sensor; other clients' writes are not "
              "seen anyway)\n",
              m.source().c_str(), ShortContainerId(info.id()).c_str(), type.c_str());
      continue;
    }
    // A file bind-mounted (a config) is marked through its directory: the same filesystem.
    std::string dir = m.source();
    struct stat st;
    if (stat(dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) dir.resize(std::max<size_t>(dir.rfind('/'), 1));
    // Marks are per filesystem: a volume on one already marked (the runtime's own, or an
    // earlier volume's) costs nothing more.
    if (std::string err = MarkFilesystem(dir, mode_ == FanotifyMode::kFidFilesystem);
        !err.empty()) {
      counters_.volumes_unwatched.fetch_add(1, std::memory_order_relaxed);
      LogWarn("fanotify: volume %s of container %s is not watched: %s\n", m.source().c_str(),
              ShortContainerId(info.id()).c_str(), err.c_str());
    }
  }
}

std::vector<VolumeMatch> FanotifyWatcher::VolumesOfFile(const std::string& path,
                                                        const struct stat* st) {
  if (st == nullptr) return {};
  // Written through a container's bind mount (another mount namespace): the path there.
  std::vector<VolumeMatch> volumes = resolver_->ByVolumeFile(path, st->st_dev, st->st_ino);
  if (!volumes.empty()) return volumes;
  // A host path, when it names this very file (an upper-layer file's path, read as the path
  // in its container, may look like a hostPath's source: /var/log).
  volumes = resolver_->ByVolumePath(path);
  struct stat host;
  if (!volumes.empty() && (lstat(path.c_str(), &host) != 0 || host.st_dev != st->st_dev ||
                           host.st_ino != st->st_ino))
    volumes.clear();
  return volumes;
}

std::vector<VolumeMatch> FanotifyWatcher::VolumeWriters(pid_t writer,
                                                        std::vector<VolumeMatch> volumes) {
  if (volumes.empty()) return volumes;
  // Alive and in no container: the host's (a null signal: EPERM means it exists too).
  if (writer > 0 && (kill(writer, 0) == 0 || errno == EPERM)) return {};
  return volumes;
}

std::expected<void, std::string> FanotifyWatcher::WatchContainerRoot(
    const std::string& container_id, pid_t pid) {
  if (mode_ != FanotifyMode::kFdMount) return {};
  std::string root = "/proc/" + std::to_string(pid) + "/root/";
  if (fanotify_mark(fan_fd_, FAN_MARK_ADD | FAN_MARK_MOUNT, mask_, AT_FDCWD, root.c_str()) != 0)
    return std::unexpected("fanotify_mark(FAN_MARK_MOUNT, " + root + ") for " + container_id +
                           ": " + ErrnoText(errno));
  return {};
}

void FanotifyWatcher::Start() {
  if (mode_ == FanotifyMode::kOff || thread_.joinable()) return;
  hasher_.Start();
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "dw-fanotify");
    DrainLoop();
  });
}

void FanotifyWatcher::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof one) < 0) {
    // An eventfd write fails only on counter overflow: the thread is being woken anyway.
  }
  thread_.join();
  hasher_.Stop();
}

void FanotifyWatcher::DrainLoop() {
  // Aligned for fanotify_event_metadata; large so that one read takes a burst.
  std::unique_ptr<uint64_t[]> storage(new uint64_t[kReadBuffer / sizeof(uint64_t)]);
  char* buf = reinterpret_cast<char*>(storage.get());
  const size_t read_size = mode_ == FanotifyMode::kFidFilesystem
                               ? kReadBuffer
                               : kFdModeReadEvents * sizeof(fanotify_event_metadata);
  for (;;) {
    struct pollfd pfd[3] = {{fan_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}, {mountinfo_fd_, POLLPRI, 0}};
    int n = poll(pfd, mountinfo_fd_ >= 0 ? 3 : 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      counters_.errors.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (pfd[1].revents) return;
    if (mountinfo_fd_ >= 0 && (pfd[2].revents & (POLLPRI | POLLERR))) mount_points_.clear();
    if (!(pfd[0].revents & POLLIN)) continue;
    for (;;) {
      ssize_t got = read(fan_fd_, buf, read_size);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) counters_.errors.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      if (got == 0) break;
      HandleBuffer(buf, static_cast<size_t>(got));
      EndBatch();
    }
    struct pollfd stop = {stop_fd_, POLLIN, 0};
    if (poll(&stop, 1, kNapMs) > 0) return;
  }
}

void FanotifyWatcher::HandleBuffer(const char* buf, size_t len) {
  size_t off = 0;
  fanotify_event_metadata md;
  const char* ev = nullptr;
  while (NextFanotifyEvent(buf, len, &off, &md, &ev)) {
    if (md.vers != FANOTIFY_METADATA_VERSION) {
      counters_.errors.fetch_add(1, std::memory_order_relaxed);
      if (md.fd >= 0) close(md.fd);
      continue;
    }
    if (md.mask & FAN_Q_OVERFLOW) {
      counters_.overflows.fetch_add(1, std::memory_order_relaxed);
      if (md.fd >= 0) close(md.fd);
      continue;
    }
    // Our own writes (spool, capture, logs) would feed us forever: fanotify reports the tgid.
    if (md.pid == self_pid_) {
      counters_.dropped_self.fetch_add(1, std::memory_order_relaxed);
      if (md.fd >= 0) close(md.fd);
      continue;
    }
    if (mode_ == FanotifyMode::kFidFilesystem)
      HandleFidEvent(md, ev);
    else
      HandleFdEvent(md);
  }
}

FanotifyWatcher::ProcInfo& FanotifyWatcher::Proc(pid_t pid) {
  for (ProcInfo& p : proc_cache_)
    if (p.pid == pid) return p;
  proc_cache_.emplace_back();
  proc_cache_.back().pid = pid;
  return proc_cache_.back();
}

void FanotifyWatcher::FillProcess(pid_t pid, v1::FileWrite* w) {
  if (pid <= 0) return;
  ProcInfo& p = Proc(pid);
  if (!p.have_names) {
    // Best effort: a short-lived writer may be gone by now.
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/comm", pid);
    ReadSmallFile(path, &p.comm);
    if (!p.comm.empty() && p.comm.back() == '\n') p.comm.pop_back();
    std::snprintf(path, sizeof path, "/proc/%d/exe", pid);
    p.exe = ReadLinkAt(AT_FDCWD, path);
    p.have_names = true;
  }
  w->set_comm(p.comm);
  w->set_exe(p.exe);
}

std::optional<std::string> FanotifyWatcher::ContainerOfPid(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  ProcInfo& p = Proc(pid);
  if (!p.have_container) {
    p.container = resolver_->ByPid(pid);
    p.have_container = true;
  }
  return p.container;
}

const FanotifyWatcher::DirInfo* FanotifyWatcher::Dir(uint64_t fsid, const char* handle,
                                                    size_t handle_len) {
  std::string key(reinterpret_cast<const char*>(&fsid), sizeof fsid);
  key.append(handle, handle_len);
  for (const DirInfo& d : dir_cache_)
    if (d.key == key) return &d;
  int mount_fd = -1;
  {
    MutexLock lock(marks_mu_);
    for (const FsMark& f : fs_marks_)
      if (f.fsid == fsid) mount_fd = f.mount_fd;
  }
  alignas(file_handle) char h[sizeof(file_handle) + MAX_HANDLE_SZ];
  if (mount_fd < 0 || handle_len > sizeof h) return nullptr;
  std::memcpy(h, handle, handle_len);
  DirInfo d;
  d.fd = open_by_handle_at(mount_fd, reinterpret_cast<file_handle*>(h),
                           O_PATH | O_DIRECTORY | O_CLOEXEC);
  // The directory is gone already (ESTALE), or not on a filesystem we marked.
  if (d.fd < 0) return nullptr;
  d.key = std::move(key);
  d.host_dir = FdPath(d.fd);
  d.match = resolver_->ByUpperDir(d.host_dir);
  if (!d.match) d.volumes = resolver_->ByVolumePath(d.host_dir);
  dir_cache_.push_back(std::move(d));
  return &dir_cache_.back();
}

void FanotifyWatcher::CloseDirs() {
  for (DirInfo& d : dir_cache_) close(d.fd);
  dir_cache_.clear();
}

void FanotifyWatcher::EndBatch() {
  proc_cache_.clear();
  CloseDirs();
}

const std::string& FanotifyWatcher::MountPoint(int mnt_id) {
  auto it = mount_points_.find(mnt_id);
  if (it != mount_points_.end()) return it->second;
  std::string text;
  if (ReadSmallFile("/proc/self/mountinfo", &text)) {
    for (MountEntry& m : ParseMountinfo(text, nullptr)) mount_points_[m.id] = std::move(m.mount_point);
  }
  // Not in our namespace (a container's own root): remembered as "" until the table changes.
  return mount_points_[mnt_id];
}

void FanotifyWatcher::Emit(v1::Event& ev) {
  counters_.events.fetch_add(1, std::memory_order_relaxed);
  sink_(ev);
}

void FanotifyWatcher::Inspect(v1::Event ev, int fd, const struct stat& st) {
  v1::FileWrite* w = ev.mutable_write();
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  // The first bytes only: cheap even for a huge sparse file. The hash is the worker's.
  FileFacts facts = ClassifyFile(fd, st.st_mode, size, options_.hash_max_bytes);
  w->set_executable(facts.executable);
  if (facts.over_cap) counters_.hash_skipped.fetch_add(1, std::memory_order_relaxed);
  if (facts.wants_hash() && size <= options_.hash_inline_bytes) {
    // Small: the cost of writing it bounds the cost of hashing it, so a flood of small files
    // cannot outrun the drain thread more than their writes do. A large file (sparse, it
    // costs its writer nothing) is the worker's.
    FileFacts small = facts;
    HashFile(fd, options_.hash_inline_bytes, &small);
    if (!small.over_cap) facts = small;  // else it grew since fstat: the worker's after all
    if (facts.hashed) w->set_sha256(facts.sha256);
  }
  if (!facts.error.empty()) counters_.errors.fetch_add(1, std::memory_order_relaxed);
  if (facts.wants_hash()) {
    hasher_.Hash(std::move(ev), fd, size);
    return;
  }
  close(fd);
  hasher_.Pass(std::move(ev));
}

void FanotifyWatcher::HandleFidEvent(const fanotify_event_metadata& md, const char* bytes) {
  const char* kind = KindOf(md.mask);
  if (!kind) return;
  if (dir_cache_.size() >= kMaxOpenDirs) CloseDirs();  // an event needs at most two
  // Info records: one DFID_NAME, or OLD_DFID_NAME + NEW_DFID_NAME for FAN_RENAME.
  const FidEvent fe = ResolveFidEvent(md.mask, WalkFidRecords(bytes));
  if (fe.error) {
    // Once per event; logged the 1st, 2nd, 4th, ... time, so a flood costs no log volume.
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
    static std::atomic<uint64_t> malformed{0};
    const uint64_t n = ++malformed;
    if ((n & (n - 1)) == 0) {
      LogWarn("fanotify: event (mask 0x%llx) with unusable info records: %s (%llu so far, "
              "counted in errors)",
              static_cast<unsigned long long>(md.mask), fe.error,
              static_cast<unsigned long long>(n));
    }
  }
  if (!fe.usable()) return;
  const FidName& cur = fe.cur;
  const FidName& old = fe.old;
  const FidName& obj = fe.entry;

  // Directory handle -> open directory on the host -> its path -> the container.
  const DirInfo* dir = Dir(obj.fsid, obj.handle, obj.handle_len);
  if (!dir) {
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const int dir_fd = dir->fd;

  v1::Event ev;
  ev.set_time_ns(NowNs());  // when read: a wait for its hash does not make it later
  v1::FileWrite* w = ev.mutable_write();
  w->set_kind(kind);
  // A new file's FAN_CREATE and its first FAN_CLOSE_WRITE arrive merged (KindOf picks
  // close_write): the mask still says it was created.
  w->set_created((md.mask & FAN_CREATE) != 0);
  w->set_pid(md.pid > 0 ? static_cast<uint32_t>(md.pid) : 0);
  // The other containers that mount the volume the file is in: it appeared in each.
  std::vector<VolumeMatch> others;
  if (dir->match) {
    ev.set_container_id(dir->match->container_id);
    ev.set_attribution(v1::ATTRIBUTION_OVERLAY);
    w->set_path(JoinPath(dir->match->dir_in_container, obj.name));
    w->set_upper_path(JoinPath(dir->host_dir, obj.name));
  } else if (std::optional<std::string> cid = ContainerOfPid(md.pid)) {
    // A write by a container process outside its rootfs: in one of its volumes, named as
    // the container sees it, else (a filesystem shared some other way) by its host path.
    ev.set_container_id(*cid);
    ev.set_attribution(v1::ATTRIBUTION_CGROUP);
    w->set_path(VolumePathOf(dir->volumes, *cid, dir->host_dir, obj.name));
    others = OtherContainers(dir->volumes, *cid);
  } else {
    others = VolumeWriters(md.pid, dir->volumes);
    if (others.empty()) {
      counters_.dropped_host.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    ev.set_container_id(others.front().container_id);
    ev.set_attribution(v1::ATTRIBUTION_VOLUME);
    w->set_path(JoinPath(others.front().path_in_container, obj.name));
    others.erase(others.begin());
  }
  if (old.handle && obj.handle != old.handle) {
    // Dir() may grow the cache: `dir` is not used past this point.
    if (const DirInfo* od = Dir(old.fsid, old.handle, old.handle_len))
      w->set_old_path(od->match ? JoinPath(od->match->dir_in_container, old.name)
                                : VolumePathOf(od->volumes, ev.container_id(), od->host_dir,
                                               old.name));
  } else if (md.mask & FAN_MOVED_FROM) {
    w->set_old_path(w->path());
    w->clear_path();
  }
  FillProcess(md.pid, w);
  // The other containers that mount the volume get the event too, as each one names the
  // file (without its content facts: shared volumes are few, and the first event has them).
  for (const VolumeMatch& o : others) {
    v1::Event copy = ev;
    copy.set_container_id(o.container_id);
    copy.set_attribution(v1::ATTRIBUTION_VOLUME);
    copy.mutable_write()->set_path(JoinPath(o.path_in_container, obj.name));
    hasher_.Pass(std::move(copy));
  }

  // A delete names an entry that is gone (or a newer file under that name), and a pre-5.17
  // FAN_MOVED_FROM only the old, now absent, entry: nothing to stat.
  if (cur.handle && std::strcmp(kind, "delete") != 0) {
    // The name is the container's to swap (for a device node, a FIFO, a symlink) at any
    // time: hold the inode it names now (O_PATH opens nothing), and read only that one.
    const std::string name(obj.name);
    const int path_fd = openat(dir_fd, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    int fd = -1;
    if (path_fd >= 0 && fstat(path_fd, &st) == 0) {
      FillStat(st, w);
      if (S_ISREG(st.st_mode) && WantsContent(md.mask)) {
        if (auto r = ReopenRegular(path_fd, st))
          fd = *r;
        else
          counters_.errors.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (path_fd >= 0) close(path_fd);
    if (fd >= 0) {
      Inspect(std::move(ev), fd, st);
      return;
    }
  }
  hasher_.Pass(std::move(ev));
}

void FanotifyWatcher::HandleFdEvent(const fanotify_event_metadata& md) {
  const int fd = md.fd;
  const char* kind = KindOf(md.mask);
  if (fd < 0 || !kind) {
    if (fd >= 0) close(fd);
    return;
  }
  v1::Event ev;
  ev.set_time_ns(NowNs());  // when read: a wait for its hash does not make it later
  v1::FileWrite* w = ev.mutable_write();
  // The fd's mount: a container root overlay (fd-mount mode, or a reachable overlay), else
  // the overlay's private clone of its upper dir, whose paths already read as in-container.
  int mnt_id = FdMountId(fd);
  std::optional<std::string> cid = mnt_id >= 0 ? resolver_->ByMountId(mnt_id) : std::nullopt;
  std::string path = FdPath(fd);
  struct stat st;
  bool have_stat = fstat(fd, &st) == 0;
  std::vector<VolumeMatch> others;  // as in HandleFidEvent
  if (cid) {
    ev.set_attribution(v1::ATTRIBUTION_OVERLAY);
    path = StripMountPoint(path, MountPoint(mnt_id));
  } else if ((cid = ContainerOfPid(md.pid))) {
    ev.set_attribution(v1::ATTRIBUTION_CGROUP);
    // In one of its volumes (a host path here): named as the container sees it.
    std::vector<VolumeMatch> volumes = VolumesOfFile(path, have_stat ? &st : nullptr);
    for (const VolumeMatch& v : volumes)
      if (v.container_id == *cid) path = v.path_in_container;
    others = OtherContainers(volumes, *cid);
  } else if (have_stat &&
             (cid = resolver_->ByUpperFile(path, st.st_dev, st.st_ino))) {
    // The writer is gone already (cp, a shell redirect): the fd is the upper file itself,
    // so the container whose upper layer has this inode at this path wrote it.
    ev.set_attribution(v1::ATTRIBUTION_OVERLAY);
  } else if (!(others = VolumeWriters(md.pid, VolumesOfFile(path, have_stat ? &st : nullptr)))
                   .empty()) {
    cid = others.front().container_id;
    path = others.front().path_in_container;
    others.erase(others.begin());
    ev.set_attribution(v1::ATTRIBUTION_VOLUME);
  } else {
    counters_.dropped_host.fetch_add(1, std::memory_order_relaxed);
    close(fd);
    return;
  }
  ev.set_container_id(*cid);
  w->set_kind(kind);
  w->set_pid(md.pid > 0 ? static_cast<uint32_t>(md.pid) : 0);
  w->set_path(path);
  FillProcess(md.pid, w);
  for (const VolumeMatch& o : others) {
    v1::Event copy = ev;
    copy.set_container_id(o.container_id);
    copy.set_attribution(v1::ATTRIBUTION_VOLUME);
    copy.mutable_write()->set_path(o.path_in_container);
    if (have_stat) FillStat(st, copy.mutable_write());
    hasher_.Pass(std::move(copy));
  }
  if (have_stat) {
    FillStat(st, w);
    // The kernel's fd is the written file itself, opened by no name: fstat decides.
    if (S_ISREG(st.st_mode) && WantsContent(md.mask)) {
      Inspect(std::move(ev), fd, st);
      return;
    }
  } else {
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
  }
  close(fd);
  hasher_.Pass(std::move(ev));
}

}  // namespace driftwatch::sensor
