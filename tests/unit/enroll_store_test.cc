// The sensor's stored identity (sensor/enroll.h): key and certificate written as two files,
// and a crash between them.
#include "sensor/enroll.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <string>

#include "lib/base/atomic_file.h"
#include "unit/identity_test_util.h"

namespace driftwatch::sensor {
namespace {

namespace fs = std::filesystem;
using driftwatch::testing::TestCa;

NodeCredentials Issue(CertificateAuthority& ca, const std::string& node) {
  NodeCredentials c;
  c.key_pem = *GenerateNodeKey();
  auto csr = CheckNodeCsr(*MakeNodeCsr(c.key_pem, node), node);
  EXPECT_TRUE(csr);
  auto issued = ca.Sign(*csr, node, std::chrono::hours(1), time(nullptr));
  EXPECT_TRUE(issued) << issued.error();
  c.cert_pem = issued->pem;
  c.info = issued->info;
  return c;
}

class EnrollStore : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dw-enroll-store.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    opt_.dir = root_ + "/identity";
    opt_.node = "node-a";
    auto a = CertificateAuthority::Load(ca_.cert_pem, ca_.key_pem);
    ASSERT_TRUE(a) << a.error();
    authority_ = std::move(*a);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string root_;
  IdentityOptions opt_;
  TestCa ca_;
  std::unique_ptr<CertificateAuthority> authority_;
};

TEST_F(EnrollStore, StoredPairLoadsWithModes) {
  NodeCredentials c = Issue(*authority_, "node-a");
  ASSERT_TRUE(StoreIdentity(opt_.dir, c));
  struct stat st;
  ASSERT_EQ(stat((opt_.dir + "/node.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(opt_.dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto loaded = LoadStoredIdentity(opt_, time(nullptr));
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_EQ(loaded->key_pem, c.key_pem);
}

TEST_F(EnrollStore, CrashBetweenKeyAndCertificateKeepsTheOldIdentity) {
  NodeCredentials old_id = Issue(*authority_, "node-a");
  ASSERT_TRUE(StoreIdentity(opt_.dir, old_id));
  NodeCredentials new_id = Issue(*authority_, "node-a");
  ASSERT_TRUE(StoreIdentity(opt_.dir, new_id));
  ASSERT_TRUE(LoadStoredIdentity(opt_, time(nullptr)));
  // A renewal that stopped after the key: the new key beside the old certificate.
  NodeCredentials next = Issue(*authority_, "node-a");
  ASSERT_EQ(::unlink((opt_.dir + "/node.key.prev").c_str()), 0);
  ASSERT_EQ(::link((opt_.dir + "/node.key").c_str(), (opt_.dir + "/node.key.prev").c_str()), 0);
  ASSERT_TRUE(WriteFileAtomic(opt_.dir + "/node.key", next.key_pem));
  auto loaded = LoadStoredIdentity(opt_, time(nullptr));
  ASSERT_TRUE(loaded) << loaded.error();
  EXPECT_EQ(loaded->key_pem, new_id.key_pem);
  EXPECT_EQ(loaded->cert_pem, new_id.cert_pem);
  // A key that goes with neither is refused, naming the files.
  ASSERT_TRUE(WriteFileAtomic(opt_.dir + "/node.key.prev", next.key_pem));
  auto refused = LoadStoredIdentity(opt_, time(nullptr));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("is not the key of"), std::string::npos);
}

}  // namespace
}  // namespace driftwatch::sensor
