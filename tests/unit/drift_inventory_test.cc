#include "lib/node/drift_inventory.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/inotify.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

namespace driftwatch {
namespace {

namespace fs = std::filesystem;

InventoryOptions Hashing(uint64_t hash_max) {
  InventoryOptions o;
  o.hash_max_bytes = hash_max;
  return o;
}

// A directory on a tmpfs where there is one: on this machine's ext4 an rmdir 10,000
// levels down takes milliseconds, so the chain's teardown would take half a minute.
std::string ScratchDir(const std::string& fallback) {
  struct statfs sfs;
  if (statfs("/dev/shm", &sfs) != 0 || sfs.f_type != TMPFS_MAGIC) return fallback;
  char tmpl[] = "/dev/shm/dw-drift.XXXXXX";
  return mkdtemp(tmpl) ? tmpl : fallback;
}

// Real layer trees in a temp dir, laid out as overlayfs leaves them (whiteouts are 0/0
// char devices, opaque dirs carry trusted.overlay.opaque=y): mknod and trusted.* xattrs
// need root.
class DriftInventoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "whiteouts (mknod c 0 0) and trusted xattrs need root";
    char tmpl[] = "/tmp/dw-drift.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const char* d : {"/l1", "/l2", "/u"}) fs::create_directory(dir_ + d);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
    if (!scratch_.empty()) fs::remove_all(scratch_);
  }
  void File(const std::string& rel, const std::string& data, mode_t mode = 0644) {
    fs::create_directories(fs::path(dir_ + rel).parent_path());
    std::ofstream(dir_ + rel) << data;
    ASSERT_EQ(chmod((dir_ + rel).c_str(), mode), 0);
  }
  void Dir(const std::string& rel, mode_t mode = 0755) {
    fs::create_directories(dir_ + rel);
    ASSERT_EQ(chmod((dir_ + rel).c_str(), mode), 0);
  }
  void Whiteout(const std::string& rel) {
    fs::create_directories(fs::path(dir_ + rel).parent_path());
    ASSERT_EQ(mknod((dir_ + rel).c_str(), S_IFCHR, makedev(0, 0)), 0) << rel;
  }
  void Opaque(const std::string& rel) {
    ASSERT_EQ(setxattr((dir_ + rel).c_str(), "trusted.overlay.opaque", "y", 1, 0), 0) << rel;
  }
  OverlayRoot Root() {
    OverlayRoot r;
    r.upperdir = dir_ + "/u";
    r.lowerdirs = {dir_ + "/l1", dir_ + "/l2"};
    return r;
  }
  // Root() with its upper layer on a tmpfs where there is one, for deep trees.
  OverlayRoot ScratchRoot() {
    OverlayRoot r = Root();
    if (scratch_.empty()) scratch_ = ScratchDir(r.upperdir);
    r.upperdir = scratch_;
    return r;
  }
  std::string dir_;
  std::string scratch_;
};

struct Want {
  DriftKind kind;
  char type;
  bool opaque = false;
};

