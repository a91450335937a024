// proc.* fields: the process behind the event, its ancestors and the history of its
// executable (written at runtime, by whom, chmod +x).
#include <charconv>

#include "lib/event/event_json.h"
#include "lib/event/event_view.h"
#include "lib/event/exe_file.h"
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

using fields::SetBool;
using fields::SetNum;
using fields::SetStr;

constexpr uint32_t kUnset = 4294967295u;

const v1::ProcessExec* Exec(const RuleContext& c) {
  return KindOf(*c.event) == Kind::kExec ? &c.event->exec() : nullptr;
}

// The view's group `h` when the event's kind carries it.
std::optional<ProcessView> Carrying(const RuleContext& c, ProcessView::Has h) {
  std::optional<ProcessView> p = ProcessOf(*c.event);
  if (p && !p->Carries(h)) p.reset();
  return p;
}

bool ProcPid(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = Carrying(c, ProcessView::kPid);
  return p && SetNum(p->pid, out);
}

bool ProcPpid(const RuleContext& c, FieldArg, FieldValue* out) {
  if (auto p = Carrying(c, ProcessView::kPpid)) return SetNum(p->ppid, out);
  if (!c.lineage.empty()) return SetNum(c.lineage[0].pid, out);
  return false;
}

std::string_view NameOf(const RuleContext& c) {
  auto p = ProcessOf(*c.event);
  return p ? ProcessNameOf(*p) : std::string_view();
}

bool ProcName(const RuleContext& c, FieldArg, FieldValue* out) { return SetStr(NameOf(c), out); }

bool ProcExe(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = ProcessOf(*c.event);
  if (!p) return false;
  if (p->exec && p->exec->args_size() > 0) return SetStr(p->exec->args(0), out);
  return SetStr(p->exe, out);
}

bool ProcExepath(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = ProcessOf(*c.event);
  return p && SetStr(p->exe, out);
}

// The file the exec runs: the script or the loader's program where exe names its
// interpreter or the loader (lib/event/exe_file.h), else exe.
bool ProcExeFile(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x) return false;
  return SetStr(x->exe_file().empty() ? x->exe() : x->exe_file(), out);
}

// Falco's proc.is_exe_from_memfd. Events from before the field read it from exe; a chmod
// or write names its process's exe too.
bool ProcIsExeFromMemfd(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = ProcessOf(*c.event);
  if (!p) return false;
  if (const v1::ProcessExec* x = p->exec) {
    if (x->has_is_exe_from_memfd()) return SetBool(x->is_exe_from_memfd(), out);
    return x->success() && SetBool(IsMemfdExe(x->exe()), out);
  }
  // A file write's exe is unknown when empty; a chmod's is always the audit record's.
  if (p->exe.empty() && KindOf(*c.event) == Kind::kWrite) return false;
  return SetBool(IsMemfdExe(p->exe), out);
}

// Falco's proc.cmdline: the name, then the arguments after argv[0] ("..." after them when
// the argument caps cut them).
bool ProcCmdline(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x) return false;
  out->buf = CommandLine(*x);
  out->str = out->buf;
  return true;
}

bool ProcArgsCapped(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x) return false;
  return SetBool(x->args_capped(), out);
}

bool ProcArgs(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x) return false;
  for (int i = 1; i < x->args_size(); ++i) out->list.push_back(x->args(i));
  return true;
}

bool ProcCwd(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = Carrying(c, ProcessView::kCwd);
  return p && SetStr(p->cwd, out);
}

}  // namespace

// Falco's proc.tty is the kernel's tty_nr (0: none), so rules say `proc.tty != 0`. Audit
// names the terminal ("pts3", "tty1", "(none)"): encode it as the kernel would.
int64_t fields::TtyNumber(std::string_view tty) {
  if (tty.empty() || tty == "(none)") return 0;
  auto encode = [](uint32_t major, uint32_t minor) -> int64_t {
    return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
  };
  auto number_after = [&](std::string_view prefix, uint32_t* n) {
    if (!tty.starts_with(prefix)) return false;
    std::string_view rest = tty.substr(prefix.size());
    auto r = std::from_chars(rest.data(), rest.data() + rest.size(), *n);
    return r.ec == std::errc() && r.ptr == rest.data() + rest.size();
  };
  uint32_t n = 0;
  if (number_after("pts", &n)) return encode(136 + n / 256, n % 256);
  if (number_after("ttyS", &n)) return encode(4, 64 + n);
  if (number_after("tty", &n)) return encode(4, n);
  if (tty == "console") return encode(5, 1);
  return -1;  // a terminal we cannot number: still not 0
}

