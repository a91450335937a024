// lib/rules/fields_proc_state.cc: Falco's fields over what the sensor read of a process at
// its exec and over a container's mounts, in conditions and outputs as Falco rules use them.
#include <gtest/gtest.h>

#include <cctype>

#include <string>

#include "lib/rules/rule_condition.h"
#include "lib/rules/rule_fields.h"
#include "unit/rule_test_util.h"

namespace driftwatch {
namespace {

using testing::Container;
using testing::Ctx;
using testing::ExecEvent;

// The field's text as an output prints it (%field, with its [N] or [key]).
std::string Text(const std::string& field, const RuleContext& ctx) {
  std::string name = field;
  FieldArg arg;
  std::string key;
  if (size_t b = field.find('['); b != std::string::npos) {
    name = field.substr(0, b);
    key = field.substr(b + 1, field.size() - b - 2);
    if (!key.empty() && std::isdigit(static_cast<unsigned char>(key[0])))
      arg.index = std::stoi(key);
    else
      arg.key = &key;
  }
  const FieldInfo* f = FindField(name);
  EXPECT_NE(f, nullptr) << name;
  if (!f) return "";
  FieldValue v;
  std::string out;
  AppendFieldText(*f, arg, ctx, &v, &out);
  return out;
}

bool Matches(const std::string& cond, const RuleContext& ctx) {
  auto c = cond::CompileText(cond);
  EXPECT_TRUE(c.has_value()) << cond << ": " << (c ? "" : c.error().message);
  return c && c->Evaluate(ctx);
}

v1::Event StateEvent() {
  v1::Event ev = ExecEvent("curl", "/usr/bin/curl", {"curl", "-s", "http://x"});
  v1::ProcessExec* x = ev.mutable_exec();
  x->set_vpid(7);
  x->set_vpgid(7);
  x->set_vsid(1);
  x->set_pid(4242);
  x->set_pgid(4242);
  x->set_sid(4100);
  x->set_start_time_ns(ev.time_ns() - 3000000000);  // forked 3 s before the exec
  x->set_exe_ctime_ns(ev.time_ns() - 10000000000);
  x->set_exe_mtime_ns(ev.time_ns() - 20000000000);
  x->set_session_leader_name("bash");
  x->set_pgid_leader_name("curl");
  x->set_cap_effective((1ull << 21) | (1ull << 1));
  x->set_cap_permitted(~0ull);
  x->set_cap_inheritable(0);
  x->set_env_read(true);
  x->add_env("PATH=/bin");
  x->add_env("HTTP_PROXY=http://evil:3128");
  x->set_uid(1000);
  x->set_auid(1001);
  x->set_gid(0);
  x->set_user_name("app");
  x->set_login_name("ops");
  return ev;
}

TEST(ProcStateFields, ReadAsFalco) {
  v1::Event ev = StateEvent();
  RuleContext ctx = Ctx(ev);
  EXPECT_EQ(Text("proc.vpid", ctx), "7");
  EXPECT_EQ(Text("proc.is_vpgid_leader", ctx), "true");
  EXPECT_EQ(Text("proc.is_sid_leader", ctx), "false");
  EXPECT_EQ(Text("proc.sname", ctx), "bash");
  EXPECT_EQ(Text("proc.vpgid.name", ctx), "curl");
  EXPECT_EQ(Text("proc.vpgid.exe", ctx), "curl");
  EXPECT_EQ(Text("proc.duration", ctx), "3000000000");
  EXPECT_EQ(Text("proc.exe_ino.ctime_duration_proc_start", ctx), "7000000000");
  EXPECT_EQ(Text("proc.exe_ino.ctime", ctx), std::to_string(ev.time_ns() - 10000000000));
  EXPECT_EQ(Text("thread.cap_effective", ctx), "CAP_DAC_OVERRIDE CAP_SYS_ADMIN");
  EXPECT_EQ(Text("thread.cap_inheritable", ctx), "");
  EXPECT_EQ(Text("proc.env", ctx), "PATH=/bin HTTP_PROXY=http://evil:3128");
  EXPECT_EQ(Text("user.name", ctx), "app");
  EXPECT_EQ(Text("user.loginname", ctx), "ops");
  EXPECT_EQ(Text("group.name", ctx), "root");  // gid 0 with no name found, as Falco
  // The conditions of Falco's rules over them.
  EXPECT_TRUE(Matches("proc.env icontains HTTP_PROXY", ctx));
  EXPECT_FALSE(Matches("proc.env icontains GLIBC_TUNABLES", ctx));
  EXPECT_TRUE(Matches("thread.cap_effective contains CAP_SYS_ADMIN", ctx));
  EXPECT_TRUE(Matches("thread.cap_effective icontains sys_admin", ctx));
  EXPECT_FALSE(Matches("thread.cap_effective icontains sys_module", ctx));
  EXPECT_TRUE(Matches("proc.vpid=7 and proc.is_vpgid_leader=true", ctx));
  EXPECT_FALSE(Matches("proc.duration <= 2000000000", ctx));
  // The parent's duration: from its exec in the lineage, when its start was read.
  RuleContext with_parent = Ctx(ev, nullptr, {"bash"});
  EXPECT_EQ(Text("proc.ppid.duration", with_parent), "<NA>");
  with_parent.lineage[0].start_ns = ev.time_ns() - 60000000000;
  EXPECT_EQ(Text("proc.ppid.duration", with_parent), "60000000000");
}

// What the sensor could not read stays unset: <NA> in outputs, every comparison false.
TEST(ProcStateFields, UnsetWhenNotRead) {
  v1::Event ev = ExecEvent("sh", "/bin/sh", {"sh"});
  ev.mutable_exec()->set_uid(1000);
  ev.mutable_exec()->set_gid(1000);
  RuleContext ctx = Ctx(ev);
  for (const char* f : {"proc.vpid", "proc.vpgid", "proc.is_vpgid_leader", "proc.is_sid_leader",
                        "proc.sname", "proc.vpgid.name", "proc.vpgid.exe", "proc.duration",
                        "proc.exe_ino.ctime", "proc.exe_ino.ctime_duration_proc_start",
                        "thread.cap_effective", "proc.env", "user.name", "user.loginname",
                        "group.name", "container.mounts", "container.mount.dest[0]"}) {
    EXPECT_EQ(Text(f, ctx), "<NA>") << f;
  }
  EXPECT_FALSE(Matches("proc.vpid = 1", ctx));
  EXPECT_FALSE(Matches("proc.env contains PATH", ctx));
  // The root fallbacks Falco has for id 0.
  ev.mutable_exec()->set_auid(0);
  ev.mutable_exec()->set_gid(0);
  EXPECT_EQ(Text("user.loginname", ctx), "root");
  EXPECT_EQ(Text("group.name", ctx), "root");
}

TEST(ProcStateFields, ContainerMounts) {
  v1::ContainerInfo c = Container();
  v1::Mount* m = c.add_mounts();
  m->set_source("/var/run/docker.sock");
  m->set_destination("/var/run/docker.sock");
  m->set_propagation("private");
  m = c.add_mounts();
  m->set_source("/proc");
  m->set_destination("/host/proc");
  m->set_read_only(true);
  m->set_propagation("rslave");
  v1::Event ev = ExecEvent("sh", "/bin/sh", {"sh"});
  RuleContext ctx = Ctx(ev, &c);
  EXPECT_EQ(Text("container.mounts", ctx),
            "/var/run/docker.sock:/var/run/docker.sock::true:private,/proc:/host/proc::false:rslave");
  EXPECT_EQ(Text("container.mount[1]", ctx), "/proc:/host/proc::false:rslave");
  EXPECT_EQ(Text("container.mount.source[1]", ctx), "/proc");
  EXPECT_EQ(Text("container.mount.dest[1]", ctx), "/host/proc");
  EXPECT_EQ(Text("container.mount.rdwr[0]", ctx), "true");
  EXPECT_EQ(Text("container.mount.propagation[1]", ctx), "rslave");
  EXPECT_EQ(Text("container.mount.mode[0]", ctx), "");
  // No mount number 2: "N/A", as Falco's container fields say (a value, not unset).
  EXPECT_EQ(Text("container.mount.dest[2]", ctx), "N/A");
  // By key: a glob over the source (over the destination for .source), the first match.
  EXPECT_EQ(Text("container.mount.dest[/proc*]", ctx), "/host/proc");
  EXPECT_EQ(Text("container.mount.source[/host/*]", ctx), "/proc");
  EXPECT_EQ(Text("container.mount.rdwr[/proc]", ctx), "false");
  EXPECT_EQ(Text("container.mount.dest[/etc]", ctx), "N/A");
  // Upstream's sensitive_mount macro, word for word for two of its mounts.
  EXPECT_TRUE(Matches("(not container.mount.dest[/proc*] in (\"<NA>\",\"N/A\") or "
                      "not container.mount.dest[/etc] in (\"<NA>\",\"N/A\"))", ctx));
  EXPECT_FALSE(Matches("not container.mount.dest[/etc*] in (\"<NA>\",\"N/A\")", ctx));
  // A field without a key takes no key; a key is not an empty [].
  EXPECT_FALSE(cond::CompileText("proc.aname[/x] = sh").has_value());
  EXPECT_FALSE(cond::CompileText("container.mount.dest[] = x").has_value());
  EXPECT_TRUE(Matches("container.mounts contains docker.sock", ctx));
  EXPECT_TRUE(Matches("container.mount.dest[1] startswith /host", ctx));
  // A container event: its own body.
  v1::Event cev;
  cev.set_container_id(c.id());
  *cev.mutable_container() = c;
  EXPECT_EQ(Text("container.mount.source[0]", Ctx(cev)), "/var/run/docker.sock");
}

}  // namespace
}  // namespace driftwatch
