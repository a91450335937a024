#include "lib/rules/rule_condition.h"

#include <gtest/gtest.h>

#include "lib/event/event_view.h"
#include "lib/rules/event_types.h"
#include "lib/rules/rule_fields.h"
#include "unit/rule_test_util.h"

namespace driftwatch {
namespace {

using testing::Container;
using testing::Ctx;
using testing::ExecEvent;

bool Eval(std::string_view cond, const RuleContext& ctx) {
  auto c = cond::CompileText(cond);
  EXPECT_TRUE(c.has_value()) << cond << ": " << (c ? "" : c.error().message);
  return c && c->Evaluate(ctx);
}

TEST(RuleConditionParse, AcceptsFalcoSyntax) {
  for (const char* text : {
           "evt.type = execve",
           "evt.type=execve and evt.dir=<",
           "evt.type in (execve, execveat) and evt.dir=<",
           "not proc.pname in (runc:[0:PARENT], runc:[1:CHILD], runc)",
           "proc.aname[2] in (bash, sh)",
           "fd.typechar='f' and not fd.name startswith /tmp",
           "not(proc.name = bash)",
           "((a) or (b and not c))",
           "proc.name in ()",
           "proc.name in shell_binaries",
           "proc.cmdline contains \"a \\\"quoted\\\" word\"",
           "proc.name exists and not proc.pname exists",
           "fd.name glob '/etc/*' or fd.name pmatch (/usr/bin, /bin)",
           "evt.rawres >= 0 and evt.rawres != -1",
           "notacontainer and oracle and andy",  // keywords need a boundary
       }) {
    auto n = cond::Parse(text);
    EXPECT_TRUE(n.has_value()) << text << ": " << (n ? "" : n.error().message);
  }
}

TEST(RuleConditionParse, RefusesWithPosition) {
  struct Case {
    const char* text;
    size_t offset;
    const char* needle;
  } cases[] = {
      {"proc.name = bash and", 20, "unexpected end"},
      {"(proc.name = bash", 17, "expected ')'"},
      {"proc.name = bash)", 16, "unbalanced"},
      {"proc.name bash", 10, "expected an operator"},
      {"proc.name =", 11, "expected a value"},
      {"proc.name in (a, b", 18, "missing ')'"},
      {"proc.name = 'abc", 12, "unterminated quoted"},
      {"join(proc.name) = x", 0, "transformer 'join' is not supported"},
      {"tolower(proc.name = x", 18, "expected ')' to close tolower("},
      {"proc.name = val(proc.pname", 26, "expected ')' to close val("},
      {"and proc.name = x", 0, "expected a check"},
      {"a b", 2, "expected 'and', 'or'"},
  };
  for (const Case& c : cases) {
    auto n = cond::Parse(c.text);
    ASSERT_FALSE(n.has_value()) << c.text;
    EXPECT_EQ(n.error().offset, c.offset) << c.text << ": " << n.error().message;
    EXPECT_NE(n.error().message.find(c.needle), std::string::npos) << c.text << ": " << n.error().message;
  }
}

TEST(RuleConditionParse, NestingIsBounded) {
  std::string deep(5000, '(');
  deep += "proc.name = a";
  deep += std::string(5000, ')');
  auto n = cond::Parse(deep);
  ASSERT_FALSE(n.has_value());
  EXPECT_NE(n.error().message.find("nested too deeply"), std::string::npos);
}

TEST(RuleConditionParse, LineColumn) {
  int l, c;
  cond::LineColumn("ab\ncd 字x", 9, &l, &c);  // the 'x'
  EXPECT_EQ(l, 2);
  EXPECT_EQ(c, 5);  // the three-byte character counts once
}

TEST(RuleCondition, PrecedenceNotAndOr) {
  auto ev = ExecEvent("bash", "/bin/bash", {"bash"});
  auto ctx = Ctx(ev);
  // not binds tighter than and, and tighter than or.
  EXPECT_TRUE(Eval("proc.name = sh or proc.name = bash and evt.type = execve", ctx));
  EXPECT_FALSE(Eval("not proc.name = bash and evt.type = execve", ctx));
  EXPECT_TRUE(Eval("not (proc.name = sh and evt.type = execve)", ctx));
  EXPECT_TRUE(Eval("not not proc.name = bash", ctx));
}

TEST(RuleCondition, StringOperators) {
  auto ev = ExecEvent("curl", "/usr/bin/curl", {"curl", "-s", "http://x/Payload.SH"});
  auto ctx = Ctx(ev);
  EXPECT_TRUE(Eval("proc.exepath startswith /usr/", ctx));
  EXPECT_TRUE(Eval("proc.exepath endswith /curl", ctx));
  EXPECT_TRUE(Eval("proc.cmdline contains 'http://'", ctx));
  EXPECT_FALSE(Eval("proc.cmdline contains payload", ctx));
  EXPECT_TRUE(Eval("proc.cmdline icontains payload.sh", ctx));
  EXPECT_TRUE(Eval("proc.exepath glob '/usr/*/cu?l'", ctx));
  EXPECT_TRUE(Eval("proc.exepath glob '/usr/bin/[a-c]url'", ctx));
  EXPECT_FALSE(Eval("proc.exepath glob '/usr/bin/[!c]url'", ctx));
  EXPECT_TRUE(Eval("proc.exepath iglob '/USR/BIN/*'", ctx));
  EXPECT_TRUE(Eval("proc.exepath pmatch (/usr/bin, /opt)", ctx));
  EXPECT_FALSE(Eval("proc.exepath pmatch (/usr/bi)", ctx));
  EXPECT_TRUE(Eval("proc.name != bash", ctx));
  EXPECT_TRUE(Eval("proc.name == curl", ctx));
  // proc.args is one string for string operators (Falco), elements for in.
  EXPECT_TRUE(Eval("proc.args contains '-s http'", ctx));
  EXPECT_TRUE(Eval("proc.args in (-s)", ctx));
  EXPECT_FALSE(Eval("proc.args in (curl)", ctx));
}

// File names and arguments are bytes, not text: a name that is not UTF-8 is matched as it
// is, and \xHH in a quoted string names any byte (YAML cannot hold one that is not UTF-8).
TEST(RuleCondition, BytesThatAreNotUtf8) {
  auto w = testing::WriteEvent("/tmp/\xffx");
  auto wctx = Ctx(w);
  EXPECT_TRUE(Eval("fd.name startswith /tmp/", wctx));
  EXPECT_TRUE(Eval("fd.name pmatch (/tmp)", wctx));
  EXPECT_TRUE(Eval("fd.directory = /tmp", wctx));
  EXPECT_TRUE(Eval(R"(fd.name = "/tmp/\xffx")", wctx));
  EXPECT_TRUE(Eval(R"(fd.name = '/tmp/\xFFx')", wctx));
  EXPECT_TRUE(Eval(R"(fd.filename in ("\xffx", other))", wctx));
  EXPECT_TRUE(Eval(R"(fd.name glob "/tmp/\xff*")", wctx));
  EXPECT_TRUE(Eval(R"(fd.name contains "\xff")", wctx));
  EXPECT_FALSE(Eval(R"(fd.name = "/tmp/\xfex")", wctx));
  EXPECT_FALSE(Eval(R"(fd.name = "/tmp/\\xffx")", wctx));  // an escaped backslash
  // Raw bytes in the condition text itself work too (a condition built in code).
  EXPECT_TRUE(Eval("fd.name = \"/tmp/\xffx\"", wctx));

  auto ev = ExecEvent("sh", "/bin/sh", {"sh", "-c", "echo \x80\x81"});
  auto ctx = Ctx(ev);
  EXPECT_TRUE(Eval(R"(proc.args contains "\x80\x81")", ctx));
  EXPECT_TRUE(Eval(R"(proc.cmdline endswith "echo \x80\x81")", ctx));
  EXPECT_TRUE(Eval(R"(proc.args icontains '\x80')", ctx));

  // Backslashes: \\ and \" as before; others stay as they are.
  auto u = cond::UnescapeQuoted(R"(a\\b\"c\qd\x41\x00)", '"');
  ASSERT_TRUE(u.has_value());
  EXPECT_EQ(*u, std::string("a\\b\"c\\qdA\0", 10));
  EXPECT_EQ(*cond::UnescapeQuoted(R"(\'\")", '\''), "'\\\"");
  for (const char* bad : {R"(\x)", R"(\x4)", R"(\xg0)", R"(ab\x4")"}) {
    auto b = cond::UnescapeQuoted(bad, '"');
    ASSERT_FALSE(b.has_value()) << bad;
    EXPECT_EQ(b.error().first, std::string_view(bad).find('\\')) << bad;
  }
  auto n = cond::Parse(R"(fd.name = "/tmp/\xf")");
  ASSERT_FALSE(n.has_value());
  EXPECT_EQ(n.error().offset, 16u);  // the backslash
  EXPECT_NE(n.error().message.find("two hex digits"), std::string::npos) << n.error().message;
}

TEST(RuleCondition, InOverSetsOfManyAndFew) {
  auto ev = ExecEvent("zsh", "/bin/zsh", {"zsh"});
  auto ctx = Ctx(ev);
  EXPECT_TRUE(Eval("proc.name in (bash, sh, zsh)", ctx));
  EXPECT_TRUE(Eval("proc.name in (a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, zsh)", ctx));  // hashed
  EXPECT_FALSE(Eval("proc.name in (a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, zs)", ctx));
  EXPECT_FALSE(Eval("proc.name in ()", ctx));
  EXPECT_TRUE(Eval("proc.name intersects (zsh, x)", ctx));
  EXPECT_TRUE(Eval("proc.pid in (1, 4242)", ctx));
}

TEST(RuleCondition, BareItemsKeepBrackets) {
  auto ev = ExecEvent("sh", "/bin/sh", {"sh"});
  auto ctx = Ctx(ev, nullptr, {"runc:[2:INIT]"});
  EXPECT_TRUE(Eval("proc.pname in (runc:[0:PARENT], runc:[2:INIT])", ctx));
  EXPECT_FALSE(Eval("proc.pname in (runc:[0:PARENT], \"runc\")", ctx));
  EXPECT_TRUE(Eval("proc.pname = 'runc:[2:INIT]'", ctx));
}

TEST(RuleCondition, NumbersAndBools) {
  auto ev = ExecEvent("ls", "/bin/ls", {"ls"});
  ev.mutable_exec()->set_is_exe_upper_layer(true);
  ev.mutable_exec()->set_tty("pts0");
  auto ctx = Ctx(ev);
  EXPECT_TRUE(Eval("proc.pid > 4000 and proc.pid <= 4242 and proc.pid >= 4242 and proc.pid < 0x2000", ctx));
  EXPECT_TRUE(Eval("user.uid = 0 and user.loginuid = -1", ctx));
  EXPECT_TRUE(Eval("proc.is_exe_upper_layer = true", ctx));
  EXPECT_TRUE(Eval("proc.is_exe_upper_layer != false", ctx));
  EXPECT_FALSE(Eval("proc.is_exe_upper_layer = false", ctx));
  EXPECT_TRUE(Eval("proc.tty != 0", ctx));
  EXPECT_TRUE(Eval("proc.tty = 34816", ctx));  // pts0 as the kernel's tty_nr
}

TEST(RuleCondition, UnsetFieldIsFalseForEveryOperatorButNotExists) {
  auto ev = ExecEvent("ls", "/bin/ls", {"ls"});  // no parent name, no lineage, no tty
  auto ctx = Ctx(ev);
  for (const char* c : {"proc.pname = x", "proc.pname != x", "proc.pname contains x",
                        "proc.pname startswith x", "proc.pname in (x)", "proc.pname glob '*'",
                        "proc.pname pmatch (/)", "proc.pname exists", "proc.sid = 1", "proc.sid != 1",
                        "fd.name != /x", "proc.aname[3] != x", "proc.is_exe_upper_layer != true",
                        "container.image.approved = false", "container.image.approved != true"}) {
    EXPECT_FALSE(Eval(c, ctx)) << c;
  }
  EXPECT_TRUE(Eval("not proc.pname exists", ctx));
  EXPECT_TRUE(Eval("not proc.pname in (x)", ctx));  // logical not of false
}

TEST(RuleCondition, AncestorsByIndexAndAny) {
  auto ev = ExecEvent("sh", "/bin/sh", {"sh"});
  auto ctx = Ctx(ev, nullptr, {"python3", "gunicorn", "tini"});
  EXPECT_TRUE(Eval("proc.aname[0] = sh", ctx));
  EXPECT_TRUE(Eval("proc.aname[1] = python3 and proc.pname = python3", ctx));
  EXPECT_TRUE(Eval("proc.aname[2] = gunicorn", ctx));
  EXPECT_TRUE(Eval("proc.aname[3] in (tini)", ctx));
  EXPECT_FALSE(Eval("proc.aname[4] exists", ctx));
  EXPECT_TRUE(Eval("proc.aname in (tini, nothing)", ctx));
  EXPECT_TRUE(Eval("proc.aname = gunicorn", ctx));
  EXPECT_FALSE(Eval("proc.aname in (sh)", ctx));  // ancestors only
  EXPECT_TRUE(Eval("proc.apid[1] = 4200 and proc.apid[3] = 4198", ctx));
}

TEST(RuleCondition, CompileErrors) {
  struct Case {
    const char* text;
    const char* needle;
  } cases[] = {
      {"proc.nme = bash", "unknown field 'proc.nme'"},
      {"some_macro", "Undefined macro 'some_macro' used in filter."},
      {"proc.name in nolist", "undefined list 'nolist'"},
      {"proc.pid = abc", "not a number"},
      {"proc.is_exe_upper_layer = maybe", "not true or false"},
      {"proc.name > a", "ordering needs a number"},
      {"proc.name[1] = a", "takes no [index]"},
      {"proc.apid = 1", "needs an index"},
      {"proc.aname[x] = a", "must be a number"},
      {"proc.pid contains 1", "not supported"},
  };
  for (const Case& c : cases) {
    auto r = cond::CompileText(c.text);
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_NE(r.error().message.find(c.needle), std::string::npos) << c.text << ": " << r.error().message;
  }
}

TEST(RuleCondition, MacrosAndListsAreSeparateNamesAndRecursionIsRefused) {
  auto m1 = cond::Parse("proc.name in (container_entrypoint)");
  auto rec_a = cond::Parse("rec_b and proc.name = x");
  auto rec_b = cond::Parse("(rec_a)");
  ASSERT_TRUE(m1 && rec_a && rec_b);
  std::vector<std::string> entry = {"tini", "dumb-init"};
  cond::Names names;
  names.macro = [&](std::string_view n) -> const cond::Node* {
    if (n == "container_entrypoint") return m1->get();
    if (n == "rec_a") return rec_a->get();
    if (n == "rec_b") return rec_b->get();
    return nullptr;
  };
  names.list = [&](std::string_view n) -> const std::vector<std::string>* {
    return n == "container_entrypoint" ? &entry : nullptr;
  };
  auto ev = ExecEvent("tini", "/sbin/tini", {"tini"});
  auto ctx = Ctx(ev);
  auto use = cond::Parse("container_entrypoint and proc.name in (container_entrypoint, other)");
  ASSERT_TRUE(use);
  auto c = cond::Compile(**use, names);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->Evaluate(ctx));
  // A quoted item is a literal, not a list reference.
  auto quoted = cond::Parse("proc.name in ('container_entrypoint')");
  auto cq = cond::Compile(**quoted, names);
  ASSERT_TRUE(cq);
  EXPECT_FALSE(cq->Evaluate(ctx));

