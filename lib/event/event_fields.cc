#include "lib/event/event_fields.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <sys/socket.h>

#include <charconv>
#include <cstdint>

#include "lib/base/clock.h"
#include "lib/base/time_arg.h"
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
    case v1::ATTRIBUTION_VOLUME: return "volume";
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

// --- Setters: the getters backwards, for event JSON read back. ---

namespace pb = google::protobuf;

constexpr const char* kOutOfRange = "out of range";

// A proto member named in a template argument (BodyNum<"pid">): the bodies share their
// process and file members by name (ProcessExec, Chmod and NetworkActivity all have pid,
// comm, cwd; FileWrite, ExecPrevented and FileRead have path, inode), so one setter per
// field reaches whichever body the event has through reflection, not a switch per kind.
template <size_t N>
struct Member {
  char name[N];
  constexpr Member(const char (&s)[N]) {  // NOLINT: implicit, for BodyNum<"pid">
    for (size_t i = 0; i < N; ++i) name[i] = s[i];
  }
  std::string_view view() const { return {name, N - 1}; }
};

pb::Message* Body(E* ev) {
  const pb::Reflection* r = ev->GetReflection();
  const pb::FieldDescriptor* f =
      r->GetOneofFieldDescriptor(*ev, ev->GetDescriptor()->oneof_decl(0));
  return f == nullptr ? nullptr : r->MutableMessage(ev, f);
}

const pb::FieldDescriptor* MemberOf(const pb::Message& m, std::string_view name) {
  return m.GetDescriptor()->FindFieldByName(std::string(name));
}

// The member names below are this file's own: a wrong one is caught by the round-trip test
// of every golden event (tests/unit/event_json_read_test.cc), not here.
const char* SetNumber(pb::Message* m, std::string_view name, int64_t n) {
  const pb::FieldDescriptor* f = MemberOf(*m, name);
  const pb::Reflection* r = m->GetReflection();
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      if (n < INT32_MIN || n > INT32_MAX) return kOutOfRange;
      r->SetInt32(m, f, static_cast<int32_t>(n));
      return nullptr;
    case pb::FieldDescriptor::CPPTYPE_INT64:
      r->SetInt64(m, f, n);
      return nullptr;
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      if (n < 0 || n > UINT32_MAX) return kOutOfRange;
      r->SetUInt32(m, f, static_cast<uint32_t>(n));
      return nullptr;
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      if (n < 0) return kOutOfRange;
      r->SetUInt64(m, f, static_cast<uint64_t>(n));
      return nullptr;
    default:
      return "not a number member";
  }
}
const char* SetString(pb::Message* m, std::string_view name, std::string_view s) {
  m->GetReflection()->SetString(m, MemberOf(*m, name), std::string(s));
  return nullptr;
}
const char* SetBool(pb::Message* m, std::string_view name, bool b) {
  m->GetReflection()->SetBool(m, MemberOf(*m, name), b);
  return nullptr;
}

bool ParseInt(std::string_view s, int64_t* n, int base = 10) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *n, base);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// "0755", as Octal prints it.
const char* SetOctal(pb::Message* m, std::string_view name, std::string_view s) {
  int64_t n = 0;
  if (s.size() < 2 || s[0] != '0' || s[1] == '-' || !ParseInt(s.substr(1), &n, 8))
    return "not octal text (\"0755\")";
  return SetNumber(m, name, n);
}

// "fe:00", as Dev prints it: <prefix>_major and <prefix>_minor.
const char* SetDev(pb::Message* m, std::string_view prefix, std::string_view s) {
  size_t colon = s.find(':');
  int64_t major = 0, minor = 0;
  if (colon == std::string_view::npos || s.substr(0, 1) == "-" || s.substr(colon + 1, 1) == "-" ||
      !ParseInt(s.substr(0, colon), &major, 16) || !ParseInt(s.substr(colon + 1), &minor, 16))
    return "not a device (\"MAJOR:MINOR\" in hex)";
  if (const char* e = SetNumber(m, std::string(prefix) + "_major", major)) return e;
  return SetNumber(m, std::string(prefix) + "_minor", minor);
}

// ISO 8601 text as FormatIsoTime prints it.
const char* ParseTime(std::string_view s, int64_t* ns) {
  if (s.find('-') == std::string_view::npos) return "not ISO 8601 time";
  auto t = ParseTimeArg(s, 0);
  if (!t) return "not ISO 8601 time";
  *ns = *t;
  return nullptr;
}

// evt.time, container.start_ts: ISO 8601 text into a member of ns since the epoch.
const char* SetTimeMember(pb::Message* m, std::string_view name, std::string_view text) {
  int64_t t = 0;
  if (const char* e = ParseTime(text, &t)) return e;
  return SetNumber(m, name, t);
}
const char* SetLatency(const V& v, E* ev, I*) {
  if (v.num < 0 || v.num > INT64_MAX / 1000) return kOutOfRange;
  ev->mutable_prevented()->set_verdict_ns(static_cast<uint64_t>(v.num) * 1000);
  return nullptr;
}

// 4294967295 ("unset" in audit's uid and session members) is -1 in JSON.
int64_t Unset32(int64_t n) { return n == -1 ? int64_t{4294967295u} : n; }

