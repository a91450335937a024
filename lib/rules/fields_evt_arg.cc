// evt.arg.<param>, evt.arg[N], evt.args and evt.rawarg.<param>: the parameters of Falco's
// exit event for the event's evt.type (lib/rules/falco_tables.h, from libs' event table),
// rendered as libs renders them (userspace/libsinsp/event.cpp, get_param_as_str: the
// resolved text where it has one, else the plain one):
//   errno         "0", or the errno name of a failure ("ENOENT")
//   fd            "<f>/path" (type char and name) where the file is known
//   pid           the process's comm (pid, tid) or its parent's name (ptid), else the number
//   uid, gid      "root" for 0, the ENRICHED log's name, else the number (libs reads names
//                 from the container's passwd file; the sensor does not); "<NONE>" unset
//   flags         the names of the flag table, in its order, joined by '|' ("O_CREAT|...");
//                 the number when no name matches
//   mode          chmod: the names of the mode bits ("S_IXOTH|S_IROTH|..."); open: octal
//   args          argv after argv[0], each followed by '.', other bytes that do not print '.'
// Compile time accepts, as Falco does, every parameter name of any event of its table; on an
// event whose type has no such parameter, or whose value driftwatch does not know, the
// field is unset. A name no event driftwatch produces carries is a `never` field.
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstdio>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "lib/event/event_json.h"
#include "lib/event/event_view.h"
#include "lib/rules/falco_tables.h"
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

using falco::FlagName;
using falco::Param;
using falco::ParamType;

constexpr uint32_t kUnset = 4294967295u;

// libs' PPM_* bits driftwatch sets (driver/ppm_events_public.h).
constexpr uint32_t kExeWritable = 1u << 0;
constexpr uint32_t kExeUpperLayer = 1u << 1;
constexpr uint32_t kExeFromMemfd = 1u << 2;
constexpr uint32_t kExeLowerLayer = 1u << 3;
constexpr uint32_t kOWronly = 1u << 1;
constexpr uint32_t kOCreat = 1u << 2;
constexpr uint32_t kOFCreated = 1u << 14;
constexpr uint32_t kFdUpperLayer = 1u << 15;

// One parameter's value: the plain text (libs' argstr), the resolved text (empty: none),
// and the raw value evt.rawarg reads (a number, or the plain text).
struct ArgText {
  std::string plain;
  std::string resolved;
  int64_t num = 0;
  bool numeric = false;
  const std::string& shown() const { return resolved.empty() ? plain : resolved; }
};

std::span<const Param> ParamsOf(std::string_view type) {
  auto events = falco::ProducedEvents();
  auto it = std::lower_bound(events.begin(), events.end(), type,
                             [](const falco::EventParams& e, std::string_view t) { return e.type < t; });
  if (it == events.end() || it->type != type) return {};
  return it->params;
}

std::string Dec(int64_t n) { return std::to_string(n); }

std::string Oct(uint32_t n) {  // printf's "%#o"
  if (n == 0) return "0";
  char buf[16] = {'0'};
  auto r = std::to_chars(buf + 1, buf + sizeof buf, n, 8);
  return std::string(buf, r.ptr);
}

std::string Hex(uint64_t n) {  // printf's "%X"
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n, 16);
  std::string s(buf, r.ptr);
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// libs' flags rendering: table order, each name whose bits are all set, its bits then
// cleared; a name equal to the whole value ends the walk; a 0 name only for 0.
std::string FlagNames(const FlagName* t, uint32_t v) {
  std::string s;
  const uint32_t initial = v;
  for (; t != nullptr && t->name != nullptr; ++t) {
    bool match = (t->value == 0 && initial == 0) ||
                 (t->value != 0 && (v & t->value) == t->value && v != 0);
    if (!match) continue;
    v &= ~t->value;
    if (!s.empty()) s += '|';
    s += t->name;
    if (t->value == initial) break;
  }
  return s;
}

// libs' mode rendering (PT_MODE): as flags, but a name equal to the whole value is written
// last, after the names the walk met before it.
std::string ModeNames(const FlagName* t, uint32_t v) {
  std::string s;
  const uint32_t initial = v;
  for (; t != nullptr && t->name != nullptr && t->value != initial; ++t) {
    if ((t->value == 0 && initial == 0) || (t->value != 0 && (v & t->value) == t->value && v != 0)) {
      if (!s.empty()) s += '|';
      s += t->name;
      v &= ~t->value;
    }
  }
  if (t != nullptr && t->name != nullptr) {
    if (!s.empty()) s += '|';
    s += t->name;
  }
  return s;
}

