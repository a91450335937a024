// FanotifyWatcher against the real kernel: a real overlay mount on the root filesystem (as
// containerd's snapshots are), a child chroot()ed into it that writes files, and each mode
// forced in turn. Needs root; run serialized with other fanotify/audit tests.
#include "sensor/fanotify_watcher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

namespace driftwatch::sensor {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Sha256(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

// Mount id of the mount at `point` in our namespace (the last one: it covers the others).
int MountIdOf(const std::string& point) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  int found = -1;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    int id, parent;
    std::string dev, root, mp;
    if (f >> id >> parent >> dev >> root >> mp && mp == point) found = id;
  }
  return found;
}

// lower/ upper/ work/ merged/ in a fresh directory on the root filesystem, an overlay on
// merged/; unmounted and removed on destruction, also when the test fails.
class OverlayFixture {
 public:
  OverlayFixture() {
    char tmpl[] = "/var/tmp/dw-fanotify-test.XXXXXX";
    if (!mkdtemp(tmpl)) return;
    base_ = tmpl;
    for (const char* d : {"lower/bin", "lower/tmp", "upper", "work", "merged"})
      fs::create_directories(base_ + "/" + d);
    std::error_code ec;
    fs::copy_file("/bin/busybox", lower() + "/bin/busybox", ec);
    if (ec) return;
    std::string opts =
        "lowerdir=" + lower() + ",upperdir=" + upper() + ",workdir=" + base_ + "/work";
    mounted_ = mount("overlay", merged().c_str(), "overlay", 0, opts.c_str()) == 0;
    if (mounted_) mount_id_ = MountIdOf(merged());
  }
  ~OverlayFixture() {
    if (mounted_) umount2(merged().c_str(), MNT_DETACH);
    std::error_code ec;
    if (!base_.empty()) fs::remove_all(base_, ec);
  }
  bool ok() const { return mounted_ && mount_id_ >= 0; }
  std::string base() const { return base_; }
  std::string lower() const { return base_ + "/lower"; }
  std::string upper() const { return base_ + "/upper"; }
  std::string merged() const { return base_ + "/merged"; }
  int mount_id() const { return mount_id_; }

 private:
  std::string base_;
  bool mounted_ = false;
  int mount_id_ = -1;
};

// The registry's role, backed by the fixture's real mount.
class TestResolver : public ContainerResolver {
 public:
  TestResolver(std::string upper, int mount_id, std::string id = "test-ctr")
      : upper_(std::move(upper)), mount_id_(mount_id), id_(std::move(id)) {}
  std::optional<UpperMatch> ByUpperDir(std::string_view host_dir) const override {
    if (host_dir == upper_) return UpperMatch{id_, "/"};
    if (host_dir.size() > upper_.size() && host_dir.substr(0, upper_.size()) == upper_ &&
        host_dir[upper_.size()] == '/')
      return UpperMatch{id_, std::string(host_dir.substr(upper_.size()))};
    return std::nullopt;
  }
  std::optional<std::string> ByMountId(int mnt_id) const override {
    if (mnt_id == mount_id_) return id_;
    return std::nullopt;
  }
  std::optional<std::string> ByPid(pid_t pid) const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (pids_.count(pid)) return id_;
    return std::nullopt;
  }
  std::optional<std::string> ByUpperFile(std::string_view path, dev_t dev,
                                         ino_t ino) const override {
    struct stat st;
    std::string p = upper_ + std::string(path);
    if (lstat(p.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) return id_;
    return std::nullopt;
  }
  void AddPid(pid_t pid) {
    std::lock_guard<std::mutex> lock(mu_);
    pids_.insert(pid);
  }

 private:
  std::string upper_;
  int mount_id_;
  std::string id_;
  mutable std::mutex mu_;
  std::set<pid_t> pids_;
};

