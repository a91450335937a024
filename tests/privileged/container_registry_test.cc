// ContainerRegistry against the real cgroup hierarchy (root): what Announce waits for. Needs
// root; no runtime (use_cri off).
#include "sensor/container_registry.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

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

}  // namespace
}  // namespace driftwatch::sensor
