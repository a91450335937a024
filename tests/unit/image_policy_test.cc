// The approved-images policy: list files, Kubernetes YAML, verdicts and posture.
#include "lib/detect/image_policy.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace driftwatch {
namespace {

std::string D(char c) { return "sha256:" + std::string(64, c); }

v1::ContainerInfo Info(const std::string& image, const std::string& image_ref) {
  v1::ContainerInfo c;
  c.set_id(std::string(64, 'c'));
  c.set_name("app");
  c.set_image(image);
  c.set_image_ref(image_ref);
  c.set_state("running");
  c.set_source("cri");
  return c;
}

TEST(ImagePolicy, ListFile) {
  auto p = ImagePolicy::LoadText(
      "# approved\n"
      "\n"
      "registry.example.com:5000/team/app@" + D('a') + "  # pinned\n"
      "  " + D('b') + "\n" +
      std::string(64, 'C') + "\n",  // a bare image id, upper case
      "approved.txt");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->size(), 3u);
  EXPECT_TRUE(p->Approves(D('a')));
  EXPECT_TRUE(p->Approves(D('b')));
  EXPECT_TRUE(p->Approves(D('c')));
  EXPECT_FALSE(p->Approves(D('d')));
}

TEST(ImagePolicy, ListFileRefusesTags) {
  auto p = ImagePolicy::LoadText(D('a') + "\n# ok\nnginx:1.25\n", "approved.txt");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(p.error().message().find("approved.txt:3:"), std::string::npos) << p.error();
  EXPECT_NE(p.error().message().find("nginx:1.25"), std::string::npos) << p.error();
  EXPECT_FALSE(ImagePolicy::LoadText("app@sha256:1234\n", "a.txt"));  // short digest
}

constexpr const char* kManifests = R"yaml(
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: docker.io/library/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111
      containers:
      - name: api
        image: registry.local/api@sha256:2222222222222222222222222222222222222222222222222222222222222222
      - name: sidecar
        image: docker.io/envoyproxy/envoy:v1.29
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  template:
    spec:
      containers:
      - name: agent
        image: registry.local/agent@sha256:3333333333333333333333333333333333333333333333333333333333333333
---
# a comment-only document
---
apiVersion: v1
kind: Pod
metadata: {name: debug}
spec:
  containers:
  - name: main
    image: sha256:4444444444444444444444444444444444444444444444444444444444444444
  ephemeralContainers:
  - name: dbg
    image: registry.local/debug@sha256:5555555555555555555555555555555555555555555555555555555555555555
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: backup
            image: registry.local/backup@sha256:6666666666666666666666666666666666666666666666666666666666666666
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: StatefulSet
  spec:
    template:
      spec:
        containers:
        - image: registry.local/db@sha256:7777777777777777777777777777777777777777777777777777777777777777
- apiVersion: batch/v1
  kind: Job
  spec:
    template:
      spec:
        containers:
        - image: registry.local/job@sha256:8888888888888888888888888888888888888888888888888888888888888888
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
)yaml";

TEST(ImagePolicy, KubernetesYaml) {
  auto p = ImagePolicy::LoadText(kManifests, "deploy/app.yaml");
  ASSERT_TRUE(p) << p.error();
  for (char c = '1'; c <= '8'; ++c) EXPECT_TRUE(p->Approves(D(c))) << c;
  EXPECT_EQ(p->size(), 8u);
  ASSERT_EQ(p->warnings().size(), 1u);
  EXPECT_NE(p->warnings()[0].find("deploy/app.yaml:15:"), std::string::npos)
      << p->warnings()[0];
  EXPECT_NE(p->warnings()[0].find("envoy:v1.29"), std::string::npos);
}

