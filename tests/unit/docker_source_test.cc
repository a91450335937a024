// sensor/docker_source: the engine's facts of a container as the registry reports them
// (ApplyDockerFacts): every ContainerInfo field the Docker source owns, and what it leaves to
// the container's own root mount.
#include "sensor/docker_source.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace driftwatch::sensor {
namespace {

DockerSource::Facts ShopWeb() {
  DockerSource::Facts f;
  f.engine = "docker";
  DockerContainer& c = f.container;
  c.id = "5a97f5da3f7e8b0c36f9dc260a5e243cefc829bde1e9ae24bee3810016e23331";
  c.name = "shop-web";
  c.image = "localhost/webapp:3";
  c.image_id = "sha256:b02a6cf1c2520595d67638b0d392c75f2ec3a7ae125234b09eb4bb9d84864b37";
  c.state = "running";
  c.labels = {{"com.docker.compose.service", "web"}, {"com.docker.compose.project", "shop"}};
  c.read_only_rootfs = true;
  c.pid = 4242;
  c.started_at_ns = 1796495962223323703;
  c.upper_dir = "/d/overlay2/9bd7/diff";
  c.lower_dirs = {"/d/overlay2/9bd7-init/diff", "/d/overlay2/be41/diff"};
  c.mounts = {{"bind", "/", "/host", true, "rslave"},
              {"volume", "/nonexistent/volumes/cache/_data", "/cache", false, ""},
              {"tmpfs", "", "/run", true, ""}};
  f.image = {"localhost/webapp", "3", ""};
  return f;
}

TEST(ApplyDockerFacts, EveryField) {
  v1::ContainerInfo i;
  i.set_id(ShopWeb().container.id);
  i.set_source("cgroup");
  i.set_runtime("docker");
  ApplyDockerFacts(ShopWeb(), &i);
  EXPECT_EQ(i.source(), "docker");
  EXPECT_EQ(i.runtime(), "docker");
  EXPECT_EQ(i.name(), "shop-web");
  EXPECT_EQ(i.image(), "localhost/webapp:3");
  EXPECT_EQ(i.image_ref(), "sha256:b02a6cf1c2520595d67638b0d392c75f2ec3a7ae125234b09eb4bb9d84864b37");
  EXPECT_EQ(i.image_repository(), "localhost/webapp");
  EXPECT_EQ(i.image_tag(), "3");
  EXPECT_EQ(i.image_digest(), "");
  EXPECT_TRUE(i.read_only_rootfs());
  EXPECT_FALSE(i.privileged());
  EXPECT_EQ(i.start_time_ns(), 1796495962223323703);
  EXPECT_EQ(i.init_pid(), 4242u);
  ASSERT_EQ(i.labels_size(), 2);  // sorted by key
  EXPECT_EQ(i.labels(0).key(), "com.docker.compose.project");
  EXPECT_EQ(i.labels(0).value(), "shop");
  EXPECT_EQ(i.labels(1).key(), "com.docker.compose.service");
  // Bind mounts and volumes with a host source, as the kernel names it; tmpfs left out.
  ASSERT_EQ(i.mounts_size(), 2);
  EXPECT_EQ(i.mounts(0).source(), "/");
  EXPECT_EQ(i.mounts(0).destination(), "/host");
  EXPECT_FALSE(i.mounts(0).read_only());
  EXPECT_EQ(i.mounts(0).propagation(), "rslave");
  EXPECT_TRUE(i.mounts(1).read_only());
  EXPECT_EQ(i.mounts(1).propagation(), "private");
  EXPECT_EQ(i.upperdir(), "/d/overlay2/9bd7/diff");
  ASSERT_EQ(i.lowerdirs_size(), 2);
  EXPECT_EQ(i.lowerdirs(1), "/d/overlay2/be41/diff");
}

TEST(ApplyDockerFacts, OwnRootMountAndPidStay) {
  // Read from the container's root mount already: the engine's names do not replace them.
  v1::ContainerInfo i;
  i.set_upperdir("/real/upper");
  i.add_lowerdirs("/real/l/ABC");
  i.set_init_pid(7);
  DockerSource::Facts f = ShopWeb();
  f.engine = "podman";
  f.container.started_at_ns = 0;  // created, not started
  i.set_start_time_ns(11);
  ApplyDockerFacts(f, &i);
  EXPECT_EQ(i.upperdir(), "/real/upper");
  ASSERT_EQ(i.lowerdirs_size(), 1);
  EXPECT_EQ(i.lowerdirs(0), "/real/l/ABC");
  EXPECT_EQ(i.init_pid(), 7u);
  EXPECT_EQ(i.start_time_ns(), 11);
  EXPECT_EQ(i.runtime(), "podman");
  EXPECT_EQ(i.source(), "podman");
}

// Containers found while the engine does not answer wait to be asked again, in a bounded
// queue: an engine that stays away (here: no socket at all) cannot make it grow without end.
TEST(DockerSource, IdsAskedAgainAreBounded) {
  DockerSource::Options o;
  o.endpoint = "/nonexistent/driftwatch-test/docker.sock";
  o.timeout = std::chrono::milliseconds(100);
  auto source = DockerSource::Open(o);  // not started: nothing retries meanwhile
  EXPECT_EQ(source->Describe(), "not connected");
  EXPECT_FALSE(source->Lookup(std::string(64, 'a')));
  EXPECT_EQ(source->wanted(), 1u);
  EXPECT_FALSE(source->Lookup(std::string(64, 'a')));  // once each
  EXPECT_EQ(source->wanted(), 1u);
  for (size_t i = 0; i < DockerSource::kWantedMax + 100; ++i) {
    char id[65];
    snprintf(id, sizeof id, "%064zx", i + 1);
    EXPECT_FALSE(source->Lookup(id));
  }
  EXPECT_EQ(source->wanted(), DockerSource::kWantedMax);
}

}  // namespace
}  // namespace driftwatch::sensor
