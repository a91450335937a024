// evt.* fields: what happened (the syscall, or the syscall Falco would have seen for a file
// event), its result and time. evt.arg.* are fields_evt_arg.cc's.
#include "lib/event/event_view.h"
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

using fields::SetBool;
using fields::SetNum;
using fields::SetStr;

bool EvtType(const RuleContext& c, FieldArg, FieldValue* out) {
  return SetStr(EventType(*c.event), out);
}

// Every event driftwatch sees is a syscall exit (or a finished file event).
bool EvtDir(const RuleContext& c, FieldArg, FieldValue* out) {
  if (KindOf(*c.event) == Kind::kNone) return false;
  return SetStr("<", out);
}

// "SUCCESS", the errno name, or the raw number when the log gave no name.
bool EvtRes(const RuleContext& c, FieldArg, FieldValue* out) {
  auto r = ResultOf(*c.event);
  if (!r) return false;
  if (r->success) return SetStr("SUCCESS", out);
  if (!r->errno_name.empty()) return SetStr(r->errno_name, out);
  out->buf = std::to_string(r->exit);
  out->str = out->buf;
  return true;
}

bool EvtRawRes(const RuleContext& c, FieldArg, FieldValue* out) {
  auto r = ResultOf(*c.event);
  return r && SetNum(r->exit, out);
}

bool EvtTime(const RuleContext& c, FieldArg, FieldValue* out) {
  return SetNum(c.event->time_ns(), out);
}

bool EvtNum(const RuleContext& c, FieldArg, FieldValue* out) {
  return SetNum(static_cast<int64_t>(c.event->id().seq()), out);
}

bool EvtHostname(const RuleContext& c, FieldArg, FieldValue* out) {
  return SetStr(c.event->id().node(), out);
}

// The file event's write, when it is a file event Falco would have seen as an openat
// (content written: close_write, modify, create).
const v1::FileWrite* OpenWrite(const RuleContext& c) {
  if (KindOf(*c.event) != Kind::kWrite) return nullptr;
  const v1::FileWrite& w = c.event->write();
  return EventType(*c.event) == "openat" ? &w : nullptr;
}

// Falco: true for an open whose flags have O_WRONLY (or O_RDWR); false for every other
// event. A file event's openat is one.
bool EvtIsOpenWrite(const RuleContext& c, FieldArg, FieldValue* out) {
  return SetBool(OpenWrite(c) != nullptr, out);
}

// Only the sensitive reads (fanotify FAN_CLOSE_NOWRITE on marked files) are opens for reading.
bool EvtIsOpenRead(const RuleContext& c, FieldArg, FieldValue* out) {
  return SetBool(KindOf(*c.event) == Kind::kRead, out);
}

// Falco: an open with O_CREAT whose mode has an exec bit. Here: the file event created the
// file and its permission bits after the write have one.
bool EvtIsOpenExec(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::FileWrite* w = OpenWrite(c);
  return SetBool(w != nullptr && w->created() && (w->mode() & 0111) != 0, out);
}

bool EvtIsOpenCreate(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::FileWrite* w = OpenWrite(c);
  return SetBool(w != nullptr && w->created(), out);
}

bool EvtFailed(const RuleContext& c, FieldArg, FieldValue* out) {
  auto r = ResultOf(*c.event);
  return r && SetBool(!r->success, out);
}

// Falco's category names: "process" for execs, "file" for chmods and file events, "net"
// for network events.
bool EvtCategory(const RuleContext& c, FieldArg, FieldValue* out) {
  switch (KindOf(*c.event)) {
    case Kind::kExec: return SetStr("process", out);
    case Kind::kNetwork: return SetStr("net", out);
    case Kind::kChmod:
    case Kind::kWrite:
    case Kind::kRead: return SetStr("file", out);
    default: return false;
  }
}

// The system call's name: what evt.type says for audit's events and for file events named
// as a syscall; unset for attrib, container and sensor_status.
bool SyscallType(const RuleContext& c, FieldArg, FieldValue* out) {
  std::string_view t = EventType(*c.event);
  Kind k = KindOf(*c.event);
  if (k == Kind::kExec || k == Kind::kChmod || k == Kind::kNetwork || (k == Kind::kWrite && t != "attrib"))
    return SetStr(t, out);
  return false;
}

bool EvtArgAddsExec(const RuleContext& c, FieldArg, FieldValue* out) {
  auto f = FileOf(*c.event);
  return f && f->chmod && SetBool(f->chmod->adds_exec(), out);
}

constexpr FieldInfo kEvtFields[] = {
    {"evt.type", FieldType::kString,
     "audit: execve, execveat, chmod, fchmod, fchmodat, fchmodat2; file events as the syscall "
     "Falco would have seen: openat (content written: fanotify close_write, modify, create), "
     "renameat2 (rename), unlinkat (delete), attrib (driftwatch's own: an attribute change, "
     "the fanotify kind fd.write_kind keeps); network (audit): connect, accept, accept4, bind, "
     "listen; container; sensor_status",
     EvtType},
    {"evt.dir", FieldType::kString, "always \"<\" (every event is a syscall exit)", EvtDir},
    {"evt.res", FieldType::kString, "SUCCESS, or the errno name of a failed syscall", EvtRes},
    {"evt.rawres", FieldType::kNumber,
     "syscall return value (-errno on failure); 0 for file events (finished operations)",
     EvtRawRes},
    {"evt.failed", FieldType::kBool, "the syscall failed (evt.res is not SUCCESS)", EvtFailed},
    {"evt.category", FieldType::kString,
     "\"process\" for execs, \"file\" for chmods, file events and sensitive reads, \"net\" "
     "for network events",
     EvtCategory},
    {"syscall.type", FieldType::kString,
     "the system call: evt.type for audit's events and file events named as one; unset for "
     "attrib, container, sensor_status",
     SyscallType},
    {"evt.time", FieldType::kNumber, "event time, ns since the epoch", EvtTime},
    {"evt.num", FieldType::kNumber, "event sequence number of the sensor run", EvtNum},
    {"evt.hostname", FieldType::kString, "node that saw the event", EvtHostname},
    {"evt.is_open_write", FieldType::kBool,
     "an open for writing: true for file events of type openat (content written), false for "
     "every other event",
     EvtIsOpenWrite},
    {"evt.is_open_read", FieldType::kBool,
     "an open for reading: true for sensitive reads (driftwatch-sensor --sensitive-paths), "
     "false for every other event",
     EvtIsOpenRead},
    {"evt.is_open_exec", FieldType::kBool,
     "Falco: an open that creates a file with an exec bit. Here: an openat file event that "
     "created the file (fanotify FAN_CREATE, FID modes only) whose permission bits after the "
     "write have an exec bit",
     EvtIsOpenExec},
    {"evt.is_open_create", FieldType::kBool,
     "an openat file event that created the file (FID modes only)", EvtIsOpenCreate},
    {"evt.arg.adds_exec", FieldType::kBool,
     "chmod: the new mode adds an exec bit the file lacked (or its old mode is unknown)",
     EvtArgAddsExec},
};

}  // namespace

std::span<const FieldInfo> EvtFields() { return kEvtFields; }

}  // namespace driftwatch
