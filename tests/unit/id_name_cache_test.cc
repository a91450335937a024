#include "sensor/id_name_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace driftwatch::sensor {
namespace {

namespace fs = std::filesystem;

// A fake container root in a temp dir: etc/passwd and etc/group as a hostile image might
// make them.
class IdNameCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dw-idnames-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    fs::create_directories(root_ / "etc");
  }
  void TearDown() override { fs::remove_all(root_); }
  void Write(const std::string& rel, const std::string& text) {
    fs::remove(root_ / rel);
    std::ofstream(root_ / rel, std::ios::binary) << text;
  }
  std::function<int()> Opener() {
    return [this] { return open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC); };
  }
  fs::path root_;
};

TEST_F(IdNameCacheTest, ReadsTheRootsFilesAndRereadsOnChange) {
  Write("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n");
  Write("etc/group", "root:x:0:\nstaff:x:50:\n");
  IdNameCache cache(/*recheck_ns=*/10);
  auto n = cache.Get("c1", Opener(), 100);
  ASSERT_TRUE(n.users && n.groups);
  EXPECT_EQ(n.users->Find(1000), "app");
  EXPECT_EQ(n.groups->Find(50), "staff");
  EXPECT_EQ(cache.stats().reads, 2u);
  // Within the recheck interval the root is not even opened.
  int opened = 0;
  n = cache.Get("c1", [&] { ++opened; return -1; }, 105);
  EXPECT_EQ(opened, 0);
  EXPECT_EQ(n.users->Find(1000), "app");
  // Unchanged files are not read again; a changed one is.
  cache.Get("c1", Opener(), 200);
  EXPECT_EQ(cache.stats().reads, 2u);
  Write("etc/passwd", "root:x:0:0::/root:/bin/sh\nother:x:1000:1000::/:/bin/sh\n");
  n = cache.Get("c1", Opener(), 300);
  EXPECT_EQ(n.users->Find(1000), "other");
  EXPECT_EQ(cache.stats().reads, 3u);
  // A root that cannot be opened: no names.
  n = cache.Get("c2", [] { return -1; }, 300);
  EXPECT_EQ(n.users, nullptr);
}

TEST_F(IdNameCacheTest, RefusesWhatIsNotARegularFileInTheRoot) {
  // A FIFO would block a reader forever; a symlink out of the root must stay inside it.
  ASSERT_EQ(mkfifo((root_ / "etc/passwd").c_str(), 0644), 0);
  fs::create_symlink("/etc/../etc/hostname", root_ / "etc/group");  // resolves in the root: absent
  IdNameCache cache;
  auto n = cache.Get("c", Opener(), 1);
  EXPECT_EQ(n.users, nullptr);
  EXPECT_EQ(n.groups, nullptr);
  EXPECT_GE(cache.stats().refused, 1u);
  // A file over the cap names no one.
  fs::remove(root_ / "etc/passwd");
  Write("etc/passwd", std::string(kMaxIdFileBytes, '#') + "\nroot:x:0:0:::\n");
  IdNameCache big;
  EXPECT_EQ(big.Get("c", Opener(), 1).users, nullptr);
  // A symlink that stays inside the root is followed there.
  fs::remove(root_ / "etc/passwd");
  Write("etc/real", "inside:x:3:3:::\n");
  fs::create_symlink("/etc/real", root_ / "etc/passwd");
  IdNameCache in;
  auto m = in.Get("c", Opener(), 1);
  ASSERT_NE(m.users, nullptr);
  EXPECT_EQ(m.users->Find(3), "inside");
}

}  // namespace
}  // namespace driftwatch::sensor