// Two containers: the first resolver that knows an event's file or writer answers.
class PairResolver : public ContainerResolver {
 public:
  PairResolver(const TestResolver* a, const TestResolver* b) : a_(a), b_(b) {}
  std::optional<UpperMatch> ByUpperDir(std::string_view d) const override {
    auto m = a_->ByUpperDir(d);
    return m ? m : b_->ByUpperDir(d);
  }
  std::optional<std::string> ByMountId(int id) const override {
    auto m = a_->ByMountId(id);
    return m ? m : b_->ByMountId(id);
  }
  std::optional<std::string> ByPid(pid_t pid) const override {
    auto m = a_->ByPid(pid);
    return m ? m : b_->ByPid(pid);
  }
  std::optional<std::string> ByUpperFile(std::string_view p, dev_t dev, ino_t ino) const override {
    auto m = a_->ByUpperFile(p, dev, ino);
    return m ? m : b_->ByUpperFile(p, dev, ino);
  }

 private:
  const TestResolver* a_;
  const TestResolver* b_;
};

class EventLog {
 public:
  void Add(const v1::Event& ev) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(ev);
    cv_.notify_all();
  }
  // Waits (bounded, so a broken watcher fails instead of hanging) for a write of `path`.
  bool WaitForPath(const std::string& path) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] {
      for (const v1::Event& e : events_)
        if (e.write().path() == path) return true;
      return false;
    });
  }
  std::vector<v1::Event> Snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1::Event> events_;
};

// Kills and reaps a forked child if the test leaves early.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  // Exit status, or -1.
  int Wait() {
    int st = 0;
    pid_t p = waitpid(pid_, &st, 0);
    pid_ = -1;
    return p > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

 private:
  pid_t pid_;
};

bool WriteFile(const char* path, const std::string& data, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  bool ok = write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  // The exec bit is set before the close: the close-write then sees the final mode.
  if (mode & 0111) ok = ok && fchmod(fd, mode) == 0;
  return close(fd) == 0 && ok;
}

const std::string kPlain = "hello, drift\n";
const std::string kScript = "#!/bin/sh\necho dropped\n";
const std::string kNested = "nested file\n";
const std::string kRenamed = "moved into place\n";

// In the child, chroot()ed into the overlay: what a container workload would write.
int ContainerWrites() {
  if (!WriteFile("/tmp/plain.txt", kPlain, 0644)) return 11;
  // Plain syscalls only: this runs in a fork of a multi-threaded process.
  std::string elf;
  int in = open("/bin/busybox", O_RDONLY | O_CLOEXEC);
  if (in < 0) return 12;
  char buf[65536];
  for (ssize_t n; (n = read(in, buf, sizeof buf)) > 0;) elf.append(buf, static_cast<size_t>(n));
  close(in);
  if (elf.size() < 4 || !WriteFile("/tmp/dropped-elf", elf, 0755)) return 12;
  if (!WriteFile("/tmp/script.sh", kScript, 0644)) return 13;
  if (mkdir("/tmp/sub", 0755) != 0 || !WriteFile("/tmp/sub/nested.txt", kNested, 0644)) return 14;
  if (!WriteFile("/tmp/before.txt", kRenamed, 0644)) return 15;
  if (rename("/tmp/before.txt", "/tmp/after.txt") != 0) return 16;
  return 0;
}

// Forks a process that enters `dir` (and chroot()s there if `jail`: then /proc/<pid>/root/
// is the overlay, as for a container), and runs `fn` once the parent says go, after it has
// registered the pid. Returns the pid and the write end of the go pipe; the pid is -1 if
// the child did not get ready.
std::pair<pid_t, int> ForkWaiting(const std::string& dir, bool jail, int (*fn)()) {
  int go[2], ready[2];
  if (pipe2(go, O_CLOEXEC) != 0) return {-1, -1};
  if (pipe2(ready, O_CLOEXEC) != 0) {
    close(go[0]);
    close(go[1]);
    return {-1, -1};
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(go[1]);
    close(ready[0]);
    if (chdir(dir.c_str()) != 0) _exit(3);
    if (jail && (chroot(".") != 0 || chdir("/") != 0)) _exit(4);
    char c = 'r';
    if (write(ready[1], &c, 1) != 1) _exit(5);
    if (read(go[0], &c, 1) != 1) _exit(2);
    _exit(fn());
  }
  close(go[0]);
  close(ready[1]);
  char c;
  bool ok = pid > 0 && read(ready[0], &c, 1) == 1;
  close(ready[0]);
  if (pid > 0 && !ok) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  if (!ok) {
    close(go[1]);
    return {-1, -1};
  }
  return {pid, go[1]};
}

