#include "lib/audit_event.h"

#include <gtest/gtest.h>

#include "unit/test_util.h"

namespace driftwatch {
namespace {

const std::string kSys =
    "type=SYSCALL msg=audit(1700000000.100:7): arch=c000003e syscall=59 success=yes exit=0 "
    "a0=1 a1=2 a2=3 a3=4 items=2 ppid=10 pid=11 auid=1000 uid=1000 gid=1000 euid=0 suid=0 "
    "fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm=\"ls\" exe=\"/usr/bin/ls\" key=\"exec\"";

std::string Rec(const std::string& type, const std::string& body, int serial = 7) {
  return "type=" + type + " msg=audit(1700000000.100:" + std::to_string(serial) + "): " + body;
}

TEST(AuditEvent, ExecWithAllRecords) {
  auto res = RunLines({kSys, Rec("EXECVE", "argc=3 a0=\"ls\" a1=\"-l\" a2=2F746D702F6120622063"),
                       Rec("CWD", "cwd=\"/root\""),
                       Rec("PATH", "item=0 name=\"/usr/bin/ls\" inode=42 dev=fe:00 mode=0100755 "
                                   "ouid=0 ogid=0 rdev=00:00 nametype=NORMAL"),
                       Rec("PATH", "item=1 name=\"/lib64/ld-linux-x86-64.so.2\" inode=9 dev=fe:00"),
                       Rec("PROCTITLE", "proctitle=6C73002D6C"), Rec("EOE", "")});
  ASSERT_EQ(res.events.size(), 1u);
  EXPECT_EQ(res.errors, 0u);
  const auto& e = res.events[0].exec();
  EXPECT_EQ(e.syscall(), "execve");
  EXPECT_TRUE(e.success());
  EXPECT_EQ(e.pid(), 11u);
  EXPECT_EQ(e.ppid(), 10u);
  EXPECT_EQ(e.uid(), 1000u);
  EXPECT_EQ(e.euid(), 0u);
  EXPECT_EQ(e.auid(), 1000u);
  EXPECT_EQ(e.session(), 3u);
  EXPECT_EQ(e.tty(), "pts0");
  EXPECT_EQ(e.comm(), "ls");
  EXPECT_EQ(e.exe(), "/usr/bin/ls");
  ASSERT_EQ(e.args_size(), 3);
  EXPECT_EQ(e.args(2), "/tmp/a b c");
  EXPECT_FALSE(e.args_truncated());
  EXPECT_EQ(e.cwd(), "/root");
  EXPECT_EQ(e.exe_inode(), 42u);
  EXPECT_EQ(e.exe_dev_major(), 0xfeu);
  EXPECT_EQ(e.exe_mode(), 0100755u);
  EXPECT_EQ(e.interpreter(), "/lib64/ld-linux-x86-64.so.2");
  EXPECT_EQ(e.arch(), "x86_64");
  EXPECT_EQ(res.events[0].audit().serial(), 7u);
  EXPECT_EQ(res.events[0].time_ns(), 1700000000100000000);
}

// Issue 11: the kernel hex-encodes a name it would not print as is; it decodes to the raw
// bytes (here /tmp/<0xff>x, not UTF-8), and the event goes on the wire unchanged.
TEST(AuditEvent, HexNamesDecodeToRawBytes) {
  const std::string sys =
      "type=SYSCALL msg=audit(1700000000.100:7): arch=c000003e syscall=59 success=yes exit=0 "
      "a0=1 a1=2 a2=3 a3=4 items=1 ppid=10 pid=11 auid=0 uid=0 gid=0 euid=0 suid=0 "
      "fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=FF78 exe=2F746D702FFF78 "
      "key=\"exec\"";
  auto res = RunLines({sys, Rec("EXECVE", "argc=2 a0=2F746D702FFF78 a1=61FE62"),
                       Rec("CWD", "cwd=2F746D702FFE"),
                       Rec("PATH", "item=0 name=2F746D702FFF78 inode=42 dev=00:27 mode=0100755"),
                       Rec("PROCTITLE", "proctitle=2F746D702FFF780061FE62"), Rec("EOE", "")});
  ASSERT_EQ(res.events.size(), 1u);
  EXPECT_EQ(res.errors, 0u);
  const std::string path = "/tmp/\xffx";
  const auto& e = res.events[0].exec();
  EXPECT_EQ(e.comm(), "\xffx");
  EXPECT_EQ(e.exe(), path);
  EXPECT_EQ(e.path(), path);
  EXPECT_EQ(e.cwd(), "/tmp/\xfe");
  ASSERT_EQ(e.args_size(), 2);
  EXPECT_EQ(e.args(0), path);
  EXPECT_EQ(e.args(1), "a\xfe" "b");
  v1::Event back;
  ASSERT_TRUE(back.ParseFromString(res.events[0].SerializeAsString()));
  EXPECT_EQ(back.exec().exe(), path);
  EXPECT_EQ(back.exec().args(1), "a\xfe" "b");

  const std::string chmod =
      "type=SYSCALL msg=audit(1700000000.100:8): arch=c000003e syscall=268 success=yes exit=0 "
      "a0=ffffff9c a1=55d0 a2=1ed a3=0 items=1 ppid=10 pid=12 auid=0 uid=0 gid=0 euid=0 suid=0 "
      "fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"chmod\" "
      "exe=\"/bin/busybox\" key=\"chmod\"";
  res = RunLines({chmod, Rec("CWD", "cwd=\"/\"", 8),
                  Rec("PATH", "item=0 name=2F746D702FFF78 inode=42 dev=00:27 mode=0100644", 8),
                  Rec("EOE", "", 8)});
  ASSERT_EQ(res.events.size(), 1u);
  ASSERT_TRUE(res.events[0].has_chmod());
  EXPECT_EQ(res.events[0].chmod().path(), path);
}

TEST(AuditEvent, ArgumentsInNumericOrderAcrossRecords) {
  std::string body = "argc=12";
  for (int i = 0; i < 12; ++i) body += " a" + std::to_string(i) + "=\"x" + std::to_string(i) + "\"";
  // a10 and a11 arrive in a second EXECVE record, as the kernel splits long argv.
  auto res = RunLines({kSys,
                       Rec("EXECVE", body.substr(0, body.find(" a10="))),
                       Rec("EXECVE", body.substr(body.find(" a10=") + 1)), Rec("EOE", "")});
  ASSERT_EQ(res.events.size(), 1u);
  const auto& e = res.events[0].exec();
  ASSERT_EQ(e.args_size(), 12);
  EXPECT_EQ(e.args(9), "x9");
  EXPECT_EQ(e.args(10), "x10");
  EXPECT_EQ(e.args(11), "x11");
  EXPECT_EQ(res.errors, 0u);
}

TEST(AuditEvent, EmptyAndSplitArguments) {
  std::string chunk0(16, 'A'), chunk1(4, 'B');  // hex text: "AAAA..." decodes to 0xAA
  auto res = RunLines({kSys,
                       Rec("EXECVE", "argc=4 a0=\"echo\" a1=\"\" a2_len=20 a2[0]=" + chunk0),
                       Rec("EXECVE", "a2[1]=" + chunk1),
                       Rec("EXECVE", "a3=\"end\""), Rec("EOE", "")});
  ASSERT_EQ(res.events.size(), 1u);
  const auto& e = res.events[0].exec();
  ASSERT_EQ(e.args_size(), 4);
  EXPECT_EQ(e.args(1), "");
  EXPECT_EQ(e.args(2), std::string(8, '\xAA') + std::string(2, '\xBB'));
  EXPECT_EQ(e.args(3), "end");
  EXPECT_FALSE(e.args_truncated());
  EXPECT_EQ(res.errors, 0u);
}

TEST(AuditEvent, ArgcLargerThanFieldsPresentIsTruncated) {
  auto res = RunLines({kSys, Rec("EXECVE", "argc=5 a0=\"a\" a1=\"b\""), Rec("EOE", "")});
  ASSERT_EQ(res.events.size(), 1u);
  EXPECT_EQ(res.events[0].exec().args_size(), 2);
  EXPECT_EQ(res.events[0].exec().argc(), 5u);
  EXPECT_TRUE(res.events[0].exec().args_truncated());
  EXPECT_GE(res.errors, 1u);
}

TEST(AuditEvent, BadHexIsReportedAndKeptRaw) {
  auto res = RunLines({kSys, Rec("EXECVE", "argc=2 a0=\"a\" a1=ZZ"), Rec("EOE", "")});
  ASSERT_EQ(res.events.size(), 1u);
  EXPECT_EQ(res.events[0].exec().args(1), "ZZ");
  EXPECT_EQ(res.errors, 1u);
}

TEST(AuditEvent, FailedExecHasErrnoAndNoArgs) {
  std::string sys = kSys;
  sys.replace(sys.find("success=yes exit=0"), 18, "success=no exit=-13");
  auto res = RunLines({sys, Rec("CWD", "cwd=\"/\""),
                       Rec("PATH", "item=0 name=\"/dev/shm/x\" inode=2 dev=00:38 mode=0100755"),
                       Rec("PROCTITLE", "proctitle=\"sh\"")});
  ASSERT_EQ(res.events.size(), 1u);
  const auto& e = res.events[0].exec();
  EXPECT_FALSE(e.success());
  EXPECT_EQ(e.exit(), -13);
  EXPECT_EQ(e.errno_name(), "EACCES");
  EXPECT_EQ(e.path(), "/dev/shm/x");
  EXPECT_EQ(e.args_size(), 0);  // a failed exec's proctitle is the caller's, not argv
}

TEST(AuditEvent, RuncInitIsPlumbing) {
  std::string sys = kSys;
  sys.replace(sys.find("syscall=59"), 10, "syscall=322");
  auto res = RunLines({sys, Rec("EXECVE", "argc=2 a0=\"runc\" a1=\"init\""), Rec("EOE", "")});
  ASSERT_EQ(res.events.size(), 1u);
  EXPECT_EQ(res.events[0].exec().syscall(), "execveat");
  EXPECT_TRUE(res.events[0].exec().runtime_plumbing());
}

TEST(AuditEvent, ChmodAddingExecBit) {
  auto res = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=90 success=yes exit=0 a0=1 a1=1ed "
       "pid=5 ppid=4 uid=0 comm=\"chmod\" exe=\"/bin/chmod\"",
       "type=PATH msg=audit(1.000:9): item=0 name=\"/tmp/x\" inode=3 dev=00:20 mode=0100644",
       "type=PROCTITLE msg=audit(1.000:9): proctitle=\"chmod\""});
  ASSERT_EQ(res.events.size(), 1u);
  const auto& c = res.events[0].chmod();
  EXPECT_EQ(c.syscall(), "chmod");
  EXPECT_EQ(c.new_mode(), 0755u);
  EXPECT_EQ(c.old_mode(), 0100644u);
  EXPECT_TRUE(c.adds_exec());
  EXPECT_EQ(c.path(), "/tmp/x");
}