TEST_F(DriftInventoryTest, EachCase) {
  // The image: l2 at the bottom, l1 above it.
  File("/l2/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
  File("/l2/etc/group", "root:x:0:\n");
  File("/l2/bin/sh", "\x7f" "ELF", 0755);
  File("/l2/opt/app/a", "a");
  File("/l2/opt/app/b", "b");
  File("/l2/opt/app/sub/c", "c");
  File("/l2/var/log/old.log", "old");
  Dir("/l2/usr/lib");
  Dir("/l2/tmp", 01777);
  File("/l2/hidden", "deleted by l1");
  File("/l2/srv/old", "hidden by l1's opaque srv");
  File("/l1/etc/hosts", "127.0.0.1 localhost\n");
  Whiteout("/l1/hidden");
  File("/l1/srv/s1", "s1");
  Opaque("/l1/srv");
  // The container's changes.
  File("/u/new.txt", "hello");                                    // added
  Dir("/u/tmp", 01777);  // copy-up keeps the image's mode
  File("/u/tmp/run.sh", "#!/bin/sh\necho hi\n", 0755);            // added executable
  File("/u/etc/passwd", "root:x:0:0::/root:/bin/sh\nx:x:1:1\n");  // modified (l2)
  File("/u/etc/hosts", "10.0.0.1 evil\n");                        // modified (l1)
  Whiteout("/u/etc/group");                                       // deleted
  Whiteout("/u/hidden");   // hides what l1 already hid: nothing to report
  Whiteout("/u/ghost");    // never in the image: nothing to report
  Whiteout("/u/srv/old");  // l1's opaque srv hides l2's old: nothing to report
  File("/u/srv/s1", "s1 changed");                                // modified (l1)
  Dir("/u/opt/app");                                              // rm -rf + mkdir
  Opaque("/u/opt/app");
  File("/u/opt/app/n", "new");
  File("/u/newdir/f", "f");                                       // mkdir -p + file
  File("/u/var/log/app.log", "log");  // var and var/log copied up only as parents
  Dir("/u/usr", 0700);                // chmod of an image directory
  ASSERT_EQ(symlink("/bin/sh", (dir_ + "/u/link").c_str()), 0);
  ASSERT_EQ(mkfifo((dir_ + "/u/tmp/fifo").c_str(), 0600), 0);

  auto inv = DriftInventory(Root(), Hashing(1 << 20));
  ASSERT_TRUE(inv.has_value()) << inv.error();
  EXPECT_FALSE(inv->truncation.truncated());
  const std::vector<DriftEntry>* got = &inv->entries;
  std::map<std::string, Want> want = {
      {"/etc/group", {DriftKind::kDeleted, 'f'}},
      {"/etc/hosts", {DriftKind::kModified, 'f'}},
      {"/etc/passwd", {DriftKind::kModified, 'f'}},
      {"/link", {DriftKind::kAdded, 'l'}},
      {"/new.txt", {DriftKind::kAdded, 'f'}},
      {"/newdir", {DriftKind::kAdded, 'd'}},
      {"/newdir/f", {DriftKind::kAdded, 'f'}},
      {"/opt/app", {DriftKind::kModified, 'd', true}},
      {"/opt/app/a", {DriftKind::kDeleted, 'f'}},
      {"/opt/app/b", {DriftKind::kDeleted, 'f'}},
      {"/opt/app/n", {DriftKind::kAdded, 'f'}},
      {"/opt/app/sub", {DriftKind::kDeleted, 'd'}},
      {"/srv/s1", {DriftKind::kModified, 'f'}},
      {"/tmp/fifo", {DriftKind::kAdded, 'p'}},
      {"/tmp/run.sh", {DriftKind::kAdded, 'f'}},
      {"/usr", {DriftKind::kModified, 'd'}},
      {"/var/log/app.log", {DriftKind::kAdded, 'f'}},
  };
  std::vector<std::string> paths;
  for (const DriftEntry& e : *got) paths.push_back(e.path);
  std::vector<std::string> want_paths;
  for (const auto& [p, w] : want) want_paths.push_back(p);
  ASSERT_EQ(paths, want_paths);  // sorted, and nothing else (no /var, /tmp, /opt, /hidden)
  for (const DriftEntry& e : *got) {
    SCOPED_TRACE(e.path);
    const Want& w = want[e.path];
    EXPECT_EQ(e.kind, w.kind);
    EXPECT_EQ(e.type, w.type);
    EXPECT_EQ(e.opaque_dir, w.opaque);
    if (e.path == "/tmp/run.sh") {
      EXPECT_TRUE(e.executable);
      EXPECT_EQ(e.mode, 0755u);
      EXPECT_EQ(e.size, 18u);
      EXPECT_EQ(e.sha256_hex, "299001868fb8c02fd431c336c6d058f5558c5dff5b5af5e6fe04b870a6a9cbba");
    } else {
      EXPECT_FALSE(e.executable);
      EXPECT_EQ(e.sha256_hex, "");
    }
  }
  EXPECT_EQ(got->front().mode, 0644u);  // deleted /etc/group: the image's mode
  EXPECT_EQ(got->front().size, 10u);
}

TEST_F(DriftInventoryTest, HashCapAndTypeChange) {
  File("/l2/data", "a file in the image");
  File("/u/big", std::string(4096, 'x'), 0755);
  Dir("/u/data");  // a file replaced by a directory
  auto inv = DriftInventory(Root(), Hashing(100));
  ASSERT_TRUE(inv.has_value()) << inv.error();
  const std::vector<DriftEntry>* got = &inv->entries;
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].path, "/big");
  EXPECT_TRUE((*got)[0].executable);
  EXPECT_EQ((*got)[0].sha256_hex, "");  // over the cap
  EXPECT_EQ((*got)[1].path, "/data");
  EXPECT_EQ((*got)[1].kind, DriftKind::kModified);
  EXPECT_EQ((*got)[1].type, 'd');
}

