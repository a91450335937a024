// Falco's vocabulary on driftwatch's events: evt.arg.* per produced event type, the file
// events' Falco names (openat, renameat2, unlinkat), the fields upstream rules use, `never`
// fields, and upstream conditions (read from ../shared/falco-rules, never copied) on events.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "lib/event/event_view.h"
#include "lib/rules/event_types.h"
#include "lib/rules/rule_condition.h"
#include "lib/rules/rule_engine.h"
#include "lib/rules/rule_fields.h"
#include "lib/rules/rule_loader.h"
#include "unit/rule_test_util.h"

namespace driftwatch {
namespace {

using testing::Container;
using testing::Ctx;
using testing::ExecEvent;
using testing::WriteEvent;

std::string Text(const RuleContext& ctx, std::string_view name, int idx = -1) {
  const FieldInfo* f = FindField(name);
  if (f == nullptr) return "<unknown field>";
  FieldValue v;
  std::string out;
  AppendFieldText(*f, FieldArg{idx}, ctx, &v, &out);
  return out;
}

// field[key] of a field that takes a key.
std::string Keyed(const RuleContext& ctx, std::string_view name, const std::string& key) {
  const FieldInfo* f = FindField(name);
  if (f == nullptr) return "<unknown field>";
  FieldValue v;
  std::string out;
  FieldArg a;
  a.key = &key;
  AppendFieldText(*f, a, ctx, &v, &out);
  return out;
}

const std::string kUpstream = std::string(DW_SOURCE_DIR) + "/../shared/falco-rules/";
const std::vector<std::string> kUpstreamFiles = {
    "falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"};

// ---------------------------------------------------------------------------------------
// evt.arg on every event type driftwatch produces

TEST(FalcoEvtArg, Execve) {
  auto ev = ExecEvent("sh", "/bin/busybox", {"/bin/sh", "-c", "id"});
  ev.mutable_exec()->set_path("/bin/sh");
  ev.mutable_exec()->set_gid(0);
  ev.mutable_exec()->set_exe_inode(4711);
  ev.mutable_exec()->set_is_exe_upper_layer(true);
  ev.mutable_exec()->set_tty("pts0");
  auto ctx = Ctx(ev, nullptr, {"bash"});
  EXPECT_EQ(Text(ctx, "evt.arg.res"), "0");
  EXPECT_EQ(Text(ctx, "evt.arg.exe"), "/bin/sh");
  EXPECT_EQ(Text(ctx, "evt.arg.args"), "-c.id.");
  EXPECT_EQ(Text(ctx, "evt.arg.pid"), "sh");       // libs resolves a pid to its comm
  EXPECT_EQ(Text(ctx, "evt.rawarg.pid"), "4242");
  EXPECT_EQ(Text(ctx, "evt.arg.ptid"), "bash");
  EXPECT_EQ(Text(ctx, "evt.arg.cwd"), "/");
  EXPECT_EQ(Text(ctx, "evt.arg.comm"), "sh");
  EXPECT_EQ(Text(ctx, "evt.arg.tty"), "34816");
  EXPECT_EQ(Text(ctx, "evt.arg.loginuid"), "<NONE>");
  EXPECT_EQ(Text(ctx, "evt.rawarg.loginuid"), "-1");
  EXPECT_EQ(Text(ctx, "evt.arg.uid"), "root");
  EXPECT_EQ(Text(ctx, "evt.rawarg.uid"), "0");
  EXPECT_EQ(Text(ctx, "evt.arg.flags"), "EXE_UPPER_LAYER");
  EXPECT_EQ(Text(ctx, "evt.rawarg.flags"), "2");
  EXPECT_EQ(Text(ctx, "evt.arg.exe_ino"), "4711");
  EXPECT_EQ(Text(ctx, "evt.arg.trusted_exepath"), "/bin/busybox");
  EXPECT_EQ(Text(ctx, "evt.arg.filename"), "/bin/sh");
  EXPECT_EQ(Text(ctx, "evt.arg.env"), "<NA>");      // audit does not record it
  EXPECT_EQ(Text(ctx, "evt.arg.vm_size"), "<NA>");
  EXPECT_EQ(Text(ctx, "evt.arg.mode"), "<NA>");     // not an execve parameter
  EXPECT_EQ(Text(ctx, "evt.arg", 0), "0");
  EXPECT_EQ(Text(ctx, "evt.arg", 1), "/bin/sh");
  EXPECT_EQ(Text(ctx, "evt.arg", 30), "/bin/sh");   // filename, execve's last
  EXPECT_EQ(Text(ctx, "evt.arg", 31), "<NA>");
  std::string args = Text(ctx, "evt.args");
  EXPECT_TRUE(args.starts_with("res=0 exe=/bin/sh args=-c.id. tid=4242(sh) pid=4242(sh) "
                               "ptid=4200(bash) cwd=/ fdlimit=<NA>"))
      << args;
  EXPECT_NE(args.find(" flags=2(EXE_UPPER_LAYER) "), std::string::npos) << args;

  // Failed, from memfd, lower layer; an offline log's exec says nothing of flags.
  ev.mutable_exec()->set_success(false);
  ev.mutable_exec()->set_exit(-2);
  ev.mutable_exec()->set_errno_name("ENOENT");
  ev.mutable_exec()->set_is_exe_upper_layer(false);
  ev.mutable_exec()->set_is_exe_from_memfd(true);
  EXPECT_EQ(Text(ctx, "evt.arg.res"), "ENOENT");
  EXPECT_EQ(Text(ctx, "evt.rawarg.res"), "-2");
  EXPECT_EQ(Text(ctx, "evt.arg.flags"), "EXE_FROM_MEMFD|EXE_LOWER_LAYER");
  // EXE_WRITABLE where mode and owner alone decide: owned by the euid with owner write.
  ev.mutable_exec()->set_exe_mode(0100755);
  ev.mutable_exec()->set_exe_ouid(0);
  EXPECT_EQ(Text(ctx, "evt.arg.flags"), "EXE_WRITABLE|EXE_FROM_MEMFD|EXE_LOWER_LAYER");
  ev.mutable_exec()->set_exe_ouid(1000);
  EXPECT_EQ(Text(ctx, "evt.arg.flags"), "EXE_FROM_MEMFD|EXE_LOWER_LAYER");
  ev.mutable_exec()->set_exe_mode(0100757);  // world-writable
  EXPECT_EQ(Text(ctx, "evt.arg.flags"), "EXE_WRITABLE|EXE_FROM_MEMFD|EXE_LOWER_LAYER");
  auto ro = Container();
  ro.set_read_only_rootfs(true);
  auto roctx = Ctx(ev, &ro);
  EXPECT_EQ(Text(roctx, "evt.arg.flags"), "EXE_FROM_MEMFD|EXE_LOWER_LAYER");
  auto offline = ExecEvent("ls", "/bin/ls", {"ls"});
  EXPECT_EQ(Text(Ctx(offline), "evt.arg.flags"), "<NA>");
  // A file written at runtime is in the upper layer, whatever the sensor's look said.
  auto written = Ctx(offline);
  written.file.written_at_runtime = true;
  EXPECT_EQ(Text(written, "evt.arg.flags"), "EXE_UPPER_LAYER");
}

TEST(FalcoEvtArg, Execveat) {
  auto ev = ExecEvent("x", "/memfd:x (deleted)", {"x"});
  ev.mutable_exec()->set_syscall("execveat");
  ev.mutable_exec()->set_path("/dev/fd/3");
  auto ctx = Ctx(ev);
  EXPECT_EQ(Text(ctx, "evt.arg.exe"), "x");
  EXPECT_EQ(Text(ctx, "evt.arg.filename"), "/dev/fd/3");  // audit names it; libs' table not
  EXPECT_EQ(Text(ctx, "evt.arg", 29), "root");  // gid 0
  ev.mutable_exec()->set_gid(5);
  EXPECT_EQ(Text(ctx, "evt.arg.gid"), "5");
  EXPECT_EQ(Text(ctx, "evt.arg", 30), "/dev/fd/3");
}

v1::Event ChmodEvent(const std::string& syscall, const std::string& path, uint32_t mode) {
  v1::Event ev;
  ev.set_container_id(testing::kCid);
  v1::Chmod* c = ev.mutable_chmod();
  c->set_syscall(syscall);
  c->set_success(true);
  c->set_path(path);
  c->set_new_mode(mode);
  c->set_pid(10);
  c->set_comm("chmod");
  return ev;
}

TEST(FalcoEvtArg, ChmodFamily) {
  for (const char* sc : {"chmod", "fchmodat", "fchmodat2"}) {
    auto ev = ChmodEvent(sc, "/tmp/x", 0755);
    auto ctx = Ctx(ev);
    SCOPED_TRACE(sc);
    EXPECT_EQ(Text(ctx, "evt.arg.res"), "0");
    EXPECT_EQ(Text(ctx, "evt.arg.filename"), "/tmp/x");
    // libs prints a mode's names (the octal only in evt.args), in its table's order.
    EXPECT_EQ(Text(ctx, "evt.arg.mode"), "S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR");
    EXPECT_EQ(Text(ctx, "evt.rawarg.mode"), std::to_string(0755));
    EXPECT_EQ(Text(ctx, "evt.arg.dirfd"), "<NA>");
    EXPECT_EQ(Text(ctx, "fs.path.name"), "/tmp/x");
  }
  auto one = ChmodEvent("chmod", "/tmp/x", 0100);  // one name equal to the whole mode
  EXPECT_EQ(Text(Ctx(one), "evt.arg.mode"), "S_IXUSR");
  auto args = ChmodEvent("chmod", "/tmp/x", 0700);
  EXPECT_EQ(Text(Ctx(args), "evt.args"),
            "res=0 filename=/tmp/x mode=0700(S_IXUSR|S_IWUSR|S_IRUSR)");
  auto f = ChmodEvent("fchmod", "", 0755);
  auto fctx = Ctx(f);
  EXPECT_EQ(Text(fctx, "evt.arg.fd"), "<NA>");
  EXPECT_EQ(Text(fctx, "evt.arg.filename"), "<NA>");  // not an fchmod parameter
  EXPECT_EQ(Text(fctx, "evt.arg", 2), "S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR");
  EXPECT_EQ(Text(fctx, "fd.num"), "<NA>");
}

// ---------------------------------------------------------------------------------------
// fanotify's file events under Falco's names

v1::Event Created(const std::string& path, uint32_t mode, const std::string& kind = "close_write") {
  v1::Event ev = WriteEvent(path, kind);
  ev.mutable_id()->set_seq(5);  // Falco's never_true is evt.num=0: events count from 1
  v1::FileWrite* w = ev.mutable_write();
  w->set_created(true);
  w->set_mode(mode);
  w->set_inode(99);
  w->set_dev_major(254);
  w->set_dev_minor(1);
  w->set_upper_path("/var/lib/containerd/snapshots/4/fs" + path);
  return ev;
}

TEST(FalcoFileEvents, KindsMapToFalcoSyscalls) {
  const struct {
    const char* kind;
    const char* type;
    bool open_write;
  } kCases[] = {
      {"close_write", "openat", true}, {"modify", "openat", true},   {"create", "openat", true},
      {"rename", "renameat2", false},  {"delete", "unlinkat", false}, {"attrib", "attrib", false},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.kind);
    auto ev = WriteEvent("/usr/bin/x", c.kind);
    auto ctx = Ctx(ev);
    EXPECT_EQ(EventType(ev), c.type);
    EXPECT_TRUE(IsProducedEventType(c.type));
    EXPECT_EQ(Text(ctx, "evt.type"), c.type);
    EXPECT_EQ(Text(ctx, "fd.write_kind"), c.kind);
    EXPECT_EQ(Text(ctx, "evt.is_open_write"), c.open_write ? "true" : "false");
    EXPECT_EQ(Text(ctx, "evt.is_open_read"), "false");
    EXPECT_EQ(Text(ctx, "evt.is_open_exec"), "false");  // not created
    EXPECT_EQ(Text(ctx, "fd.num"), "2147483647");
    EXPECT_EQ(Text(ctx, "fd.typechar"), "f");
    EXPECT_EQ(Text(ctx, "fd.type"), "file");
    EXPECT_EQ(Text(ctx, "fd.name_changed"), "false");
    EXPECT_EQ(Text(ctx, "fd.nameraw"), "/usr/bin/x");
    EXPECT_EQ(Text(ctx, "evt.rawres"), "0");
    EXPECT_EQ(Text(ctx, "evt.category"), "file");
    EXPECT_EQ(Text(ctx, "syscall.type"), std::string(c.type) == "attrib" ? "<NA>" : c.type);
  }
  EXPECT_EQ(FileEventType("something_new"), "something_new");
}

TEST(FalcoFileEvents, OpenatArgs) {
  auto plain = WriteEvent("/etc/passwd", "modify");
  auto pctx = Ctx(plain);
  EXPECT_EQ(Text(pctx, "evt.arg.flags"), "O_WRONLY");
  EXPECT_EQ(Text(pctx, "evt.arg.fd"), "<f>/etc/passwd");
  EXPECT_EQ(Text(pctx, "evt.rawarg.fd"), "2147483647");
  EXPECT_EQ(Text(pctx, "evt.arg.name"), "/etc/passwd");
  EXPECT_EQ(Text(pctx, "evt.arg.mode"), "0");
  EXPECT_EQ(Text(pctx, "evt.arg.ino"), "<NA>");
  EXPECT_EQ(Text(pctx, "evt.is_open_create"), "false");
  EXPECT_EQ(Text(pctx, "fs.path.name"), "/etc/passwd");

  auto exe = Created("/tmp/dropper", 0100755);
  auto ctx = Ctx(exe);
  EXPECT_EQ(Text(ctx, "evt.arg.flags"), "O_CREAT|O_WRONLY|O_F_CREATED|FD_UPPER_LAYER");
  EXPECT_EQ(Text(ctx, "evt.rawarg.flags"), std::to_string(2 | 4 | (1 << 14) | (1 << 15)));
  EXPECT_EQ(Text(ctx, "evt.arg.mode"), "0755");
  EXPECT_EQ(Text(ctx, "evt.arg.ino"), "99");
  EXPECT_EQ(Text(ctx, "evt.arg.dev"), "FE00001");
  EXPECT_EQ(Text(ctx, "evt.arg.dirfd"), "<NA>");
  EXPECT_EQ(Text(ctx, "evt.is_open_exec"), "true");
  EXPECT_EQ(Text(ctx, "evt.is_open_create"), "true");
  EXPECT_EQ(Text(ctx, "evt.arg", 2), "/tmp/dropper");
  EXPECT_EQ(Text(ctx, "evt.args"),
            "fd=2147483647(<f>/tmp/dropper) dirfd=<NA> name=/tmp/dropper "
            "flags=49158(O_CREAT|O_WRONLY|O_F_CREATED|FD_UPPER_LAYER) mode=0755 dev=FE00001 "
            "ino=99");

  auto data = Created("/tmp/notes", 0100644);
  EXPECT_EQ(Text(Ctx(data), "evt.is_open_exec"), "false");
}

TEST(FalcoFileEvents, RenameAndDeleteArgs) {
  auto mv = WriteEvent("/usr/bin/x", "rename");
  mv.mutable_write()->set_old_path("/tmp/x");
  auto ctx = Ctx(mv);
  EXPECT_EQ(Text(ctx, "evt.arg.oldpath"), "/tmp/x");
  EXPECT_EQ(Text(ctx, "evt.arg.newpath"), "/usr/bin/x");
  EXPECT_EQ(Text(ctx, "evt.arg.res"), "0");
  EXPECT_EQ(Text(ctx, "evt.arg.name"), "<NA>");
  EXPECT_EQ(Text(ctx, "fs.path.source"), "/tmp/x");
  EXPECT_EQ(Text(ctx, "fs.path.target"), "/usr/bin/x");
  EXPECT_EQ(Text(ctx, "fs.path.name"), "<NA>");

  auto rm = WriteEvent("/usr/bin/x", "delete");
  auto rctx = Ctx(rm);
  EXPECT_EQ(Text(rctx, "evt.arg.name"), "/usr/bin/x");
  EXPECT_EQ(Text(rctx, "evt.arg.oldpath"), "<NA>");
  EXPECT_EQ(Text(rctx, "fs.path.name"), "/usr/bin/x");

  auto at = WriteEvent("/usr/bin/x", "attrib");
  EXPECT_EQ(Text(Ctx(at), "evt.args"), "<NA>");  // driftwatch's own: no parameters
  EXPECT_EQ(Text(Ctx(at), "evt.arg", 0), "<NA>");
}

// ---------------------------------------------------------------------------------------
// proc.pexe, proc.aexe, proc.aexepath

TEST(FalcoProcFields, AncestorExe) {
  auto ev = ExecEvent("sh", "/bin/busybox", {"sh", "-c", "x"});
  auto ctx = Ctx(ev);
  auto ancestor = [&](uint32_t pid, std::string name, std::string exepath, std::string exe) {
    ProcessInfo& a = ctx.lineage.emplace_back();
    a.pid = pid;
    a.name = std::move(name);
    a.exepath = exepath;
    a.exe_file = std::move(exepath);
    a.exe = std::move(exe);
  };
  ancestor(4200, "bash", "/usr/bin/bash", "-bash");
  ancestor(4100, "sshd", "/usr/sbin/sshd", "/usr/sbin/sshd");
  EXPECT_EQ(Text(ctx, "proc.pexe"), "-bash");
  EXPECT_EQ(Text(ctx, "proc.aexe", 0), "sh");
  EXPECT_EQ(Text(ctx, "proc.aexe", 1), "-bash");
  EXPECT_EQ(Text(ctx, "proc.aexe", 2), "/usr/sbin/sshd");
  EXPECT_EQ(Text(ctx, "proc.aexe", 3), "<NA>");
  EXPECT_EQ(Text(ctx, "proc.aexe"), "-bash /usr/sbin/sshd");
  EXPECT_EQ(Text(ctx, "proc.aexepath", 0), "/bin/busybox");
  EXPECT_EQ(Text(ctx, "proc.aexepath", 2), "/usr/sbin/sshd");
  auto c = cond::CompileText("proc.aexepath[2] = /usr/sbin/sshd and proc.aexe endswith sshd");
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_TRUE(c->Evaluate(ctx));
  EXPECT_EQ(Text(Ctx(ev), "proc.pexe"), "<NA>");  // no lineage known
}

// ---------------------------------------------------------------------------------------
// The vocabulary: Falco's fields known, `never` where driftwatch has no value

TEST(FalcoVocabulary, NeverFieldsAreKnownAndMarked) {
  for (const char* f : {"fd.connected", "fd.sip.name", "fd.sproto", "evt.buffer", "evt.arg.request",
                        "evt.rawarg.request", "evt.arg.domain", "fd.types", "proc.vmsize",
                        "evt.latency", "fdlist.sports", "evt.arg.cap_permitted"}) {
    const FieldInfo* fi = FindField(f);
    ASSERT_NE(fi, nullptr) << f;
    EXPECT_FALSE(fi->never.empty()) << f;
    EXPECT_TRUE(fi->doc.starts_with("NEVER SET (")) << f << ": " << fi->doc;
  }
  for (const char* f : {"evt.arg.flags", "evt.arg.name", "evt.arg.oldpath", "evt.arg.newpath",
                        "evt.arg.fd", "evt.arg.mode", "evt.arg.filename", "evt.rawarg.flags",
                        "evt.is_open_exec", "fd.num", "proc.pexe", "proc.aexe", "evt.args",
                        "evt.arg", "fs.path.name", "fd.write_kind"}) {
    const FieldInfo* fi = FindField(f);
    ASSERT_NE(fi, nullptr) << f;
    EXPECT_TRUE(fi->never.empty()) << f;
  }
  // Typos stay unknown: the name must be one of Falco's.
  for (const char* f : {"proc.nmae", "evt.arg.nosuchparam", "evt.rawarg.nosuch", "fd.sipp"}) {
    EXPECT_EQ(FindField(f), nullptr) << f;
  }
  EXPECT_EQ(FindField("fd.sip")->type, FieldType::kString);
  EXPECT_EQ(FindField("fd.rport")->type, FieldType::kNumber);
  EXPECT_EQ(FindField("fd.types")->arg, FieldArgMode::kOptional);
  EXPECT_EQ(FindField("evt.rawarg.flags")->type, FieldType::kNumber);
  EXPECT_EQ(FindField("evt.rawarg.name")->type, FieldType::kString);
  // A never field compiles, and is unset on every event; a network field is unset on a
  // file event.
  for (const char* text : {"fd.sip.name != localhost", "fd.sip != 127.0.0.1"}) {
    auto c = cond::CompileText(text);
    ASSERT_TRUE(c.has_value()) << c.error().message;
    auto ev = WriteEvent("/x");
    EXPECT_FALSE(c->Evaluate(Ctx(ev))) << text;
  }
  EXPECT_EQ(Text(Ctx(WriteEvent("/x")), "fd.sip"), "<NA>");
  std::string md = FieldsMarkdown();
  EXPECT_NE(md.find("## Fields driftwatch never sets"), std::string::npos);
  EXPECT_NE(md.find("| `fd.connected` | bool | socket state: audit gives the address a call named"),
            std::string::npos);
}

// Network events (connect, accept, bind, listen from audit) and Falco's fd.* socket fields.
v1::Event NetEvent(const std::string& syscall, uint32_t family, const std::string& address,
                   uint32_t port, bool local = false) {
  v1::Event ev;
  v1::NetworkActivity* n = ev.mutable_network();
  n->set_syscall(syscall);
  n->set_success(syscall != "connect");
  n->set_exit(syscall == "connect" ? -115 : 3);
  if (syscall == "connect") n->set_errno_name("EINPROGRESS");
  n->set_pid(42);
  n->set_comm("nc");
  n->set_fd(3);
  n->set_family(family);
  if (family == 1) {
    n->set_unix_path(address);
  } else {
    n->set_address(address);
    n->set_port(port);
  }
  n->set_address_is_local(local);
  ev.set_container_id("3f1a9c0e5b7d2468ace013579bdf2468ace013579bdf2468ace013579bdf2468");
  return ev;
}

TEST(NetworkFields, SidesTypesAndNames) {
  const std::string meta("\xa9\xfe\xa9\xfe", 4);
  auto c = NetEvent("connect", 2, meta, 80);
  EXPECT_EQ(Text(Ctx(c), "evt.type"), "connect");
  EXPECT_EQ(Text(Ctx(c), "evt.category"), "net");
  EXPECT_EQ(Text(Ctx(c), "evt.res"), "EINPROGRESS");
  EXPECT_EQ(Text(Ctx(c), "fd.name"), "->169.254.169.254:80");
  EXPECT_EQ(Text(Ctx(c), "fd.sip"), "169.254.169.254");
  EXPECT_EQ(Text(Ctx(c), "fd.sport"), "80");
  EXPECT_EQ(Text(Ctx(c), "fd.rip"), "169.254.169.254");
  EXPECT_EQ(Text(Ctx(c), "fd.cip"), "<NA>");  // audit does not give the local end
  EXPECT_EQ(Text(Ctx(c), "fd.typechar"), "4");
  EXPECT_EQ(Text(Ctx(c), "fd.type"), "ipv4");
  EXPECT_EQ(Text(Ctx(c), "fd.sockfamily"), "ip");
  EXPECT_EQ(Text(Ctx(c), "fd.l4proto"), "<NA>");  // TCP or UDP: audit does not say
  EXPECT_EQ(Text(Ctx(c), "fd.is_server"), "false");
  EXPECT_EQ(Text(Ctx(c), "fd.num"), "3");
  EXPECT_EQ(Text(Ctx(c), "proc.name"), "nc");

  const std::string v6("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
  auto a = NetEvent("accept", 10, v6, 51000);
  EXPECT_EQ(Text(Ctx(a), "fd.name"), "2001:db8::1:51000->");
  EXPECT_EQ(Text(Ctx(a), "fd.cip"), "2001:db8::1");
  EXPECT_EQ(Text(Ctx(a), "fd.cport"), "51000");
  EXPECT_EQ(Text(Ctx(a), "fd.sip"), "<NA>");
  EXPECT_EQ(Text(Ctx(a), "fd.l4proto"), "tcp");
  EXPECT_EQ(Text(Ctx(a), "fd.is_server"), "true");
  EXPECT_EQ(Text(Ctx(a), "fd.typechar"), "6");

  auto b = NetEvent("bind", 2, std::string(4, '\0'), 8080, true);
  EXPECT_EQ(Text(Ctx(b), "fd.name"), "0.0.0.0:8080");
  EXPECT_EQ(Text(Ctx(b), "fd.lport"), "8080");
  EXPECT_EQ(Text(Ctx(b), "fd.sport"), "8080");

  auto u = NetEvent("connect", 1, "/var/run/docker.sock", 0);
  EXPECT_EQ(Text(Ctx(u), "fd.name"), "/var/run/docker.sock");
  EXPECT_EQ(Text(Ctx(u), "fd.typechar"), "u");
  EXPECT_EQ(Text(Ctx(u), "fd.sip"), "<NA>");

  // A file event has no socket fields.
  EXPECT_EQ(Text(Ctx(WriteEvent("/x")), "fd.sport"), "<NA>");
  EXPECT_EQ(Text(Ctx(WriteEvent("/x")), "fd.type"), "file");
}

TEST(NetworkFields, NetworksInConditions) {
  const std::string meta("\xa9\xfe\xa9\xfe", 4), lo("\x7f\0\0\x01", 4),
      ten("\x0a\x01\x02\x03", 4);
  const std::string mapped_ten = std::string(10, '\0') + "\xff\xff" + ten;
  auto match = [](const char* text, const v1::Event& ev) {
    auto c = cond::CompileText(text);
    EXPECT_TRUE(c.has_value()) << text << ": " << (c ? "" : c.error().message);
    return c && c->Evaluate(Ctx(ev));
  };
  // Falco's outbound macro, its rfc_1918 list inlined as Falco's files quote it.
  const char* outbound =
      "(evt.type = connect and evt.dir=<) and (fd.typechar = 4 or fd.typechar = 6) and "
      "(fd.ip != \"0.0.0.0\" and fd.net != \"127.0.0.0/8\" and not fd.snet in "
      "('\"10.0.0.0/8\"', '\"172.16.0.0/12\"', '\"192.168.0.0/16\"')) and "
      "(evt.rawres >= 0 or evt.res = EINPROGRESS)";
  EXPECT_TRUE(match(outbound, NetEvent("connect", 2, meta, 80)));
  EXPECT_FALSE(match(outbound, NetEvent("connect", 2, lo, 80)));
  EXPECT_FALSE(match(outbound, NetEvent("connect", 2, ten, 80)));
  EXPECT_FALSE(match(outbound, NetEvent("connect", 10, mapped_ten, 80)));  // ::ffff:10.1.2.3
  EXPECT_FALSE(match(outbound, NetEvent("bind", 2, meta, 80, true)));
  EXPECT_TRUE(match("fd.sip = \"169.254.169.254\" and fd.sport = 80", NetEvent("connect", 2, meta, 80)));
  EXPECT_TRUE(match("fd.snet = \"169.254.0.0/16\"", NetEvent("connect", 2, meta, 80)));
  EXPECT_FALSE(match("fd.snet = \"169.254.0.0/17\"", NetEvent("connect", 2, ten, 80)));
  EXPECT_TRUE(match("fd.cnet in (\"2001:db8::/32\")",
                    NetEvent("accept", 10, std::string("\x20\x01\x0d\xb8", 4) + std::string(12, '\1'), 1)));
  // A field with no value (fd.cip of a connect) matches neither = nor !=.
  EXPECT_FALSE(match("fd.cnet != \"10.0.0.0/8\"", NetEvent("connect", 2, meta, 80)));
  // Bad networks and ordering are refused at load, naming the value.
  for (const char* bad : {"fd.net = \"10.0.0.0/33\"", "fd.net = \"10.0.0/8\"", "fd.net = host",
                          "fd.net in (\"10.0.0.0/x\")", "fd.net > 1"}) {
    auto c = cond::CompileText(bad);
    EXPECT_FALSE(c.has_value()) << bad;
  }
  auto c = cond::CompileText("fd.net = \"10.0.0.0/33\"");
  ASSERT_FALSE(c.has_value());
  EXPECT_NE(c.error().message.find("'10.0.0.0/33' is not an IP address or network (field fd.net"),
            std::string::npos)
      << c.error().message;
}

TEST(FalcoVocabulary, ContainerPluginFields) {
  auto c = Container();
  c.set_sandbox_id("63060edc2d3aa803ab559f2393776b151f99fc5b05035b21db66b3b62246ad6a");
  c.set_pod_uid("3e41dc6b-uid");
  c.set_start_time_ns(1699999999000000000);
  auto* l = c.add_labels();
  l->set_key("app");
  l->set_value("api");
  l = c.add_labels();
  l->set_key("tier");
  l->set_value("web");
  auto ev = ExecEvent("sh", "/bin/sh", {"sh"});
  auto ctx = Ctx(ev, &c);
  EXPECT_EQ(Text(ctx, "k8s.pod.sandbox_id"), "63060edc2d3a");
  EXPECT_EQ(Text(ctx, "k8s.pod.full_sandbox_id"), c.sandbox_id());
  EXPECT_EQ(Text(ctx, "k8s.pod.id"), "3e41dc6b-uid");
  EXPECT_EQ(Text(ctx, "container.labels"), "app:api,tier:web");
  EXPECT_EQ(Text(ctx, "container.duration"), std::to_string(1000000000 + 123456789));
  EXPECT_EQ(Keyed(ctx, "container.label", "tier"), "web");
  EXPECT_EQ(Keyed(ctx, "container.label", "none"), "<NA>");
  EXPECT_EQ(Text(ctx, "k8s.pod.labels"), "<NA>");
  l = c.add_pod_labels();
  l->set_key("app.kubernetes.io/name");
  l->set_value("builder");
  l = c.add_pod_labels();
  l->set_key("7");
  l->set_value("seven");
  l = c.add_pod_annotations();
  l->set_key("driftwatch.io/allow-drift");
  l->set_value("/workspace/bin/*");
  EXPECT_EQ(Text(ctx, "k8s.pod.labels"), "app.kubernetes.io/name:builder,7:seven");
  EXPECT_EQ(Keyed(ctx, "k8s.pod.label", "app.kubernetes.io/name"), "builder");
  EXPECT_EQ(Text(ctx, "k8s.pod.label", 7), "seven");  // a key that reads as a number
  EXPECT_EQ(Keyed(ctx, "k8s.pod.label", "app"), "<NA>");
  EXPECT_EQ(Keyed(ctx, "k8s.pod.annotation", "driftwatch.io/allow-drift"), "/workspace/bin/*");
  for (const char* f : {"container.ip", "container.host_pid", "k8s.ns.labels", "k8s.rs.name",
                        "container.healthcheck", "proc.is_container_healthcheck"}) {
    const FieldInfo* fi = FindField(f);
    ASSERT_NE(fi, nullptr) << f;
    EXPECT_FALSE(fi->never.empty()) << f;
    EXPECT_EQ(Text(ctx, f), "<NA>") << f;
  }
}

TEST(FalcoVocabulary, EventTypeGroups) {
  EXPECT_EQ(EventTypeGroup("connect"), "network");
  EXPECT_EQ(EventTypeGroup("openat"), "file");
  EXPECT_EQ(EventTypeGroup("execve"), "process");
  EXPECT_EQ(EventTypeGroup("ptrace"), "process");
  EXPECT_EQ(EventTypeGroup("read"), "I/O");
  EXPECT_EQ(EventTypeGroup("no_such_event"), "other");
}

// The field names of every condition, output and exception of the upstream files.
std::set<std::string> UpstreamFieldNames() {
  std::set<std::string> names;
  const std::regex field(R"((?:^|[^A-Za-z0-9_.%])%?((?:evt|proc|thread|user|group|container|fd|fs|k8s|syscall|fdlist)\.[A-Za-z0-9_.]*[A-Za-z0-9_]))");
  auto scan = [&](const std::string& text) {
    for (auto it = std::sregex_iterator(text.begin(), text.end(), field); it != std::sregex_iterator();
         ++it) {
      names.insert((*it)[1]);
    }
  };
  for (const std::string& f : kUpstreamFiles) {
    YAML::Node doc = YAML::LoadFile(kUpstream + f);
    for (const YAML::Node& item : doc) {
      for (const char* key : {"condition", "output"}) {
        if (item[key] && item[key].IsScalar()) scan(std::string(1, ' ').append(item[key].as<std::string>()));
      }
      if (item["exceptions"] && item["exceptions"].IsSequence()) {
        for (const YAML::Node& e : item["exceptions"]) {
          if (!e["fields"]) continue;
          if (e["fields"].IsScalar()) names.insert(e["fields"].as<std::string>());
          if (e["fields"].IsSequence()) {
            for (const YAML::Node& n : e["fields"]) names.insert(n.as<std::string>());
          }
        }
      }
    }
  }
  return names;
}

TEST(FalcoVocabulary, EveryFieldOfTheUpstreamRulesIsKnown) {
  ASSERT_TRUE(std::ifstream(kUpstream + "falco_rules.yaml").good())
      << "upstream rules not found at " << kUpstream << " (../shared beside the checkout)";
  std::set<std::string> names = UpstreamFieldNames();
  EXPECT_GT(names.size(), 80u);
  // container.mounts and container.mount.dest come from Falco's container plugin, and with
  // the /proc reading of the sensor (lib/rules/fields_proc_state.cc).
  const std::set<std::string> elsewhere = {"container.mounts", "container.mount.dest"};
  std::vector<std::string> unknown;
  for (const std::string& n : names) {
    if (elsewhere.contains(n)) continue;
    if (FindField(n) == nullptr) unknown.push_back(n);
  }
  EXPECT_TRUE(unknown.empty()) << ::testing::PrintToString(unknown);
  // Those our events carry have values somewhere; these few are Falco's own conditions'
  // and must not be `never`.
  for (const char* n : {"evt.arg.flags", "evt.arg.name", "evt.arg.path", "evt.arg.oldpath",
                        "evt.arg.newpath", "fd.num", "fd.nameraw", "evt.is_open_exec",
                        "evt.is_open_read", "proc.pexe", "proc.aexe", "proc.aexepath",
                        "fd.name_changed"}) {
    if (!names.contains(n)) continue;
    const FieldInfo* f = FindField(n);
    ASSERT_NE(f, nullptr) << n;
    if (std::string_view(n) == "evt.arg.path") continue;  // mkdir's, not produced
    EXPECT_TRUE(f->never.empty()) << n;
  }
}

// ---------------------------------------------------------------------------------------
// Upstream conditions, read from the upstream files, on driftwatch's events

// Macros and lists of the three upstream files, for compiling one of their conditions.
class Upstream {
 public:
  Upstream() {
    for (const std::string& f : kUpstreamFiles) {
      YAML::Node doc = YAML::LoadFile(kUpstream + f);
      for (const YAML::Node& item : doc) {
        if (item["macro"] && item["condition"]) {
          auto n = cond::Parse(item["condition"].as<std::string>());
          if (n) macros_[item["macro"].as<std::string>()] = std::move(*n);
        } else if (item["list"] && item["items"]) {
          auto& l = raw_lists_[item["list"].as<std::string>()];
          l.clear();
          for (const YAML::Node& i : item["items"]) l.push_back(i.as<std::string>());
        } else if (item["rule"] && item["condition"]) {
          rules_[item["rule"].as<std::string>()] = item["condition"].as<std::string>();
        }
      }
    }
    for (const auto& [name, items] : raw_lists_) {
      std::vector<std::string>& out = lists_[name];
      for (const std::string& i : items) {
        auto sub = raw_lists_.find(i);
        if (sub == raw_lists_.end()) out.push_back(i);
        else out.insert(out.end(), sub->second.begin(), sub->second.end());
      }
    }
  }

  cond::CompiledCondition Compile(const std::string& text) const {
    cond::Names names;
    names.macro = [this](std::string_view n) -> const cond::Node* {
      auto it = macros_.find(std::string(n));
      return it == macros_.end() ? nullptr : it->second.get();
    };
    names.list = [this](std::string_view n) -> const std::vector<std::string>* {
      auto it = lists_.find(std::string(n));
      return it == lists_.end() ? nullptr : &it->second;
    };
    auto root = cond::Parse(text);
    EXPECT_TRUE(root.has_value()) << text;
    auto c = cond::Compile(**root, names);
    EXPECT_TRUE(c.has_value()) << text << ": " << (c ? "" : c.error().message);
    return c ? std::move(*c) : cond::CompiledCondition();
  }

  std::vector<std::string> RuleNames() const {
    std::vector<std::string> out;
    for (const auto& [name, _] : rules_) out.push_back(name);
    return out;
  }

  cond::CompiledCondition Rule(const std::string& name) const {
    EXPECT_TRUE(rules_.count(name)) << name;
    return Compile(rules_.count(name) ? rules_.at(name) : "evt.num = 0 and evt.num != 0");
  }

 private:
  std::map<std::string, cond::NodePtr> macros_;
  std::map<std::string, std::vector<std::string>> raw_lists_;
  std::map<std::string, std::vector<std::string>> lists_;
  std::map<std::string, std::string> rules_;
};

TEST(FalcoUpstream, OpenWriteAndOpenCreateDriftMeetFileEvents) {
  ASSERT_TRUE(std::ifstream(kUpstream + "falco_rules.yaml").good());
  Upstream up;
  auto open_write = up.Compile("open_write");
  auto drift = up.Rule("Container Drift Detected (open+create)");
  auto c = Container();

  auto dropper = Created("/tmp/dropper", 0100755);
  EXPECT_TRUE(open_write.Evaluate(Ctx(dropper, &c)));
  EXPECT_TRUE(drift.Evaluate(Ctx(dropper, &c)));

  auto data = Created("/tmp/data", 0100644);
  EXPECT_TRUE(open_write.Evaluate(Ctx(data, &c)));
  EXPECT_FALSE(drift.Evaluate(Ctx(data, &c)));

  auto modified = WriteEvent("/usr/bin/x", "modify");
  modified.mutable_id()->set_seq(6);
  modified.mutable_write()->set_mode(0100755);
  EXPECT_TRUE(open_write.Evaluate(Ctx(modified, &c)));
  EXPECT_FALSE(drift.Evaluate(Ctx(modified, &c)));  // not created here

  for (const char* kind : {"rename", "delete", "attrib"}) {
    auto ev = Created("/tmp/y", 0100755, kind);
    EXPECT_FALSE(open_write.Evaluate(Ctx(ev, &c))) << kind;
    EXPECT_FALSE(drift.Evaluate(Ctx(ev, &c))) << kind;
  }
  auto chmod = ChmodEvent("chmod", "/tmp/x", 0755);
  EXPECT_FALSE(open_write.Evaluate(Ctx(chmod, &c)));

  // Falco's rename and remove macros (incubating) meet renames and deletes.
  auto rename = up.Compile("rename");
  auto remove = up.Compile("remove");
  auto mv = WriteEvent("/usr/bin/x", "rename");
  auto rm = WriteEvent("/usr/bin/x", "delete");
  EXPECT_TRUE(rename.Evaluate(Ctx(mv, &c)));
  EXPECT_FALSE(rename.Evaluate(Ctx(rm, &c)));
  EXPECT_TRUE(remove.Evaluate(Ctx(rm, &c)));
}

TEST(FalcoUpstream, ChmodDrift) {
  Upstream up;
  auto c = Container();
  auto drift = up.Rule("Container Drift Detected (chmod)");
  auto plus_x = ChmodEvent("fchmodat", "/tmp/x", 0755);
  plus_x.mutable_id()->set_seq(9);
  EXPECT_TRUE(drift.Evaluate(Ctx(plus_x, &c)));
  auto no_x = ChmodEvent("chmod", "/tmp/x", 0644);
  no_x.mutable_id()->set_seq(10);
  EXPECT_FALSE(drift.Evaluate(Ctx(no_x, &c)));
  auto failed = ChmodEvent("chmod", "/tmp/x", 0755);
  failed.mutable_id()->set_seq(11);
  failed.mutable_chmod()->set_success(false);
  failed.mutable_chmod()->set_exit(-1);
  failed.mutable_chmod()->set_errno_name("EPERM");
  EXPECT_FALSE(drift.Evaluate(Ctx(failed, &c)));
}

TEST(FalcoUpstream, ExecRulesReadEvtArgFlags) {
  Upstream up;
  auto c = Container();
  // Falco's "Drop and execute new binary in container".
  auto drop = up.Rule("Drop and execute new binary in container");
  auto ev = ExecEvent("x", "/tmp/x", {"/tmp/x"});
  ev.mutable_exec()->set_is_exe_upper_layer(true);
  EXPECT_TRUE(drop.Evaluate(Ctx(ev, &c)));
  ev.mutable_exec()->set_is_exe_upper_layer(false);
  EXPECT_FALSE(drop.Evaluate(Ctx(ev, &c)));
  // A condition on evt.arg.flags as Falco writes them.
  auto flags = up.Compile("evt.arg.flags contains EXE_UPPER_LAYER");
  ev.mutable_exec()->set_is_exe_upper_layer(true);
  EXPECT_TRUE(flags.Evaluate(Ctx(ev, &c)));
}

// The engine skips a rule whose condition cannot be true for the event's type
// (CompiledCondition::event_types). Sound only if no rule ever matches an event of a type its
// set leaves out: checked for every upstream and shipped rule on events of every type
// driftwatch produces, built to match many of them.
TEST(FalcoUpstream, EventTypeIndexNeverSkipsARuleThatMatches) {
  Upstream up;
  std::vector<std::pair<std::string, cond::CompiledCondition>> conds;
  for (const std::string& name : up.RuleNames()) conds.emplace_back(name, up.Rule(name));
  auto shipped = RuleSet::Load(ShippedRuleFiles());
  ASSERT_TRUE(shipped) << shipped.error()[0].ToString();
  auto c = Container();
  std::vector<v1::Event> events;
  for (const char* exe : {"/bin/sh", "/usr/bin/apt-get", "/tmp/x", "/dev/shm/x", "memfd:x"}) {
    auto ev = ExecEvent(std::string(exe).substr(std::string(exe).rfind('/') + 1), exe, {exe, "-c", "id"});
    ev.mutable_exec()->set_is_exe_upper_layer(true);
    ev.mutable_exec()->set_tty("pts0");
    events.push_back(ev);
    ev.mutable_exec()->set_syscall("execveat");
    events.push_back(ev);
  }
  for (const char* syscall : {"chmod", "fchmod", "fchmodat", "fchmodat2"})
    events.push_back(ChmodEvent(syscall, "/tmp/x", 0755));
  for (const char* kind : {"close_write", "create", "modify", "rename", "delete", "attrib"}) {
    events.push_back(Created("/tmp/dropper", 0100755, kind));
    events.push_back(Created("/etc/passwd", 0100644, kind));
  }
  v1::Event started;
  started.set_container_id(testing::kCid);
  *started.mutable_container() = c;
  events.push_back(started);
  v1::Event status;
  status.mutable_status()->set_kernel_lost(3);
  events.push_back(status);
  v1::Event prevented;
  prevented.set_container_id(testing::kCid);
  prevented.mutable_prevented()->set_path("/tmp/x");
  events.push_back(prevented);
  events.emplace_back();  // no body: a type driftwatch does not produce

  size_t matches = 0, skipped = 0;
  auto check = [&](const std::string& name, const cond::CompiledCondition& cc) {
    for (const v1::Event& ev : events) {
      const EventTypeSet type = EventTypeBit(EventType(ev));
      const bool can = (cc.event_types() & type) != 0;
      skipped += !can;
      const bool matched = cc.Evaluate(Ctx(ev, &c, {"bash", "containerd-shim"}));
      matches += matched;
      EXPECT_TRUE(can || !matched) << name << " matches an event of type '" << EventType(ev)
                                   << "' its type set leaves out";
    }
  };
  for (const auto& [name, cc] : conds) check(name, cc);
  for (const driftwatch::Rule* r : (*shipped)->rules()) check(r->name, r->compiled);
  EXPECT_GT(matches, 30u);   // the events do match rules: the check is not vacuous
  EXPECT_GT(skipped, 500u);  // and the index leaves most rules out for most types
  std::printf("%zu rule/event pairs matched, %zu skipped by event type\n", matches, skipped);
}

}  // namespace
}  // namespace driftwatch