TEST(AuditEvent, OtherSyscallsAreNotEvents) {
  auto res = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=44 success=yes exit=0 pid=5",
       "type=PROCTITLE msg=audit(1.000:9): proctitle=\"x\""});
  EXPECT_TRUE(res.events.empty());
  EXPECT_EQ(res.stats.events_completed, 1u);
}

TEST(AuditEvent, EnrichedUserName) {
  auto res = RunLines({kSys + "\x1d" "ARCH=x86_64 SYSCALL=execve AUID=\"alice\" UID=\"alice\"",
                       Rec("EXECVE", "argc=1 a0=\"ls\"")});
  ASSERT_EQ(res.events.size(), 1u);
  EXPECT_EQ(res.events[0].exec().user_name(), "alice");
}

TEST(Reassembler, InterleavedEventsAndPROCTITLECompletion) {
  // auditd logs carry no EOE: PROCTITLE (the kernel's last record) completes an event.
  std::string sys8 = kSys;
  sys8.replace(sys8.find(":7)"), 3, ":8)");
  auto res = RunLines({kSys, sys8, Rec("EXECVE", "argc=1 a0=\"eight\"", 8),
                       Rec("EXECVE", "argc=1 a0=\"seven\"", 7), Rec("PROCTITLE", "proctitle=\"a\"", 7),
                       Rec("PROCTITLE", "proctitle=\"b\"", 8)});
  ASSERT_EQ(res.events.size(), 2u);
  EXPECT_EQ(res.events[0].exec().args(0), "seven");
  EXPECT_EQ(res.events[1].exec().args(0), "eight");
}

