#include "lib/node/mountinfo.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace driftwatch {
namespace {

// Lines as this machine's kernel (6.18) printed them; the overlay ones come from mounts
// made with awkward layer names: "l:1", "l,2", "l 3", "l\4" (legacy mount(2) with
// overlay escapes) and "a:b", "c,d" added with fsconfig("lowerdir+").
const char kMountinfo[] =
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000\n"
    "47 27 0:39 / /tmp/ovl/m rw,relatime - overlay overlay "
    "rw,lowerdir=/tmp/ovl/l\\134:1:/tmp/ovl/l\\134\\0542:/tmp/ovl/l\\0403:/tmp/ovl/"
    "l\\134\\1344,upperdir=/tmp/ovl/u,workdir=/tmp/ovl/w,uuid=on\n"
    "45 27 0:40 / /tmp/ovl/m2 rw,relatime - overlay none "
    "rw,lowerdir+=/tmp/ovl/a:b,lowerdir+=/tmp/ovl/c\\054d,upperdir=/tmp/ovl/u,workdir=/tmp/"
    "ovl/w,uuid=on\n"
    "44 27 0:41 / /tmp/with\\040space rw,relatime shared:5 master:1 - overlay overlay "
    "rw,lowerdir=/l,upperdir=/tmp/ovl/u\\134\\054x,workdir=/tmp/ovl/w\\134:y,uuid=on\n"
    "48 27 0:42 / /tmp/ro ro,relatime - overlay overlay ro,lowerdir=/a:/b::/data1::/data2\n";

TEST(MountinfoTest, ParsesFieldsAndEscapes) {
  std::string err = "stale";
  auto m = ParseMountinfo(kMountinfo, &err);
  EXPECT_EQ(err, "");
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m[0].id, 22);
  EXPECT_EQ(m[0].parent, 27);
  EXPECT_EQ(m[0].major, 0u);
  EXPECT_EQ(m[0].minor, 21u);
  EXPECT_EQ(m[0].root, "/");
  EXPECT_EQ(m[0].mount_point, "/proc");
  EXPECT_EQ(m[0].fstype, "proc");
  EXPECT_EQ(m[0].source, "proc");
  EXPECT_EQ(m[1].super_options, "rw,mode=600,ptmxmode=000");
  EXPECT_EQ(m[4].mount_point, "/tmp/with space");  // \040 decoded
  EXPECT_EQ(m[4].options, "rw,relatime");          // optional fields skipped
  EXPECT_EQ(m[4].fstype, "overlay");
}

TEST(MountinfoTest, OverlayLegacyLowerdirEscapes) {
  auto m = ParseMountinfo(kMountinfo, nullptr);
  ASSERT_EQ(m.size(), 6u);
  EXPECT_FALSE(OverlayFromMount(m[0]).has_value());
  auto o = OverlayFromMount(m[2]);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->dev_major, 0u);
  EXPECT_EQ(o->dev_minor, 39u);
  EXPECT_EQ(o->mount_id, 47);
  EXPECT_EQ(o->lowerdirs, (std::vector<std::string>{"/tmp/ovl/l:1", "/tmp/ovl/l,2",
                                                    "/tmp/ovl/l 3", "/tmp/ovl/l\\4"}));
  EXPECT_EQ(o->upperdir, "/tmp/ovl/u");
  EXPECT_EQ(o->workdir, "/tmp/ovl/w");
  EXPECT_FALSE(o->read_only);
}

TEST(MountinfoTest, OverlayLowerdirPlusIsVerbatim) {
  auto m = ParseMountinfo(kMountinfo, nullptr);
  auto o = OverlayFromMount(m[3]);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->lowerdirs, (std::vector<std::string>{"/tmp/ovl/a:b", "/tmp/ovl/c,d"}));
}

TEST(MountinfoTest, OverlayUpperEscapesAndReadOnlyDataLayers) {
  auto m = ParseMountinfo(kMountinfo, nullptr);
  auto o = OverlayFromMount(m[4]);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->upperdir, "/tmp/ovl/u,x");
  EXPECT_EQ(o->workdir, "/tmp/ovl/w:y");
  auto ro = OverlayFromMount(m[5]);
  ASSERT_TRUE(ro.has_value());
  EXPECT_TRUE(ro->read_only);
  EXPECT_EQ(ro->lowerdirs, (std::vector<std::string>{"/a", "/b"}));  // data-only left out
  EXPECT_EQ(SplitLowerdirOption("/x\\:y:/z"), (std::vector<std::string>{"/x:y", "/z"}));
}

