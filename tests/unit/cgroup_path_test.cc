#include "lib/node/cgroup_path.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace driftwatch {
namespace {

const std::string kId = "605439acbd4fb18c145069289094b17f17e0cfa938f78012d4960bc797305f22";
const std::string kId2 = "17d8c9eacc629f9945f304d89e9708c0c619649a484a215b240628319548a09f";
const std::string kUid = "ac04f3f2-1f2c-11e9-b015-1ebee232acfa";
const std::string kUidU = "ac04f3f2_1f2c_11e9_b015_1ebee232acfa";

struct Row {
  std::string path;
  // Expected; runtime "" means refused (nullopt).
  std::string runtime, id, pod_uid, ns;
};

std::vector<Row> Rows() {
  return {
      // docker
      {"/docker/" + kId, "docker", kId, "", ""},
      {"/system.slice/docker-" + kId + ".scope", "docker", kId, "", ""},
      {"/docker.slice/docker-" + kId + ".scope", "docker", kId, "", ""},
      {"/system.slice/docker-" + kId + ".scope/init.scope", "docker", kId, "", ""},
      // docker in docker: the innermost container
      {"/docker/" + kId2 + "/docker/" + kId, "docker", kId, "", ""},
      // kubelet cgroupfs driver (containerd CRI, k3s, rke2), v1 and v2 look alike
      {"/kubepods/besteffort/pod" + kUid + "/" + kId, "cri-containerd", kId, kUid, ""},
      {"/kubepods/burstable/pod" + kUid + "/" + kId, "cri-containerd", kId, kUid, ""},
      {"/kubepods/pod" + kUid + "/" + kId, "cri-containerd", kId, kUid, ""},  // guaranteed
      {"/kubepods/besteffort/pod" + kUid + "/" + kId + "/sub", "cri-containerd", kId, kUid, ""},
      // static pod: 32-hex UID (config hash)
      {"/kubepods/burstable/podbd12dd3393227d950605a2444b13c27a/" + kId, "cri-containerd", kId,
       "bd12dd3393227d950605a2444b13c27a", ""},
      // kubelet systemd driver
      {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + kUidU +
           ".slice/cri-containerd-" + kId + ".scope",
       "cri-containerd", kId, kUid, ""},
      {"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kUidU +
           ".slice/cri-containerd-" + kId + ".scope",
       "cri-containerd", kId, kUid, ""},
      {"/kubepods.slice/kubepods-pod" + kUidU + ".slice/cri-containerd-" + kId + ".scope",
       "cri-containerd", kId, kUid, ""},
      // containerd's systemd-style cgroupsPath through cgroupfs (k3s/rke2 on cgroup v2)
      {"/system.slice/containerd.service/kubepods-burstable-pod" + kUidU +
           ".slice:cri-containerd:" + kId,
       "cri-containerd", kId, kUid, ""},
      {"/kubepods-burstable-podbd12dd3393227d950605a2444b13c27a.slice:cri-containerd:" + kId,
       "cri-containerd", kId, "bd12dd3393227d950605a2444b13c27a", ""},
      // CRI-O
      {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + kUidU +
           ".slice/crio-" + kId2 + ".scope",
       "cri-o", kId2, kUid, ""},
      {"/kubepods/besteffort/pod" + kUid + "/crio-" + kId2, "cri-o", kId2, kUid, ""},
      // podman
      {"/machine.slice/libpod-" + kId + ".scope", "podman", kId, "", ""},
      {"/machine.slice/libpod-" + kId + ".scope/container", "podman", kId, "", ""},
      {"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kId + ".scope",
       "podman", kId, "", ""},
      {"/libpod_parent/libpod-" + kId, "podman", kId, "", ""},
      {"/system.slice/system-ceph.slice/ceph@mon.service/libpod-payload-" + kId, "podman", kId,
       "", ""},
      // nerdctl, systemd driver
      {"/system.slice/nerdctl-" + kId + ".scope", "nerdctl", kId, "", ""},
      // containerd namespaces (ctr run): any identifier as the id
      {"/k8s.io/dw-test-1", "containerd", "dw-test-1", "", "k8s.io"},
      {"/default/test_container", "containerd", "test_container", "", "default"},
      {"/k8s.io/" + kId, "containerd", kId, "", "k8s.io"},
      {"/my.namespace/container.name", "containerd", "container.name", "", "my.namespace"},

      // refused: host cgroups
      {"/", "", "", "", ""},
      {"", "", "", "", ""},
      {"/user.slice/user-1000.slice/session-3.scope", "", "", "", ""},
      {"/user.slice/user-1000.slice/user@1000.service/init.scope", "", "", "", ""},
      {"/system.slice/containerd.service", "", "", "", ""},
      {"/system.slice/docker.service", "", "", "", ""},
      {"/system.slice/kubelet.service", "", "", "", ""},
      {"/init.scope", "", "", "", ""},
      {"/process_api/0b8bc61b014beb259ad3664da3482b5e", "", "", "", ""},  // this machine
      {"/kubepods", "", "", "", ""},
      {"/kubepods/besteffort", "", "", "", ""},
      {"/kubepods/besteffort/pod" + kUid, "", "", "", ""},  // the pod, no container
      {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + kUidU + ".slice",
       "", "", "", ""},
      // runtime helpers beside the container, not the container
      {"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + kUidU +
           ".slice/crio-conmon-" + kId2 + ".scope",
       "", "", "", ""},
      {"/machine.slice/libpod-conmon-" + kId + ".scope", "", "", "", ""},
      // malformed ids
      {"/docker/" + kId.substr(0, 63), "", "", "", ""},
      {"/system.slice/docker-" + kId + "0.scope", "", "", "", ""},
      {"/system.slice/docker-" + kId.substr(0, 63) + "g.scope", "", "", "", ""},
      {"/machine.slice/libpod-" + kId.substr(0, 12) + ".scope", "", "", "", ""},
      // containerd-namespace look-alikes
      {"/default/some_id.scope", "", "", "", ""},
      {"/default/.service", "", "", "", ""},
      {"/k8s.io/a/b", "", "", "", ""},  // three components: not ctr's layout
      {"/k8s.io/bad..name", "", "", "", ""},
      {"relative/k8s.io/x", "", "", "", ""},
      {"/k8s.io/../x", "", "", "", ""},
  };
}

TEST(CgroupPathTest, Table) {
  std::vector<Row> rows = Rows();
  ASSERT_GE(rows.size(), 30u);
  for (const Row& r : rows) {
    SCOPED_TRACE(r.path);
    auto got = ContainerFromCgroupPath(r.path);
    if (r.runtime.empty()) {
      EXPECT_FALSE(got.has_value()) << "got " << got->runtime << " " << got->id;
      continue;
    }
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->runtime, r.runtime);
    EXPECT_EQ(got->id, r.id);
    EXPECT_EQ(got->pod_uid, r.pod_uid);
    EXPECT_EQ(got->ctr_namespace, r.ns);
  }
}