// The number of a typed parameter as libs prints it, with its resolved text.
void SetNumber(const Param& p, int64_t n, ArgText* a) {
  a->num = n;
  a->numeric = true;
  switch (p.type) {
    case ParamType::FLAGS8: case ParamType::FLAGS16: case ParamType::FLAGS32:
    case ParamType::ENUMFLAGS8: case ParamType::ENUMFLAGS16: case ParamType::ENUMFLAGS32:
      a->plain = Dec(static_cast<uint32_t>(n));
      a->resolved = FlagNames(p.flags, static_cast<uint32_t>(n));
      return;
    case ParamType::MODE:
      a->plain = Oct(static_cast<uint32_t>(n));
      a->resolved = ModeNames(p.flags, static_cast<uint32_t>(n));
      return;
    default: break;
  }
  switch (p.format) {
    case falco::ParamFormat::OCT: a->plain = Oct(static_cast<uint32_t>(n)); return;
    case falco::ParamFormat::HEX: a->plain = Hex(static_cast<uint64_t>(n)); return;
    default: a->plain = Dec(n); return;
  }
}

void SetText(std::string_view s, ArgText* a) { a->plain.assign(s); }

// An errno parameter: the return value, and the errno name of a failure.
void SetErrno(const Param& p, int64_t res, std::string_view errno_name, ArgText* a) {
  SetNumber(p, res, a);
  if (res < 0) a->resolved.assign(errno_name);
}

// A uid or gid: the number, and the name where driftwatch knows it.
void SetId(const Param& p, uint32_t id, std::string_view name, ArgText* a) {
  if (id == kUnset) {
    a->num = -1;
    a->numeric = true;
    a->plain = "-1";
    a->resolved = "<NONE>";
    return;
  }
  SetNumber(p, id, a);
  if (!name.empty()) a->resolved.assign(name);
  else if (id == 0) a->resolved = "root";
}

// argv after argv[0] as libs prints the NUL-separated buffer.
std::string ArgsBuffer(const v1::ProcessExec& x) {
  std::string s;
  for (int i = 1; i < x.args_size(); ++i) {
    for (unsigned char c : x.args(i)) s += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
    s += '.';
  }
  return s;
}

std::string_view ParentName(const RuleContext& c, std::string_view own) {
  if (!c.lineage.empty() && !c.lineage[0].name.empty()) return c.lineage[0].name;
  return own;
}

// libs sets EXE_WRITABLE when the process may write its executable. Audit's PATH record
// gives the file's mode and owner, not its group nor the process's capabilities: set it where
// the mode alone decides (world-writable, or owned by the process's euid with owner write)
// on a root filesystem that is not read-only; never guessed for the rest.
bool ExeCertainlyWritable(const RuleContext& c, const v1::ProcessExec& x) {
  const uint32_t m = x.exe_mode();
  if ((m & 0170000) != 0100000) return false;  // unknown, or not a regular file
  const v1::ContainerInfo* info = fields::ContainerOf(c);
  if (info != nullptr && info->read_only_rootfs()) return false;
  return (m & 0002) != 0 || (x.exe_ouid() == x.euid() && (m & 0200) != 0);
}

bool ExecArg(const RuleContext& c, const v1::ProcessExec& x, const Param& p, ArgText* a) {
  const std::string_view n = p.name;
  if (n == "res") return SetErrno(p, x.exit(), x.errno_name(), a), true;
  if (n == "exe") return SetText(x.args_size() > 0 ? x.args(0) : x.exe(), a), true;
  if (n == "args") return a->plain = ArgsBuffer(x), true;
  if (n == "tid" || n == "pid") {
    SetNumber(p, x.pid(), a);
    a->resolved.assign(x.comm());
    return true;
  }
  if (n == "ptid") {
    if (x.ppid() == 0) return false;
    SetNumber(p, x.ppid(), a);
    a->resolved.assign(ParentName(c, x.parent_name()));
    return true;
  }
  if (n == "cwd") return !x.cwd().empty() && (SetText(x.cwd(), a), true);
  if (n == "comm") return SetText(x.comm(), a), true;
  if (n == "tty") return SetNumber(p, fields::TtyNumber(x.tty()), a), true;
  if (n == "loginuid") return SetId(p, x.auid(), {}, a), true;
  if (n == "uid") return SetId(p, x.uid(), x.user_name(), a), true;
  if (n == "gid") return SetId(p, x.gid(), {}, a), true;
  if (n == "flags") {
    // What the sensor looked at; an offline log says nothing of either.
    if (!x.has_is_exe_upper_layer() && !x.has_is_exe_from_memfd() && !c.file.written_at_runtime)
      return false;
    uint32_t f = 0;
    if (x.has_is_exe_upper_layer() || c.file.written_at_runtime) {
      f |= (x.is_exe_upper_layer() || c.file.written_at_runtime) ? kExeUpperLayer : kExeLowerLayer;
    }
    if (x.is_exe_from_memfd()) f |= kExeFromMemfd;
    if (ExeCertainlyWritable(c, x)) f |= kExeWritable;
    return SetNumber(p, f, a), true;
  }
  if (n == "exe_ino") return x.exe_inode() != 0 && (SetNumber(p, static_cast<int64_t>(x.exe_inode()), a), true);
  if (n == "trusted_exepath") return !x.exe().empty() && (SetText(x.exe(), a), true);
  if (n == "filename") return !x.path().empty() && (SetText(x.path(), a), true);
  return false;
}

