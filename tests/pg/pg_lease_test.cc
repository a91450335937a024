// Detection leases (lib/store/pg_lease) on a real PostgreSQL (pg_store_test.sh): one owner
// per node, takeover after expiry with a new epoch, and fencing of a deposed owner's commit.
#include "lib/store/pg_lease.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <thread>

#include "lib/store/pg_schema.h"
#include "pg/pg_test_db.h"

namespace driftwatch {
namespace {

using std::chrono::milliseconds;

class PgLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(PgBaseUri().empty()) << "DW_PG_URI is not set: run tests/integration/pg_store_test.sh";
    uri_ = FreshPgDatabase("dw_lease");
    ASSERT_FALSE(uri_.empty());
    a_ = Connect();
    b_ = Connect();
    ASSERT_TRUE(MigratePg(a_.get(), PgStoreMigrations(), "test").has_value());
  }
  std::unique_ptr<PgConn> Connect() {
    auto c = PgConn::Connect(uri_);
    EXPECT_TRUE(c.has_value()) << (c ? "" : c.error().message());
    return c ? std::move(*c) : nullptr;
  }
  std::string uri_;
  std::unique_ptr<PgConn> a_, b_;
};

TEST_F(PgLeaseTest, OneOwnerUntilItExpires) {
  // Leases of seconds, so that the steps before an expiry never take as long on a busy machine.
  auto a = AcquireLease(a_.get(), "node-1", "collector-a", milliseconds(2000));
  ASSERT_TRUE(a.has_value()) << a.error().message();
  ASSERT_TRUE(a->has_value());
  EXPECT_EQ((*a)->epoch, 1);
  auto b = AcquireLease(b_.get(), "node-1", "collector-b", milliseconds(2000));
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(b->has_value()) << "taken while another owner holds it";
  // Renewal by the owner keeps the epoch.
  auto again = AcquireLease(a_.get(), "node-1", "collector-a", milliseconds(2000));
  ASSERT_TRUE(again.has_value() && again->has_value());
  EXPECT_EQ((*again)->epoch, 1);
  // A stops renewing: after the expiry B takes it over, one epoch later.
  std::this_thread::sleep_for(milliseconds(2200));
  b = AcquireLease(b_.get(), "node-1", "collector-b", milliseconds(10000));
  ASSERT_TRUE(b.has_value() && b->has_value());
  EXPECT_EQ((*b)->epoch, 2);
  // A's next commit is fenced off; B's goes through.
  ASSERT_TRUE(a_->Run("begin", "BEGIN"));
  auto holds = HoldsLease(a_.get(), **a, milliseconds(2000));
  ASSERT_TRUE(holds.has_value());
  EXPECT_FALSE(*holds) << "a deposed owner still held the lease";
  ASSERT_TRUE(a_->Run("rollback", "ROLLBACK"));
  ASSERT_TRUE(b_->Run("begin", "BEGIN"));
  holds = HoldsLease(b_.get(), **b, milliseconds(10000));
  ASSERT_TRUE(holds.has_value() && *holds);
  ASSERT_TRUE(b_->Run("commit", "COMMIT"));
  // A cannot take it back while B renews it.
  auto back = AcquireLease(a_.get(), "node-1", "collector-a", milliseconds(2000));
  ASSERT_TRUE(back.has_value());
  EXPECT_FALSE(back->has_value());
}

TEST_F(PgLeaseTest, ReleasedLeasesAreTakenAtOnce) {
  auto a = AcquireLease(a_.get(), "node-2", "collector-a", milliseconds(60000));
  ASSERT_TRUE(a.has_value() && a->has_value());
  ASSERT_TRUE(ReleaseLease(a_.get(), **a));
  auto b = AcquireLease(b_.get(), "node-2", "collector-b", milliseconds(60000));
  ASSERT_TRUE(b.has_value() && b->has_value());
  EXPECT_EQ((*b)->epoch, 2);
  // A release of an epoch no longer current changes nothing.
  ASSERT_TRUE(ReleaseLease(a_.get(), **a));
  auto c = AcquireLease(a_.get(), "node-2", "collector-a", milliseconds(60000));
  ASSERT_TRUE(c.has_value());
  EXPECT_FALSE(c->has_value());
}