template <Member m>
const char* BodyNum(const V& v, E* ev, I*) {
  return SetNumber(Body(ev), m.view(), v.num);
}
template <Member m>
const char* BodyStr(const V& v, E* ev, I*) {
  return SetString(Body(ev), m.view(), v.str);
}
template <Member m>
const char* BodyBool(const V& v, E* ev, I*) {
  return SetBool(Body(ev), m.view(), v.boolean);
}
template <Member m>
const char* BodyOctal(const V& v, E* ev, I*) {
  return SetOctal(Body(ev), m.view(), v.str);
}
template <Member m>
const char* BodyDev(const V& v, E* ev, I*) {
  return SetDev(Body(ev), m.view(), v.str);
}
template <Member m>
const char* BodyUnset32(const V& v, E* ev, I*) {
  return SetNumber(Body(ev), m.view(), Unset32(v.num));
}
template <Member m>
const char* BodyCaps(const V& v, E* ev, I*) {
  uint64_t caps = 0;
  std::string_view rest = v.str;
  while (!rest.empty()) {
    size_t sp = rest.find(' ');
    std::string_view name = rest.substr(0, sp);
    unsigned bit = 0;
    while (bit < 64 && (name.empty() || CapabilityName(bit) != name)) ++bit;
    if (bit == 64) return "not a list of capability names (\"CAP_CHOWN CAP_KILL\")";
    caps |= uint64_t{1} << bit;
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
  }
  pb::Message* b = Body(ev);
  b->GetReflection()->SetUInt64(b, MemberOf(*b, m.view()), caps);
  return nullptr;
}
template <Member m>
const char* InfoStr(const V& v, E*, I* info) {
  return SetString(info, m.view(), v.str);
}

// A process event's evt.type: its syscall; a file write's kind (fd.write_kind, later in the
// table, says it exactly). The other kinds' evt.type is fixed and only checked.
const char* SetEventType(const V& v, E* ev, I*) {
  switch (KindOf(*ev)) {
    case Kind::kExec:
    case Kind::kChmod:
      return SetString(Body(ev), "syscall", v.str);
    case Kind::kNetwork:
      ev->mutable_network()->set_address_is_local(v.str == "bind");  // as audit says it
      return SetString(Body(ev), "syscall", v.str);
    case Kind::kWrite: {
      std::string_view kind = v.str == "openat"      ? "close_write"
                              : v.str == "renameat2" ? "rename"
                              : v.str == "unlinkat"  ? "delete"
                                                     : v.str;
      ev->mutable_write()->set_kind(std::string(kind));
      return nullptr;
    }
    default:
      return nullptr;
  }
}

const char* SetRes(const V& v, E* ev, I*) {
  pb::Message* b = Body(ev);
  SetBool(b, "success", v.str == "SUCCESS");
  if (v.str == "SUCCESS") return nullptr;
  if (int64_t n = 0; ParseInt(v.str, &n)) return SetNumber(b, "exit", n);
  return SetString(b, "errno_name", v.str);
}

const char* SetSensorRun(const V& v, E* ev, I*) {
  size_t slash = v.str.rfind('/');
  int64_t start = 0;
  if (slash == std::string_view::npos || !ParseInt(v.str.substr(slash + 1), &start) || start <= 0)
    return "not \"BOOT_ID/START_NS\"";
  ev->mutable_id()->set_boot_id(std::string(v.str.substr(0, slash)));
  ev->mutable_id()->set_sensor_start_ns(start);
  return nullptr;
}

// Network: one address, as audit gives one per call (NetFdName): "CIP:CPORT->" (accept),
// "->SIP:SPORT" (connect), "IP:PORT" (bind), else a unix socket's path.
const char* SetNetAddress(v1::NetworkActivity* n, std::string_view endpoint) {
  size_t colon = endpoint.rfind(':');
  int64_t port = 0;
  const std::string raw = colon == std::string_view::npos ? "" : IpRaw(endpoint.substr(0, colon));
  if (raw.empty() || !ParseInt(endpoint.substr(colon + 1), &port) || port < 0 || port > 65535)
    return "not \"IP:PORT\"";
  n->set_address(raw);
  n->set_family(raw.size() == 4 ? AF_INET : AF_INET6);
  n->set_port(static_cast<uint32_t>(port));
  return nullptr;
}

const char* SetFdName(const V& v, E* ev, I*) {
  if (KindOf(*ev) != Kind::kNetwork) return SetString(Body(ev), "path", v.str);
  v1::NetworkActivity* n = ev->mutable_network();
  const size_t arrow = v.str.find("->");
  if (arrow != std::string_view::npos) {
    std::string_view client = v.str.substr(0, arrow), server = v.str.substr(arrow + 2);
    if (client.empty() == server.empty())
      return "audit gives one side: \"CIP:CPORT->\" or \"->SIP:SPORT\"";
    return SetNetAddress(n, client.empty() ? server : client);
  }
  if (SetNetAddress(n, v.str) == nullptr) {
    n->set_address_is_local(true);
    return nullptr;
  }
  n->set_family(AF_UNIX);
  n->set_unix_path(std::string(v.str));
  return nullptr;
}

// fd.typechar and fd.type of a network event set its address family; a file's ("f") is
// only checked.
template <Member m4, Member m6, Member mu>
const char* SetFamily(const V& v, E* ev, I*) {
  if (KindOf(*ev) != Kind::kNetwork) return nullptr;
  uint32_t family = v.str == m4.view()   ? AF_INET
                    : v.str == m6.view() ? AF_INET6
                    : v.str == mu.view() ? AF_UNIX
                                         : 0;
  if (family == 0) return "not a socket family of driftwatch's";
  ev->mutable_network()->set_family(family);
  return nullptr;
}

const char* SetIp(const V& v, E* ev, I*) {
  const std::string raw = IpRaw(v.str);
  if (raw.empty()) return "not an IP address";
  ev->mutable_network()->set_address(raw);
  ev->mutable_network()->set_family(raw.size() == 4 ? AF_INET : AF_INET6);
  return nullptr;
}

// container.id and container.full_id: the event's container ("host": none) and its info's.
const char* SetContainerId(const V& v, E* ev, I* info) {
  const std::string id(v.str == "host" ? std::string_view() : v.str);
  if (KindOf(*ev) != Kind::kContainer) ev->set_container_id(id);
  info->set_id(id);
  return nullptr;
}