void Go(int fd) {
  char c = 'g';
  (void)!write(fd, &c, 1);
  close(fd);
}

int HostWrite() { return WriteFile("host-outside-overlay.txt", "host\n", 0644) ? 0 : 20; }
int SentinelWrite() { return WriteFile("/tmp/zz-sentinel", "done\n", 0644) ? 0 : 30; }

const v1::Event* Find(const std::vector<v1::Event>& evs, const std::string& path,
                      const std::string& kind = "close_write") {
  for (const v1::Event& e : evs)
    if (e.write().path() == path && e.write().kind() == kind) return &e;
  return nullptr;
}

TEST(FanotifyModeNames, RoundTrip) {
  for (FanotifyMode m : {FanotifyMode::kAuto, FanotifyMode::kFidFilesystem,
                         FanotifyMode::kFdFilesystem, FanotifyMode::kFdMount, FanotifyMode::kOff})
    EXPECT_EQ(ParseFanotifyMode(FanotifyModeName(m)), m);
  EXPECT_FALSE(ParseFanotifyMode("fid"));
  EXPECT_FALSE(ParseFanotifyMode(""));
}

// Before 6.5 overlayfs hides a container's file I/O from marks on the upper dir's filesystem
// (FMODE_NONOTIFY on its layers' files): the filesystem modes cannot see these writes there.
#define DW_SKIP_FS_MODE_BEFORE_6_5(mode)                                                  \
  if ((mode) != FanotifyMode::kFdMount && !OverlayIoReachesFilesystemMarks())            \
  GTEST_SKIP() << "kernel before 6.5: overlayfs hides container writes from filesystem marks"

class FanotifyWatcherTest : public ::testing::TestWithParam<FanotifyMode> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    DW_SKIP_FS_MODE_BEFORE_6_5(GetParam());
  }
};

