// The collector's enrollment policy (collector/enrollment.h) on certificates made in memory,
// with its lists and records in a temporary directory.
#include "collector/enrollment.h"

#include <gtest/gtest.h>

#include <ctime>
#include <string>

#include "unit/enrollment_test_util.h"

namespace driftwatch {
namespace {

using testing::TestCa;

class EnrollmentTest : public ::testing::Test, protected testing::EnrollmentFiles {
 protected:
  void SetUp() override { opt.records = dir + "/records"; }
  std::unique_ptr<NodeAuthority> Open() {
    auto a = NodeAuthority::Open(opt);
    EXPECT_TRUE(a) << (a ? "" : a.error().message());
    return a ? std::move(*a) : nullptr;
  }
  // Short names: the tests below read as a table of calls.
  static v1::EnrollRequest Request(const std::string& node, const std::string& csr_node = "") {
    return testing::MakeEnrollRequest(node, csr_node);
  }
  static std::string Try(NodeAuthority* a, const CertificateInfo& peer,
                         const std::string& peer_node, const v1::EnrollRequest& req,
                         IssuedCertificate* out = nullptr) {
    return testing::TryEnroll(a, peer, peer_node, req, out);
  }
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
  opt.client_ca_bundle = TestCa().cert_pem;
  auto a = NodeAuthority::Open(opt);
  ASSERT_FALSE(a);
  EXPECT_NE(a.error().message().find("is not one of the --client-ca certificates"),
            std::string::npos);
}

// Records in a database (several collectors; tests/pg/pg_enrollment_test.cc for the rest):
// never also a file, and a database that cannot be reached stops the start, named without
// its password.
TEST_F(EnrollmentTest, RecordsDatabaseRefusals) {
  opt.records_db = "postgresql://dw:hunter2@127.0.0.1:1/driftwatch";
  auto both = NodeAuthority::Open(opt);
  ASSERT_FALSE(both);
  EXPECT_NE(both.error().message().find("the enrollment records are in the database "
                                        "postgresql://dw:***@127.0.0.1:1/driftwatch"),
            std::string::npos)
      << both.error().message();
  opt.records = "";
  auto unnamed = NodeAuthority::Open(opt);  // the collector's name goes into every record
  ASSERT_FALSE(unnamed);
  EXPECT_NE(unnamed.error().message().find("need this collector's name"), std::string::npos)
      << unnamed.error().message();
  opt.records_by = "collector-a";
  auto unreachable = NodeAuthority::Open(opt);
  ASSERT_FALSE(unreachable);
  EXPECT_EQ(unreachable.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(unreachable.error().message().starts_with(
      "enrollment records: postgresql://dw:***@127.0.0.1:1/driftwatch: "))
      << unreachable.error().message();
  EXPECT_EQ(unreachable.error().message().find("hunter2"), std::string::npos);
  opt.records_db = "/var/lib/driftwatch/collector.db";
  EXPECT_FALSE(NodeAuthority::Open(opt));
}

}  // namespace
}  // namespace driftwatch