namespace {

using fields::TtyNumber;

bool ProcTty(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = Carrying(c, ProcessView::kTerminal);
  return p && SetNum(TtyNumber(p->tty), out);
}

bool ProcSid(const RuleContext& c, FieldArg, FieldValue* out) {
  auto p = Carrying(c, ProcessView::kTerminal);
  if (!p || p->session == kUnset) return false;
  return SetNum(p->session, out);
}

std::string_view ParentNameOf(const RuleContext& c) {
  if (!c.lineage.empty() && !c.lineage[0].name.empty()) return c.lineage[0].name;
  auto p = ProcessOf(*c.event);
  return p ? p->parent_name : std::string_view();
}

bool ProcPname(const RuleContext& c, FieldArg, FieldValue* out) {
  return SetStr(ParentNameOf(c), out);
}

bool ProcPcmdline(const RuleContext& c, FieldArg, FieldValue* out) {
  if (c.lineage.empty()) return false;
  return SetStr(c.lineage[0].cmdline, out);
}

bool ProcPexepath(const RuleContext& c, FieldArg, FieldValue* out) {
  if (c.lineage.empty()) return false;
  return SetStr(c.lineage[0].exepath, out);
}

// proc.aname[0] is the process itself, [1] its parent, ...; without an index, every
// known ancestor (for `in` and `intersects`).
bool ProcAname(const RuleContext& c, FieldArg a, FieldValue* out) {
  if (!a.present()) {
    for (const ProcessInfo& p : c.lineage) {
      if (!p.name.empty()) out->list.push_back(p.name);
    }
    if (c.lineage.empty()) {
      std::string_view p = ParentNameOf(c);
      if (!p.empty()) out->list.push_back(p);
    }
    return !out->list.empty();
  }
  if (a.index == 0) return SetStr(NameOf(c), out);
  if (a.index == 1) return SetStr(ParentNameOf(c), out);
  size_t i = static_cast<size_t>(a.index) - 1;
  if (i >= c.lineage.size()) return false;
  return SetStr(c.lineage[i].name, out);
}

// The event's own proc.exe (argv[0]) and proc.exepath, for the [0] of the a* fields.
std::string_view OwnExe(const RuleContext& c) {
  auto p = ProcessOf(*c.event);
  if (!p) return {};
  if (p->exec && p->exec->args_size() > 0) return p->exec->args(0);
  return p->exe;
}

std::string_view OwnExepath(const RuleContext& c) {
  auto p = ProcessOf(*c.event);
  return p ? p->exe : std::string_view();
}

bool ProcPexe(const RuleContext& c, FieldArg, FieldValue* out) {
  return !c.lineage.empty() && SetStr(c.lineage[0].exe, out);
}

// proc.aexe and proc.aexepath: [0] the process, [1] its parent, ...; without an index every
// known ancestor's (not the process's own), as proc.aname.
template <std::string ProcessInfo::*Member>
bool Ancestor(const RuleContext& c, FieldArg a, std::string_view own, FieldValue* out) {
  if (!a.present()) {
    for (const ProcessInfo& p : c.lineage) {
      if (!(p.*Member).empty()) out->list.push_back(p.*Member);
    }
    return !out->list.empty();
  }
  if (a.index == 0) return SetStr(own, out);
  size_t i = static_cast<size_t>(a.index) - 1;
  return i < c.lineage.size() && SetStr(c.lineage[i].*Member, out);
}

bool ProcAexe(const RuleContext& c, FieldArg a, FieldValue* out) {
  return Ancestor<&ProcessInfo::exe>(c, a, OwnExe(c), out);
}

bool ProcAexepath(const RuleContext& c, FieldArg a, FieldValue* out) {
  return Ancestor<&ProcessInfo::exepath>(c, a, OwnExepath(c), out);
}

bool ProcApid(const RuleContext& c, FieldArg a, FieldValue* out) {
  if (a.index == 0) return ProcPid(c, a, out);
  size_t i = static_cast<size_t>(a.index) - 1;
  if (i < c.lineage.size() && c.lineage[i].pid != 0) return SetNum(c.lineage[i].pid, out);
  if (a.index == 1) return ProcPpid(c, a, out);
  return false;
}

bool ProcIsExeUpperLayer(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x) return false;
  if (x->has_is_exe_upper_layer()) return SetBool(x->is_exe_upper_layer() || c.file.written_at_runtime, out);
  // A file written in the container since it started lives in its upper layer.
  if (c.file.written_at_runtime) return SetBool(true, out);
  return false;
}

// Where the parent's executable came from; absent when unknown. Allowlists of parents
// (entrypoint wrappers) ask for an image binary: a copy written at runtime under an
// allowed name or path is not the wrapper the image shipped.
bool ProcPexeFile(const RuleContext& c, FieldArg, FieldValue* out) {
  if (c.lineage.empty()) return false;
  return SetStr(c.lineage[0].exe_file, out);
}

bool ProcPisExeUpperLayer(const RuleContext& c, FieldArg, FieldValue* out) {
  if (c.lineage.empty() || c.lineage[0].origin == ProcessInfo::Origin::kUnknown) return false;
  return SetBool(c.lineage[0].origin == ProcessInfo::Origin::kUpper, out);
}

bool ProcExeWrittenAtRuntime(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!Exec(c)) return false;
  return SetBool(c.file.written_at_runtime, out);
}

bool ProcExeWriterName(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!Exec(c) || !c.file.written_at_runtime) return false;
  return SetStr(c.file.writer_name, out);
}

