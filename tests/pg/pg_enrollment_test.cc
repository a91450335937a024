// Enrollment records in the shared store (collector/enrollment.h, records_db) on a real
// PostgreSQL (pg_store_test.sh): two NodeAuthority instances are two collectors on one
// database, and "enrolled" holds across them, across restarts, and when they race.
#include "collector/enrollment.h"

#include <gtest/gtest.h>

#include <latch>
#include <thread>
#include <vector>

#include "lib/store/pg_schema.h"
#include "pg/pg_test_db.h"
#include "unit/enrollment_test_util.h"

namespace driftwatch {
namespace {

using testing::MakeEnrollRequest;
using testing::TryEnroll;

class PgEnrollmentTest : public ::testing::Test, protected testing::EnrollmentFiles {
 protected:
  void SetUp() override {
    ASSERT_FALSE(PgBaseUri().empty())
        << "DW_PG_URI is not set: run tests/integration/pg_store_test.sh";
    uri_ = FreshPgDatabase("dw_enroll");
    ASSERT_FALSE(uri_.empty());
    opt.records_db = uri_;
    auto c = PgConn::Connect(uri_);
    ASSERT_TRUE(c.has_value()) << c.error().message();
    sql_ = std::move(*c);
  }
  // A collector named `by` on the database.
  std::unique_ptr<NodeAuthority> Open(const std::string& by) {
    NodeAuthorityOptions o = opt;
    o.records_by = by;
    auto a = NodeAuthority::Open(o);
    EXPECT_TRUE(a) << (a ? "" : a.error().message());
    return a ? std::move(*a) : nullptr;
  }
  // The record of `name`: "SERIAL BY", "" when none.
  std::string Record(const std::string& name) {
    auto r = sql_->Exec("read the record of " + name,
                        "SELECT serial || ' ' || enrolled_by FROM enrollments WHERE name = $1",
                        {name});
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return r && PQntuples(r->get()) == 1 ? PgGetText(r->get(), 0, 0) : "";
  }

