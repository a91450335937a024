// PidCursor: when a pid seen alive can be trusted to name the same process without /proc.
#include "lib/node/pid_cursor.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace driftwatch {
namespace {

constexpr int64_t kMs = 1'000'000;

TEST(PidCursor, UnknownUntilObserved) {
  PidCursor c;
  EXPECT_TRUE(c.MayBeReused(500, c.mark()));
  c.Observe(kMs, std::nullopt, 4194304);
  EXPECT_TRUE(c.MayBeReused(500, c.mark()));
  c.Observe(2 * kMs, 1000, 4096);  // pid_max below kMinPidMax: could go round unseen
  EXPECT_TRUE(c.MayBeReused(500, c.mark()));
}

TEST(PidCursor, BehindTheCursorUntilItComesRound) {
  PidCursor c;
  c.Observe(kMs, 1000, 32768);
  const PidCursor::Mark m = c.mark();
  EXPECT_FALSE(c.MayBeReused(900, m));    // handed out before the mark
  EXPECT_FALSE(c.MayBeReused(1000, m));
  c.Observe(2 * kMs, 1500, 32768);
  EXPECT_FALSE(c.MayBeReused(900, m));    // the cursor moved on, away from it
  c.Observe(3 * kMs, 600, 32768);         // went round (down): 900 may be given again
  EXPECT_TRUE(c.MayBeReused(900, m));
  EXPECT_TRUE(c.MayBeReused(100, m));
  EXPECT_FALSE(c.MayBeReused(500, c.mark()));  // a new mark after the round
}

TEST(PidCursor, AheadOfTheMarkWhenTheCursorNearsIt) {
  PidCursor c;
  c.Observe(kMs, 1000, 32768);
  const PidCursor::Mark m = c.mark();
  EXPECT_FALSE(c.MayBeReused(20000, m));  // far ahead: not reached before the next look
  EXPECT_TRUE(c.MayBeReused(1500, m));    // within the margin of the cursor
  c.Observe(2 * kMs, 19500, 32768);
  EXPECT_TRUE(c.MayBeReused(20000, m));   // the cursor came close
  c.Observe(3 * kMs, 21000, 32768);
  EXPECT_TRUE(c.MayBeReused(20000, m));   // and passed it
}

TEST(PidCursor, NearPidMaxEverythingMayBeReused) {
  PidCursor c;
  c.Observe(kMs, 32768 - PidCursor::kMargin, 32768);
  EXPECT_TRUE(c.MayBeReused(400, c.mark()));
  c.Observe(2 * kMs, 1000, 4194304);  // pid_max raised; the cursor went down: a new round
  EXPECT_FALSE(c.MayBeReused(400, c.mark()));
}

// Observed after the event: where the cursor stood at the event is behind the observation,
// so no margin for its moves since. A pass, a round, a gap still count.
TEST(PidCursor, ObservedAfterTheEventNeedsNoMargin) {
  PidCursor c;
  c.Observe(kMs, 1000, 32768);
  const PidCursor::Mark m = c.mark();
  EXPECT_TRUE(c.MayBeReused(1500, m));
  EXPECT_FALSE(c.MayBeReused(1500, m, /*observed_after=*/true));
  c.Observe(2 * kMs, 1499, 32768);
  EXPECT_FALSE(c.MayBeReused(1500, m, true));  // close, not passed
  c.Observe(3 * kMs, 1500, 32768);
  EXPECT_TRUE(c.MayBeReused(1500, m, true));   // passed
  EXPECT_FALSE(c.MayBeReused(900, m, true));   // behind the mark
  c.Observe(4 * kMs, 32768 - 10, 32768);
  EXPECT_TRUE(c.MayBeReused(900, m));          // near pid_max: only with the margin
  EXPECT_FALSE(c.MayBeReused(900, m, true));
  c.Observe(5 * kMs, 400, 32768);              // went round
  EXPECT_TRUE(c.MayBeReused(900, m, true));
  const PidCursor::Mark m2 = c.mark();
  c.Observe(5 * kMs + PidCursor::kMaxGapNs + 1, 410, 32768);  // unseen for too long
  EXPECT_TRUE(c.MayBeReused(300, m2, true));
}

TEST(PidCursor, AGapOrALowerPidMaxStartsANewRound) {
  PidCursor c;
  c.Observe(kMs, 1000, 32768);
  PidCursor::Mark m = c.mark();
  c.Observe(kMs + PidCursor::kMaxGapNs + 1, 1200, 32768);  // unseen for too long
  EXPECT_TRUE(c.MayBeReused(900, m));
  m = c.mark();
  c.Observe(kMs + PidCursor::kMaxGapNs + 2 * kMs, 1300, 40000);  // pid_max raised: same round
  EXPECT_FALSE(c.MayBeReused(900, m));
  c.Observe(kMs + PidCursor::kMaxGapNs + 3 * kMs, 1400, 32768);  // lowered
  EXPECT_TRUE(c.MayBeReused(900, m));
  m = c.mark();
  c.Observe(kMs + PidCursor::kMaxGapNs + 4 * kMs, std::nullopt, 32768);  // unknown
  EXPECT_TRUE(c.MayBeReused(900, m));
  c.Observe(kMs + PidCursor::kMaxGapNs + 5 * kMs, 1500, 32768);  // known again: new round
  EXPECT_TRUE(c.MayBeReused(900, m));
}

// The reader on this machine: the tests run in the init pid namespace as root.
TEST(PidCursorReader, ReadsTheCounter) {
  PidCursorReader r;
  if (!r.available()) GTEST_SKIP() << "not in the init pid namespace";
  std::optional<int64_t> before = r.LastPid();
  ASSERT_TRUE(before.has_value());
  ASSERT_TRUE(r.PidMax().has_value());
  EXPECT_GE(*r.PidMax(), 301);
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  std::optional<int64_t> after = r.LastPid();
  ASSERT_TRUE(after.has_value());
  // The counter moved to the child (or past it, or went round).
  EXPECT_TRUE(*after >= child || *after < *before) << *before << " " << child << " " << *after;
  int st;
  waitpid(child, &st, 0);
}

}  // namespace
}  // namespace driftwatch
