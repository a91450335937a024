// The pure part of lib/cri_client: reading the runtime's verbose info JSON. The inputs are
// trimmed from what containerd 1.6.20 answered on this machine (cri_test.sh runs it live).
#include "lib/k8s/cri_client.h"

#include <gtest/gtest.h>

namespace driftwatch {
namespace {

// ContainerStatus(verbose) info["info"] of a read-only container, as containerd 1.6 writes it.
constexpr const char* kContainerdInfo = R"({
  "sandboxID": "3008786e4a499d193837c8ab1fc0d1e33c90340cf43a644cbd3184965035ac04",
  "pid": 28571,
  "removing": false,
  "snapshotKey": "62c3c2c66f262a3248123adf63cb5ad8799b0f8ff9e7fb5cf360e2c9b76ab492",
  "snapshotter": "overlayfs",
  "runtimeType": "io.containerd.runc.v2",
  "config": {
    "metadata": {"name": "ro"},
    "image": {"image": "localhost/dw-busybox:1"},
    "command": ["sleep", "1000"],
    "linux": {"security_context": {"namespace_options": {"network": 2, "pid": 1},
                                   "readonly_rootfs": true}}
  },
  "runtimeSpec": {
    "ociVersion": "1.0.2-dev",
    "process": {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"]}},
    "root": {"path": "rootfs", "readonly": true},
    "linux": {"cgroupsPath": "/kubepods/besteffort/pod1234/62c3c2c66f26"}
  }
})";

TEST(ApplyContainerInfo, ContainerdReadOnly) {
  CriContainer c;
  ASSERT_TRUE(ApplyContainerInfo(kContainerdInfo, c).has_value());
  EXPECT_EQ(c.pid, 28571);
  EXPECT_EQ(c.pod_sandbox_id, "3008786e4a499d193837c8ab1fc0d1e33c90340cf43a644cbd3184965035ac04");
  EXPECT_EQ(c.snapshotter, "overlayfs");
  EXPECT_EQ(c.snapshot_key, "62c3c2c66f262a3248123adf63cb5ad8799b0f8ff9e7fb5cf360e2c9b76ab492");
  EXPECT_TRUE(c.read_only_rootfs);
  EXPECT_FALSE(c.privileged);
  EXPECT_EQ(c.cgroup_path, "/kubepods/besteffort/pod1234/62c3c2c66f26");
  EXPECT_EQ(c.root_path, "rootfs");
}

TEST(ApplyContainerInfo, PrivilegedFromConfig) {
  // containerd gives a privileged container every capability it holds itself; the config
  // echo is what decides, not the capability list.
  CriContainer c;
  ASSERT_TRUE(ApplyContainerInfo(R"({"pid": 7,
      "config": {"linux": {"security_context": {"privileged": true}}},
      "runtimeSpec": {"process": {"capabilities": {"bounding": ["CAP_CHOWN"]}},
                      "root": {"path": "rootfs"}}})",
                                 c)
                  .has_value());
  EXPECT_TRUE(c.privileged);
  EXPECT_FALSE(c.read_only_rootfs);
}

TEST(ApplyContainerInfo, PrivilegedGuessedWithoutConfig) {
  // A runtime that does not echo the CRI config: all capabilities and nothing masked.
  CriContainer c;
  ASSERT_TRUE(ApplyContainerInfo(R"({"pid": 7, "runtimeSpec": {
      "process": {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}},
      "linux": {}}})",
                                 c)
                  .has_value());
  EXPECT_TRUE(c.privileged);

  CriContainer masked;
  ASSERT_TRUE(ApplyContainerInfo(R"({"runtimeSpec": {
      "process": {"capabilities": {"bounding": ["CAP_SYS_ADMIN"]}},
      "linux": {"maskedPaths": ["/proc/kcore"]}}})",
                                 masked)
                  .has_value());
  EXPECT_FALSE(masked.privileged);
}

TEST(ApplyContainerInfo, RefusesWhatIsNotJson) {
  for (const char* bad : {"", "{", "not json", "[1, 2]", "\"pid\"", "{\"pid\": 1,}"}) {
    CriContainer c;
    c.pid = 42;
    EXPECT_FALSE(ApplyContainerInfo(bad, c).has_value()) << bad;
    EXPECT_EQ(c.pid, 42) << bad;  // untouched
  }
}

TEST(ApplyContainerInfo, IgnoresFieldsOfTheWrongType) {
  // Odd shapes from the runtime are ignored field by field, never trusted or thrown on.
  CriContainer c;
  ASSERT_TRUE(ApplyContainerInfo(R"({"pid": "123", "sandboxID": 5, "snapshotKey": null,
      "config": [], "runtimeSpec": {"root": "rootfs", "linux": {"cgroupsPath": 9},
      "process": {"capabilities": {"bounding": "CAP_SYS_ADMIN"}}}})",
                                 c)
                  .has_value());
  EXPECT_EQ(c.pid, 0);
  EXPECT_EQ(c.pod_sandbox_id, "");
  EXPECT_EQ(c.snapshot_key, "");
  EXPECT_EQ(c.cgroup_path, "");
  EXPECT_FALSE(c.read_only_rootfs);
  EXPECT_FALSE(c.privileged);

  for (const char* pid : {R"({"pid": -1})", R"({"pid": 4294967296})", R"({"pid": 1.5})"}) {
    CriContainer d;
    ASSERT_TRUE(ApplyContainerInfo(pid, d).has_value()) << pid;
    EXPECT_EQ(d.pid, 0) << pid;
  }
}

TEST(ApplyPodInfo, Containerd) {
  CriPod p;
  ASSERT_TRUE(ApplyPodInfo(R"({"pid": 25639, "processStatus": "running",
      "config": {"metadata": {"name": "web"},
                 "linux": {"cgroup_parent": "/kubepods/besteffort/pod1234-abcd"}}})",
                           p)
                  .has_value());
  EXPECT_EQ(p.pid, 25639);
  EXPECT_EQ(p.cgroup_parent, "/kubepods/besteffort/pod1234-abcd");
  CriPod q;
  EXPECT_FALSE(ApplyPodInfo("{{", q).has_value());
}

TEST(CriClient, DefaultEndpointsAreAbsoluteSockets) {
  auto eps = CriClient::DefaultEndpoints();
  ASSERT_FALSE(eps.empty());
  EXPECT_EQ(eps.front(), "/run/containerd/containerd.sock");
  for (const auto& e : eps) EXPECT_EQ(e.front(), '/') << e;
}

TEST(CriClient, ConnectFailsNamingTheSocket) {
  auto none = CriClient::Connect("unix:///nonexistent/dw/cri.sock", std::chrono::milliseconds(100));
  ASSERT_FALSE(none.has_value());
  EXPECT_NE(none.error().message().find("/nonexistent/dw/cri.sock"), std::string::npos)
      << none.error();
  EXPECT_EQ(none.error().code(), ErrorCode::kNotFound);

  auto relative = CriClient::Connect("containerd.sock", std::chrono::milliseconds(100));
  ASSERT_FALSE(relative.has_value());
  EXPECT_NE(relative.error().message().find("containerd.sock"), std::string::npos)
      << relative.error();

  auto not_socket = CriClient::Connect("/dev/null", std::chrono::milliseconds(100));
  ASSERT_FALSE(not_socket.has_value());
  EXPECT_NE(not_socket.error().message().find("not a socket"), std::string::npos)
      << not_socket.error();
}

}  // namespace
}  // namespace driftwatch