const char* SetAttribution(const V& v, E* ev, I*) {
  for (int a = v1::Attribution_MIN; a <= v1::Attribution_MAX; ++a) {
    if (v1::Attribution_IsValid(a) && v.str == AttributionName(static_cast<v1::Attribution>(a)) &&
        !v.str.empty()) {
      ev->set_attribution(static_cast<v1::Attribution>(a));
      return nullptr;
    }
  }
  return "not an attribution (cgroup, parent, device, process_tree, unknown, overlay, volume)";
}

const char* SetExeFileStat(const V& v, E* ev, I*) {
  for (int s = v1::ExeFileStat_MIN; s <= v1::ExeFileStat_MAX; ++s) {
    const char* name =
        v1::ExeFileStat_IsValid(s) ? ExeFileStatName(static_cast<v1::ExeFileStat>(s)) : nullptr;
    if (name != nullptr && v.str == name) {
      ev->mutable_exec()->set_exe_file_stat(static_cast<v1::ExeFileStat>(s));
      return nullptr;
    }
  }
  return "not a stat result (ok, no_root, not_found, not_regular, changed, failed)";
}

// proc.exe is argv[0]; proc.args the arguments after it (argv[0] from proc.exe, else the
// process name); proc.argv, later in the table, all of them.
const char* SetExe(const V& v, E* ev, I*) {
  v1::ProcessExec* x = ev->mutable_exec();
  if (x->args_size() == 0) x->add_args();
  x->set_args(0, std::string(v.str));
  return nullptr;
}
const char* SetArgs(const V& v, E* ev, I*) {
  v1::ProcessExec* x = ev->mutable_exec();
  std::string argv0 = x->args_size() > 0 ? x->args(0) : x->comm();
  x->clear_args();
  x->add_args(std::move(argv0));
  for (std::string_view a : v.list) x->add_args(std::string(a));
  return nullptr;
}
const char* SetArgv(const V& v, E* ev, I*) {
  v1::ProcessExec* x = ev->mutable_exec();
  x->clear_args();
  for (std::string_view a : v.list) x->add_args(std::string(a));
  return nullptr;
}
const char* SetEnv(const V& v, E* ev, I*) {
  v1::ProcessExec* x = ev->mutable_exec();
  x->set_env_read(true);
  x->clear_env();
  for (std::string_view e : v.list) x->add_env(std::string(e));
  return nullptr;
}

const char* SetSha256(const V& v, E* ev, I*) {
  std::string raw;
  for (size_t i = 0; i + 1 < v.str.size(); i += 2) {
    int64_t b = 0;
    if (!ParseInt(v.str.substr(i, 2), &b, 16) || v.str[i] == '-' || v.str[i] == '+')
      return "not 64 hex digits";
    raw.push_back(static_cast<char>(b));
  }
  if (v.str.size() != 64) return "not 64 hex digits";
  return SetString(Body(ev), "sha256", raw);
}

const char* SetVerdict(const V& v, E* ev, I*) {
  if (v.str != "denied" && v.str != "would_deny") return "not denied or would_deny";
  ev->mutable_prevented()->set_verdict(v.str == "denied" ? v1::ExecPrevented::DENIED
                                                         : v1::ExecPrevented::WOULD_DENY);
  return nullptr;
}

// "source:dest:mode:rdrw:propagation" (MountText), split from the right but for source and
// dest, split at the first colon (a host path with a colon reads back as another split
// that prints the same).
const char* SetMounts(const V& v, E* ev, I*) {
  v1::ContainerInfo* c = ev->mutable_container();
  c->clear_mounts();
  for (std::string_view t : v.list) {
    size_t p3 = t.rfind(':');
    size_t p2 =
        p3 == std::string_view::npos || p3 == 0 ? std::string_view::npos : t.rfind(':', p3 - 1);
    size_t p1 =
        p2 == std::string_view::npos || p2 == 0 ? std::string_view::npos : t.rfind(':', p2 - 1);
    size_t p0 = p1 == std::string_view::npos ? std::string_view::npos : t.find(':');
    if (p0 == std::string_view::npos || p0 >= p1 || p2 != p1 + 1)
      return "not \"source:dest::rdrw:propagation\"";
    std::string_view rdrw = t.substr(p2 + 1, p3 - p2 - 1);
    if (rdrw != "true" && rdrw != "false") return "rdrw is not true or false";
    v1::Mount* m = c->add_mounts();
    m->set_source(std::string(t.substr(0, p0)));
    m->set_destination(std::string(t.substr(p0 + 1, p1 - p0 - 1)));
    m->set_read_only(rdrw == "false");
    m->set_propagation(std::string(t.substr(p3 + 1)));
  }
  return nullptr;
}

// A sensor status counter, always printed.
#define DW_STATUS_NUM(name, member, doc)                         \
  {                                                              \
    name, T::kNumber, doc, kStatus,                              \
        [](const E& ev, const I*, V* out) {                      \
          return Num(static_cast<int64_t>(S(ev).member()), out); \
        },                                                       \
        BodyNum<#member>                                         \
  }

