// LookUpInLayer (sensor/prevent.h): whether an exec'd file is the one a layer directory
// holds at a path, on real directories: a file, a hard link, a file of the same name that
// is another inode, a symlink on the way (not followed), a name that leaves the layer.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "sensor/prevent.h"

namespace driftwatch::sensor {
namespace {

namespace fs = std::filesystem;

class LayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dw-layer-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    fs::create_directories(root_ / "upper/tmp");
    fs::create_directories(root_ / "lower/bin");
    Write(root_ / "upper/tmp/dropped");
    Write(root_ / "lower/bin/sh");
    Write(root_ / "upper/bin-sh-copy");
    layer_ = open((root_ / "upper").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(layer_, 0);
  }
  void TearDown() override {
    close(layer_);
    fs::remove_all(root_);
  }
  static void Write(const fs::path& p) { std::ofstream(p) << "\x7f" "ELF" << p.string(); }
  struct stat Stat(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
    return st;
  }

  fs::path root_;
  int layer_ = -1;
};

TEST_F(LayerTest, TheFileAtItsPath) {
  const struct stat st = Stat(root_ / "upper/tmp/dropped");
  EXPECT_EQ(LookUpInLayer(layer_, "/tmp/dropped", st), LayerLookup::kFound);
  EXPECT_EQ(LookUpInLayer(layer_, "tmp/dropped", st), LayerLookup::kFound);
  EXPECT_EQ(LookUpInLayer(layer_, "//tmp/dropped", st), LayerLookup::kFound);
}

TEST_F(LayerTest, AHardLinkIsTheSameFile) {
  fs::create_hard_link(root_ / "upper/tmp/dropped", root_ / "upper/tmp/link");
  const struct stat st = Stat(root_ / "upper/tmp/dropped");
  EXPECT_EQ(LookUpInLayer(layer_, "/tmp/link", st), LayerLookup::kFound);
}

TEST_F(LayerTest, MissingAndOtherFiles) {
  const struct stat lower = Stat(root_ / "lower/bin/sh");
  EXPECT_EQ(LookUpInLayer(layer_, "/bin/sh", lower), LayerLookup::kMissing);
  EXPECT_EQ(LookUpInLayer(layer_, "/tmp/dropped/x", lower), LayerLookup::kMissing);  // ENOTDIR
  // Another inode at the path: not this file.
  EXPECT_EQ(LookUpInLayer(layer_, "/bin-sh-copy", lower), LayerLookup::kOther);
  // The layer's root is no file to run.
  EXPECT_EQ(LookUpInLayer(layer_, "/", lower), LayerLookup::kOther);
  EXPECT_EQ(LookUpInLayer(layer_, "", lower), LayerLookup::kOther);
}

TEST_F(LayerTest, SymlinksAndDotDotStayOutside) {
  // A directory the container swapped for a symlink to the host's view of the lower layer:
  // the lookup must not follow it (it would find the lower file and call it the upper's).
  fs::create_directory_symlink(root_ / "lower/bin", root_ / "upper/bin");
  const struct stat lower = Stat(root_ / "lower/bin/sh");
  EXPECT_NE(LookUpInLayer(layer_, "/bin/sh", lower), LayerLookup::kFound);
  // The last component a symlink to the file: not followed either.
  fs::create_symlink(root_ / "lower/bin/sh", root_ / "upper/tmp/sh");
  EXPECT_NE(LookUpInLayer(layer_, "/tmp/sh", lower), LayerLookup::kFound);
  // ".." cannot climb out of the layer.
  EXPECT_NE(LookUpInLayer(layer_, "/../lower/bin/sh", lower), LayerLookup::kFound);
  EXPECT_NE(LookUpInLayer(layer_, "/tmp/../../lower/bin/sh", lower), LayerLookup::kFound);
}

TEST(PreventMode, Names) {
  EXPECT_EQ(ParsePreventMode("off"), PreventMode::kOff);
  EXPECT_EQ(ParsePreventMode("drift"), PreventMode::kDrift);
  EXPECT_EQ(ParsePreventMode("Drift"), std::nullopt);
  EXPECT_EQ(ParsePreventMode(""), std::nullopt);
  EXPECT_EQ(PreventModeName(PreventMode::kDrift), "drift");
  EXPECT_EQ(PreventModeName(PreventMode::kOff), "off");
}

TEST(PreventEvents, Names) {
  EXPECT_EQ(ParsePreventEvents("auto"), PreventEvents::kAuto);
  EXPECT_EQ(ParsePreventEvents("exec"), PreventEvents::kExec);
  EXPECT_EQ(ParsePreventEvents("open"), PreventEvents::kOpen);
  EXPECT_EQ(ParsePreventEvents("perm"), std::nullopt);
}

// A thread in another syscall, and one gone, are not in execve (the positive side needs a
// thread held inside execve: tests/integration/prevent_test.sh, --prevent-events open).
TEST(PreventEvents, ThreadInExecReadsTheSyscall) {
  EXPECT_FALSE(ThreadInExec(gettid(), true));  // here: inside read()
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pause();
    _exit(0);
  }
  usleep(50000);  // let it reach pause()
  EXPECT_FALSE(ThreadInExec(child, true));
  EXPECT_FALSE(ThreadInExec(child, false));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_FALSE(ThreadInExec(child, true));  // reaped: no /proc entry
}

// Before 6.5 overlayfs hides container file I/O from filesystem marks: the release decides
// which marks the watcher and the guard take.
TEST(KernelRelease, OverlayIoReachesFilesystemMarks) {
  EXPECT_FALSE(OverlayIoReachesFilesystemMarks("6.1.0-57-cloud-amd64"));
  EXPECT_FALSE(OverlayIoReachesFilesystemMarks("5.15.0-91-generic"));
  EXPECT_FALSE(OverlayIoReachesFilesystemMarks("6.4.16"));
  EXPECT_TRUE(OverlayIoReachesFilesystemMarks("6.5.0"));
  EXPECT_TRUE(OverlayIoReachesFilesystemMarks("6.18.44-fc-v1272"));
  EXPECT_TRUE(OverlayIoReachesFilesystemMarks("7.0-rc1"));
  EXPECT_TRUE(KernelAtLeast(5, 0, "5.0.21"));
  EXPECT_FALSE(KernelAtLeast(5, 0, "4.19.0-26-amd64"));
  // A release that does not parse is taken for a current kernel.
  EXPECT_TRUE(KernelAtLeast(6, 5, "unknown"));
}

}  // namespace
}  // namespace driftwatch::sensor
