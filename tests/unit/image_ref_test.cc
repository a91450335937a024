#include "lib/event/image_ref.h"

#include <gtest/gtest.h>

namespace driftwatch {
namespace {

struct Row {
  const char* ref;
  const char* repository;
  const char* tag;
  const char* digest;
};

TEST(ImageRefTest, SplitsReferences) {
  const std::string d = "sha256:" + std::string(64, 'a');
  const Row rows[] = {
      {"nginx", "nginx", "", ""},
      {"nginx:1.25", "nginx", "1.25", ""},
      {"docker.io/library/nginx:1.25", "docker.io/library/nginx", "1.25", ""},
      {"localhost:5000/team/app", "localhost:5000/team/app", "", ""},
      {"localhost:5000/team/app:v2", "localhost:5000/team/app", "v2", ""},
      {"localhost/dw-busybox:1", "localhost/dw-busybox", "1", ""},
  };
  for (const auto& r : rows) {
    ImageName n = ParseImageName(r.ref);
    EXPECT_EQ(n.repository, r.repository) << r.ref;
    EXPECT_EQ(n.tag, r.tag) << r.ref;
    EXPECT_EQ(n.digest, r.digest) << r.ref;
  }
  ImageName pinned = ParseImageName("registry.k8s.io/pause:3.9@" + d);
  EXPECT_EQ(pinned.repository, "registry.k8s.io/pause");
  EXPECT_EQ(pinned.tag, "3.9");
  EXPECT_EQ(pinned.digest, d);
  ImageName by_digest = ParseImageName("quay.io/x/y@" + d);
  EXPECT_EQ(by_digest.repository, "quay.io/x/y");
  EXPECT_EQ(by_digest.tag, "");
  ImageName id = ParseImageName(d);
  EXPECT_EQ(id.repository, "");
  EXPECT_EQ(id.digest, d);
}

TEST(ImageRefTest, RepoDigestOnlyFromRepoDigests) {
  const std::string d = "sha256:" + std::string(64, 'b');
  EXPECT_EQ(RepoDigestOf("docker.io/library/nginx@" + d), d);
  EXPECT_EQ(RepoDigestOf(d), "");  // a local image's id is not a registry digest
  EXPECT_EQ(RepoDigestOf(""), "");
}

}  // namespace
}  // namespace driftwatch