bool ChmodArg(const v1::Chmod& ch, const Param& p, ArgText* a) {
  const std::string_view n = p.name;
  if (n == "res") return SetErrno(p, ch.exit(), ch.errno_name(), a), true;
  if (n == "filename") return !ch.path().empty() && (SetText(ch.path(), a), true);
  if (n == "mode") return SetNumber(p, ch.new_mode() & 07777, a), true;
  return false;  // fd, dirfd: audit names the file, not the descriptor
}

bool WriteArg(const v1::FileWrite& w, std::string_view type, const Param& p, ArgText* a) {
  const std::string_view n = p.name;
  if (type == "openat") {
    if (n == "fd") {
      SetNumber(p, fields::kFileEventFdNum, a);
      a->resolved.assign("<f>").append(w.path());
      return true;
    }
    if (n == "name") return !w.path().empty() && (SetText(w.path(), a), true);
    if (n == "flags") {
      uint32_t f = kOWronly;
      if (w.created()) f |= kOCreat | kOFCreated;
      if (!w.upper_path().empty()) f |= kFdUpperLayer;
      return SetNumber(p, f, a), true;
    }
    // open's mode argument counts only with O_CREAT: the created file's permission bits
    // (after the umask: the kernel's, not the argument the writer passed).
    if (n == "mode") return SetNumber(p, w.created() ? (w.mode() & 07777) : 0, a), true;
    if (n == "dev") {
      if (w.inode() == 0) return false;
      return SetNumber(p, (int64_t{w.dev_major()} << 20) | w.dev_minor(), a), true;
    }
    if (n == "ino") return w.inode() != 0 && (SetNumber(p, static_cast<int64_t>(w.inode()), a), true);
    return false;  // dirfd
  }
  if (n == "res") return SetErrno(p, 0, {}, a), true;
  if (type == "renameat2") {
    if (n == "oldpath") return !w.old_path().empty() && (SetText(w.old_path(), a), true);
    if (n == "newpath") return !w.path().empty() && (SetText(w.path(), a), true);
    return false;  // olddirfd, newdirfd, flags
  }
  if (type == "unlinkat" && n == "name") return !w.path().empty() && (SetText(w.path(), a), true);
  return false;
}

// A sensitive read, as Falco's openat of it: the file opened read-only.
bool ReadArg(const v1::FileRead& r, const Param& p, ArgText* a) {
  const std::string_view n = p.name;
  if (n == "res") return SetErrno(p, 0, {}, a), true;
  if (n == "fd") {
    SetNumber(p, fields::kFileEventFdNum, a);
    a->resolved.assign("<f>").append(r.path());
    return true;
  }
  if (n == "name") return !r.path().empty() && (SetText(r.path(), a), true);
  if (n == "flags") return SetNumber(p, 0, a), true;  // O_RDONLY
  if (n == "dev") return r.inode() != 0 && (SetNumber(p, (int64_t{r.dev_major()} << 20) | r.dev_minor(), a), true);
  if (n == "ino") return r.inode() != 0 && (SetNumber(p, static_cast<int64_t>(r.inode()), a), true);
  return false;  // dirfd, mode
}

// The value of parameter p of the event's type.
bool ArgOf(const RuleContext& c, std::string_view type, const Param& p, ArgText* a) {
  switch (KindOf(*c.event)) {
    case Kind::kExec: return ExecArg(c, c.event->exec(), p, a);
    case Kind::kChmod: return ChmodArg(c.event->chmod(), p, a);
    case Kind::kWrite: return WriteArg(c.event->write(), type, p, a);
    case Kind::kRead: return ReadArg(c.event->read(), p, a);
    default: return false;
  }
}