TEST_F(DriftInventoryTest, Errors) {
  OverlayRoot r = Root();
  r.lowerdirs.push_back(dir_ + "/missing");
  auto got = DriftInventory(r, Hashing(0));
  ASSERT_FALSE(got.has_value());
  EXPECT_NE(got.error().message().find("missing"), std::string::npos) << got.error();
  r = Root();
  r.upperdir.clear();
  EXPECT_FALSE(DriftInventory(r, Hashing(0)).has_value());
  r = Root();
  r.lowerdirs = {"relative/dir"};
  EXPECT_FALSE(DriftInventory(r, Hashing(0)).has_value());
  // An empty upper layer: no drift.
  got = DriftInventory(Root(), Hashing(0));
  ASSERT_TRUE(got.has_value()) << got.error();
  EXPECT_TRUE(got->entries.empty());
}


// A chain of `levels` directories named `name` below `parent`, made relative to fds: its
// paths are far longer than PATH_MAX.
void MakeChain(const std::string& parent, int levels, const std::string& name) {
  int fd = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < levels; ++i) {
    ASSERT_EQ(mkdirat(fd, name.c_str(), 0755), 0) << "level " << i;
    int next = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(next, 0) << "level " << i;
    close(fd);
    fd = next;
  }
  close(fd);
}