constexpr EventField kFields[] = {
    {"evt.time", T::kString, "ISO 8601 text, UTC",
     kAll, [](const E& ev, const I*, V* out) { return Buf(FormatIsoTime(ev.time_ns()), out); },
     [](const V& v, E* ev, I*) { return SetTimeMember(ev, "time_ns", v.str); }},
    {"evt.hostname", T::kString, "", kAll,
     [](const E& ev, const I*, V* out) { return StrIfSet(ev.id().node(), out); },
     [](const V& v, E* ev, I*) { return SetString(ev->mutable_id(), "node", v.str); }},
    {"evt.num", T::kNumber, "", kAll,
     [](const E& ev, const I*, V* out) { return Num(static_cast<int64_t>(ev.id().seq()), out); },
     [](const V& v, E* ev, I*) { return SetNumber(ev->mutable_id(), "seq", v.num); }},
    {"sensor.run", T::kString,
     "the sensor run that numbered the event: \"BOOT_ID/START_NS\" (boot id, sensor start); "
     "with evt.hostname and evt.num, the event's identity; unset for offline logs",
     kAll, [](const E& ev, const I*, V* out) {
       if (ev.id().sensor_start_ns() == 0) return false;
       return Buf(ev.id().boot_id() + "/" + std::to_string(ev.id().sensor_start_ns()), out);
     },
     SetSensorRun},
    {"evt.type", T::kString, "", kAll,
     [](const E& ev, const I*, V* out) { return Str(EventType(ev), out); },
     SetEventType},
    {"evt.res", T::kString, "", kSyscall, Res,
     SetRes},
    {"evt.rawres", T::kNumber, "", kSyscall,
     [](const E& ev, const I*, V* out) { return Num(ResultOf(ev)->exit, out); },
     BodyNum<"exit">},
    {"evt.arg.filename", T::kString, "", kExec,
     [](const E& ev, const I*, V* out) { return Str(X(ev).path(), out); },
     BodyStr<"path">},
    {"evt.arg.mode", T::kString, "octal text without the flags", kChmod,
     [](const E& ev, const I*, V* out) { return Buf(Octal(F(ev).mode), out); },
     BodyOctal<"new_mode">},
    {"fd.name", T::kString,
     "network events: \"CIP:CPORT->SIP:SPORT\" with the side audit does not give left out "
     "(\"->1.2.3.4:443\" for a connect), \"IP:PORT\" for a bind, a unix socket's path; "
     "unset for a listen",
     kNamed, [](const E& ev, const I*, V* out) {
       if (KindOf(ev) != Kind::kNetwork) return Str(F(ev).path, out);
       std::string name = NetFdName(ev.network());
       return !name.empty() && Buf(std::move(name), out);
     },
     SetFdName},
    {"fd.directory", T::kString, "", kFilePath,
     [](const E& ev, const I*, V* out) { return Str(SplitPath(F(ev).path).first, out); },
     nullptr},
    {"fd.filename", T::kString, "", kFilePath,
     [](const E& ev, const I*, V* out) { return Str(SplitPath(F(ev).path).second, out); },
     nullptr},
    {"fd.typechar", T::kString, "network events: \"4\", \"6\" or \"u\"", kNamed,
     [](const E& ev, const I*, V* out) {
       return KindOf(ev) != Kind::kNetwork ? Str("f", out)
                                           : StrIfSet(NetFdTypechar(ev.network()), out);
     },
     SetFamily<"4", "6", "u">},
    {"evt.arg.adds_exec", T::kBool, "", kChmod,
     [](const E& ev, const I*, V* out) { return Bool(F(ev).chmod->adds_exec(), out); },
     BodyBool<"adds_exec">},
    {"fd.type", T::kString, "network events: \"ipv4\", \"ipv6\" or \"unix\"", kNetwork,
     [](const E& ev, const I*, V* out) { return StrIfSet(NetFdType(ev.network()), out); },
     SetFamily<"ipv4", "ipv6", "unix">},
    {"fd.num", T::kNumber, "network events: the socket (accept: the new connection's)",
     kNetwork, [](const E& ev, const I*, V* out) {
       return ev.network().fd() >= 0 && Num(ev.network().fd(), out);
     },
     BodyNum<"fd">},
    {"fd.sip", T::kString, "server IP: connect's peer, a bind's own address", kNetwork,
     [](const E& ev, const I*, V* out) {
       NetSide s = SidesOf(ev.network()).server;
       return s.known() && Buf(IpText(s.ip), out);
     },
     SetIp},
    {"fd.sport", T::kNumber, "server port: connect's peer's, a bind's own", kNetwork,
     [](const E& ev, const I*, V* out) {
       NetSide s = SidesOf(ev.network()).server;
       return s.known() && Num(s.port, out);
     },
     BodyNum<"port">},
    {"fd.cip", T::kString, "client IP: accept's peer", kNetwork,
     [](const E& ev, const I*, V* out) {
       NetSide s = SidesOf(ev.network()).client;
       return s.known() && Buf(IpText(s.ip), out);
     },
     SetIp},
    {"fd.cport", T::kNumber, "client port: accept's peer's", kNetwork,
     [](const E& ev, const I*, V* out) {
       NetSide s = SidesOf(ev.network()).client;
       return s.known() && Num(s.port, out);
     },
     BodyNum<"port">},
    {"fd.l4proto", T::kString,
     "\"tcp\" where the call proves a stream socket (accept, listen); unset where audit "
     "does not say (connect, bind)",
     kNetwork, [](const E& ev, const I*, V* out) { return StrIfSet(NetL4Proto(ev.network()), out); },
     nullptr},
    {"sensitive.entry", T::kString,
     "a sensitive read: the driftwatch-sensor --sensitive-paths entry that marked the file",
     kRead, [](const E& ev, const I*, V* out) { return StrIfSet(ev.read().entry(), out); },
     BodyStr<"entry">},
    {"sensitive.file_container", T::kString,
     "a sensitive read: the container whose file was read (the reader may be another "
     "container, or the host)",
     kRead, [](const E& ev, const I*, V* out) {
       return StrIfSet(ev.read().file_container_id(), out);
     },
     BodyStr<"file_container_id">},
    {"sensitive.repeats", T::kNumber,
     "a sensitive read: more reads of the file by the same process this event stands for "
     "(coalesced within a second); printed when not 0",
     kRead, [](const E& ev, const I*, V* out) {
       return ev.read().repeats() != 0 && Num(ev.read().repeats(), out);
     },
     BodyNum<"repeats">},
    {"evt.is_open_read", T::kBool, "printed for sensitive reads (true)", kRead,
     [](const E&, const I*, V* out) { return Bool(true, out); },
     nullptr},
    {"fd.write_kind", T::kString, "", kWrite,
     [](const E& ev, const I*, V* out) { return Str(F(ev).write->kind(), out); },
     BodyStr<"kind">},
    {"evt.is_open_create", T::kBool, "printed only when true", kWrite,
     [](const E& ev, const I*, V* out) {
       return F(ev).write->created() && EventType(ev) == "openat" && Bool(true, out);
     },
     BodyBool<"created">},
    {"fd.oldname", T::kString, "", kWrite,
     [](const E& ev, const I*, V* out) { return StrIfSet(F(ev).write->old_path(), out); },
     BodyStr<"old_path">},
    {"fd.ino", T::kNumber, "", kFilePath,
     [](const E& ev, const I*, V* out) { return Num(static_cast<int64_t>(F(ev).inode), out); },
     BodyNum<"inode">},
    {"fd.dev", T::kString,
     "device of the file as \"MAJOR:MINOR\" in hex (\"00:4d\"), as fanotify's file handle names it",
     kFilePath, [](const E& ev, const I*, V* out) {
       FileView f = F(ev);
       return Buf(Dev(f.dev_major, f.dev_minor), out);
     },
     BodyDev<"dev">},
    {"fd.size", T::kNumber, "", kFileOnDisk,
     [](const E& ev, const I*, V* out) { return Num(static_cast<int64_t>(F(ev).size), out); },
     BodyNum<"size">},
    {"fd.mode", T::kString, "st_mode of the file after the write, octal text (\"0100755\")",
     kFileOnDisk, [](const E& ev, const I*, V* out) { return Buf(Octal(F(ev).mode), out); },
     BodyOctal<"mode">},
    {"fd.is_executable", T::kBool, "", kWrite,
     [](const E& ev, const I*, V* out) { return Bool(F(ev).write->executable(), out); },
     BodyBool<"executable">},
    {"fd.sha256", T::kString, "", kFileOnDisk,
     [](const E& ev, const I*, V* out) {
       const std::string_view h = F(ev).sha256;
       return !h.empty() && Buf(HexOf(std::string(h)), out);
     },
     SetSha256},
    {"fd.upper_path", T::kString, "", kFileOnDisk,
     [](const E& ev, const I*, V* out) { return StrIfSet(F(ev).upper_path, out); },
     BodyStr<"upper_path">},
    {"prevent.verdict", T::kString,
     "a prevented exec's verdict: \"denied\" (the exec failed with EPERM) or \"would_deny\" "
     "(--prevent-dry-run: it ran)",
     kPrevented, [](const E& ev, const I*, V* out) {
       return Str(ev.prevented().verdict() == v1::ExecPrevented::WOULD_DENY ? "would_deny"
                                                                             : "denied",
                  out);
     },
     SetVerdict},
    {"prevent.reason", T::kString, "why the exec counts as drift: \"upper layer\"", kPrevented,
     [](const E& ev, const I*, V* out) { return StrIfSet(ev.prevented().reason(), out); },
     BodyStr<"reason">},
    {"prevent.latency_us", T::kNumber,
     "microseconds from the sensor reading the permission event to its answer", kPrevented,
     [](const E& ev, const I*, V* out) {
       return Num(static_cast<int64_t>(ev.prevented().verdict_ns() / 1000), out);
     },
     SetLatency},
    {"proc.pid", T::kNumber, "0 for a file write whose writer is unknown",
     kProcess, [](const E& ev, const I*, V* out) { return Num(P(ev).pid, out); },
     BodyNum<"pid">},
    {"proc.ppid", T::kNumber, "", kSyscall,
     [](const E& ev, const I*, V* out) { return Num(P(ev).ppid, out); },
     BodyNum<"ppid">},
    {"proc.name", T::kString, "", kProcess,
     [](const E& ev, const I*, V* out) { return Str(ProcessNameOf(P(ev)), out); },
     BodyStr<"comm">},
    {"proc.exe", T::kString, "", kExec,
     [](const E& ev, const I*, V* out) {
       return Str(X(ev).args_size() > 0 ? X(ev).args(0) : X(ev).exe(), out);
     },
     SetExe},
    {"proc.exepath", T::kString, "", kProcess,
     [](const E& ev, const I*, V* out) { return Str(P(ev).exe, out); },
     BodyStr<"exe">},
    {"proc.exe_file", T::kString, "", kExec,
     [](const E& ev, const I*, V* out) {
       return Str(X(ev).exe_file().empty() ? X(ev).exe() : X(ev).exe_file(), out);
     },
     BodyStr<"exe_file">},
    {"proc.exe_file.ino", T::kNumber,
     "inode of proc.exe_file where it differs from the executable (a script, a loader's "
     "program): the audit record's, or the sensor's look at it; unset when unknown",
     kExec, [](const E& ev, const I*, V* out) {
       return X(ev).exe_file_inode() != 0 &&
              Num(static_cast<int64_t>(X(ev).exe_file_inode()), out);
     },
     BodyNum<"exe_file_inode">},
    {"proc.exe_file.dev", T::kString,
     "device of proc.exe_file as \"MAJOR:MINOR\" in hex; set with proc.exe_file.ino", kExec,
     [](const E& ev, const I*, V* out) {
       const v1::ProcessExec& x = X(ev);
       return x.exe_file_inode() != 0 &&
              Buf(Dev(x.exe_file_dev_major(), x.exe_file_dev_minor()), out);
     },
     BodyDev<"exe_file_dev">},
    {"proc.exe_file.stat", T::kString,
     "the sensor's look at proc.exe_file: ok, no_root, not_found, not_regular, changed, "
     "failed; unset when it did not look (offline logs, plain execs)",
     kExec, [](const E& ev, const I*, V* out) {
       const char* s = ExeFileStatName(X(ev).exe_file_stat());
       return s != nullptr && Str(s, out);
     },
     SetExeFileStat},
    {"proc.is_exe_from_memfd", T::kBool, "", kExec,
     [](const E& ev, const I*, V* out) {
       return X(ev).has_is_exe_from_memfd() && Bool(X(ev).is_exe_from_memfd(), out);
     },
     BodyBool<"is_exe_from_memfd">},
    {"proc.args", T::kList, "", kExec,
     [](const E& ev, const I*, V* out) { return Args(ev, 1, out); },
     SetArgs},
    {"proc.argv", T::kList,
     "every argument, argv[0] included, as exact bytes (a prefix when proc.args_capped)",
     kExec, [](const E& ev, const I*, V* out) { return Args(ev, 0, out); },
     SetArgv},
    {"proc.cmdline", T::kString, "", kExec,
     [](const E& ev, const I*, V* out) { return Buf(CommandLine(X(ev)), out); },
     nullptr},
    {"proc.args_truncated", T::kBool,
     "fewer arguments arrived than argc announced (the kernel's audit records were cut); "
     "JSON: printed only when true",
     kExec, [](const E& ev, const I*, V* out) { return X(ev).args_truncated() && Bool(true, out); },
     BodyBool<"args_truncated">},
    {"proc.args_capped", T::kBool, "only when true",
     kExec, [](const E& ev, const I*, V* out) { return X(ev).args_capped() && Bool(true, out); },
     BodyBool<"args_capped">},
    {"proc.args_dropped_bytes", T::kNumber,
     "argument bytes the sensor's caps left out; set with proc.args_capped", kExec,
     [](const E& ev, const I*, V* out) {
       return X(ev).args_capped() && Num(static_cast<int64_t>(X(ev).args_dropped_bytes()), out);
     },
     BodyNum<"args_dropped_bytes">},
    {"proc.argc", T::kNumber,
     "argc as the kernel reported it; set where proc.argv may hold fewer arguments "
     "(proc.args_truncated or proc.args_capped)",
     kExec, [](const E& ev, const I*, V* out) {
       const v1::ProcessExec& x = X(ev);
       return (x.args_truncated() || x.args_capped()) && Num(x.argc(), out);
     },
     BodyNum<"argc">},
    {"proc.cwd", T::kString, "", kSyscall,
     [](const E& ev, const I*, V* out) { return Str(P(ev).cwd, out); },
     BodyStr<"cwd">},
    {"proc.tty", T::kString, "the audit record's name (\"pts0\", \"(none)\")",
     kSyscall, [](const E& ev, const I*, V* out) { return Str(P(ev).tty, out); },
     BodyStr<"tty">},
    {"proc.sid", T::kNumber, "-1 when unset", kExec,
     [](const E& ev, const I*, V* out) {
       uint32_t s = P(ev).session;
       return Num(s == 4294967295u ? -1 : int64_t{s}, out);
     },
     BodyUnset32<"session">},
    {"proc.pname", T::kString, "", kSyscall,
     [](const E& ev, const I*, V* out) { return StrIfSet(P(ev).parent_name, out); },
     BodyStr<"parent_name">},
    {"proc.exe_ino", T::kNumber, "inode of the executable (PATH item 0); 0 when unknown", kExec,
     [](const E& ev, const I*, V* out) { return Num(static_cast<int64_t>(X(ev).exe_inode()), out); },
     BodyNum<"exe_inode">},
    {"proc.exe_dev", T::kString,
     "device of the executable as \"MAJOR:MINOR\" in hex (\"00:4d\": an overlay rootfs)", kExec,
     [](const E& ev, const I*, V* out) {
       return Buf(Dev(X(ev).exe_dev_major(), X(ev).exe_dev_minor()), out);
     },
     BodyDev<"exe_dev">},
    {"proc.exe_mode", T::kString,
     "st_mode of the executable (PATH item 0), octal text with the file type (\"0100755\")",
     kExec, [](const E& ev, const I*, V* out) { return Buf(Octal(X(ev).exe_mode()), out); },
     BodyOctal<"exe_mode">},
    {"proc.is_runtime_plumbing", T::kBool, "", kExec,
     [](const E& ev, const I*, V* out) { return Bool(X(ev).runtime_plumbing(), out); },
     BodyBool<"runtime_plumbing">},
    {"proc.is_exe_upper_layer", T::kBool, "the sensor's look",
     kExec, [](const E& ev, const I*, V* out) {
       return X(ev).has_is_exe_upper_layer() && Bool(X(ev).is_exe_upper_layer(), out);
     },
     BodyBool<"is_exe_upper_layer">},
    {"proc.pid.ts", T::kNumber,
     "when the process started (its fork; the exec keeps it), ns since the epoch, from "
     "/proc/<pid>/stat at clock-tick resolution; unset when the sensor did not read it",
     kExec, [](const E& ev, const I*, V* out) {
       return X(ev).start_time_ns() != 0 && Num(X(ev).start_time_ns(), out);
     },
     BodyNum<"start_time_ns">},
    {"proc.vpid", T::kNumber,
     "pid as seen from the process's own pid namespace (/proc/<pid>/status NSpid)", kExec,
     [](const E& ev, const I*, V* out) { return X(ev).has_vpid() && Num(X(ev).vpid(), out); },
     BodyNum<"vpid">},
    {"proc.vpgid", T::kNumber, "process group id as seen from its pid namespace (NSpgid)", kExec,
     [](const E& ev, const I*, V* out) { return X(ev).has_vpgid() && Num(X(ev).vpgid(), out); },
     BodyNum<"vpgid">},
    {"proc.vsid", T::kNumber,
     "session id as seen from its pid namespace (NSsid): Falco's proc.sid (proc.sid here is "
     "the audit session)",
     kExec, [](const E& ev, const I*, V* out) { return X(ev).has_vsid() && Num(X(ev).vsid(), out); },
     BodyNum<"vsid">},
    {"proc.pgid", T::kNumber, "process group id in the host's pid namespace", kExec,
     [](const E& ev, const I*, V* out) { return X(ev).has_pgid() && Num(X(ev).pgid(), out); },
     BodyNum<"pgid">},
    {"proc.sname", T::kString,
     "name (comm) of the session leader, the process whose pid is the session id, when it "
     "still ran at the exec",
     kExec, [](const E& ev, const I*, V* out) { return StrIfSet(X(ev).session_leader_name(), out); },
     BodyStr<"session_leader_name">},
    {"proc.vpgid.name", T::kString,
     "name (comm) of the process group leader, when it is the process itself or its session "
     "leader (no other leader is read)",
     kExec,
     [](const E& ev, const I*, V* out) { return StrIfSet(X(ev).pgid_leader_name(), out); },
     BodyStr<"pgid_leader_name">},
    {"thread.cap_effective", T::kString,
     "effective capabilities, their names space-separated (\"CAP_CHOWN CAP_KILL\"); empty "
     "when none; unset when not read",
     kExec, [](const E& ev, const I*, V* out) {
       if (!X(ev).has_cap_effective()) return false;
       AppendCapabilities(X(ev).cap_effective(), &out->buf);
       return Str(out->buf, out);
     },
     BodyCaps<"cap_effective">},
    {"thread.cap_permitted", T::kString, "permitted capabilities, as thread.cap_effective", kExec,
     [](const E& ev, const I*, V* out) {
       if (!X(ev).has_cap_permitted()) return false;
       AppendCapabilities(X(ev).cap_permitted(), &out->buf);
       return Str(out->buf, out);
     },
     BodyCaps<"cap_permitted">},
    {"thread.cap_inheritable", T::kString, "inheritable capabilities, as thread.cap_effective",
     kExec, [](const E& ev, const I*, V* out) {
       if (!X(ev).has_cap_inheritable()) return false;
       AppendCapabilities(X(ev).cap_inheritable(), &out->buf);
       return Str(out->buf, out);
     },
     BodyCaps<"cap_inheritable">},
    {"proc.exe_ino.ctime", T::kNumber,
     "status change time (ctime) of the running executable (the interpreter of a script), "
     "ns since the epoch",
     kExec, [](const E& ev, const I*, V* out) {
       return X(ev).exe_ctime_ns() != 0 && Num(X(ev).exe_ctime_ns(), out);
     },
     BodyNum<"exe_ctime_ns">},
    {"proc.exe_ino.mtime", T::kNumber,
     "modification time (mtime) of the running executable, ns since the epoch", kExec,
     [](const E& ev, const I*, V* out) {
       return X(ev).exe_mtime_ns() != 0 && Num(X(ev).exe_mtime_ns(), out);
     },
     BodyNum<"exe_mtime_ns">},
    {"proc.env", T::kList,
     "a list of NAME=value entries, exact bytes (a prefix of whole entries when "
     "proc.env_capped)",
     kExec, [](const E& ev, const I*, V* out) {
       if (!X(ev).env_read()) return false;
       for (const std::string& e : X(ev).env()) out->list.push_back(e);
       return true;
     },
     SetEnv},
    {"proc.env_capped", T::kBool,
     "the sensor kept fewer environment entries than the process had (--environ-max-bytes); "
     "JSON: printed only when true",
     kExec, [](const E& ev, const I*, V* out) { return X(ev).env_capped() && Bool(true, out); },
     BodyBool<"env_capped">},
    {"proc.env_dropped_bytes", T::kNumber,
     "environment bytes the cap left out; set with proc.env_capped", kExec,
     [](const E& ev, const I*, V* out) {
       return X(ev).env_capped() && Num(static_cast<int64_t>(X(ev).env_dropped_bytes()), out);
     },
     BodyNum<"env_dropped_bytes">},
    {"user.uid", T::kNumber, "", kSyscall,
     [](const E& ev, const I*, V* out) { return Num(P(ev).uid, out); },
     BodyNum<"uid">},
    {"user.euid", T::kNumber, "", kExec,
     [](const E& ev, const I*, V* out) { return Num(P(ev).euid, out); },
     BodyNum<"euid">},
    {"user.loginuid", T::kNumber, "", kSyscall,
     [](const E& ev, const I*, V* out) { return Num(LoginUid(P(ev).auid), out); },
     BodyUnset32<"auid">},
    {"user.name", T::kString,
     "the name an ENRICHED log gave, or the sensor found in the process's /etc/passwd (its "
     "container's); unset when neither did",
     kExec, [](const E& ev, const I*, V* out) { return StrIfSet(X(ev).user_name(), out); },
     BodyStr<"user_name">},
    {"user.loginname", T::kString, "as user.name", kExec,
     [](const E& ev, const I*, V* out) { return StrIfSet(X(ev).login_name(), out); },
     BodyStr<"login_name">},
    {"group.gid", T::kNumber, "", kExec,
     [](const E& ev, const I*, V* out) { return Num(P(ev).gid, out); },
     BodyNum<"gid">},
    {"group.name", T::kString, "as user.name (an ENRICHED log's GID=, or /etc/group)", kExec,
     [](const E& ev, const I*, V* out) { return StrIfSet(X(ev).group_name(), out); },
     BodyStr<"group_name">},
    {"container.id", T::kString, "", kContained,
     [](const E& ev, const I*, V* out) { return Str(ShortContainerIdView(FullId(ev)), out); },
     SetContainerId},
    {"container.full_id", T::kString, "", kContained,
     [](const E& ev, const I*, V* out) { return Str(FullId(ev), out); },
     SetContainerId},
    {"container.state", T::kString, "", kContainer,
     [](const E& ev, const I*, V* out) { return Str(ev.container().state(), out); },
     BodyStr<"state">},
    {"container.source", T::kString,
     "how the sensor knows the container: \"cri\" (the runtime answered), \"docker\" or "
     "\"podman\" (the engine answered) or \"cgroup\" (from its cgroup path only)",
     kContainer, [](const E& ev, const I*, V* out) { return Str(ev.container().source(), out); },
     BodyStr<"source">},
    {"container.attribution", T::kString,
     "how the event was tied to its container: cgroup, parent, device, process_tree, unknown "
     "(treated as host), overlay, volume (a file event in a volume the container mounts); unset "
     "when not attributed",
     kProcess, [](const E& ev, const I*, V* out) {
       return ev.attribution() != v1::ATTRIBUTION_UNSPECIFIED &&
              Str(AttributionName(ev.attribution()), out);
     },
     SetAttribution},
    {"container.name", T::kString, "the sensor's report only", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->name(), out);
     },
     InfoStr<"name">},
    {"container.image", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->image(), out);
     },
     InfoStr<"image">},
    {"container.image.repository", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->image_repository(), out);
     },
     InfoStr<"image_repository">},
    {"container.image.tag", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->image_tag(), out);
     },
     InfoStr<"image_tag">},
    {"container.image.digest", T::kString, "the runtime's only", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->image_digest(), out);
     },
     InfoStr<"image_digest">},
    {"container.image.id", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->image_ref(), out);
     },
     InfoStr<"image_ref">},
    {"container.type", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->runtime(), out);
     },
     InfoStr<"runtime">},
    {"container.privileged", T::kBool, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && Bool(c->privileged(), out);
     },
     [](const V& v, E*, I* info) { return SetBool(info, "privileged", v.boolean); }},
    {"k8s.pod.name", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->pod_name(), out);
     },
     InfoStr<"pod_name">},
    {"k8s.ns.name", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->pod_namespace(), out);
     },
     InfoStr<"pod_namespace">},
    {"k8s.pod.uid", T::kString, "", kContained,
     [](const E& ev, const I* info, V* out) {
       const I* c = C(ev, info);
       return c && StrIfSet(c->pod_uid(), out);
     },
     InfoStr<"pod_uid">},
    {"container.start_ts", T::kString, "ISO 8601 text, UTC", kContainer,
     [](const E& ev, const I*, V* out) {
       int64_t t = ev.container().start_time_ns();
       return t != 0 && Buf(FormatIsoTime(t), out);
     },
     [](const V& v, E* ev, I*) {
       return SetTimeMember(ev->mutable_container(), "start_time_ns", v.str);
     }},
    {"container.pid", T::kNumber, "host pid of the container's init process; 0 when unknown",
     kContainer, [](const E& ev, const I*, V* out) { return Num(ev.container().init_pid(), out); },
     BodyNum<"init_pid">},
    {"container.rootfs_dev", T::kString,
     "device of the container's root filesystem as \"MAJOR:MINOR\" in hex (an overlay's is "
     "anonymous: \"00:NN\")",
     kContainer, [](const E& ev, const I*, V* out) {
       const I& c = ev.container();
       return Buf(Dev(c.rootfs_dev_major(), c.rootfs_dev_minor()), out);
     },
     BodyDev<"rootfs_dev">},
    {"container.upperdir", T::kString,
     "the overlay upper directory of the container's rootfs on the host (what it wrote)",
     kContainer, [](const E& ev, const I*, V* out) { return Str(ev.container().upperdir(), out); },
     BodyStr<"upperdir">},
    {"container.read_only_rootfs", T::kBool, "", kContainer,
     [](const E& ev, const I*, V* out) { return Bool(ev.container().read_only_rootfs(), out); },
     BodyBool<"read_only_rootfs">},
    {"container.cgroup", T::kString, "the container's cgroup path", kContainer,
     [](const E& ev, const I*, V* out) { return Str(ev.container().cgroup_path(), out); },
     BodyStr<"cgroup_path">},
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
     },
     SetMounts},
    {"audit.serial", T::kNumber,
     "the kernel's audit serial of the records the event was made of (audit events only)",
     kProcess, [](const E& ev, const I*, V* out) {
       return ev.has_audit() && Num(static_cast<int64_t>(ev.audit().serial()), out);
     },
     [](const V& v, E* ev, I*) { return SetNumber(ev->mutable_audit(), "serial", v.num); }},
    {"sensor.audit_mode", T::kString, "sensor status: audit mode (owner, observer, file, off)",
     kStatus, [](const E& ev, const I*, V* out) { return Str(S(ev).audit_mode(), out); },
     BodyStr<"audit_mode">},
    {"sensor.fanotify_mode", T::kString,
     "sensor status: fanotify mode (fid-filesystem, fd-filesystem, fd-mount, off)", kStatus,
     [](const E& ev, const I*, V* out) { return Str(S(ev).fanotify_mode(), out); },
     BodyStr<"fanotify_mode">},
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
     [](const E& ev, const I*, V* out) { return StrIfSet(S(ev).prevent_mode(), out); },
     BodyStr<"prevent_mode">},
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
     [](const E& ev, const I*, V* out) { return Bool(S(ev).final(), out); },
     BodyBool<"final">},
    {kCollectorStoredNs, T::kNumber,
     "when the collector committed the event, ns since the epoch (`driftwatch events` only; "
     "with evt.time, the event's end-to-end latency)",
     KindSet{}, [](const E&, const I*, V*) { return false; },
     [](const V&, E*, I*) -> const char* { return nullptr; }},
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
