#include "lib/audit/audit_event.h"

#include <gtest/gtest.h>

#include "lib/event/event_json.h"
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

// Network calls: SYSCALL and SOCKADDR records, as the kernel writes them (saddr= is the
// struct sockaddr in hex, family in host order, port and address in network order).
TEST(AuditEvent, ConnectIpv4WithItsAddress) {
  auto res = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=42 success=no exit=-115 a0=5 "
       "a1=7ffd a2=10 a3=0 items=0 ppid=4 pid=5 auid=4294967295 uid=0 gid=0 euid=0 tty=(none) "
       "ses=4294967295 comm=\"curl\" exe=\"/usr/bin/curl\" key=\"dw_net\"",
       "type=SOCKADDR msg=audit(1.000:9): saddr=02000050A9FEA9FE0000000000000000",
       "type=PROCTITLE msg=audit(1.000:9): proctitle=\"curl\""});
  ASSERT_EQ(res.events.size(), 1u);
  const v1::NetworkActivity& n = res.events[0].network();
  EXPECT_EQ(n.syscall(), "connect");
  EXPECT_FALSE(n.success());
  EXPECT_EQ(n.errno_name(), "EINPROGRESS");
  EXPECT_EQ(n.fd(), 5);
  EXPECT_EQ(n.family(), 2u);
  EXPECT_EQ(n.address(), std::string("\xa9\xfe\xa9\xfe", 4));
  EXPECT_EQ(n.port(), 80u);
  EXPECT_FALSE(n.address_is_local());
  EXPECT_EQ(n.comm(), "curl");
  EXPECT_EQ(res.errors, 0u);
}

TEST(AuditEvent, AcceptBindListenAndUnixSockets) {
  // accept4 of an IPv6 client: the new descriptor is the result.
  auto acc = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=288 success=yes exit=7 a0=3 "
       "pid=5 ppid=1 uid=0 comm=\"sshd\" exe=\"/usr/sbin/sshd\"",
       "type=SOCKADDR msg=audit(1.000:9): saddr=0A00C7380000000020010DB8000000000000000000000001"
       "00000000"});
  ASSERT_EQ(acc.events.size(), 1u);
  EXPECT_EQ(acc.events[0].network().syscall(), "accept4");
  EXPECT_EQ(acc.events[0].network().fd(), 7);
  EXPECT_EQ(acc.events[0].network().family(), 10u);
  EXPECT_EQ(acc.events[0].network().port(), 51000u);
  EXPECT_EQ(acc.events[0].network().address().size(), 16u);
  // bind: the address is the socket's own.
  auto bind = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=49 success=yes exit=0 a0=3 pid=5",
       "type=SOCKADDR msg=audit(1.000:9): saddr=02001F90000000000000000000000000"});
  ASSERT_EQ(bind.events.size(), 1u);
  EXPECT_TRUE(bind.events[0].network().address_is_local());
  EXPECT_EQ(bind.events[0].network().port(), 8080u);
  // listen names no address.
  auto listen = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=50 success=yes exit=0 a0=3 a1=1000 pid=5"});
  ASSERT_EQ(listen.events.size(), 1u);
  EXPECT_EQ(listen.events[0].network().syscall(), "listen");
  EXPECT_EQ(listen.events[0].network().family(), 0u);
  EXPECT_EQ(listen.events[0].network().fd(), 3);
  // A unix socket's path ends at its NUL; an abstract name keeps its leading NUL.
  auto path = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=42 success=yes exit=0 a0=4 pid=5",
       "type=SOCKADDR msg=audit(1.000:9): saddr=01002F72756E2F782E736F636B000000"});
  ASSERT_EQ(path.events.size(), 1u);
  EXPECT_EQ(path.events[0].network().unix_path(), "/run/x.sock");
  auto abstract = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=42 success=yes exit=0 a0=4 pid=5",
       "type=SOCKADDR msg=audit(1.000:9): saddr=0100006162"});
  ASSERT_EQ(abstract.events.size(), 1u);
  EXPECT_EQ(abstract.events[0].network().unix_path(), std::string("\0ab", 3));
}