const Param* FindParam(std::span<const Param> params, std::string_view name) {
  for (const Param& p : params) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

bool ArgByName(const RuleContext& c, std::string_view name, bool raw, FieldValue* out) {
  const std::string_view type = EventType(*c.event);
  const Param* p = FindParam(ParamsOf(type), name);
  if (p == nullptr) return false;
  ArgText a;
  if (!ArgOf(c, type, *p, &a)) return false;
  if (raw && a.numeric) return fields::SetNum(a.num, out);
  out->buf = raw ? std::move(a.plain) : a.shown();
  out->str = out->buf;
  return true;
}

// evt.arg[N]: the event's N-th parameter.
bool EvtArgIndexed(const RuleContext& c, FieldArg arg, FieldValue* out) {
  const std::string_view type = EventType(*c.event);
  auto params = ParamsOf(type);
  if (!arg.present() || static_cast<size_t>(arg.index) >= params.size()) return false;
  ArgText a;
  if (!ArgOf(c, type, params[arg.index], &a)) return false;
  out->buf = a.shown();
  out->str = out->buf;
  return true;
}

// evt.args: "name=text name=text(resolved) ...", "<NA>" for what driftwatch does not know.
bool EvtArgs(const RuleContext& c, FieldArg, FieldValue* out) {
  const std::string_view type = EventType(*c.event);
  auto params = ParamsOf(type);
  if (params.empty()) return false;
  for (const Param& p : params) {
    ArgText a;
    if (!out->buf.empty()) out->buf += ' ';
    out->buf.append(p.name);
    out->buf += '=';
    if (!ArgOf(c, type, p, &a)) {
      out->buf += "<NA>";
      continue;
    }
    out->buf += a.plain;
    if (!a.resolved.empty()) {
      out->buf += '(';
      out->buf += a.resolved;
      out->buf += ')';
    }
  }
  out->str = out->buf;
  return true;
}

// Every parameter name of the produced events' tables, sorted: the names evt.arg.<name>
// can have a value for. Each gets an extractor of its own (an index into this list).
const std::vector<std::string_view>& ValuedNames() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> v;
    for (const auto& e : falco::ProducedEvents()) {
      for (const Param& p : e.params) v.push_back(p.name);
    }
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    return v;
  }();
  return names;
}

template <size_t I>
bool ArgN(const RuleContext& c, FieldArg, FieldValue* out) {
  return ArgByName(c, ValuedNames()[I], false, out);
}
template <size_t I>
bool RawArgN(const RuleContext& c, FieldArg, FieldValue* out) {
  return ArgByName(c, ValuedNames()[I], true, out);
}

constexpr size_t kMaxValued = 64;
template <size_t... I>
constexpr std::array<std::pair<FieldExtractor, FieldExtractor>, sizeof...(I)> MakeExtractors(
    std::index_sequence<I...>) {
  return {std::pair<FieldExtractor, FieldExtractor>{ArgN<I>, RawArgN<I>}...};
}
constexpr auto kExtractors = MakeExtractors(std::make_index_sequence<kMaxValued>());

// Parameters of produced events that driftwatch's events never carry, and why.
struct Missing {
  std::string_view name;
  std::string_view why;
};
constexpr Missing kMissing[] = {
    {"cap_effective", "process capabilities: audit's execve records do not carry them"},
    {"cap_inheritable", "process capabilities: audit's execve records do not carry them"},
    {"cap_permitted", "process capabilities: audit's execve records do not carry them"},
    {"cgroups", "exec details audit does not record (cgroups)"},
    {"dirfd", "descriptors: audit and fanotify name files, not the caller's descriptors"},
    {"env", "exec details audit does not record (environment)"},
    {"exe_ino_ctime", "exec details audit does not record (executable times)"},
    {"exe_ino_mtime", "exec details audit does not record (executable times)"},
    {"fdlimit", "process resources: not in audit records"},
    {"newdirfd", "descriptors: audit and fanotify name files, not the caller's descriptors"},
    {"olddirfd", "descriptors: audit and fanotify name files, not the caller's descriptors"},
    {"pgft_maj", "process resources: not in audit records"},
    {"pgft_min", "process resources: not in audit records"},
    {"pgid", "process groups: not in audit records"},
    {"vm_rss", "process resources: not in audit records"},
    {"vm_size", "process resources: not in audit records"},
    {"vm_swap", "process resources: not in audit records"},
    {"vpgid", "process groups: not in audit records"},
};

std::string_view MissingWhy(std::string_view name) {
  for (const Missing& m : kMissing) {
    if (m.name == name) return m.why;
  }
  return {};
}