TEST(MountinfoTest, MalformedLinesNameTheLine) {
  struct Bad {
    const char* text;
    const char* why;
  };
  for (const Bad& b : {
           Bad{"22 27 0:21 / /proc rw,relatime - proc proc rw\nfoo bar\n", "line 2: "},
           Bad{"22 27 0:21 / /proc rw - proc proc\n", "line 1: fewer than 3"},
           Bad{"22 27 0:21 / /proc rw proc proc rw\n", "line 1: no ' - '"},
           Bad{"x 27 0:21 / /proc rw - proc proc rw\n", "line 1: bad mount"},
           Bad{"22 27 021 / /proc rw - proc proc rw\n", "line 1: bad major:minor"},
           Bad{"\n\n22 27 0:21 / /proc rw - proc proc rw\n1 2\n", "line 4: "},
       }) {
    std::string err;
    ParseMountinfo(b.text, &err);
    EXPECT_EQ(err.rfind(b.why, 0), 0u) << b.text << " -> " << err;
  }
}

TEST(MountinfoTest, RootOverlayOfPidErrors) {
  // This test process's root is not an overlay here, nor is PID 0 a process.
  auto none = RootOverlayOfPid(0);
  ASSERT_FALSE(none.has_value());
  EXPECT_NE(none.error().message().find("no such process"), std::string::npos) << none.error();
  EXPECT_EQ(none.error().code(), ErrorCode::kNotFound);
  auto self = RootOverlayOfPid(getpid());
  if (self.has_value()) GTEST_SKIP() << "running inside an overlay root";
  EXPECT_NE(self.error().message().find("is not an overlay"), std::string::npos) << self.error();
}

TEST(MountinfoTest, RuntimeRootOverlay) {
  // containerd's shim mounts each bundle's rootfs in the host's namespace (lines as this
  // machine printed them, shortened), CRI-O at the spec's absolute root.path.
  const std::string id = "4ad85540d522683811670a31905511c8008f5f122e531d7746180b488c6249f4";
  const std::string other = "5c7630a9e52049acca68c2258498b592dd10245998f5ed33da088f5434834933";
  const std::string task = "/run/containerd/io.containerd.runtime.v2.task/k8s.io/";
  const std::string snap = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/";
  const std::string text =
      "48 27 0:41 / " + task + other + "/rootfs rw,relatime - overlay overlay rw,lowerdir=" +
      snap + "1/fs,upperdir=" + snap + "3/fs,workdir=" + snap + "3/work\n" +
      "60 27 0:50 / " + task + id + "/rootfs rw,relatime - overlay overlay rw,lowerdir=" +
      snap + "2/fs:" + snap + "1/fs,upperdir=" + snap + "4/fs,workdir=" + snap + "4/work\n" +
      "61 27 0:51 / " + task + "x" + id +
      "/rootfs rw - overlay overlay rw,lowerdir=/a,upperdir=/b\n" +
      "62 27 0:52 / /var/lib/containers/storage/overlay/9f1e/merged rw - overlay overlay "
      "rw,lowerdir=/l/1,upperdir=/l/9f1e/diff,workdir=/l/9f1e/work\n" +
      "63 27 0:53 / " + task + "abc/rootfs rw - tmpfs tmpfs rw\n";
  std::string err;
  const std::vector<MountEntry> mounts = ParseMountinfo(text, &err);
  ASSERT_EQ(err, "");
  auto c = RuntimeRootOverlay(mounts, id, "rootfs");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->dev_major, 0u);
  EXPECT_EQ(c->dev_minor, 50u);
  EXPECT_EQ(c->upperdir, snap + "4/fs");
  EXPECT_EQ(c->lowerdirs, (std::vector<std::string>{snap + "2/fs", snap + "1/fs"}));
  EXPECT_FALSE(c->read_only);
  // "" is containerd's "rootfs"; "./rootfs/" the same path.
  ASSERT_TRUE(RuntimeRootOverlay(mounts, id, "").has_value());
  EXPECT_EQ(RuntimeRootOverlay(mounts, id, "./rootfs/")->dev_minor, 50u);
  EXPECT_EQ(RuntimeRootOverlay(mounts, other, "")->dev_minor, 41u);
  auto crio =
      RuntimeRootOverlay(mounts, "anything", "/var/lib/containers/storage/overlay/9f1e/merged");
  ASSERT_TRUE(crio.has_value());
  EXPECT_EQ(crio->upperdir, "/l/9f1e/diff");
  // Refused: an unknown id, an id as part of another directory's name (the "x..." mount is
  // not this container's), a path out of the bundle, a mount that is no overlay, an id
  // with a slash.
  EXPECT_FALSE(RuntimeRootOverlay(mounts, "0123", "rootfs").has_value());
  EXPECT_FALSE(RuntimeRootOverlay(mounts, id.substr(1), "rootfs").has_value());
  EXPECT_FALSE(RuntimeRootOverlay(mounts, id, "../" + other + "/rootfs").has_value());
  EXPECT_FALSE(RuntimeRootOverlay(mounts, id, "..").has_value());
  EXPECT_FALSE(RuntimeRootOverlay(mounts, "abc", "rootfs").has_value());
  EXPECT_FALSE(RuntimeRootOverlay(mounts, "k8s.io/" + id, "rootfs").has_value());
  EXPECT_FALSE(RuntimeRootOverlay(mounts, "", "rootfs").has_value());
}

class UpperLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dw-upper.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& rel) { std::ofstream(dir_ + rel) << "x"; }
  std::string dir_;
};

TEST_F(UpperLayerTest, IsInUpperLayer) {
  std::filesystem::create_directories(dir_ + "/etc/sub");
  Write("/etc/passwd");
  Write("/etc/sub/f");
  ASSERT_EQ(symlink("/etc", (dir_ + "/link").c_str()), 0);
  ASSERT_EQ(symlink("/nonexistent", (dir_ + "/etc/dangling").c_str()), 0);
  EXPECT_TRUE(IsInUpperLayer(dir_, "/etc/passwd"));
  EXPECT_TRUE(IsInUpperLayer(dir_, "//etc/./sub/f"));
  EXPECT_TRUE(IsInUpperLayer(dir_, "/etc"));
  EXPECT_TRUE(IsInUpperLayer(dir_, "/link"));           // the symlink itself (lstat)
  EXPECT_TRUE(IsInUpperLayer(dir_, "/etc/dangling"));   // never resolved
  EXPECT_FALSE(IsInUpperLayer(dir_, "/link/passwd"));   // not through a symlink
  EXPECT_FALSE(IsInUpperLayer(dir_, "/etc/group"));
  EXPECT_FALSE(IsInUpperLayer(dir_, "/etc/passwd/x"));
  EXPECT_FALSE(IsInUpperLayer(dir_, "/etc/sub/../passwd"));
  EXPECT_FALSE(IsInUpperLayer(dir_, "etc/passwd"));
  EXPECT_FALSE(IsInUpperLayer(dir_, "/"));
  EXPECT_FALSE(IsInUpperLayer(dir_ + "/missing", "/etc/passwd"));
  if (geteuid() != 0) GTEST_SKIP() << "whiteouts need mknod (root)";
  ASSERT_EQ(mknod((dir_ + "/etc/shadow").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  EXPECT_FALSE(IsInUpperLayer(dir_, "/etc/shadow"));  // whiteout: deleted, not in upper
  ASSERT_EQ(mknod((dir_ + "/etc/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  EXPECT_TRUE(IsInUpperLayer(dir_, "/etc/null"));  // a real device node
}

// How the sensor looks up a container's file in its upper layer or volume source: the
// container writes every component below that directory, so no symlink of its may lead the
// host's lookup elsewhere (a host file with the very inode written would be found there).
TEST_F(UpperLayerTest, StatBeneathFollowsNoSymlink) {
  std::filesystem::create_directories(dir_ + "/etc/sub");
  Write("/etc/sub/f");
  const std::string host = dir_ + "/host";  // a host directory outside the layer
  std::filesystem::create_directories(host);
  std::ofstream(host + "/secret") << "s";
  std::filesystem::create_directories(dir_ + "/layer");
  ASSERT_EQ(symlink(host.c_str(), (dir_ + "/layer/out").c_str()), 0);
  ASSERT_EQ(symlink((dir_ + "/etc").c_str(), (dir_ + "/layer/etc").c_str()), 0);
  struct stat st, want;
  ASSERT_EQ(stat((host + "/secret").c_str(), &want), 0);
  // Through the host's lookup, the container's symlink reaches the host file.
  ASSERT_EQ(lstat((dir_ + "/layer/out/secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, want.st_ino);
  EXPECT_FALSE(StatBeneath(dir_ + "/layer", "/out/secret", false, &st));
  EXPECT_FALSE(StatBeneath(dir_ + "/layer", "/etc/sub/f", true, &st));
  EXPECT_FALSE(StatBeneath(dir_ + "/layer", "/../host/secret", false, &st));
  EXPECT_TRUE(StatBeneath(dir_ + "/layer", "/out", false, &st));  // the symlink itself
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ASSERT_TRUE(StatBeneath(dir_, "/etc/sub/f", true, &st));
  ASSERT_EQ(stat((dir_ + "/etc/sub/f").c_str(), &want), 0);
  EXPECT_EQ(st.st_ino, want.st_ino);
  EXPECT_FALSE(StatBeneath(dir_ + "/missing", "/etc/sub/f", true, &st));
  EXPECT_FALSE(StatBeneath(dir_, "/", true, &st));
}

}  // namespace
}  // namespace driftwatch