TEST_P(FanotifyWatcherTest, SeesContainerWritesOnly) {
  const FanotifyMode mode = GetParam();
  OverlayFixture ov;
  ASSERT_TRUE(ov.ok()) << "overlay mount failed: " << strerror(errno);
  TestResolver resolver(ov.upper(), ov.mount_id());
  EventLog log;
  FanotifyOptions opt;
  opt.mode = mode;
  opt.filesystems = {ov.base()};
  auto w = FanotifyWatcher::Open(opt, &resolver, [&](v1::Event& ev) { log.Add(ev); });
  ASSERT_TRUE(w.has_value()) << w.error();
  ASSERT_EQ((*w)->mode(), mode);
  (*w)->Start();

  // The container's workload.
  auto [ctr_pid, ctr_go] = ForkWaiting(ov.merged(), true, ContainerWrites);
  ASSERT_GT(ctr_pid, 0);
  ChildGuard ctr_guard(ctr_pid);
  resolver.AddPid(ctr_pid);
  auto watched = (*w)->WatchContainerRoot("test-ctr", ctr_pid);
  ASSERT_TRUE(watched.has_value()) << watched.error();
  Go(ctr_go);
  ASSERT_EQ(ctr_guard.Wait(), 0);

  // A host process writing beside the overlay, and this process writing into it.
  auto [host_pid, host_go] = ForkWaiting(ov.base(), false, HostWrite);
  ASSERT_GT(host_pid, 0);
  ChildGuard host_guard(host_pid);
  Go(host_go);
  ASSERT_EQ(host_guard.Wait(), 0);
  ASSERT_TRUE(WriteFile((ov.merged() + "/tmp/self-write.txt").c_str(), "self\n", 0644));

  // Events arrive in order: once the last container write is seen, all earlier ones were.
  auto [s_pid, s_go] = ForkWaiting(ov.merged(), true, SentinelWrite);
  ASSERT_GT(s_pid, 0);
  ChildGuard s_guard(s_pid);
  resolver.AddPid(s_pid);
  Go(s_go);
  ASSERT_EQ(s_guard.Wait(), 0);
  ASSERT_TRUE(log.WaitForPath("/tmp/zz-sentinel")) << "no event for the sentinel write";
  (*w)->Stop();
  std::vector<v1::Event> evs = log.Snapshot();
  if (getenv("DW_TEST_DUMP"))
    for (const v1::Event& e : evs) std::fprintf(stderr, "event: %s\n", e.ShortDebugString().c_str());

  struct Want {
    std::string path;
    const std::string* content;
    bool executable;
  };
  const std::string elf = ReadAll("/bin/busybox");
  std::vector<Want> wants = {{"/tmp/plain.txt", &kPlain, false},
                             {"/tmp/dropped-elf", &elf, true},
                             {"/tmp/script.sh", &kScript, true},
                             {"/tmp/sub/nested.txt", &kNested, false}};
  for (const Want& want : wants) {
    SCOPED_TRACE(want.path);
    const v1::Event* e = Find(evs, want.path);
    ASSERT_NE(e, nullptr) << "no close_write event";
    const v1::FileWrite& fw = e->write();
    EXPECT_EQ(e->container_id(), "test-ctr");
    if (mode == FanotifyMode::kFdFilesystem) {
      EXPECT_TRUE(e->attribution() == v1::ATTRIBUTION_OVERLAY ||
                  e->attribution() == v1::ATTRIBUTION_CGROUP);
    } else {
      EXPECT_EQ(e->attribution(), v1::ATTRIBUTION_OVERLAY);
    }
    EXPECT_EQ(fw.pid(), static_cast<uint32_t>(ctr_pid));
    struct stat st;
    ASSERT_EQ(stat((ov.upper() + want.path).c_str(), &st), 0);
    EXPECT_EQ(fw.inode(), st.st_ino);
    EXPECT_EQ(fw.size(), want.content->size());
    EXPECT_EQ(fw.executable(), want.executable);
    if (want.executable) {
      EXPECT_EQ(fw.sha256(), Sha256(*want.content));
    } else {
      EXPECT_TRUE(fw.sha256().empty());
    }
    if (mode == FanotifyMode::kFidFilesystem) {
      EXPECT_EQ(fw.upper_path(), ov.upper() + want.path);
    }
    // The workload created every one of these files. FID modes see FAN_CREATE: merged into
    // the close_write when it was still queued, else an event of its own; fd modes never do.
    bool created = false;
    for (const v1::Event& x : evs) created |= x.write().path() == want.path && x.write().created();
    EXPECT_EQ(created, mode == FanotifyMode::kFidFilesystem);
  }

  // The renamed file: FID mode reports the rename itself; fd modes see the close-write of the
  // file under whichever name it had when the event was read.
  if (mode == FanotifyMode::kFidFilesystem) {
    const v1::Event* e = Find(evs, "/tmp/after.txt", "rename");
    ASSERT_NE(e, nullptr) << "no rename event";
    EXPECT_EQ(e->write().old_path(), "/tmp/before.txt");
    EXPECT_EQ(e->write().size(), kRenamed.size());
  } else {
    const v1::Event* e = Find(evs, "/tmp/after.txt");
    if (!e) e = Find(evs, "/tmp/before.txt");
    ASSERT_NE(e, nullptr) << "no close_write for the renamed file";
    EXPECT_EQ(e->write().size(), kRenamed.size());
  }

  for (const v1::Event& e : evs) {
    EXPECT_EQ(e.write().path().find("host-outside-overlay"), std::string::npos);
    EXPECT_EQ(e.write().path().find("self-write"), std::string::npos);
    EXPECT_NE(e.container_id(), "host");
  }
  EXPECT_GT((*w)->counters().dropped_self.load(), 0u);
  // A mount mark does not see the host filesystem at all.
  if (mode != FanotifyMode::kFdMount) {
    EXPECT_GT((*w)->counters().dropped_host.load(), 0u);
  }
  EXPECT_EQ((*w)->counters().hash_skipped.load(), 0u);
  EXPECT_EQ((*w)->counters().hash_queue_full.load(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Modes, FanotifyWatcherTest,
                         ::testing::Values(FanotifyMode::kFidFilesystem,
                                           FanotifyMode::kFdFilesystem, FanotifyMode::kFdMount),
                         [](const auto& info) {
                           std::string n(FanotifyModeName(info.param));
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// Executables over the size cap are reported but not hashed, and counted.
TEST(FanotifyWatcherCap, SkipsHashOverCap) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  DW_SKIP_FS_MODE_BEFORE_6_5(FanotifyMode::kFidFilesystem);
  OverlayFixture ov;
  ASSERT_TRUE(ov.ok());
  TestResolver resolver(ov.upper(), ov.mount_id());
  EventLog log;
  FanotifyOptions opt;
  opt.mode = FanotifyMode::kFidFilesystem;
  opt.filesystems = {ov.base()};
  opt.hash_max_bytes = 8;
  auto w = FanotifyWatcher::Open(opt, &resolver, [&](v1::Event& ev) { log.Add(ev); });
  ASSERT_TRUE(w.has_value()) << w.error();
  (*w)->Start();
  auto [pid2, go2] = ForkWaiting(ov.merged(), true, ContainerWrites);
  ASSERT_GT(pid2, 0);
  ChildGuard guard2(pid2);
  Go(go2);
  ASSERT_EQ(guard2.Wait(), 0);
  auto [pid3, go3] = ForkWaiting(ov.merged(), true, [] {
    return WriteFile("/tmp/last", "x", 0644) ? 0 : 1;
  });
  ASSERT_GT(pid3, 0);
  ChildGuard guard3(pid3);
  Go(go3);
  ASSERT_EQ(guard3.Wait(), 0);
  ASSERT_TRUE(log.WaitForPath("/tmp/last"));
  (*w)->Stop();
  std::vector<v1::Event> evs = log.Snapshot();
  const v1::Event* e = Find(evs, "/tmp/dropped-elf");
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->write().executable());
  EXPECT_TRUE(e->write().sha256().empty());
  EXPECT_GE((*w)->counters().hash_skipped.load(), 2u);  // the ELF and the script
}

// A forced mode the kernel refuses is an error that names the mode: FID reporting on an
// overlay filesystem itself is refused.
TEST(FanotifyWatcherOpen, ForcedModeRefusedNamesModeAndErrno) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  OverlayFixture ov;
  ASSERT_TRUE(ov.ok());
  TestResolver resolver(ov.upper(), ov.mount_id());
  FanotifyOptions opt;
  opt.mode = FanotifyMode::kFidFilesystem;
  opt.filesystems = {ov.merged()};
  auto w = FanotifyWatcher::Open(opt, &resolver, [](v1::Event&) {});
  ASSERT_FALSE(w.has_value());
  EXPECT_NE(w.error().find("fid-filesystem"), std::string::npos) << w.error();
  EXPECT_NE(w.error().find("fanotify_mark"), std::string::npos) << w.error();
  // kAuto falls back to fd mode on the same path (before 6.5 it takes fd-mount at once).
  opt.mode = FanotifyMode::kAuto;
  auto a = FanotifyWatcher::Open(opt, &resolver, [](v1::Event&) {});
  ASSERT_TRUE(a.has_value()) << a.error();
  EXPECT_EQ((*a)->mode(), OverlayIoReachesFilesystemMarks() ? FanotifyMode::kFdFilesystem
                                                            : FanotifyMode::kFdMount);
}

// The drain thread keeps up while a container loops large sparse ELF writes: one container
// writes kBigFiles sparse files of 60 MiB with an ELF header (cheap to write, 60 MiB each
// to hash), another kSmallFiles small scripts at the same time. Hashed on the drain thread,
// the big files held it for seconds while the small writes filled the kernel's queue (16384
// events) and it overflowed. Now: no overflow, every file's event arrives, and each event of
// an executable arrives with its sha256 or is counted as not hashed. Run with the small files
// hashed on the drain thread (the default: none may lack its hash) and, to load the worker
// with both, with everything hashed by the worker.
constexpr int kBigFiles = 200;
constexpr int kSmallFiles = 20000;
constexpr off_t kBigSize = 60 << 20;

// "/tmp/<prefix><i>" without allocating (these run in a fork of a threaded process).
void NumberedPath(char* out, const char* prefix, int i) {
  char digits[16];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + i % 10);
    i /= 10;
  } while (i > 0);
  out = stpcpy(stpcpy(out, "/tmp/"), prefix);
  while (n > 0) *out++ = digits[--n];
  *out = '\0';
}

