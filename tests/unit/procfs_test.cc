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

TEST(ProcfsTest, ParsesStatIdsCommAndEnvironmentBounds) {
  // A real line's shape: arg_start, arg_end, env_start, env_end are fields 48 to 51.
  std::string line = "4242 (sh) S 4100 4200 4000 34816 4242 4194560 1 0 0 0 0 0 0 0 20 0 1 0 "
                     "123456 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 "
                     "139000 139100 140000 140512 0\n";
  auto st = ParseProcStat(line);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->comm, "sh");
  EXPECT_EQ(st->ppid, 4100);
  EXPECT_EQ(st->pgrp, 4200);
  EXPECT_EQ(st->session, 4000);
  EXPECT_EQ(st->start_ticks, 123456u);
  EXPECT_EQ(st->env_start, 140000u);
  EXPECT_EQ(st->env_end, 140512u);
  // An old kernel's short line, or one a reader may not ptrace (zeros): no bounds.
  auto old = ParseProcStat("7 (a b) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0");
  ASSERT_TRUE(old);
  EXPECT_EQ(old->comm, "a b");
  EXPECT_EQ(old->env_end, 0u);
  // A comm that holds ") S 1 2 3": fields are counted after the last ')'.
  auto tricky = ParseProcStat("9 (x) S 1 2 3) R 5 6 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 77 0");
  ASSERT_TRUE(tricky);
  EXPECT_EQ(tricky->comm, "x) S 1 2 3");
  EXPECT_EQ(tricky->pgrp, 6);
  EXPECT_EQ(tricky->session, 7);
}

TEST(ProcfsTest, ParsesStatusNamespaceIdsAndCapabilities) {
  // A container process: host ids first, the innermost namespace's last.
  auto s = ParseProcStatus(
      "Name:\tsh\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4242\n"
      "PPid:\t4100\nNSpid:\t4242\t7\nNSpgid:\t4242\t7\nNSsid:\t4100\t1\n"
      "CapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n"
      "CapBnd:\t00000000a80425fb\n");
  EXPECT_EQ(s.vpid, 7u);
  EXPECT_EQ(s.vpgid, 7u);
  EXPECT_EQ(s.vsid, 1u);
  EXPECT_EQ(s.cap_inheritable, 0u);
  EXPECT_EQ(s.cap_permitted, 0xa80425fbu);
  EXPECT_EQ(s.cap_effective, 0xa80425fbu);
  // A host process: one id each.
  auto h = ParseProcStatus("NSpid:\t1234\nNSpgid:\t1200\nNSsid:\t1100\nCapEff:\t000001ffffffffff\n");
  EXPECT_EQ(h.vpid, 1234u);
  EXPECT_EQ(h.vsid, 1100u);
  EXPECT_EQ(h.cap_effective, 0x1ffffffffffu);
  EXPECT_FALSE(h.cap_permitted);
  // Refused: missing, malformed, too long. Nothing is guessed.
  for (const char* bad : {"", "NSpid:\n", "NSpid:\tx\n", "NSpid:\t-1\n", "NSpid:\t99999999999\n",
                          "CapEff:\t00000000000000000\n", "CapEff:\tzz\n", "CapEff\t1\n"}) {
    auto b = ParseProcStatus(bad);
    EXPECT_FALSE(b.vpid) << bad;
    EXPECT_FALSE(b.cap_effective) << bad;
  }
}

TEST(ProcfsTest, SplitsEnvironWithinTheCap) {
  using namespace std::string_view_literals;
  auto all = SplitEnviron("A=1\0B=22\0\0C=\xff\xfe\0"sv, 4096);
  ASSERT_EQ(all.entries.size(), 3u);  // the empty entry skipped; bytes kept as they are
  EXPECT_EQ(all.entries[2], "C=\xff\xfe"sv);
  EXPECT_FALSE(all.capped);
  // No final NUL: the last entry is still whole when nothing lies beyond.
  auto last = SplitEnviron("A=1\0B=2"sv, 4096);
  ASSERT_EQ(last.entries.size(), 2u);
  EXPECT_EQ(last.entries[1], "B=2");
  // Cap 9: "A=1\0" (4) and "B=22\0" (5) fit; "CC=333\0" (7) is dropped whole.
  auto capped = SplitEnviron("A=1\0B=22\0CC=333\0D=4\0"sv, 9);
  ASSERT_EQ(capped.entries.size(), 2u);
  EXPECT_TRUE(capped.capped);
  EXPECT_EQ(capped.dropped_bytes, 7u + 4u);  // the entries after one that did not fit go too
  // A read cut short (50 more bytes beyond): its last piece is dropped and counted.
  auto cut = SplitEnviron("A=1\0PATH=/usr/b"sv, 4096, 50);
  ASSERT_EQ(cut.entries.size(), 1u);
  EXPECT_TRUE(cut.capped);
  EXPECT_EQ(cut.dropped_bytes, 11u + 50u);  // "PATH=/usr/b" and the 50
  auto none = SplitEnviron(""sv, 4096);
  EXPECT_TRUE(none.entries.empty());
  EXPECT_FALSE(none.capped);
}

TEST(ProcfsTest, ReadsOwnProcess) {
  auto st = ReadProcStat(getpid());
  ASSERT_TRUE(st);
  EXPECT_NE(st->start_ticks, 0u);
  std::string text;
  EXPECT_TRUE(ReadSmallFile("/proc/self/cgroup", &text));
  EXPECT_FALSE(ReadSmallFile("/proc/self/no-such-file", &text));
  // stat's environment bounds are /proc/self/environ's size (fields 50, 51; root may read).
  ASSERT_TRUE(ReadSmallFile("/proc/self/environ", &text));
  if (st->env_end != 0) {
    EXPECT_EQ(st->env_end - st->env_start, text.size());
  }
  auto own = ParseProcStatus((ReadSmallFile("/proc/self/status", &text), text));
  EXPECT_EQ(own.vpid, static_cast<uint32_t>(getpid()));
  EXPECT_TRUE(own.cap_effective);
}

}  // namespace
}  // namespace driftwatch