  auto r = cond::Parse("rec_a");
  auto cr = cond::Compile(**r, names);
  ASSERT_FALSE(cr);
  EXPECT_NE(cr.error().message.find("recursion"), std::string::npos) << cr.error().message;
  EXPECT_FALSE(cr.error().macro.empty());
}

TEST(RuleCondition, GlobAndPathPrefix) {
  EXPECT_TRUE(cond::GlobMatch("*", "", false));
  EXPECT_TRUE(cond::GlobMatch("a*b*c", "aXXbYYc", false));
  EXPECT_FALSE(cond::GlobMatch("a*b*c", "aXXbYY", false));
  EXPECT_TRUE(cond::GlobMatch("/tmp/*", "/tmp/a/b", false));  // '*' crosses '/'
  EXPECT_TRUE(cond::GlobMatch("x[", "x[", false));             // unclosed '[' is literal
  EXPECT_TRUE(cond::GlobMatch("\\*", "*", false));
  EXPECT_TRUE(cond::PathPrefixMatch("/tmp", "/tmp"));
  EXPECT_TRUE(cond::PathPrefixMatch("/tmp/", "/tmp/x"));
  EXPECT_FALSE(cond::PathPrefixMatch("/tmp", "/tmpx"));
  EXPECT_TRUE(cond::PathPrefixMatch("/", "/anything"));
}

TEST(RuleFields, EveryFieldIsRegisteredOnceAndDocumented) {
  auto all = AllFields();
  EXPECT_GT(all.size(), 60u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_FALSE(all[i]->doc.empty()) << all[i]->name;
    if (i) {
      EXPECT_LT(all[i - 1]->name, all[i]->name);
    }
  }
  for (const char* f : {"evt.type", "evt.dir", "evt.res", "evt.rawres", "evt.time", "evt.hostname",
                        "evt.is_open_write", "evt.arg.mode", "evt.arg.filename", "proc.pid", "proc.ppid",
                        "proc.name", "proc.exe", "proc.exepath", "proc.cmdline", "proc.args", "proc.cwd",
                        "proc.tty", "proc.sid", "proc.pname", "proc.aname", "proc.apid", "proc.pcmdline",
                        "proc.is_exe_upper_layer", "proc.exe_written_at_runtime", "proc.exe_writer.name",
                        "proc.exe_writer.pid", "proc.exe_sha256", "proc.exe_chmod_exec",
                        "proc.is_runtime_plumbing", "user.uid", "user.name", "user.loginuid", "group.gid",
                        "container.id", "container.full_id", "container.name", "container.image",
                        "container.image.repository", "container.image.tag", "container.image.digest",
                        "container.image.id", "container.privileged", "container.read_only_rootfs",
                        "container.image.approved", "container.image.mutable_tag", "container.start_ts",
                        "k8s.pod.name", "k8s.ns.name", "k8s.pod.uid", "fd.name", "fd.directory",
                        "fd.filename", "fd.typechar", "fd.is_executable", "fd.sha256", "fd.upper_path"}) {
    EXPECT_NE(FindField(f), nullptr) << f;
  }
}

TEST(RuleFields, ValuesFollowEventJson) {
  auto ev = ExecEvent("busybox", "/bin/busybox", {"/bin/sh", "-c", "id"});
  ev.mutable_exec()->set_path("/proc/self/exe");  // busybox applets: name from argv[0]
  auto c = Container();
  auto ctx = Ctx(ev, &c);
  FieldValue v;
  auto text = [&](const char* name, int idx = -1) {
    std::string out;
    AppendFieldText(*FindField(name), FieldArg{idx}, ctx, &v, &out);
    return out;
  };
  EXPECT_EQ(text("proc.name"), "sh");
  EXPECT_EQ(text("proc.cmdline"), "sh -c id");
  EXPECT_EQ(text("proc.args"), "-c id");
  EXPECT_EQ(text("container.id"), "4f2a9c1d8e7b");
  EXPECT_EQ(text("container.full_id"), testing::kCid);
  EXPECT_EQ(text("user.name"), "root");
  EXPECT_EQ(text("evt.res"), "SUCCESS");
  EXPECT_EQ(text("evt.dir"), "<");
  EXPECT_EQ(text("proc.pname"), "<NA>");
  EXPECT_EQ(text("k8s.ns.name"), "default");
  EXPECT_EQ(text("container.privileged"), "false");

  v1::Event host = ExecEvent("ls", "/bin/ls", {"ls"}, "");
  auto hctx = Ctx(host);
  std::string out;
  AppendFieldText(*FindField("container.id"), {}, hctx, &v, &out);
  EXPECT_EQ(out, "host");

  v1::Event ch;
  ch.set_container_id(testing::kCid);
  ch.mutable_chmod()->set_syscall("fchmodat");
  ch.mutable_chmod()->set_success(true);
  ch.mutable_chmod()->set_new_mode(0755);
  ch.mutable_chmod()->set_path("/tmp/x");
  auto cctx = Ctx(ch);
  out.clear();
  AppendFieldText(*FindField("evt.arg.mode"), {}, cctx, &v, &out);
  EXPECT_EQ(out, "S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR");  // as libs resolves a mode
  out.clear();
  AppendFieldText(*FindField("fd.directory"), {}, cctx, &v, &out);
  EXPECT_EQ(out, "/tmp");
}

// The event types a condition can be true for (the engine's index, Falco's evttype filter).
TEST(RuleConditionEventTypes, SetsFollowTheLogic) {
  auto types = [](std::string_view text) {
    auto c = cond::CompileText(text);
    EXPECT_TRUE(c.has_value()) << text << ": " << (c ? "" : c.error().message);
    return c ? c->event_types() : EventTypeSet{0};
  };
  const EventTypeSet execve = EventTypeBit("execve"), execveat = EventTypeBit("execveat");
  const EventTypeSet openat = EventTypeBit("openat"), other = EventTypeBit("sendto");
  EXPECT_NE(execve, execveat);
  EXPECT_EQ(other, EventTypeBit("no such type"));  // one bit for every other name
  EXPECT_EQ(types("evt.type = execve"), execve);
  EXPECT_EQ(types("evt.type in (execve, execveat) and proc.name = sh"), execve | execveat);
  EXPECT_EQ(types("evt.type = execve or evt.type = openat"), execve | openat);
  EXPECT_EQ(types("evt.type in (execve, sendto)"), execve | other);
  EXPECT_EQ(types("evt.type != execve"), ~execve);
  EXPECT_EQ(types("not evt.type = execve"), ~execve);
  EXPECT_EQ(types("evt.type != sendto"), kAnyEventType);  // other names: some may differ
  EXPECT_EQ(types("evt.type = execve and evt.type = openat"), 0u);
  // Anything else is possible for every type.
  EXPECT_EQ(types("proc.name = sh"), kAnyEventType);
  EXPECT_EQ(types("evt.type = execve or proc.name = sh"), kAnyEventType);
  EXPECT_EQ(types("evt.type exists"), kAnyEventType);
  EXPECT_EQ(types("evt.type startswith execve"), kAnyEventType);
  EXPECT_EQ(types("tolower(evt.type) = execve"), kAnyEventType);
  EXPECT_EQ(types("evt.type = val(proc.name)"), kAnyEventType);
  // not: true where its part is not always true.
  EXPECT_EQ(types("not (evt.type = execve and proc.name = sh)"), kAnyEventType);
  EXPECT_EQ(types("not (evt.type in (execve, openat) and evt.type != openat)"), ~execve);
  EXPECT_EQ(types("not not evt.type = execve"), execve);
  // The sets agree with evaluation on an exec.
  auto ev = ExecEvent("sh", "/bin/sh", {"sh"});
  for (const char* text : {"evt.type = execve", "evt.type != execve", "not evt.type = openat",
                           "evt.type in (openat, execveat)"}) {
    const bool can = (types(text) & EventTypeBit(EventType(ev))) != 0;
    if (!can) {
      EXPECT_FALSE(Eval(text, Ctx(ev))) << text;
    }
  }
}

}  // namespace
}  // namespace driftwatch