int BigElfWrites() {
  char header[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
  char path[64];
  for (int i = 0; i < kBigFiles; ++i) {
    NumberedPath(path, "big-", i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (fd < 0) return 40;
    bool ok = pwrite(fd, header, sizeof header, 0) == static_cast<ssize_t>(sizeof header) &&
              ftruncate(fd, kBigSize) == 0;
    if (close(fd) != 0 || !ok) return 41;
  }
  return WriteFile("/tmp/zz-big-done", "done\n", 0644) ? 0 : 42;
}

// Script i's content: distinct per file, so that each hash says which file it is.
std::string SmallScript(int i) { return "#!/bin/sh\n# " + std::to_string(i) + "\n"; }

int SmallScriptWrites() {
  char path[64];
  for (int i = 0; i < kSmallFiles; ++i) {
    NumberedPath(path, "s-", i);
    if (!WriteFile(path, SmallScript(i), 0755)) return 50;
  }
  return WriteFile("/tmp/zz-small-done", "done\n", 0644) ? 0 : 51;
}

// Events by (container, path), without a scan per event: tens of thousands arrive.
class LoadLog {
 public:
  void Add(const v1::Event& ev) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(ev);
    if (ev.write().path().starts_with("/tmp/zz-")) {
      done_.insert(ev.write().path());
      cv_.notify_all();
    }
  }
  bool WaitForDone(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(120), [&] { return done_.size() >= n; });
  }
  std::vector<v1::Event> Snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<v1::Event> events_;
  std::set<std::string> done_;
};

