#include "lib/node/procfs.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace driftwatch {
namespace {

TEST(ProcfsTest, ParsesStatAfterTheLastParenthesis) {
  // comm with spaces and parentheses, as a process may name itself.
  auto st = ParseProcStat(
      "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 97 0 0 0 0 0 0 0 20 0 1 0 123456 1 2 3");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->start_ticks, 123456u);
  auto z = ParseProcStat("7 (sh) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0");
  ASSERT_TRUE(z);
  EXPECT_EQ(z->state, 'Z');
  EXPECT_EQ(z->start_ticks, 99u);
}

TEST(ProcfsTest, RefusesWhatIsNotAStatLine) {
  EXPECT_FALSE(ParseProcStat(""));
  EXPECT_FALSE(ParseProcStat("no parenthesis here"));
  EXPECT_FALSE(ParseProcStat("1 (x) S 1 2"));                                  // too short
  EXPECT_FALSE(ParseProcStat("1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12x 0"));  // bad number
}

TEST(ProcfsTest, ReadsOwnProcess) {
  auto st = ReadProcStat(getpid());
  ASSERT_TRUE(st);
  EXPECT_NE(st->start_ticks, 0u);
  std::string text;
  EXPECT_TRUE(ReadSmallFile("/proc/self/cgroup", &text));
  EXPECT_FALSE(ReadSmallFile("/proc/self/no-such-file", &text));
}

}  // namespace
}  // namespace driftwatch