// Removes such a chain from the bottom up, holding one fd at a time ("..": the parent),
// where std::filesystem::remove_all would go by path and keep a directory open per level.
void RemoveChain(const std::string& parent, const std::string& name) {
  int fd = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  int levels = 0;
  for (int next; (next = openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0;
       ++levels) {
    close(fd);
    fd = next;
  }
  for (; levels > 0; --levels) {
    int up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(up, 0);
    close(fd);
    fd = up;
    ASSERT_EQ(unlinkat(fd, name.c_str(), AT_REMOVEDIR), 0);
  }
  close(fd);
}

// Fails the test binary (SIGALRM) if `fn` does not return within `seconds`: an open of a
// FIFO would block for good.
template <typename Fn>
auto WithTimeout(unsigned seconds, Fn&& fn) {
  alarm(seconds);
  auto r = fn();
  alarm(0);
  return r;
}

TEST_F(DriftInventoryTest, TenThousandLevelsDeep) {
  const OverlayRoot root = ScratchRoot();
  MakeChain(root.upperdir, 10000, "d");
  auto inv = WithTimeout(60, [&] { return DriftInventory(root, Hashing(0)); });
  RemoveChain(root.upperdir, "d");
  ASSERT_TRUE(inv.has_value()) << inv.error();
  const InventoryTruncation& t = inv->truncation;
  EXPECT_TRUE(t.truncated());
  EXPECT_TRUE(t.depth);
  EXPECT_FALSE(t.entries);
  EXPECT_FALSE(t.path_bytes);
  EXPECT_EQ(t.max_depth, 128u);
  // The 128 levels entered, and the 129th listed but not entered.
  EXPECT_EQ(inv->entries.size(), 129u);
  EXPECT_EQ(t.dirs_not_entered, 1u);
  std::string deepest;
  for (int i = 0; i < 129; ++i) deepest += "/d";
  EXPECT_EQ(t.first_not_entered, deepest);
  EXPECT_EQ(inv->entries.back().path, deepest);
  EXPECT_EQ(TruncationText(t),
            "incomplete: 1 directory below the depth cap (128 levels) not entered, the first " +
                deepest);
}

TEST_F(DriftInventoryTest, LongNamesStopAtThePathBytesCap) {
  // The case: nested 255-byte names, each level's path longer than the last.
  const OverlayRoot root = ScratchRoot();
  MakeChain(root.upperdir, 1000, std::string(255, 'n'));
  InventoryOptions o;
  o.max_depth = 2000;
  o.max_path_bytes = 1 << 20;
  auto inv = DriftInventory(root, o);
  RemoveChain(root.upperdir, std::string(255, 'n'));
  ASSERT_TRUE(inv.has_value()) << inv.error();
  const InventoryTruncation& t = inv->truncation;
  EXPECT_TRUE(t.path_bytes);
  EXPECT_FALSE(t.depth);
  uint64_t sum = 0;
  for (const DriftEntry& e : inv->entries) sum += e.path.size();
  EXPECT_EQ(sum, t.path_bytes_listed);
  EXPECT_LE(sum, o.max_path_bytes);
  // Levels of 256 bytes each: n levels hold 256 * n(n+1)/2 bytes of paths; 90 fit in 1 MiB.
  EXPECT_EQ(inv->entries.size(), 90u);
  EXPECT_NE(TruncationText(t).find("path-bytes cap (1048320 bytes of paths listed, cap 1048576)"),
            std::string::npos)
      << TruncationText(t);
}

// The walk keeps its directories on the heap: 1,000 levels walked whole on a 256 KiB
// stack (a recursive walk needs over 1 KiB of stack per level).
TEST_F(DriftInventoryTest, DeepWalkOnASmallStack) {
  struct rlimit rl;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 1200) {
    if (rl.rlim_max < 1200) GTEST_SKIP() << "needs 1200 fds (an fd per level)";
    rl.rlim_cur = 1200;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  MakeChain(ScratchRoot().upperdir, 1000, "d");
  struct Job {
    OverlayRoot root;
    InventoryOptions opt;
    Result<DriftInventoryResult> result = std::unexpected(Error::NotFound("not run"));
  } job{ScratchRoot(), Hashing(0)};
  job.opt.max_depth = 1000;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, 256 << 10), 0);
  pthread_t th;
  ASSERT_EQ(pthread_create(
                &th, &attr,
                [](void* p) -> void* {
                  auto* j = static_cast<Job*>(p);
                  j->result = DriftInventory(j->root, j->opt);
                  return nullptr;
                },
                &job),
            0);
  pthread_join(th, nullptr);
  pthread_attr_destroy(&attr);
  RemoveChain(job.root.upperdir, "d");
  ASSERT_TRUE(job.result.has_value()) << job.result.error();
  EXPECT_FALSE(job.result->truncation.truncated()) << TruncationText(job.result->truncation);
  EXPECT_EQ(job.result->entries.size(), 1000u);
}