TEST(CgroupPathTest, ProcCgroupHybridPrefersTheContainerLine) {
  // cgroup v1 hybrid as on this machine: memory is in the sandbox's group, the rest at /.
  std::string host =
      "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/0b8bc61b014beb259ad3664da3482b5e\n"
      "1:cpu:/\n0::/\n";
  EXPECT_FALSE(ContainerFromProcCgroup(host).has_value());

  std::string pod = "12:pids:/\n4:memory:/kubepods/besteffort/pod" + kUid + "/" + kId +
                    "\n3:cpu,cpuacct:/kubepods/besteffort/pod" + kUid + "/" + kId + "\n0::/\n";
  auto c = ContainerFromProcCgroup(pod);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->id, kId);
  EXPECT_EQ(c->pod_uid, kUid);

  // A 64-hex layout wins over the containerd-namespace guess, wherever it appears.
  std::string mixed = "5:devices:/k8s.io/something\n0::/system.slice/docker-" + kId + ".scope\n";
  c = ContainerFromProcCgroup(mixed);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->runtime, "docker");

  std::string ctr = "4:memory:/process_api/0b8bc61b014beb259ad3664da3482b5e\n3:cpuset:/k8s.io/web\n";
  c = ContainerFromProcCgroup(ctr);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->runtime, "containerd");
  EXPECT_EQ(c->id, "web");

  // The path itself may hold ':'; malformed lines are skipped.
  std::string v2 = "garbage\n0::/kubepods-besteffort-pod" + kUidU + ".slice:cri-containerd:" +
                   kId + "\n";
  c = ContainerFromProcCgroup(v2);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->id, kId);
  EXPECT_EQ(c->pod_uid, kUid);

  EXPECT_FALSE(ContainerFromProcCgroup("").has_value());
}

TEST(CgroupPathTest, ContainerOfPidReadsProc) {
  // Whatever this process runs in, ContainerOfPid must agree with the text it reads.
  std::ifstream in("/proc/self/cgroup");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ContainerOfPid(getpid()), ContainerFromProcCgroup(ss.str()));
  EXPECT_FALSE(ContainerOfPid(-1).has_value());
}

}  // namespace
}  // namespace driftwatch
