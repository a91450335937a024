// Which volumes the fanotify watcher leaves unmarked (sensor/fanotify_watcher.h): those on
// network and user-space filesystems, found from mountinfo text alone, never by a syscall on
// a filesystem that may hang.
#include <gtest/gtest.h>

#include <string>

#include "sensor/fanotify_watcher.h"

namespace driftwatch::sensor {
namespace {

constexpr char kMountinfo[] =
    "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
    "30 22 0:25 / /var/lib/kubelet rw - ext4 /dev/sda2 rw\n"
    "31 30 0:40 / /var/lib/kubelet/pods/u1/volumes/kubernetes.io~nfs/data rw - nfs4 "
    "srv:/export rw,vers=4.2\n"
    "32 30 0:41 / /var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/mem rw - tmpfs "
    "tmpfs rw\n"
    "33 22 0:42 / /mnt/remote rw - fuse.sshfs host: rw\n"
    "34 22 0:43 / /mnt/remote rw - tmpfs tmpfs rw\n"  // stacked on top of the fuse mount
    "35 22 0:44 / /mnt/my\\040share rw - cifs //srv/share rw\n";

TEST(VolumeFilesystems, TypeOfTheMountHoldingAPath) {
  EXPECT_EQ(FsTypeAt(kMountinfo, "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~nfs/data/x"),
            "nfs4");
  EXPECT_EQ(FsTypeAt(kMountinfo, "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~nfs/data"),
            "nfs4");
  EXPECT_EQ(FsTypeAt(kMountinfo, "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~nfs/database"),
            "ext4");  // a longer name is not under the mount point
  EXPECT_EQ(FsTypeAt(kMountinfo, "/var/lib/kubelet/pods/u1/volumes/kubernetes.io~empty-dir/mem"),
            "tmpfs");
  EXPECT_EQ(FsTypeAt(kMountinfo, "/srv/data"), "ext4");
  EXPECT_EQ(FsTypeAt(kMountinfo, "/mnt/remote/a"), "tmpfs");  // the topmost mount
  EXPECT_EQ(FsTypeAt(kMountinfo, "/mnt/my share/a"), "cifs");  // mountinfo's escapes decoded
  EXPECT_EQ(FsTypeAt("", "/x"), "");
}

TEST(VolumeFilesystems, RemoteTypesAreNotMarked) {
  for (const char* t : {"nfs", "nfs4", "cifs", "smb3", "ceph", "9p", "fuse", "fuse.sshfs",
                        "glusterfs", "lustre"})
    EXPECT_TRUE(RemoteFsType(t)) << t;
  for (const char* t : {"ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", ""})
    EXPECT_FALSE(RemoteFsType(t)) << t;
}

}  // namespace
}  // namespace driftwatch::sensor