FieldType RawType(ParamType t) {
  switch (t) {
    case ParamType::BYTEBUF: case ParamType::CHARBUF: case ParamType::CHARBUFARRAY:
    case ParamType::DYN: case ParamType::FDLIST: case ParamType::FSPATH:
    case ParamType::FSRELPATH: case ParamType::IPV4ADDR: case ParamType::SOCKADDR:
    case ParamType::SOCKTUPLE:
      return FieldType::kString;
    default: return FieldType::kNumber;
  }
}

// What the events driftwatch produces say in a parameter, where a few words help.
struct ArgDoc {
  std::string_view name;
  std::string_view doc;
};
constexpr ArgDoc kArgDocs[] = {
    {"fd", "openat (file written): \"<f>\" and the path; the number (evt.rawarg.fd) is fd.num's"},
    {"filename",
     "execve, execveat (which Falco's table lacks: audit names its file too): the path named "
     "to exec (audit PATH item 0); chmod, fchmodat: the path"},
    {"flags",
     "execve, execveat: EXE_UPPER_LAYER or EXE_LOWER_LAYER (where the executable lives), "
     "EXE_FROM_MEMFD, as the sensor saw them (unset for offline logs), EXE_WRITABLE where "
     "the executable's mode and owner alone make it writable by the process's euid; "
     "openat: O_WRONLY, with O_CREAT and O_F_CREATED when the file was created, "
     "FD_UPPER_LAYER for a file in the container's upper layer"},
    {"mode",
     "chmod family: the new mode's names (\"S_IXOTH|S_IROTH|...\"); openat: the created "
     "file's permission bits in octal (after the umask), 0 when not created"},
    {"name", "openat, unlinkat: the path inside the container"},
    {"newpath", "renameat2: the path after"},
    {"oldpath", "renameat2: the path before"},
    {"res", "\"0\", or the errno name of a failed syscall; file events are always 0"},
    {"exe", "execve, execveat: argv[0] (proc.exe)"},
    {"args", "execve, execveat: the arguments after argv[0], each followed by '.'"},
};

struct Built {
  std::deque<std::string> strings;
  std::vector<FieldInfo> fields;
};

const Built& TheFields() {
  static const Built b = [] {
    Built b;
    const auto& valued = ValuedNames();
    if (valued.size() > kMaxValued) std::abort();  // grow kMaxValued
    auto str = [&](std::string s) -> std::string_view { return b.strings.emplace_back(std::move(s)); };
    for (const falco::ParamName& p : falco::ParamNames()) {
      auto it = std::lower_bound(valued.begin(), valued.end(), p.name);
      const bool produced = it != valued.end() && *it == p.name;
      const size_t idx = produced ? static_cast<size_t>(it - valued.begin()) : 0;
      std::string types;
      for (const auto& e : falco::ProducedEvents()) {
        if (FindParam(e.params, p.name) == nullptr) continue;
        if (!types.empty()) types += ", ";
        types += e.type;
      }
      std::string_view doc;
      for (const ArgDoc& d : kArgDocs) {
        if (d.name == p.name) doc = d.doc;
      }
      std::string_view never;
      if (!produced) {
        never = "a parameter only of events the sensor does not see";
      } else {
        never = MissingWhy(p.name);
      }
      std::string arg_doc(doc);
      if (doc.empty()) arg_doc.append("parameter `").append(p.name).append("` of ").append(types);
      std::string arg_name("evt.arg.");
      arg_name.append(p.name);
      std::string raw_name("evt.rawarg.");
      raw_name.append(p.name);
      std::string raw_doc(arg_name);
      raw_doc.append(" as its raw value (a number for numeric parameters)");
      b.fields.push_back(FieldInfo{str(std::move(arg_name)), FieldType::kString,
                                   str(arg_doc), produced ? kExtractors[idx].first : nullptr});
      b.fields.back().never = never;
      b.fields.push_back(FieldInfo{str(std::move(raw_name)), RawType(p.type), str(std::move(raw_doc)),
                                   produced ? kExtractors[idx].second : nullptr});
      b.fields.back().never = never;
    }
    b.fields.push_back(FieldInfo{"evt.arg", FieldType::kString,
                                 "the event's N-th parameter as evt.arg.<name> renders it (Falco's "
                                 "exit-event parameter order)",
                                 EvtArgIndexed, FieldArgMode::kRequired, FieldType::kString});
    b.fields.push_back(FieldInfo{"evt.args", FieldType::kString,
                                 "every parameter of the event, \"name=value(resolved) ...\"; "
                                 "<NA> for those driftwatch does not know",
                                 EvtArgs});
    return b;
  }();
  return b;
}

}  // namespace

std::span<const FieldInfo> EvtArgFields() { return TheFields().fields; }

}  // namespace driftwatch