// The owner's commit holds the row: a takeover attempt meanwhile waits for it, then finds
// the lease renewed; a takeover that came first makes the owner's commit fail instead.
TEST_F(PgLeaseTest, CommitsAndTakeoversAreSerialized) {
  auto a = AcquireLease(a_.get(), "node-3", "collector-a", milliseconds(200));
  ASSERT_TRUE(a.has_value() && a->has_value());
  std::this_thread::sleep_for(milliseconds(100));
  ASSERT_TRUE(a_->Run("begin", "BEGIN"));
  // Renewed for long in the commit: still the owner's when the commit ends, however late.
  auto holds = HoldsLease(a_.get(), **a, milliseconds(30000));
  ASSERT_TRUE(holds.has_value() && *holds);
  std::atomic<int> taken{-1};
  std::thread b([&] {
    auto c = Connect();
    std::this_thread::sleep_for(milliseconds(150));  // past the first expiry
    auto r = AcquireLease(c.get(), "node-3", "collector-b", milliseconds(200));
    taken = r && r->has_value() ? 1 : 0;
  });
  std::this_thread::sleep_for(milliseconds(250));
  EXPECT_EQ(taken.load(), -1) << "the takeover did not wait for the owner's commit";
  ASSERT_TRUE(a_->Run("commit", "COMMIT"));
  b.join();
  EXPECT_EQ(taken.load(), 0) << "taken although the owner renewed it in its commit";
}

// Two collectors sharing 20 nodes: each node one owner at a time; one collector dies (stops
// renewing) and the other ends up with every node, each at a higher epoch.
TEST_F(PgLeaseTest, TwoCollectorsShareNodesAndTakeOver) {
  for (int i = 0; i < 20; ++i) {
    std::string node = "n";
    node += std::to_string(i);  // not "n" + ...: g++ 12 warns falsely (-Wrestrict) on that
    ASSERT_TRUE(a_->Exec("node", "INSERT INTO node_heads(node) VALUES ($1)", {node}));
  }
  std::map<std::string, Lease> held_a, held_b;
  auto round = [&](PgConn* c, const std::string& owner, std::map<std::string, Lease>* held,
                   size_t want) {
    auto free = UnownedNodes(c, 100);
    ASSERT_TRUE(free.has_value()) << free.error().message();
    for (const std::string& n : *free) {
      if (held->size() >= want) break;
      auto l = AcquireLease(c, n, owner, milliseconds(3000));
      ASSERT_TRUE(l.has_value());
      if (l->has_value()) (*held)[n] = **l;
    }
  };
  std::thread ta([&] { round(a_.get(), "collector-a", &held_a, 10); });
  std::thread tb([&] { round(b_.get(), "collector-b", &held_b, 10); });
  ta.join();
  tb.join();
  EXPECT_EQ(held_a.size() + held_b.size(), 20u);
  for (const auto& [n, l] : held_a) EXPECT_FALSE(held_b.contains(n)) << n << " owned twice";
  auto free = UnownedNodes(a_.get(), 100);
  ASSERT_TRUE(free.has_value());
  EXPECT_TRUE(free->empty());
  // A dies: B takes the rest over after the expiry.
  std::this_thread::sleep_for(milliseconds(3200));
  for (auto& [n, l] : held_b) {
    auto r = AcquireLease(b_.get(), n, "collector-b", milliseconds(3000));
    ASSERT_TRUE(r.has_value() && r->has_value());
    EXPECT_EQ((*r)->epoch, l.epoch) << "a renewal changed the epoch";
  }
  round(b_.get(), "collector-b", &held_b, 20);
  EXPECT_EQ(held_b.size(), 20u);
  for (const auto& [n, l] : held_a) EXPECT_EQ(held_b[n].epoch, l.epoch + 1) << n;
}

}  // namespace
}  // namespace driftwatch
