// The collector's enrollment policy (collector/enrollment.h) on certificates made in memory,
// with its lists and records in a temporary directory.
#include "collector/enrollment.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

#include "unit/identity_test_util.h"

namespace driftwatch {
namespace {

using testing::TestCa;

class EnrollmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dw_enroll_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Write("ca.crt", ca_.cert_pem);
    Write("ca.key", ca_.key_pem);
    Write("allow", "node-*\n");
    Write("deny", "");
    opt_.ca_cert = dir_ + "/ca.crt";
    opt_.ca_key = dir_ + "/ca.key";
    opt_.allow_list = dir_ + "/allow";
    opt_.deny_list = dir_ + "/deny";
    opt_.records = dir_ + "/records";
    opt_.client_ca_bundle = ca_.cert_pem;
    opt_.validity = std::chrono::seconds(1800);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }
  std::unique_ptr<NodeAuthority> Open() {
    auto a = NodeAuthority::Open(opt_);
    EXPECT_TRUE(a) << (a ? "" : a.error().message());
    return a ? std::move(*a) : nullptr;
  }
  static v1::EnrollRequest Request(const std::string& node, const std::string& csr_node = "") {
    v1::EnrollRequest r;
    r.set_node(node);
    r.set_csr_pem(*MakeNodeCsr(*GenerateNodeKey(), csr_node.empty() ? node : csr_node));
    return r;
  }
  CertificateInfo Bootstrap() { return *ReadCertificate(ca_.Issue("driftwatch-bootstrap", true)); }
  // Enroll as `node` with `peer`; "" on success, else the refusal's reason.
  std::string Try(NodeAuthority* a, const CertificateInfo& peer, const std::string& peer_node,
                  const v1::EnrollRequest& req, IssuedCertificate* out = nullptr) {
    auto r = a->Enroll(peer, peer_node, req, req.ByteSizeLong(), time(nullptr));
    if (!r) return r.error().reason;
    if (out) *out = *r;
    return "";
  }

  TestCa ca_;
  std::string dir_;
  NodeAuthorityOptions opt_;
};

TEST_F(EnrollmentTest, BootstrapEnrollsAllowedNamesOnce) {
  auto a = Open();
  const CertificateInfo boot = Bootstrap();
  IssuedCertificate first;
  EXPECT_EQ(Try(a.get(), boot, "driftwatch-bootstrap", Request("node-1"), &first), "");
  EXPECT_EQ(first.info.common_names, std::vector<std::string>{"node-1"});
  // Once per name while its certificate lives, also after a restart (the records file).
  EXPECT_EQ(Try(a.get(), boot, "driftwatch-bootstrap", Request("node-1")), "already_enrolled");
  a = Open();
  EXPECT_EQ(Try(a.get(), boot, "driftwatch-bootstrap", Request("node-1")), "already_enrolled");
  // Denying that serial frees the name.
  Write("deny", "serial " + first.info.serial + "\n");
  ASSERT_TRUE(a->Reload());
  EXPECT_EQ(Try(a.get(), boot, "driftwatch-bootstrap", Request("node-1")), "");
  EXPECT_EQ(Try(a.get(), boot, "driftwatch-bootstrap", Request("other-1")), "not_approved");
  EXPECT_EQ(a->counters().signed_bootstrap, 1u);  // this authority's, since the re-open
  EXPECT_EQ(a->counters().enroll_refused.at("already_enrolled"), 1u);
}

TEST_F(EnrollmentTest, RenewalOnlyForItself) {
  auto a = Open();
  IssuedCertificate first;
  ASSERT_EQ(Try(a.get(), Bootstrap(), "driftwatch-bootstrap", Request("node-1"), &first), "");
  EXPECT_EQ(Try(a.get(), first.info, "node-1", Request("node-1")), "");
  EXPECT_EQ(Try(a.get(), first.info, "node-1", Request("node-2")), "wrong_node");
  EXPECT_EQ(a->counters().signed_renewal, 1u);
}

TEST_F(EnrollmentTest, Refusals) {
  auto a = Open();
  const CertificateInfo boot = Bootstrap();
  EXPECT_EQ(Try(a.get(), boot, "b", Request("node-1", "node-2")), "name_mismatch");
  EXPECT_EQ(Try(a.get(), boot, "b", Request("node 1", "node 1")), "bad_name");
  v1::EnrollRequest garbage;
  garbage.set_node("node-1");
  garbage.set_csr_pem("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n");
  EXPECT_EQ(Try(a.get(), boot, "b", garbage), "bad_csr");
  v1::EnrollRequest big = Request("node-1");
  big.set_csr_pem(std::string(kMaxEnrollRequestBytes, 'x'));
  EXPECT_EQ(Try(a.get(), boot, "b", big), "oversize");
  auto none = a->Enroll(std::nullopt, "", Request("node-1"), 100, time(nullptr));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().reason, "no_certificate");
}

TEST_F(EnrollmentTest, DeniedNodesNeitherStreamNorEnroll) {
  auto a = Open();
  IssuedCertificate cert;
  ASSERT_EQ(Try(a.get(), Bootstrap(), "b", Request("node-1"), &cert), "");
  EXPECT_EQ(a->RefuseStream("node-1", cert.info), "");
  EXPECT_NE(a->RefuseStream("driftwatch-bootstrap", Bootstrap()).find("bootstrap credential"),
            std::string::npos);
  Write("deny", "node node-1\n");
  ASSERT_TRUE(a->Reload());
  EXPECT_EQ(a->RefuseStream("node-1", cert.info), "revoked: node node-1 is on the deny list");
  EXPECT_EQ(a->Denied("node-1", cert.info), "node node-1 is on the deny list");
  EXPECT_EQ(Try(a.get(), cert.info, "node-1", Request("node-1")), "revoked");
  EXPECT_EQ(Try(a.get(), Bootstrap(), "b", Request("node-1")), "revoked");
  EXPECT_EQ(a->counters().streams_refused.at("revoked"), 1u);
  EXPECT_EQ(a->counters().streams_refused.at("bootstrap_credential"), 1u);
  // A list that does not parse leaves the one in force.
  Write("deny", "bogus\n");
  EXPECT_FALSE(a->Reload());
  EXPECT_EQ(a->Denied("node-1", cert.info), "node node-1 is on the deny list");
}

TEST_F(EnrollmentTest, CaOutsideTheClientBundleIsRefused) {
  opt_.client_ca_bundle = TestCa().cert_pem;
  auto a = NodeAuthority::Open(opt_);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message().find("is not one of the --client-ca certificates"),
            std::string::npos);
}

}  // namespace
}  // namespace driftwatch