TEST(AuditEvent, SocketcallAndBadSockaddr) {
  // i386 socketcall: the call is a0 (3: connect), the socket is behind a pointer.
  auto sc = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=40000003 syscall=102 success=yes exit=0 a0=3 "
       "a1=ffd0 pid=5",
       "type=SOCKADDR msg=audit(1.000:9): saddr=0200005001020304"});
  ASSERT_EQ(sc.events.size(), 1u);
  EXPECT_EQ(sc.events[0].network().syscall(), "connect");
  EXPECT_EQ(sc.events[0].network().fd(), -1);
  EXPECT_EQ(sc.events[0].network().address(), "\x01\x02\x03\x04");
  // socketcall's other calls (1: socket) are not events.
  auto other = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=40000003 syscall=102 success=yes exit=3 a0=1 pid=5"});
  EXPECT_TRUE(other.events.empty());
  // An address cut short is reported; the event keeps its family only.
  auto cut = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=42 success=yes exit=0 a0=4 pid=5",
       "type=SOCKADDR msg=audit(1.000:9): saddr=0A000050"});
  ASSERT_EQ(cut.events.size(), 1u);
  EXPECT_EQ(cut.events[0].network().family(), 10u);
  EXPECT_TRUE(cut.events[0].network().address().empty());
  EXPECT_EQ(cut.errors, 1u);
  auto bad = RunLines(
      {"type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=42 success=yes exit=0 a0=4 pid=5",
       "type=SOCKADDR msg=audit(1.000:9): saddr=zz"});
  ASSERT_EQ(bad.events.size(), 1u);
  EXPECT_EQ(bad.errors, 1u);
}