// Events that carry a file's content: those the watcher classifies and may hash.
bool CarriesContent(const v1::FileWrite& w) {
  return w.kind() == "close_write" || w.kind() == "attrib" || w.kind() == "rename";
}

struct LoadParam {
  FanotifyMode mode;
  bool inline_small;  // FanotifyOptions::hash_inline_bytes left as it is, else 0
};

class FanotifyWatcherLoad : public ::testing::TestWithParam<LoadParam> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root";
    DW_SKIP_FS_MODE_BEFORE_6_5(GetParam().mode);
  }
};

TEST_P(FanotifyWatcherLoad, DrainKeepsUpWhileLargeSparseElfsAreHashed) {
  const FanotifyMode mode = GetParam().mode;
  OverlayFixture big_ov, small_ov;
  ASSERT_TRUE(big_ov.ok() && small_ov.ok()) << "overlay mount failed: " << strerror(errno);
  TestResolver big_res(big_ov.upper(), big_ov.mount_id(), "big-ctr");
  TestResolver small_res(small_ov.upper(), small_ov.mount_id(), "small-ctr");
  PairResolver resolver(&big_res, &small_res);
  LoadLog log;
  FanotifyOptions opt;
  opt.mode = mode;
  opt.filesystems = {big_ov.base(), small_ov.base()};
  if (!GetParam().inline_small) opt.hash_inline_bytes = 0;
  auto w = FanotifyWatcher::Open(opt, &resolver, [&](v1::Event& ev) { log.Add(ev); });
  ASSERT_TRUE(w.has_value()) << w.error();
  (*w)->Start();

  auto [big_pid, big_go] = ForkWaiting(big_ov.merged(), true, BigElfWrites);
  ASSERT_GT(big_pid, 0);
  ChildGuard big_guard(big_pid);
  big_res.AddPid(big_pid);
  auto [small_pid, small_go] = ForkWaiting(small_ov.merged(), true, SmallScriptWrites);
  ASSERT_GT(small_pid, 0);
  ChildGuard small_guard(small_pid);
  small_res.AddPid(small_pid);
  for (auto [id, pid] : {std::pair{"big-ctr", big_pid}, std::pair{"small-ctr", small_pid}}) {
    auto watched = (*w)->WatchContainerRoot(id, pid);
    ASSERT_TRUE(watched.has_value()) << watched.error();
  }
  const auto start = std::chrono::steady_clock::now();
  Go(big_go);
  Go(small_go);
  ASSERT_EQ(big_guard.Wait(), 0);
  ASSERT_EQ(small_guard.Wait(), 0);
  const auto written = std::chrono::steady_clock::now();
  // Each container's events arrive in order: its last write's event follows all the others.
  // (Lost to an overflow, they never come: the checks below then say what was lost.)
  EXPECT_TRUE(log.WaitForDone(2)) << "no event for a writer's last write";
  const auto arrived = std::chrono::steady_clock::now();
  (*w)->Stop();
  const FanotifyCounters& c = (*w)->counters();
  std::vector<v1::Event> evs = log.Snapshot();

  EXPECT_EQ(c.overflows.load(), 0u) << "the fanotify queue overflowed";
  // (errors are not checked: a filesystem mark sees the whole host, whose directories may be
  // gone before their events are read.)
  // Every file's close-write arrived; each executable's content event has its sha256 or was
  // counted as not hashed.
  std::vector<int> small_seen(kSmallFiles), big_seen(kBigFiles);
  uint64_t unhashed = 0, small_unhashed = 0, small_hashed = 0, big_hashed = 0;
  for (const v1::Event& e : evs) {
    const v1::FileWrite& fw = e.write();
    if (!CarriesContent(fw) || !fw.executable()) continue;
    if (fw.sha256().empty()) ++unhashed;
    const std::string& p = fw.path();
    if (p.starts_with("/tmp/s-")) {
      EXPECT_EQ(e.container_id(), "small-ctr");
      int i = std::atoi(p.c_str() + 7);
      ASSERT_TRUE(i >= 0 && i < kSmallFiles) << p;
      if (fw.kind() == "close_write") ++small_seen[i];
      if (fw.sha256().empty()) ++small_unhashed;
      if (!fw.sha256().empty()) {
        ++small_hashed;
        // An attrib (fchmod before close) may be read before the content was written.
        if (fw.kind() == "close_write") {
          EXPECT_EQ(fw.sha256(), Sha256(SmallScript(i))) << p;
        }
      }
    } else if (p.starts_with("/tmp/big-")) {
      EXPECT_EQ(e.container_id(), "big-ctr");
      int i = std::atoi(p.c_str() + 9);
      ASSERT_TRUE(i >= 0 && i < kBigFiles) << p;
      if (fw.kind() == "close_write") ++big_seen[i];
      if (!fw.sha256().empty()) ++big_hashed;
    }
  }
  EXPECT_EQ(std::count(small_seen.begin(), small_seen.end(), 0), 0) << "small files without an event";
  EXPECT_EQ(std::count(big_seen.begin(), big_seen.end(), 0), 0) << "big files without an event";
  EXPECT_EQ(unhashed, c.hash_queue_full.load() + c.hash_skipped.load());
  EXPECT_EQ(c.hash_skipped.load(), 0u);  // 60 MiB is under the 64 MiB cap
  // Hashed where they are read, small files never wait for room in the queue.
  if (GetParam().inline_small) {
    EXPECT_EQ(small_unhashed, 0u);
  }
  auto ms = [](auto d) {
    return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  };
  std::fprintf(stderr,
               "%s%s: %zu events; content events hashed: %llu small, %llu big; not hashed (queue "
               "full): %llu; overflows: %llu; written in %lld ms, last event %lld ms after\n",
               std::string(FanotifyModeName(mode)).c_str(),
               GetParam().inline_small ? "" : " (all hashed by the worker)", evs.size(),
               (unsigned long long)small_hashed, (unsigned long long)big_hashed,
               (unsigned long long)c.hash_queue_full.load(), (unsigned long long)c.overflows.load(),
               ms(written - start),
               ms(arrived - written));
}

INSTANTIATE_TEST_SUITE_P(Modes, FanotifyWatcherLoad,
                         ::testing::Values(LoadParam{FanotifyMode::kFidFilesystem, true},
                                           LoadParam{FanotifyMode::kFdFilesystem, true},
                                           LoadParam{FanotifyMode::kFdMount, true},
                                           LoadParam{FanotifyMode::kFidFilesystem, false}),
                         [](const auto& info) {
                           std::string n(FanotifyModeName(info.param.mode));
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n + (info.param.inline_small ? "" : "_worker_only");
                         });

}  // namespace
}  // namespace driftwatch::sensor