TEST_F(DriftInventoryTest, ManyEntries) {
  const OverlayRoot root = ScratchRoot();
  for (int i = 0; i < 20000; ++i) {
    int fd = open((root.upperdir + "/f" + std::to_string(i)).c_str(),
                  O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
  }
  auto all = DriftInventory(root, Hashing(0));  // under the default caps: whole
  ASSERT_TRUE(all.has_value()) << all.error();
  EXPECT_FALSE(all->truncation.truncated());
  EXPECT_EQ(all->entries.size(), 20000u);
  EXPECT_EQ(all->truncation.entries_examined, 20000u);

  InventoryOptions o;
  o.max_entries = 5000;
  auto capped = DriftInventory(root, o);
  ASSERT_TRUE(capped.has_value()) << capped.error();
  EXPECT_TRUE(capped->truncation.entries);
  EXPECT_EQ(capped->truncation.entries_examined, 5000u);
  EXPECT_EQ(capped->entries.size(), 5000u);
  EXPECT_EQ(TruncationText(capped->truncation),
            "incomplete: the walk stopped at the entry cap (5000 entries examined, cap 5000)");
}

// What the walk opened, by name, in a directory: inotify reports real opens (IN_OPEN),
// never O_PATH ones.
class OpenWatch {
 public:
  explicit OpenWatch(const std::vector<std::string>& dirs) {
    fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    for (const std::string& d : dirs) inotify_add_watch(fd_, d.c_str(), IN_OPEN);
  }
  ~OpenWatch() { close(fd_); }
  std::set<std::string> Opened() {
    std::set<std::string> names;
    alignas(struct inotify_event) char buf[65536];
    for (;;) {
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) break;
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<struct inotify_event*>(p);
        if (ev->len > 0) names.insert(ev->name);
        p += sizeof(struct inotify_event) + ev->len;
      }
    }
    return names;
  }

 private:
  int fd_ = -1;
};

// A container replaces a file between the walk's listing and its hashing (the hook runs
// exactly there): with a FIFO, a device node, a symlink to a FIFO or another file. Nothing
// but the listed regular file is ever opened, and no other content is hashed.
TEST_F(DriftInventoryTest, SwappedFileNeverOpened) {
  const std::string stage = dir_ + "/stage";
  fs::create_directory(stage);
  struct Case {
    const char* what;
    std::function<void(const std::string& at)> make;  // makes the replacement at `at`
  };
  const std::vector<Case> cases = {
      {"nothing", nullptr},
      {"fifo", [](const std::string& at) { ASSERT_EQ(mkfifo(at.c_str(), 0644), 0); }},
      {"device node",  // /dev/null's numbers
       [](const std::string& at) {
         ASSERT_EQ(mknod(at.c_str(), S_IFCHR | 0644, makedev(1, 3)), 0);
       }},
      {"symlink to a fifo",
       [&](const std::string& at) {
         ASSERT_EQ(mkfifo((stage + "/target").c_str(), 0644), 0);
         ASSERT_EQ(symlink((stage + "/target").c_str(), at.c_str()), 0);
       }},
      {"another file",
       [](const std::string& at) {
         std::ofstream(at) << "#!/bin/sh\necho other\n";
         ASSERT_EQ(chmod(at.c_str(), 0755), 0);
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    fs::remove_all(dir_ + "/u");
    fs::remove_all(stage);
    fs::create_directory(stage);
    File("/u/app", "#!/bin/sh\necho app\n", 0755);
    InventoryOptions o;
    o.before_open = [&](const std::string& path) {
      if (path != "/app" || !c.make) return;
      c.make(stage + "/swap");
      ASSERT_EQ(rename((stage + "/swap").c_str(), (dir_ + "/u/app").c_str()), 0);
    };
    OpenWatch watch({dir_ + "/u", stage});
    auto inv = WithTimeout(30, [&] { return DriftInventory(Root(), o); });
    ASSERT_TRUE(inv.has_value()) << inv.error();
    ASSERT_EQ(inv->entries.size(), 1u);
    const DriftEntry& e = inv->entries[0];
    EXPECT_EQ(e.path, "/app");
    EXPECT_EQ(e.type, 'f');  // as listed
    EXPECT_TRUE(e.executable);
    std::set<std::string> opened = watch.Opened();
    if (!c.make) {
      // The test can see an open: the file as listed is opened and hashed.
      EXPECT_EQ(opened.count("app"), 1u);
      EXPECT_EQ(e.sha256_hex.size(), 64u);
    } else {
      EXPECT_EQ(opened.count("app"), 0u);
      EXPECT_EQ(opened.count("target"), 0u);
      EXPECT_EQ(e.sha256_hex, "");
    }
  }
}

}  // namespace
}  // namespace driftwatch
