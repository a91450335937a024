// ContainerRegistry against the real cgroup hierarchy (root): what Announce waits for. Needs
// root; no runtime (use_cri off).
#include "sensor/container_registry.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace driftwatch::sensor {
namespace {

// Ids that never become containers (a container making cgroups that look like containers,
// a runtime that stopped answering) cost the caller one wait, then none for a while: each
// later Announce returns at once, however long it would wait. Counted either way.
TEST(ContainerRegistryAnnounce, UnknownContainersStallTheCallerOnce) {
  ContainerRegistry::Options o;
  o.use_cri = false;
  ContainerRegistry registry(o, [](const v1::ContainerInfo&, bool) {});
  ASSERT_EQ(registry.Start(), std::nullopt);
  registry.Announce(std::string(64, 'a'), std::chrono::milliseconds(100));
  EXPECT_EQ(registry.announce_timeouts(), 1u);
  // Without the cooldown this waits 10 minutes: the test's timeout (300 s) fails it.
  for (char c : {'b', 'c', 'd'}) registry.Announce(std::string(64, c), std::chrono::minutes(10));
  EXPECT_EQ(registry.announce_timeouts(), 4u);
  registry.Announce("host");  // never waited for, never counted
  EXPECT_EQ(registry.announce_timeouts(), 4u);
  registry.Stop();
}

// Containers of the systemd cgroup driver are found when their cgroup appears, as those of
// cgroupfs are: `docker-<id>.scope` (Docker), `cri-containerd-<id>.scope` in a kubelet's pod
// slice; a cgroup a container makes below its own is not taken for the container. Real
// cgroups, in a hierarchy of their own under the one the host mounts (removed after).
TEST(ContainerRegistryCgroups, SystemdDriverScopesAreContainers) {
  const std::string top = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0
                              ? "/sys/fs/cgroup"
                              : "/sys/fs/cgroup/pids";
  const std::string root = top + "/dw-registry-test-" + std::to_string(getpid());
  const std::string docker_id(64, 'd'), cri_id(64, 'c'), fs_id(64, 'f');
  const std::string pod = "/kubepods.slice/kubepods-besteffort.slice/"
                          "kubepods-besteffort-pod0f1e2d3c_4b5a_6978_8a9b_0c1d2e3f4a5b.slice";
  const std::vector<std::string> dirs = {
      "", "/system.slice", "/system.slice/docker-" + docker_id + ".scope",
      "/system.slice/docker-" + docker_id + ".scope/init", "/kubepods.slice",
      "/kubepods.slice/kubepods-besteffort.slice", pod, pod + "/cri-containerd-" + cri_id + ".scope",
      "/docker", "/docker/" + fs_id};
  struct Cleanup {
    const std::string& root;
    const std::vector<std::string>& dirs;
    ~Cleanup() {
      for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) rmdir((root + *it).c_str());
    }
  } cleanup{root, dirs};
  ASSERT_EQ(mkdir(root.c_str(), 0755), 0) << root << ": " << strerror(errno);

  ContainerRegistry::Options o;
  o.use_cri = false;
  o.cgroup_root = root;
  ContainerRegistry registry(o, [](const v1::ContainerInfo&, bool) {});
  ASSERT_EQ(registry.Start(), std::nullopt);
  for (size_t i = 1; i < dirs.size(); ++i)
    ASSERT_EQ(mkdir((root + dirs[i]).c_str(), 0755), 0) << dirs[i] << ": " << strerror(errno);
  auto found = [&registry](const std::string& id) {
    for (int i = 0; i < 200 && !registry.Find(id); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return registry.Find(id);
  };
  auto d = found(docker_id);
  ASSERT_TRUE(d) << "docker-<id>.scope not found";
  EXPECT_EQ(d->runtime(), "docker");
  EXPECT_EQ(d->cgroup_path(), "/system.slice/docker-" + docker_id + ".scope");  // not .../init
  auto c = found(cri_id);
  ASSERT_TRUE(c) << "cri-containerd-<id>.scope not found";
  EXPECT_EQ(c->runtime(), "cri-containerd");
  EXPECT_EQ(c->pod_uid(), "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b");
  auto f = found(fs_id);
  ASSERT_TRUE(f) << "cgroupfs /docker/<id> not found";
  EXPECT_EQ(registry.size(), 3u);
  registry.Stop();
}

}  // namespace
}  // namespace driftwatch::sensor
