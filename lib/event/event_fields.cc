#include "lib/event/event_fields.h"

#include <charconv>

#include "lib/base/clock.h"
#include "lib/event/capabilities.h"
#include "lib/event/event_json.h"
#include "lib/event/file_digest.h"
#include "lib/event/net_address.h"

namespace driftwatch {
namespace {

using T = FieldType;
using V = FieldValue;
using E = v1::Event;
using I = v1::ContainerInfo;

constexpr KindSet kExec{Kind::kExec};
constexpr KindSet kChmod{Kind::kChmod};
constexpr KindSet kWrite{Kind::kWrite};
constexpr KindSet kContainer{Kind::kContainer};
constexpr KindSet kStatus{Kind::kStatus};
constexpr KindSet kPrevented{Kind::kPrevented};
constexpr KindSet kNetwork{Kind::kNetwork};
constexpr KindSet kRead{Kind::kRead};
constexpr KindSet kAll{Kind::kExec,   Kind::kChmod,     Kind::kWrite,   Kind::kContainer,
                       Kind::kStatus, Kind::kPrevented, Kind::kNetwork, Kind::kRead};
constexpr KindSet kProcess{Kind::kExec, Kind::kChmod, Kind::kWrite, Kind::kPrevented,
                           Kind::kNetwork, Kind::kRead};
constexpr KindSet kSyscall{Kind::kExec, Kind::kChmod, Kind::kNetwork};
constexpr KindSet kNamed{Kind::kChmod, Kind::kWrite, Kind::kPrevented, Kind::kNetwork,
                         Kind::kRead};  // fd.name
// The kinds whose file is a whole file on disk: its directory, size, hash, upper path.
constexpr KindSet kFileOnDisk{Kind::kWrite, Kind::kPrevented};
// The kinds whose file is a path with an inode: the above and sensitive reads.
constexpr KindSet kFilePath{Kind::kWrite, Kind::kPrevented, Kind::kRead};
constexpr KindSet kContained{Kind::kExec, Kind::kChmod, Kind::kWrite, Kind::kContainer,
                             Kind::kPrevented, Kind::kNetwork, Kind::kRead};

bool Str(std::string_view s, V* out) {
  out->str = s;
  return true;
}
bool StrIfSet(std::string_view s, V* out) { return !s.empty() && Str(s, out); }
bool Buf(std::string s, V* out) {
  out->buf = std::move(s);
  out->str = out->buf;
  return true;
}
bool Num(int64_t n, V* out) {
  out->num = n;
  return true;
}
bool Bool(bool b, V* out) {
  out->boolean = b;
  return true;
}

int64_t LoginUid(uint32_t auid) { return auid == 4294967295u ? -1 : int64_t{auid}; }

std::string Octal(uint32_t mode) {
  char buf[16] = {'0'};
  auto r = std::to_chars(buf + 1, buf + sizeof buf, mode, 8);
  return std::string(buf, r.ptr);
}

// "fe:00", as audit PATH records print a device.
std::string Dev(uint32_t major, uint32_t minor) {
  char buf[24];
  char* p = buf;
  if (major < 16) *p++ = '0';
  p = std::to_chars(p, buf + 10, major, 16).ptr;
  *p++ = ':';
  if (minor < 16) *p++ = '0';
  p = std::to_chars(p, buf + sizeof buf, minor, 16).ptr;
  return std::string(buf, p);
}

const char* AttributionName(v1::Attribution a) {
  switch (a) {
    case v1::ATTRIBUTION_CGROUP: return "cgroup";
    case v1::ATTRIBUTION_PARENT: return "parent";
    case v1::ATTRIBUTION_DEVICE: return "device";
    case v1::ATTRIBUTION_PROCESS_TREE: return "process_tree";
    case v1::ATTRIBUTION_UNKNOWN: return "unknown";
    case v1::ATTRIBUTION_OVERLAY: return "overlay";
    default: return "";
  }
}

// The sensor's look at exe_file, as "proc.exe_file.stat" says it.
const char* ExeFileStatName(v1::ExeFileStat s) {
  switch (s) {
    case v1::EXE_FILE_STAT_OK: return "ok";
    case v1::EXE_FILE_STAT_NO_ROOT: return "no_root";
    case v1::EXE_FILE_STAT_NOT_FOUND: return "not_found";
    case v1::EXE_FILE_STAT_NOT_REGULAR: return "not_regular";
    case v1::EXE_FILE_STAT_CHANGED: return "changed";
    case v1::EXE_FILE_STAT_FAILED: return "failed";
    default: return nullptr;
  }
}

// The getters run only for the kinds of their field (AppendEventJson checks), so a view
// of the process or file the kind carries is there.
ProcessView P(const E& ev) { return *ProcessOf(ev); }
FileView F(const E& ev) { return *FileOf(ev); }
const v1::ProcessExec& X(const E& ev) { return ev.exec(); }
const v1::SensorStatus& S(const E& ev) { return ev.status(); }
// The container's description: a container event's own body, else what the sensor reported.
const I* C(const E& ev, const I* info) {
  return KindOf(ev) == Kind::kContainer ? &ev.container() : info;
}
// A container event's own id; for the others the id they were attributed to.
std::string_view FullId(const E& ev) {
  if (KindOf(ev) == Kind::kContainer) return ev.container().id();
  return ev.container_id().empty() ? std::string_view("host") : ev.container_id();
}

// "SUCCESS", the errno name, or the raw number when the log gave no name.
bool Res(const E& ev, const I*, V* out) {
  ResultView r = *ResultOf(ev);
  if (r.success) return Str("SUCCESS", out);
  if (!r.errno_name.empty()) return Str(r.errno_name, out);
  return Buf(std::to_string(r.exit), out);
}

// fd.directory and fd.filename of a path, as Falco splits fd.name.
std::pair<std::string_view, std::string_view> SplitPath(std::string_view p) {
  size_t slash = p.rfind('/');
  if (slash == std::string_view::npos) return {"", p};
  return {slash == 0 ? p.substr(0, 1) : p.substr(0, slash), p.substr(slash + 1)};
}

bool Args(const E& ev, int from, V* out) {
  const auto& a = X(ev).args();
  for (int i = from; i < a.size(); ++i) out->list.push_back(a[i]);
  return true;
}

// A sensor status counter, always printed.
#define DW_STATUS_NUM(name, member, doc)                                                \
  {name, T::kNumber, doc, kStatus, [](const E& ev, const I*, V* out) {                   \
     return Num(static_cast<int64_t>(S(ev).member()), out);                              \
   }}

constexpr EventField kFields[] = {
    {"evt.time", T::kString, "ISO 8601 text, UTC",
     kAll, [](const E& ev, const I*, V* out) { return Buf(FormatIsoTime(ev.time_ns()), out); }},
    {"evt.hostname", T::kString, "", kAll,
     [](const E& ev, const I*, V* out) { return StrIfSet(ev.id().node(), out); }},
    {"evt.num", T::kNumber, "", kAll,
     [](const E& ev, const I*, V* out) { return Num(static_cast<int64_t>(ev.id().seq()), out); }},
    {"sensor.run", T::kString,
     "the sensor run that numbered the event: \"BOOT_ID/START_NS\" (boot id, sensor start); "
     "with evt.hostname and evt.num, the event's identity; unset for offline logs",
     kAll, [](const E& ev, const I*, V* out) {
       if (ev.id().sensor_start_ns() == 0) return false;
       return Buf(ev.id().boot_id() + "/" + std::to_string(ev.id().sensor_start_ns()), out);
     }},
    {"evt.type", T::kString, "", kAll,
     [](const E& ev, const I*, V* out) { return Str(EventType(ev), out); }},
    {"evt.res", T::kString, "", kSyscall, Res},
    {"evt.rawres", T::kNumber, "", kSyscall,
     [](const E& ev, const I*, V* out) { return Num(ResultOf(ev)->exit, out); }},
    {"evt.arg.filename", T::kString, "", kExec,
     [](const E& ev, const I*, V* out) { return Str(X(ev).path(), out); }},
    {"evt.arg.mode", T::kString, "octal text without the flags", kChmod,
     [](const E& ev, const I*, V* out) { return Buf(Octal(F(ev).mode), out); }},
    {"fd.name", T::kString,
     "network events: \"CIP:CPORT->SIP:SPORT\" with the side audit does not give left out "
     "(\"->1.2.3.4:443\" for a connect), \"IP:PORT\" for a bind, a unix socket's path; "
     "unset for a listen",
     kNamed, [](const E& ev, const I*, V* out) {
       if (KindOf(ev) != Kind::kNetwork) return Str(F(ev).path, out);
       std::string name = NetFdName(ev.network());
       return !name.empty() && Buf(std::move(name), out);
     }},
    {"fd.directory", T::kString, "", kFilePath,
     [](const E& ev, const I*, V* out) { return Str(SplitPath(F(ev).path).first, out); }},
    {"fd.filename", T::kString, "", kFilePath,
     [](const E& ev, const I*, V* out) { return Str(SplitPath(F(ev).path).second, out); }},
    {"fd.typechar", T::kString, "network events: \"4\", \"6\" or \"u\"", kNamed,
     [](const E& ev, const I*, V* out) {
       return KindOf(ev) != Kind::kNetwork ? Str("f", out)
                                           : StrIfSet(NetFdTypechar(ev.network()), out);
     }},
    {"evt.arg.adds_exec", T::kBool, "", kChmod,
     [](const E& ev, const I*, V* out) { return Bool(F(ev).chmod->adds_exec(), out); }},
    {"fd.type", T::kString, "network events: \"ipv4\", \"ipv6\" or \"unix\"", kNetwork,
     [](const E& ev, const I*, V* out) { return StrIfSet(NetFdType(ev.network()), out); }},
    {"fd.num", T::kNumber, "network events: the socket (accept: the new connection's)",
     kNetwork, [](const E& ev, const I*, V* out) {
       return ev.network().fd() >= 0 && Num(ev.network().fd(), out);
     }},
    {"fd.sip", T::kString, "server IP: connect's peer, a bind's own address", kNetwork,
     [](const E& ev, const I*, V* out) {
       NetSide s = SidesOf(ev.network()).server;
       return s.known() && Buf(IpText(s.ip), out);
     }},
    {"fd.sport", T::kNumber, "server port: connect's peer's, a bind's own", kNetwork,
     [](const E& ev, const I*, V* out) {
       NetSide s = SidesOf(ev.network()).server;
       return s.known() && Num(s.port, out);
     }},
    {"fd.cip", T::kString, "client IP: accept's peer", kNetwork,
     [](const E& ev, const I*, V* out) {
       NetSide s = SidesOf(ev.network()).client;
       return s.known() && Buf(IpText(s.ip), out);
     }},
    {"fd.cport", T::kNumber, "client port: accept's peer's", kNetwork,
     [](const E& ev, const I*, V* out) {
       NetSide s = SidesOf(ev.network()).client;
       return s.known() && Num(s.port, out);
     }},
    {"fd.l4proto", T::kString,
     "\"tcp\" where the call proves a stream socket (accept, listen); unset where audit "
     "does not say (connect, bind)",
     kNetwork, [](const E& ev, const I*, V* out) { return StrIfSet(NetL4Proto(ev.network()), out); }},
    {"sensitive.entry", T::kString,
     "a sensitive read: the driftwatch-sensor --sensitive-paths entry that marked the file",
     kRead, [](const E& ev, const I*, V* out) { return StrIfSet(ev.read().entry(), out); }},
    {"sensitive.file_container", T::kString,
     "a sensitive read: the container whose file was read (the reader may be another "
     "container, or the host)",
     kRead, [](const E& ev, const I*, V* out) {
       return StrIfSet(ev.read().file_container_id(), out);
     }},
    {"sensitive.repeats", T::kNumber,
     "a sensitive read: more reads of the file by the same process this event stands for "
     "(coalesced within a second); printed when not 0",
     kRead, [](const E& ev, const I*, V* out) {
       return ev.read().repeats() != 0 && Num(ev.read().repeats(), out);
     }},
    {"evt.is_open_read", T::kBool, "printed for sensitive reads (true)", kRead,
     [](const E&, const I*, V* out) { return Bool(true, out); }},
    {"fd.write_kind", T::kString, "", kWrite,
     [](const E& ev, const I*, V* out) { return Str(F(ev).write->kind(), out); }},
    {"evt.is_open_create", T::kBool, "printed only when true", kWrite,
     [](const E& ev, const I*, V* out) {
       return F(ev).write->created() && EventType(ev) == "openat" && Bool(true, out);
     }},
    {"fd.oldname", T::kString, "", kWrite,
     [](const E& ev, const I*, V* out) { return StrIfSet(F(ev).write->old_path(), out); }},
    {"fd.ino", T::kNumber, "", kFilePath,
     [](const E& ev, const I*, V* out) { return Num(static_cast<int64_t>(F(ev).inode), out); }},
    {"fd.dev", T::kString,
     "device of the file as \"MAJOR:MINOR\" in hex (\"00:4d\"), as fanotify's file handle names it",
     kFilePath, [](const E& ev, const I*, V* out) {
       FileView f = F(ev);
       return Buf(Dev(f.dev_major, f.dev_minor), out);
     }},
    {"fd.size", T::kNumber, "", kFileOnDisk,
     [](const E& ev, const I*, V* out) { return Num(static_cast<int64_t>(F(ev).size), out); }},
    {"fd.mode", T::kString, "st_mode of the file after the write, octal text (\"0100755\")",
     kFileOnDisk, [](const E& ev, const I*, V* out) { return Buf(Octal(F(ev).mode), out); }},
    {"fd.is_executable", T::kBool, "", kWrite,
     [](const E& ev, const I*, V* out) { return Bool(F(ev).write->executable(), out); }},
    {"fd.sha256", T::kString, "", kFileOnDisk,
     [](const E& ev, const I*, V* out) {
       const std::string_view h = F(ev).sha256;
       return !h.empty() && Buf(HexOf(std::string(h)), out);
     }},
    {"fd.upper_path", T::kString, "", kFileOnDisk,
     [](const E& ev, const I*, V* out) { return StrIfSet(F(ev).upper_path, out); }},
    {"prevent.verdict", T::kString,
     "a prevented exec's verdict: \"denied\" (the exec failed with EPERM) or \"would_deny\" "
     "(--prevent-dry-run: it ran)",
     kPrevented, [](const E& ev, const I*, V* out) {
       return Str(ev.prevented().verdict() == v1::ExecPrevented::WOULD_DENY ? "would_deny"
                                                                             : "denied",
                  out);
     }},
    {"prevent.reason", T::kString, "why the exec counts as drift: \"upper layer\"", kPrevented,
     [](const E& ev, const I*, V* out) { return StrIfSet(ev.prevented().reason(), out); }},
    {"prevent.latency_us", T::kNumber,
     "microseconds from the sensor reading the permission event to its answer", kPrevented,
     [](const E& ev, const I*, V* out) {
       return Num(static_cast<int64_t>(ev.prevented().verdict_ns() / 1000), out);
     }},
    {"proc.pid", T::kNumber, "0 for a file write whose writer is unknown",
     kProcess, [](const E& ev, const I*, V* out) { return Num(P(ev).pid, out); }},
    {"proc.ppid", T::kNumber, "", kSyscall,
     [](const E& ev, const I*, V* out) { return Num(P(ev).ppid, out); }},
    {"proc.name", T::kString, "", kProcess,
     [](const E& ev, const I*, V* out) { return Str(ProcessNameOf(P(ev)), out); }},
    {"proc.exe", T::kString, "", kExec,
     [](const E& ev, const I*, V* out) {
       return Str(X(ev).args_size() > 0 ? X(ev).args(0) : X(ev).exe(), out);
     }},
    {"proc.exepath", T::kString, "", kProcess,
     [](const E& ev, const I*, V* out) { return Str(P(ev).exe, out); }},
    {"proc.exe_file", T::kString, "", kExec,
     [](const E& ev, const I*, V* out) {
       return Str(X(ev).exe_file().empty() ? X(ev).exe() : X(ev).exe_file(), out);
     }},
    {"proc.exe_file.ino", T::kNumber,
     "inode of proc.exe_file where it differs from the executable (a script, a loader's "
     "program): the audit record's, or the sensor's look at it; unset when unknown",
     kExec, [](const E& ev, const I*, V* out) {
       return X(ev).exe_file_inode() != 0 &&
              Num(static_cast<int64_t>(X(ev).exe_file_inode()), out);
     }},
    {"proc.exe_file.dev", T::kString,
     "device of proc.exe_file as \"MAJOR:MINOR\" in hex; set with proc.exe_file.ino", kExec,
     [](const E& ev, const I*, V* out) {
       const v1::ProcessExec& x = X(ev);
       return x.exe_file_inode() != 0 &&
              Buf(Dev(x.exe_file_dev_major(), x.exe_file_dev_minor()), out);
     }},
    {"proc.exe_file.stat", T::kString,
     "the sensor's look at proc.exe_file: ok, no_root, not_found, not_regular, changed, "
     "failed; unset when it did not look (offline logs, plain execs)",
     kExec, [](const E& ev, const I*, V* out) {
       const char* s = ExeFileStatName(X(ev).exe_file_stat());
       return s != nullptr && Str(s, out);
     }},
    {"proc.is_exe_from_memfd", T::kBool, "", kExec,
     [](const E& ev, const I*, V* out) {
       return X(ev).has_is_exe_from_memfd() && Bool(X(ev).is_exe_from_memfd(), out);
     }},
    {"proc.args", T::kList, "", kExec,
     [](const E& ev, const I*, V* out) { return Args(ev, 1, out); }},
    {"proc.argv", T::kList,
     "every argument, argv[0] included, as exact bytes (a prefix when proc.args_capped)",
     kExec, [](const E& ev, const I*, V* out) { return Args(ev, 0, out); }},
    {"proc.cmdline", T::kString, "", kExec,
     [](const E& ev, const I*, V* out) { return Buf(CommandLine(X(ev)), out); }},
    {"proc.args_truncated", T::kBool,
     "fewer arguments arrived than argc announced (the kernel's audit records were cut); "
     "JSON: printed only when true",
     kExec, [](const E& ev, const I*, V* out) { return X(ev).args_truncated() && Bool(true, out); }},
    {"proc.args_capped", T::kBool, "only when true",
     kExec, [](const E& ev, const I*, V* out) { return X(ev).args_capped() && Bool(true, out); }},
    {"proc.args_dropped_bytes", T::kNumber,
     "argument bytes the sensor's caps left out; set with proc.args_capped", kExec,
     [](const E& ev, const I*, V* out) {
       return X(ev).args_capped() && Num(static_cast<int64_t>(X(ev).args_dropped_bytes()), out);
     }},
    {"proc.argc", T::kNumber,
     "argc as the kernel reported it; set where proc.argv may hold fewer arguments "
     "(proc.args_truncated or proc.args_capped)",
     kExec, [](const E& ev, const I*, V* out) {
       const v1::ProcessExec& x = X(ev);
       return (x.args_truncated() || x.args_capped()) && Num(x.argc(), out);
     }},
    {"proc.cwd", T::kString, "", kSyscall,
     [](const E& ev, const I*, V* out) { return Str(P(ev).cwd, out); }},
    {"proc.tty", T::kString, "the audit record's name (\"pts0\", \"(none)\")",
     kSyscall, [](const E& ev, const I*, V* out) { return Str(P(ev).tty, out); }},
    {"proc.sid", T::kNumber, "-1 when unset", kExec,
     [](const E& ev, const I*, V* out) {
       uint32_t s = P(ev).session;
       return Num(s == 4294967295u ? -1 : int64_t{s}, out);
     }},
    {"proc.pname", T::kString, "", kSyscall,
     [](const E& ev, const I*, V* out) { return StrIfSet(P(ev).parent_name, out); }},
    {"proc.exe_ino", T::kNumber, "inode of the executable (PATH item 0); 0 when unknown", kExec,
     [](const E& ev, const I*, V* out) { return Num(static_cast<int64_t>(X(ev).exe_inode()), out); }},
    {"proc.exe_dev", T::kString,
     "device of the executable as \"MAJOR:MINOR\" in hex (\"00:4d\": an overlay rootfs)", kExec,
     [](const E& ev, const I*, V* out) {
       return Buf(Dev(X(ev).exe_dev_major(), X(ev).exe_dev_minor()), out);
     }},
    {"proc.exe_mode", T::kString,
     "st_mode of the executable (PATH item 0), octal text with the file type (\"0100755\")",
     kExec, [](const E& ev, const I*, V* out) { return Buf(Octal(X(ev).exe_mode()), out); }},
    {"proc.is_runtime_plumbing", T::kBool, "", kExec,
     [](const E& ev, const I*, V* out) { return Bool(X(ev).runtime_plumbing(), out); }},
    {"proc.is_exe_upper_layer", T::kBool, "the sensor's look",
     kExec, [](const E& ev, const I*, V* out) {
       return X(ev).has_is_exe_upper_layer() && Bool(X(ev).is_exe_upper_layer(), out);
     }},
    {"proc.pid.ts", T::kNumber,
     "when the process started (its fork; the exec keeps it), ns since the epoch, from "
     "/proc/<pid>/stat at clock-tick resolution; unset when the sensor did not read it",
     kExec, [](const E& ev, const I*, V* out) {
       return X(ev).start_time_ns() != 0 && Num(X(ev).start_time_ns(), out);
     }},
    {"proc.vpid", T::kNumber,
     "pid as seen from the process's own pid namespace (/proc/<pid>/status NSpid)", kExec,
     [](const E& ev, const I*, V* out) { return X(ev).has_vpid() && Num(X(ev).vpid(), out); }},
    {"proc.vpgid", T::kNumber, "process group id as seen from its pid namespace (NSpgid)", kExec,
     [](const E& ev, const I*, V* out) { return X(ev).has_vpgid() && Num(X(ev).vpgid(), out); }},
    {"proc.vsid", T::kNumber,
     "session id as seen from its pid namespace (NSsid): Falco's proc.sid (proc.sid here is "
     "the audit session)",
     kExec, [](const E& ev, const I*, V* out) { return X(ev).has_vsid() && Num(X(ev).vsid(), out); }},
    {"proc.pgid", T::kNumber, "process group id in the host's pid namespace", kExec,
     [](const E& ev, const I*, V* out) { return X(ev).has_pgid() && Num(X(ev).pgid(), out); }},
    {"proc.sname", T::kString,
     "name (comm) of the session leader, the process whose pid is the session id, when it "
     "still ran at the exec",
     kExec, [](const E& ev, const I*, V* out) { return StrIfSet(X(ev).session_leader_name(), out); }},
    {"proc.vpgid.name", T::kString,
     "name (comm) of the process group leader, when it is the process itself or its session "
     "leader (no other leader is read)",
     kExec,
     [](const E& ev, const I*, V* out) { return StrIfSet(X(ev).pgid_leader_name(), out); }},
    {"thread.cap_effective", T::kString,
     "effective capabilities, their names space-separated (\"CAP_CHOWN CAP_KILL\"); empty "
     "when none; unset when not read",
     kExec, [](const E& ev, const I*, V* out) {
       if (!X(ev).has_cap_effective()) return false;
       AppendCapabilities(X(ev).cap_effective(), &out->buf);
       return Str(out->buf, out);
     }},
    {"thread.cap_permitted", T::kString, "permitted capabilities, as thread.cap_effective", kExec,
     [](const E& ev, const I*, V* out) {
       if (!X(ev).has_cap_permitted()) return false;
       AppendCapabilities(X(ev).cap_permitted(), &out->buf);
       return Str(out->buf, out);
     }},
    {"thread.cap_inheritable", T::kString, "inheritable capabilities, as thread.cap_effective",
     kExec, [](const E& ev, const I*, V* out) {
       if (!X(ev).has_cap_inheritable()) return false;
       AppendCapabilities(X(ev).cap_inheritable(), &out->buf);
       return Str(out->buf, out);
     }},
    {"proc.exe_ino.ctime", T::kNumber,
     "status change time (ctime) of the running executable (the interpreter of a script), "
     "ns since the epoch",
     kExec, [](const E& ev, const I*, V* out) {
       return X(ev).exe_ctime_ns() != 0 && Num(X(ev).exe_ctime_ns(), out);
     }},
    {"proc.exe_ino.mtime", T::kNumber,
     "modification time (mtime) of the running executable, ns since the epoch", kExec,
     [](const E& ev, const I*, V* out) {
       return X(ev).exe_mtime_ns() != 0 && Num(X(ev).exe_mtime_ns(), out);
     }},
    {"proc.env", T::kList,
     "a list of NAME=value entries, exact bytes (a prefix of whole entries when "
     "proc.env_capped)",
     kExec, [](const E& ev, const I*, V* out) {
       if (!X(ev).env_read()) return false;
       for (const std::string& e : X(ev).env()) out->list.push_back(e);
       return true;
     }},
    {"proc.env_capped", T::kBool,
     "the sensor kept fewer environment entries than the process had (--environ-max-bytes); "
     "JSON: printed only when true",
     kExec, [](const E& ev, const I*, V* out) { return X(ev).env_capped() && Bool(true, out); }},
    {"proc.env_dropped_bytes", T::kNumber,
     "environment bytes the cap left out; set with proc.env_capped", kExec,
     [](const E& ev, const I*, V* out) {
       return X(ev).env_capped() && Num(static_cast<int64_t>(X(ev).env_dropped_bytes()), out);
     }},
    {"user.uid", T::kNumber, "", kSyscall,
     [](const E& ev, const I*, V* out) { return Num(P(ev).uid, out); }},
    {"user.euid", T::kNumber, "", kExec,
     [](const E& ev, const I*, V* out) { return Num(P(ev).euid, out); }},
    {"user.loginuid", T::kNumber, "", kSyscall,
     [](const E& ev, const I*, V* out) { return Num(LoginUid(P(ev).auid), out); }},
    {"user.name", T::kString,
     "the name an ENRICHED log gave, or the sensor found in the process's /etc/passwd (its "
     "container's); unset when neither did",
     kExec, [](const E& ev, const I*, V* out) { return StrIfSet(X(ev).user_name(), out); }},
    {"user.loginname", T::kString, "as user.name", kExec,
     [](const E& ev, const I*, V* out) { return StrIfSet(X(ev).login_name(), out); }},
    {"group.gid", T::kNumber, "", kExec,
     [](const E& ev, const I*, V* out) { return Num(P(ev).gid, out); }},
    {"group.name", T::kString, "as user.name (an ENRICHED log's GID=, or /etc/group)", kExec,
     [](const E& ev, const I*, V* out) { return StrIfSet(X(ev).group_name(), out); }},
    {"container.id", T::kString, "", kContained,
     [](const E& ev, const I*, V* out) { return Str(ShortContainerIdView(FullId(ev)), out); }},
    {"container.full_id", T::kString, "", kContained,
     [](const E& ev, const I*, V* out) { return Str(FullId(ev), out); }},
    {"container.state", T::kString, "", kContainer,
     [](const E& ev, const I*, V* out) { return Str(ev.container().state(), out); }},
    {"container.source", T::kString,
     "how the sensor knows the container: \"cri\" (the runtime answered) or \"cgroup\" (from "
     "its cgroup path only)",
     kContainer, [](const E& ev, const I*, V* out) { return Str(ev.container().source(), out); }},
    {"container.attribution", T::kString,
     "how the event was tied to its container: cgroup, parent, device, process_tree, unknown "
     "(treated as host), overlay; unset when not attributed",
     kProcess, [](const E& ev, const I*, V* out) {
       return ev.attribution() != v1::ATTRIBUTION_UNSPECIFIED &&
              Str(AttributionName(ev.attribution()), out);
     }},
    {"container.name", T::kString, "the sensor's report only", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->name(), out);
     }},
    {"container.image", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->image(), out);
     }},
    {"container.image.repository", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->image_repository(), out);
     }},
    {"container.image.tag", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->image_tag(), out);
     }},
    {"container.image.digest", T::kString, "the runtime's only", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->image_digest(), out);
     }},
    {"container.image.id", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->image_ref(), out);
     }},
    {"container.type", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->runtime(), out);
     }},
    {"container.privileged", T::kBool, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && Bool(c->privileged(), out);
     }},
    {"k8s.pod.name", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->pod_name(), out);
     }},
    {"k8s.ns.name", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->pod_namespace(), out);
     }},
    {"k8s.pod.uid", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->pod_uid(), out);
     }},
    {"container.start_ts", T::kString, "ISO 8601 text, UTC", kContainer,
     [](const E& ev, const I*, V* out) {
       int64_t t = ev.container().start_time_ns();
       return t != 0 && Buf(FormatIsoTime(t), out);
     }},
    {"container.pid", T::kNumber, "host pid of the container's init process; 0 when unknown",
     kContainer, [](const E& ev, const I*, V* out) { return Num(ev.container().init_pid(), out); }},
    {"container.rootfs_dev", T::kString,
     "device of the container's root filesystem as \"MAJOR:MINOR\" in hex (an overlay's is "
     "anonymous: \"00:NN\")",
     kContainer, [](const E& ev, const I*, V* out) {
       const I& c = ev.container();
       return Buf(Dev(c.rootfs_dev_major(), c.rootfs_dev_minor()), out);
     }},
    {"container.upperdir", T::kString,
     "the overlay upper directory of the container's rootfs on the host (what it wrote)",
     kContainer, [](const E& ev, const I*, V* out) { return Str(ev.container().upperdir(), out); }},
    {"container.read_only_rootfs", T::kBool, "", kContainer,
     [](const E& ev, const I*, V* out) { return Bool(ev.container().read_only_rootfs(), out); }},
    {"container.cgroup", T::kString, "the container's cgroup path", kContainer,
     [](const E& ev, const I*, V* out) { return Str(ev.container().cgroup_path(), out); }},
    {"container.mounts", T::kList,
     "a list of \"source:dest:mode:rdrw:propagation\" (mode empty, rdrw true or false)",
     kContainer, [](const E& ev, const I*, V* out) {
       const I& c = ev.container();
       if (c.mounts_size() == 0) return false;
       for (const v1::Mount& m : c.mounts()) {
         out->buf += MountText(m);
         out->buf.push_back('\0');
       }
       std::string_view rest = out->buf;
       while (!rest.empty()) {
         size_t z = rest.find('\0');
         out->list.push_back(rest.substr(0, z));
         rest.remove_prefix(z + 1);
       }
       return true;
     }},
    {"audit.serial", T::kNumber,
     "the kernel's audit serial of the records the event was made of (audit events only)",
     kProcess, [](const E& ev, const I*, V* out) {
       return ev.has_audit() && Num(static_cast<int64_t>(ev.audit().serial()), out);
     }},
    {"sensor.audit_mode", T::kString, "sensor status: audit mode (owner, observer, file, off)",
     kStatus, [](const E& ev, const I*, V* out) { return Str(S(ev).audit_mode(), out); }},
    {"sensor.fanotify_mode", T::kString,
     "sensor status: fanotify mode (fid-filesystem, fd-filesystem, fd-mount, off)", kStatus,
     [](const E& ev, const I*, V* out) { return Str(S(ev).fanotify_mode(), out); }},
    DW_STATUS_NUM("sensor.kernel_lost", kernel_lost,
                  "sensor status: growth of the kernel's audit lost counter since the sensor started"),
    DW_STATUS_NUM("sensor.socket_enobufs", socket_enobufs,
                  "sensor status: netlink receive buffer overruns"),
    DW_STATUS_NUM("sensor.queue_drops", queue_drops,
                  "sensor status: audit records dropped between reader and parser"),
    DW_STATUS_NUM("sensor.reassembly_evictions", reassembly_evictions,
                  "sensor status: audit events pushed out unfinished by the in-flight bound"),
    DW_STATUS_NUM("sensor.fanotify_overflows", fanotify_overflows,
                  "sensor status: fanotify queue overflows"),
    DW_STATUS_NUM("sensor.fanotify_events", fanotify_events,
                  "sensor status: fanotify events received"),
    DW_STATUS_NUM("sensor.containers", containers, "sensor status: containers currently known"),
    {"sensor.prevent_mode", T::kString,
     "sensor status: drift prevention (drift, \"drift (dry run)\", off)", kStatus,
     [](const E& ev, const I*, V* out) { return StrIfSet(S(ev).prevent_mode(), out); }},
    DW_STATUS_NUM("sensor.prevent_denied", prevent_denied,
                  "sensor status: execs denied as drift"),
    DW_STATUS_NUM("sensor.prevent_would_deny", prevent_would_deny,
                  "sensor status: execs a dry run would have denied"),
    DW_STATUS_NUM("sensor.prevent_fail_answers", prevent_fail_answers,
                  "sensor status: execs the fail mode answered (past the verdict deadline, or "
                  "undecidable)"),
    DW_STATUS_NUM("sensor.respond_stopped", respond_stopped,
                  "sensor status: containers --respond stop stopped after a denial"),
    DW_STATUS_NUM("sensor.respond_not_stopped", respond_not_stopped,
                  "sensor status: containers --respond stop did not stop (CRI failed, rate "
                  "limit, queue full)"),
    {"sensor.final", T::kBool, "sensor status: the last status of a sensor run", kStatus,
     [](const E& ev, const I*, V* out) { return Bool(S(ev).final(), out); }},
    {kCollectorStoredNs, T::kNumber,
     "when the collector committed the event, ns since the epoch (`driftwatch events` only; "
     "with evt.time, the event's end-to-end latency)",
     KindSet{}, [](const E&, const I*, V*) { return false; }},
};

#undef DW_STATUS_NUM

}  // namespace

std::string_view FieldTypeName(FieldType t) {
  switch (t) {
    case FieldType::kString: return "string";
    case FieldType::kNumber: return "number";
    case FieldType::kBool: return "bool";
    case FieldType::kList: return "list";
    case FieldType::kIpNet: return "ipnet";
  }
  return "?";
}

std::span<const EventField> EventFields() { return kFields; }

std::string MountText(const v1::Mount& m) {
  std::string t;
  t.reserve(m.source().size() + m.destination().size() + m.propagation().size() + 10);
  t += m.source();
  t += ':';
  t += m.destination();
  t += "::";
  t += m.read_only() ? "false" : "true";
  t += ':';
  t += m.propagation();
  return t;
}

}  // namespace driftwatch