bool ProcExeWriterPid(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!Exec(c) || !c.file.written_at_runtime || c.file.writer_pid == 0) return false;
  return SetNum(c.file.writer_pid, out);
}

bool ProcExeSha256(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!Exec(c)) return false;
  return SetStr(c.file.sha256, out);
}

bool ProcExeChmodExec(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!Exec(c)) return false;
  return SetBool(c.file.chmod_exec, out);
}

bool ProcIsRuntimePlumbing(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x) return false;
  return SetBool(x->runtime_plumbing(), out);
}

constexpr FieldInfo kProcFields[] = {
    {"proc.pid", FieldType::kNumber, "process id (host pid namespace)", ProcPid},
    {"proc.ppid", FieldType::kNumber, "parent process id", ProcPpid},
    {"proc.name", FieldType::kString,
     "process name (comm; argv[0]'s basename for execs through /proc/self/exe or an fd)",
     ProcName},
    {"proc.exe", FieldType::kString, "argv[0] of the exec", ProcExe},
    {"proc.exepath", FieldType::kString, "path of the executable", ProcExepath},
    {"proc.exe_file", FieldType::kString,
     "the file an exec runs: the script (#!) or the program a dynamic loader run as a "
     "command loads, where proc.exepath is the interpreter or the loader; else proc.exepath",
     ProcExeFile},
    {"proc.is_exe_from_memfd", FieldType::kBool,
     "the executable is an anonymous memfd (memfd_create, run by its fd)", ProcIsExeFromMemfd},
    {"proc.cmdline", FieldType::kString, "name followed by the arguments", ProcCmdline},
    {"proc.args", FieldType::kList,
     "arguments after argv[0]; string operators see them joined by spaces", ProcArgs,
     FieldArgMode::kNone, FieldType::kString, /*list_joins_for_strings=*/true},
    {"proc.args_capped", FieldType::kBool,
     "the sensor's argument caps cut the arguments (proc.cmdline then ends with \"...\")",
     ProcArgsCapped},
    {"proc.cwd", FieldType::kString, "working directory", ProcCwd},
    {"proc.tty", FieldType::kNumber, "controlling terminal as the kernel's tty_nr; 0: none",
     ProcTty},
    {"proc.sid", FieldType::kNumber, "audit session id", ProcSid},
    {"proc.pname", FieldType::kString, "parent process name", ProcPname},
    {"proc.pcmdline", FieldType::kString, "parent command line", ProcPcmdline},
    {"proc.pexepath", FieldType::kString, "parent executable path", ProcPexepath},
    {"proc.aname", FieldType::kList,
     "ancestor name: [0] the process, [1] its parent, ...; without index any ancestor",
     ProcAname, FieldArgMode::kOptional, FieldType::kString},
    {"proc.apid", FieldType::kNumber, "ancestor pid: [0] the process, [1] its parent, ...",
     ProcApid, FieldArgMode::kRequired, FieldType::kNumber},
    {"proc.pexe", FieldType::kString,
     "parent's proc.exe (argv[0] of its exec), when the sensor saw that exec", ProcPexe},
    {"proc.aexe", FieldType::kList,
     "ancestor's proc.exe (argv[0]): [0] the process, [1] its parent, ...; without index any "
     "known ancestor's (execs the sensor saw)",
     ProcAexe, FieldArgMode::kOptional, FieldType::kString},
    {"proc.aexepath", FieldType::kList,
     "ancestor's proc.exepath: [0] the process, [1] its parent, ...; without index any known "
     "ancestor's (execs the sensor saw)",
     ProcAexepath, FieldArgMode::kOptional, FieldType::kString},
    {"proc.is_exe_upper_layer", FieldType::kBool,
     "the executable, or the file it runs (proc.exe_file), lives in the container's upper "
     "layer (not in its image)",
     ProcIsExeUpperLayer},
    {"proc.pexe_file", FieldType::kString,
     "the file the parent runs (its proc.exe_file): an entrypoint script, not its shell",
     ProcPexeFile},
    {"proc.pis_exe_upper_layer", FieldType::kBool,
     "the parent's executable lives in the container's upper layer (written at runtime, not "
     "in its image); absent when not known",
     ProcPisExeUpperLayer},
    {"proc.exe_written_at_runtime", FieldType::kBool,
     "the executable was written in the container after it started", ProcExeWrittenAtRuntime},
    {"proc.exe_writer.name", FieldType::kString, "name of the process that wrote the executable",
     ProcExeWriterName},
    {"proc.exe_writer.pid", FieldType::kNumber, "pid of the process that wrote the executable",
     ProcExeWriterPid},
    {"proc.exe_sha256", FieldType::kString, "sha256 (hex) of the executable, when hashed",
     ProcExeSha256},
    {"proc.exe_chmod_exec", FieldType::kBool, "a chmod added an exec bit to the executable",
     ProcExeChmodExec},
    {"proc.is_runtime_plumbing", FieldType::kBool,
     "the container runtime's own re-exec (runc init), not a workload exec",
     ProcIsRuntimePlumbing},
};

}  // namespace

std::span<const FieldInfo> ProcFields() { return kProcFields; }

}  // namespace driftwatch
