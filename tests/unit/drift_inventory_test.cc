#include "lib/drift_inventory.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace driftwatch {
namespace {

namespace fs = std::filesystem;

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
  std::string dir_;
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

  auto got = DriftInventory(Root(), 1 << 20);
  ASSERT_TRUE(got.has_value()) << got.error();
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
  auto got = DriftInventory(Root(), 100);
  ASSERT_TRUE(got.has_value()) << got.error();
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
  auto got = DriftInventory(r, 0);
  ASSERT_FALSE(got.has_value());
  EXPECT_NE(got.error().find("missing"), std::string::npos) << got.error();
  r = Root();
  r.upperdir.clear();
  EXPECT_FALSE(DriftInventory(r, 0).has_value());
  r = Root();
  r.lowerdirs = {"relative/dir"};
  EXPECT_FALSE(DriftInventory(r, 0).has_value());
  // An empty upper layer: no drift.
  got = DriftInventory(Root(), 0);
  ASSERT_TRUE(got.has_value()) << got.error();
  EXPECT_TRUE(got->empty());
}

}  // namespace
}  // namespace driftwatch