TEST(Reassembler, EvictsOldestBeyondBound) {
  std::vector<std::string> lines;
  for (int i = 1; i <= 5; ++i) {
    std::string s = kSys;
    s.replace(s.find(":7)"), 3, std::string(":") + std::to_string(i) + ")");
    lines.push_back(s);
  }
  AuditReassembler::Options opt;
  opt.max_in_flight = 2;
  auto res = RunLines(lines, opt);
  EXPECT_EQ(res.stats.evictions, 3u);
  EXPECT_EQ(res.events.size(), 5u);  // evicted events are emitted, not lost
}

TEST(Reassembler, TimeoutInStreamTime) {
  Diagnostics diag(nullptr);
  std::vector<v1::Event> out;
  AuditReassembler r({}, [&](v1::Event& e) { out.push_back(e); }, &diag);
  AuditRecord rec;
  ASSERT_EQ(ParseLogLine(kSys, &rec), nullptr);
  r.Push(rec);
  r.Expire(rec.TimeMs() + 1000);
  EXPECT_TRUE(out.empty());
  r.Expire(rec.TimeMs() + 2000);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(r.stats().timeouts, 1u);
}

TEST(Reassembler, LateEoeAfterProctitleIsIgnored) {
  auto res = RunLines({kSys, Rec("PROCTITLE", "proctitle=\"a\""), Rec("EOE", "")});
  // The first EOE turns PROCTITLE completion off for the rest of the stream; this one
  // came after its event completed and must not make a second event.
  EXPECT_EQ(res.events.size(), 1u);
}

}  // namespace
}  // namespace driftwatch