TEST(ImagePolicy, MalformedYamlNamesFileAndLine) {
  auto p = ImagePolicy::LoadText("kind: Pod\nspec:\n  containers:\n  - image: [a, b\n", "bad.yaml");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code(), ErrorCode::kInvalidInput);
  EXPECT_TRUE(p.error().message().starts_with("bad.yaml:")) << p.error();
  // A line number follows the file name.
  EXPECT_GT(std::atoi(p.error().c_str() + 9), 0) << p.error();
  // A stray ',' (yaml-cpp 0.7 would loop on it forever) is an error with its place.
  auto stray = ImagePolicy::LoadText("kind: Pod\n---\n,\n", "stray.yaml");
  ASSERT_FALSE(stray);
  EXPECT_TRUE(stray.error().message().starts_with("stray.yaml:3:")) << stray.error();
  // Wrong shapes are not errors: a scalar where a map is expected is skipped.
  auto odd = ImagePolicy::LoadText("kind: Pod\nspec: 3\n---\n- 1\n- 2\n", "odd.yaml");
  ASSERT_TRUE(odd) << odd.error();
  EXPECT_EQ(odd->size(), 0u);
}

TEST(ImagePolicy, LoadFilesMerges) {
  auto dir = std::filesystem::temp_directory_path() / ("dw_policy_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "list.txt") << D('a') << "\n";
  std::ofstream(dir / "k8s.yml") << kManifests;
  auto p = ImagePolicy::LoadFiles({(dir / "list.txt").string(), (dir / "k8s.yml").string()});
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->size(), 9u);
  auto missing = ImagePolicy::LoadFiles({(dir / "nope.txt").string()});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message(), (dir / "nope.txt").string() + ": cannot open");
  std::filesystem::remove_all(dir);
}

TEST(ImagePolicy, Verdicts) {
  auto p = ImagePolicy::LoadText(kManifests, "app.yaml");
  ASSERT_TRUE(p) << p.error();
  // A local image: image_ref is the image id.
  ImageVerdict v = p->Check(Info("docker.io/library/app:1", D('4')));
  EXPECT_TRUE(v.checked);
  EXPECT_TRUE(v.approved);
  EXPECT_TRUE(v.mutable_tag);
  // A registry image pinned by digest.
  v = p->Check(Info("registry.local/api@" + D('2'), "registry.local/api@" + D('2')));
  EXPECT_TRUE(v.approved);
  EXPECT_FALSE(v.mutable_tag);
  // By tag, resolved to an unapproved digest.
  v = p->Check(Info("docker.io/library/nginx:latest", "docker.io/library/nginx@" + D('9')));
  EXPECT_FALSE(v.approved);
  EXPECT_TRUE(v.mutable_tag);
  EXPECT_NE(v.reason.find(D('9')), std::string::npos) << v.reason;
  // Nothing known about the image.
  v1::ContainerInfo bare;
  bare.set_id("x");
  v = p->Check(bare);
  EXPECT_FALSE(v.approved);
  EXPECT_FALSE(v.mutable_tag);
  EXPECT_FALSE(v.reason.empty());
}

TEST(ImagePolicy, Posture) {
  v1::ContainerInfo c = Info("busybox", D('1'));
  EXPECT_TRUE(CheckPosture(c).mutable_tag);  // no tag at all means :latest
  EXPECT_TRUE(CheckPosture(c).writable_rootfs);
  EXPECT_FALSE(CheckPosture(c).checked);
  c.set_read_only_rootfs(true);
  EXPECT_FALSE(CheckPosture(c).writable_rootfs);
  EXPECT_FALSE(CheckPosture(Info("localhost:5000/app@" + D('1'), "")).mutable_tag);
  EXPECT_FALSE(CheckPosture(Info(D('1'), D('1'))).mutable_tag);
  v1::ContainerInfo cg;  // cgroup-only discovery: nothing known, nothing claimed
  cg.set_id("y");
  cg.set_source("cgroup");
  EXPECT_FALSE(CheckPosture(cg).writable_rootfs);
  EXPECT_FALSE(CheckPosture(cg).mutable_tag);
}

}  // namespace
}  // namespace driftwatch