TEST(AuditEvent, EnrichedUserName) {
  auto res = RunLines({kSys + "\x1d" "ARCH=x86_64 SYSCALL=execve AUID=\"alice\" UID=\"alice\"",
                       Rec("EXECVE", "argc=1 a0=\"ls\"")});
  ASSERT_EQ(res.events.size(), 1u);
  EXPECT_EQ(res.events[0].exec().user_name(), "alice");
  EXPECT_EQ(res.events[0].exec().login_name(), "alice");
  // GID= names the group; AUID="unset" (loginuid 4294967295) names no one.
  auto unset = RunLines({kSys + "\x1d" "ARCH=x86_64 SYSCALL=execve AUID=\"unset\" UID=\"root\" GID=\"wheel\"",
                         Rec("EXECVE", "argc=1 a0=\"ls\"")});
  ASSERT_EQ(unset.events.size(), 1u);
  EXPECT_EQ(unset.events[0].exec().login_name(), "");
  EXPECT_EQ(unset.events[0].exec().group_name(), "wheel");
  EXPECT_EQ(unset.events[0].exec().user_name(), "root");
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

// The reassembler reuses a completed event's builder for the next: nothing of the first
// may show in the second (here: argv, cwd, interpreter, tty, a split argument in progress).
TEST(Reassembler, AReusedBuilderKeepsNothingOfTheLastEvent) {
  const std::string sys2 =
      "type=SYSCALL msg=audit(1700000000.100:8): arch=c000003e syscall=59 success=yes exit=0 "
      "a0=1 a1=2 a2=3 a3=4 items=1 ppid=20 pid=21 auid=0 uid=0 gid=0 euid=0 suid=0 "
      "fsuid=0 egid=0 sgid=0 fsgid=0 ses=4 comm=\"true\" exe=\"/bin/true\" key=\"exec\"";
  auto res = RunLines({kSys, Rec("EXECVE", "argc=3 a0=\"ls\" a1=\"-l\" a2_len=6 a2[0]=\"abc\""),
                       Rec("CWD", "cwd=\"/root\""),
                       Rec("PATH", "item=0 name=\"/usr/bin/ls\" inode=42 dev=fe:00 mode=0100755"),
                       Rec("PATH", "item=1 name=\"/lib64/ld-linux-x86-64.so.2\" inode=9 dev=fe:00"),
                       Rec("EOE", ""),
                       sys2, Rec("EXECVE", "argc=1 a0=\"true\"", 8), Rec("EOE", "", 8)});
  ASSERT_EQ(res.events.size(), 2u);
  const auto& a = res.events[0].exec();
  EXPECT_TRUE(a.args_truncated());  // its split argument ended short of its _len
  const auto& b = res.events[1].exec();
  EXPECT_EQ(b.pid(), 21u);
  ASSERT_EQ(b.args_size(), 1);
  EXPECT_EQ(b.args(0), "true");
  EXPECT_FALSE(b.args_truncated());
  EXPECT_EQ(b.cwd(), "");
  EXPECT_EQ(b.tty(), "");
  EXPECT_EQ(b.path(), "");
  EXPECT_EQ(b.exe_inode(), 0u);
  EXPECT_EQ(b.interpreter(), "");
  EXPECT_EQ(b.auid(), 0u);
  EXPECT_EQ(res.events[1].audit().serial(), 8u);
}

// The reassembler refills one scratch event in place, an exec's message and argument buffers
// too, after its sink changed it (as the sensor's enrichment and output do): each event of a
// mixed run reads as its records alone give it, and nothing the sink set stays.
TEST(Reassembler, RefilledEventsEqualFreshOnes) {
  auto exec = [](int serial, const std::vector<std::string>& args) {
    std::string sys = kSys;
    sys.replace(sys.find(":7)"), 3, ":" + std::to_string(serial) + ")");
    std::string body = "argc=" + std::to_string(args.size());
    for (size_t i = 0; i < args.size(); ++i) body += " a" + std::to_string(i) + "=\"" + args[i] + "\"";
    return std::vector<std::string>{sys, Rec("EXECVE", body, serial), Rec("EOE", "", serial)};
  };
  const std::vector<std::string> chmod = {
      "type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=90 success=yes exit=0 a0=1 a1=1ed "
      "pid=5 ppid=4 uid=0 comm=\"chmod\" exe=\"/bin/chmod\"",
      "type=PATH msg=audit(1.000:9): item=0 name=\"/tmp/x\" inode=3 dev=00:20 mode=0100644",
      "type=EOE msg=audit(1.000:9): "};
  std::vector<std::string> many(100, "arg-longer-than-sso"), big = {std::string(20000, 'b')};
  std::vector<std::vector<std::string>> runs = {
      exec(1, {"ls", "-l", "/a/path/longer/than/fifteen"}), exec(2, {"true"}), chmod,
      exec(3, many), exec(4, {"x"}), exec(5, big), exec(6, {"a", "b"}), chmod, exec(7, {})};
  std::vector<std::string> lines;
  for (const auto& r : runs) lines.insert(lines.end(), r.begin(), r.end());
  Diagnostics diag(nullptr);
  std::vector<std::string> got;
  AuditReassembler r({}, [&](v1::Event& ev) {
    got.push_back(ev.SerializeAsString());
    // What the sensor adds to every event.
    ev.mutable_id()->set_seq(99);
    ev.set_container_id(std::string(64, 'c'));
    if (ev.has_exec()) {
      ev.mutable_exec()->set_is_exe_upper_layer(true);
      ev.mutable_exec()->add_args("added-by-the-sink");
    }
  }, &diag);
  for (const std::string& line : lines) {
    AuditRecord rec;
    ASSERT_EQ(ParseLogLine(line, &rec), nullptr) << line;
    r.Push(rec);
  }
  r.Flush();
  ASSERT_EQ(got.size(), runs.size());
  for (size_t i = 0; i < runs.size(); ++i) {
    auto fresh = RunLines(runs[i]);
    ASSERT_EQ(fresh.events.size(), 1u);
    v1::Event want = fresh.events[0], have;
    ASSERT_TRUE(have.ParseFromString(got[i]));
    // The sink's id is left in place, emptied (no id: seq 0); the rest is as fresh.
    if (have.has_id()) {
      EXPECT_EQ(have.id().seq(), 0u) << i;
      have.clear_id();
    }
    EXPECT_EQ(have.SerializeAsString(), want.SerializeAsString())
        << i << ": " << have.ShortDebugString() << "\nwant: " << want.ShortDebugString();
  }
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

// Issue 11: a process in any container can exec with megabytes of arguments. The event
// keeps what the caps allow, argc stays exact, and the event says it was cut.
AuditReassembler::Options Caps(size_t max_bytes, size_t max_arg_bytes) {
  AuditReassembler::Options opt;
  opt.argv = {max_bytes, max_arg_bytes};
  return opt;
}

std::string Hex(const std::string& bytes) {
  static const char* d = "0123456789ABCDEF";
  std::string h;
  for (unsigned char c : bytes) {
    h.push_back(d[c >> 4]);
    h.push_back(d[c & 15]);
  }
  return h;
}

TEST(ArgvCaps, LongArgumentIsCutAndMarked) {
  const std::string big(10000, 'A');
  auto res = RunLines({kSys, Rec("EXECVE", "argc=3 a0=\"sh\" a1=\"-c\" a2=\"" + big + "\""),
                       Rec("EOE", "")});  // the defaults: 64 KiB in all, 4 KiB an argument
  ASSERT_EQ(res.events.size(), 1u);
  const auto& e = res.events[0].exec();
  EXPECT_EQ(e.argc(), 3u);
  ASSERT_EQ(e.args_size(), 3);
  EXPECT_EQ(e.args(2), std::string(4096, 'A'));
  EXPECT_TRUE(e.args_capped());
  EXPECT_EQ(e.args_dropped_bytes(), 10000u - 4096u);
  EXPECT_FALSE(e.args_truncated());  // everything arrived: capped is not lost
  EXPECT_EQ(res.errors, 0u);
  EXPECT_EQ(res.stats.args_capped, 1u);
  EXPECT_EQ(res.stats.args_dropped_bytes, 10000u - 4096u);
  // proc.cmdline says it was cut; the JSON carries the flag and the count.
  EXPECT_EQ(CommandLine(e), "ls -c " + std::string(4096, 'A') + "...");
  std::string json;
  ASSERT_TRUE(AppendEventJson(res.events[0], &json));
  EXPECT_NE(json.find("\"proc.args_capped\":true"), std::string::npos) << json.substr(0, 300);
  EXPECT_NE(json.find("\"proc.args_dropped_bytes\":5904"), std::string::npos);
}

TEST(ArgvCaps, TotalCapKeepsAPrefixOfArgv) {
  std::string body = "argc=5";
  for (int i = 0; i < 5; ++i) body += " a" + std::to_string(i) + "=\"" + std::string(40, 'a' + i) + "\"";
  // 100 bytes in all, 30 an argument, each argument also counting its NUL: 31 + 31 + 31,
  // then 1 + 6 for the fourth, and no room for the fifth.
  auto res = RunLines({kSys, Rec("EXECVE", body), Rec("EOE", "")}, Caps(100, 30));
  ASSERT_EQ(res.events.size(), 1u);
  const auto& e = res.events[0].exec();
  EXPECT_EQ(e.argc(), 5u);
  ASSERT_EQ(e.args_size(), 4);
  EXPECT_EQ(e.args(0), std::string(30, 'a'));
  EXPECT_EQ(e.args(3), std::string(6, 'd'));
  EXPECT_TRUE(e.args_capped());
  EXPECT_EQ(e.args_dropped_bytes(), 200u - 96u);
  EXPECT_FALSE(e.args_truncated());
}

TEST(ArgvCaps, SplitArgumentIsCutWhileItArrives) {
  // The kernel splits a long argument over records as a1_len then a1[0], a1[1], ... (hex).
  const std::string chunk = Hex(std::string(4000, 'z'));  // 8000 hex digits each
  auto res = RunLines({kSys, Rec("EXECVE", "argc=3 a0=\"echo\" a1_len=24000 a1[0]=" + chunk),
                       Rec("EXECVE", "a1[1]=" + chunk), Rec("EXECVE", "a1[2]=" + chunk),
                       Rec("EXECVE", "a2=\"end\""), Rec("EOE", "")},
                      Caps(64 << 10, 5000));
  ASSERT_EQ(res.events.size(), 1u);
  const auto& e = res.events[0].exec();
  ASSERT_EQ(e.args_size(), 3);
  EXPECT_EQ(e.args(1), std::string(5000, 'z'));
  EXPECT_EQ(e.args(2), "end");  // an argument after the long one is still kept
  EXPECT_TRUE(e.args_capped());
  EXPECT_EQ(e.args_dropped_bytes(), 12000u - 5000u);
  EXPECT_FALSE(e.args_truncated());  // the split argument's length checks out
  EXPECT_EQ(res.errors, 0u);
}

TEST(ArgvCaps, ManyArgumentsPastTheCapAreNotMissing) {
  std::string body = "argc=100";
  for (int i = 0; i < 100; ++i) body += " a" + std::to_string(i) + "=\"\"";
  auto res = RunLines({kSys, Rec("EXECVE", body), Rec("EOE", "")}, Caps(16, 16));
  ASSERT_EQ(res.events.size(), 1u);
  const auto& e = res.events[0].exec();
  EXPECT_EQ(e.argc(), 100u);
  EXPECT_EQ(e.args_size(), 16);  // each empty argument costs its NUL
  EXPECT_TRUE(e.args_capped());
  EXPECT_EQ(e.args_dropped_bytes(), 0u);
  EXPECT_FALSE(e.args_truncated());
  // Records lost after the cap still show as missing arguments.
  auto lost = RunLines({kSys, Rec("EXECVE", body.substr(0, body.find(" a50="))), Rec("EOE", "")},
                       Caps(16, 16));
  ASSERT_EQ(lost.events.size(), 1u);
  EXPECT_TRUE(lost.events[0].exec().args_truncated());
  EXPECT_TRUE(lost.events[0].exec().args_capped());
}

TEST(ArgvCaps, ProctitleFallbackIsCapped) {
  // No EXECVE record: the PROCTITLE's NUL-separated argv stands in, under the same caps.
  auto res = RunLines({kSys, Rec("PROCTITLE", "proctitle=" + Hex(std::string("sh\0-c\0", 6) +
                                                                  std::string(50, 'q')))},
                      Caps(20, 8));
  ASSERT_EQ(res.events.size(), 1u);
  const auto& e = res.events[0].exec();
  ASSERT_EQ(e.args_size(), 3);
  EXPECT_EQ(e.args(2), std::string(8, 'q'));
  EXPECT_TRUE(e.args_capped());
  EXPECT_TRUE(e.args_truncated());
}

// Crafted records (an offline log is as hostile as a live feed) must not make the builder
// allocate past the caps: an argument index near argc's bound, a split argument announcing
// 64 MiB.
TEST(ArgvCaps, CraftedIndexAndLengthAllocateNothingBig) {
  Diagnostics diag(nullptr);
  AuditEventBuilder b(1700000000, 100, 7);
  for (const std::string& line :
       {kSys, Rec("EXECVE", "argc=1000000 a999999=\"x\" a0_len=67108864 a0[0]=41")}) {
    AuditRecord rec;
    ASSERT_EQ(ParseLogLine(line, &rec), nullptr);
    b.Add(rec, &diag);
    EXPECT_LT(b.footprint(), 64u << 10);
  }
  v1::Event ev;
  ASSERT_TRUE(b.Finish(&ev, &diag));
  EXPECT_EQ(ev.exec().argc(), 1000000u);
  EXPECT_TRUE(ev.exec().args_capped());
  EXPECT_TRUE(ev.exec().args_truncated());
}

TEST(ArgvCaps, ReassemblerBoundsBytesInFlight) {
  // Events that never complete (no EOE, no PROCTITLE), each holding 30 KiB of arguments:
  // beyond 100 KiB in flight the oldest are completed early, as evictions.
  std::vector<std::string> lines;
  for (int i = 1; i <= 10; ++i) {
    const size_t at = kSys.find(":7)");  // (not string::replace: g++ 12 warns, -Wrestrict)
    lines.push_back(kSys.substr(0, at) + ":" + std::to_string(i) + ")" + kSys.substr(at + 3));
    lines.push_back(Rec("EXECVE", "argc=1 a0=\"" + std::string(30000, 'w') + "\"", i));
  }
  AuditReassembler::Options opt = Caps(64 << 10, 64 << 10);
  opt.max_in_flight_bytes = 100 << 10;
  Diagnostics diag(nullptr);
  std::vector<v1::Event> out;
  AuditReassembler r(opt, [&](v1::Event& e) { out.push_back(e); }, &diag);
  size_t most = 0;
  for (const std::string& line : lines) {
    AuditRecord rec;
    ASSERT_EQ(ParseLogLine(line, &rec), nullptr);
    r.Push(rec);
    most = std::max(most, r.in_flight_bytes());
  }
  EXPECT_LE(most, (100u << 10) + (40u << 10));  // the bound, plus the event being added to
  EXPECT_GE(r.stats().evictions, 6u);
  r.Flush();
  EXPECT_EQ(out.size(), 10u);  // evicted events are emitted, not lost
  EXPECT_EQ(r.in_flight_bytes(), 0u);
  for (const auto& e : out) EXPECT_EQ(e.exec().args(0).size(), 30000u);
}

TEST(ArgvCaps, CapExecArgsOnAReceivedEvent) {
  v1::ProcessExec e;
  e.set_argc(4);
  for (const char* a : {"curl", "-d", "", "tail"}) e.add_args(a);
  EXPECT_FALSE(CapExecArgs(&e, {100, 30}));  // within the caps: untouched
  EXPECT_FALSE(e.args_capped());
  e.set_args(1, std::string(50, 'd'));
  EXPECT_TRUE(CapExecArgs(&e, {40, 30}));  // 5 + 31 + 1, then 1 + 2 bytes: "ta"
  ASSERT_EQ(e.args_size(), 4);
  EXPECT_EQ(e.args(1), std::string(30, 'd'));
  EXPECT_EQ(e.args(3), "ta");
  EXPECT_TRUE(e.args_capped());
  EXPECT_EQ(e.args_dropped_bytes(), 22u);
  EXPECT_EQ(e.argc(), 4u);
  // An argument with no room at all goes with every one after it.
  v1::ProcessExec f;
  for (const char* a : {"aaaa", "bb", "cc"}) f.add_args(a);
  EXPECT_TRUE(CapExecArgs(&f, {5, 10}));
  ASSERT_EQ(f.args_size(), 1);
  EXPECT_EQ(f.args_dropped_bytes(), 4u);
}

}  // namespace
}  // namespace driftwatch