  std::string uri_;
  std::unique_ptr<PgConn> sql_;
};

// A name enrolled through one collector is enrolled for the other: its bootstrap enrollment
// is refused there, its renewal with the node certificate works there.
TEST_F(PgEnrollmentTest, EnrolledAtOneCollectorIsEnrolledAtTheOther) {
  auto a = Open("collector-a");
  auto b = Open("collector-b");
  ASSERT_TRUE(a && b);
  const CertificateInfo boot = Bootstrap();
  IssuedCertificate first;
  ASSERT_EQ(TryEnroll(a.get(), boot, "bootstrap", MakeEnrollRequest("node-1"), &first), "");
  EXPECT_EQ(Record("node-1"), first.info.serial + " collector-a");
  EXPECT_EQ(TryEnroll(b.get(), Bootstrap(), "driftwatch-bootstrap", MakeEnrollRequest("node-1")),
            "already_enrolled");
  IssuedCertificate renewed;
  ASSERT_EQ(TryEnroll(b.get(), first.info, "node-1", MakeEnrollRequest("node-1"), &renewed), "");
  EXPECT_EQ(Record("node-1"), renewed.info.serial + " collector-b");
  EXPECT_EQ(TryEnroll(a.get(), boot, "driftwatch-bootstrap", MakeEnrollRequest("node-1")),
            "already_enrolled");
  // A node certificate renews itself only, whichever collector it asks.
  EXPECT_EQ(TryEnroll(b.get(), renewed.info, "node-1", MakeEnrollRequest("node-2")), "wrong_node");
  EXPECT_EQ(Record("node-2"), "");
  // Denying the newest serial (at the collector asked) frees the name there.
  Write("deny", "serial " + renewed.info.serial + "\n");
  ASSERT_TRUE(a->Reload());
  EXPECT_EQ(TryEnroll(a.get(), boot, "driftwatch-bootstrap", MakeEnrollRequest("node-1")), "");
  EXPECT_EQ(a->counters().signed_bootstrap, 2u);
  EXPECT_EQ(b->counters().signed_renewal, 1u);
  EXPECT_EQ(b->counters().enroll_refused.at("already_enrolled"), 1u);
}

// Two collectors enrolling one new name at the same moment: one is signed, the other is
// already_enrolled, and the record is the certificate signed. Rounds, to hit the window
// between reading the record and writing it (without the name's lock both pass).
TEST_F(PgEnrollmentTest, RacingEnrollmentsOfOneNameSignOnce) {
  auto a = Open("collector-a");
  auto b = Open("collector-b");
  ASSERT_TRUE(a && b);
  const CertificateInfo boot = Bootstrap();
  constexpr int kRounds = 30;
  for (int i = 0; i < kRounds; ++i) {
    const std::string node = "node-race-" + std::to_string(i);
    const v1::EnrollRequest ra = MakeEnrollRequest(node), rb = MakeEnrollRequest(node);
    std::latch start(2);
    std::string got_a, got_b;
    IssuedCertificate cert_a, cert_b;
    std::thread ta([&] {
      start.arrive_and_wait();
      got_a = TryEnroll(a.get(), boot, "driftwatch-bootstrap", ra, &cert_a);
    });
    std::thread tb([&] {
      start.arrive_and_wait();
      got_b = TryEnroll(b.get(), boot, "driftwatch-bootstrap", rb, &cert_b);
    });
    ta.join();
    tb.join();
    ASSERT_TRUE((got_a == "" && got_b == "already_enrolled") ||
                (got_a == "already_enrolled" && got_b == ""))
        << node << ": A " << (got_a.empty() ? "signed" : got_a) << ", B "
        << (got_b.empty() ? "signed" : got_b);
    EXPECT_EQ(Record(node), got_a.empty() ? cert_a.info.serial + " collector-a"
                                          : cert_b.info.serial + " collector-b");
  }
  EXPECT_EQ(a->counters().signed_bootstrap + b->counters().signed_bootstrap, uint64_t{kRounds});
}

// The records are the database's: a collector started again (a new NodeAuthority) refuses a
// bootstrap enrollment of a name enrolled before, and a records file beside them is refused.
TEST_F(PgEnrollmentTest, RecordsSurviveARestart) {
  IssuedCertificate first;
  {
    auto a = Open("collector-a");
    ASSERT_TRUE(a);
    ASSERT_EQ(TryEnroll(a.get(), Bootstrap(), "b", MakeEnrollRequest("node-1"), &first), "");
  }
  auto again = Open("collector-a");
  ASSERT_TRUE(again);
  EXPECT_EQ(TryEnroll(again.get(), Bootstrap(), "b", MakeEnrollRequest("node-1")),
            "already_enrolled");
  EXPECT_EQ(Record("node-1"), first.info.serial + " collector-a");
  NodeAuthorityOptions both = opt;
  both.records = dir + "/records";
  auto refused = NodeAuthority::Open(both);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("the enrollment records are in the database"),
            std::string::npos)
      << refused.error().message();
}

// A lost connection refuses the enrollment in progress (internal, nothing signed or
// recorded, the database named without its password) and is made again at the next call.
TEST_F(PgEnrollmentTest, LostConnectionRefusesThenReconnects) {
  auto a = Open("collector-a");
  ASSERT_TRUE(a);
  auto ended = sql_->Exec("end the other sessions",
                          "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
                          "FROM pg_stat_activity WHERE datname = current_database() AND "
                          "pid <> pg_backend_pid()");
  ASSERT_TRUE(ended.has_value()) << ended.error().message();
  ASSERT_EQ(PgGetInt(ended->get(), 0, 0), 1);
  const v1::EnrollRequest req = MakeEnrollRequest("node-1");
  auto r = a->Enroll(Bootstrap(), "b", req, req.ByteSizeLong(), time(nullptr));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, EnrollRefusal::Kind::kInternal);
  EXPECT_EQ(r.error().reason, "internal");
  EXPECT_NE(r.error().message.find(RedactPgUri(uri_)), std::string::npos) << r.error().message;
  // postgresql://dw:PASSWORD@host:port/db (pg_env.sh)
  const size_t colon = uri_.find(':', std::string_view("postgresql://").size());
  const std::string password = uri_.substr(colon + 1, uri_.find('@') - colon - 1);
  ASSERT_FALSE(password.empty()) << "no password in DW_PG_URI";
  EXPECT_EQ(r.error().message.find(password), std::string::npos) << r.error().message;
  EXPECT_EQ(Record("node-1"), "");
  EXPECT_EQ(a->counters().signed_bootstrap, 0u);
  // The next call connects again.
  IssuedCertificate cert;
  EXPECT_EQ(TryEnroll(a.get(), Bootstrap(), "b", MakeEnrollRequest("node-1"), &cert), "");
  EXPECT_EQ(Record("node-1"), cert.info.serial + " collector-a");
}

}  // namespace
}  // namespace driftwatch
