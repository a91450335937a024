// evt.* fields: what happened (the syscall or file event kind), its result and time.
#include <charconv>

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

// A file's content or name was written: what Falco's open_write stands for here. Deletes
// and attribute changes (chmod) are file events too, but not writes.
bool EvtIsOpenWrite(const RuleContext& c, FieldArg, FieldValue* out) {
  if (KindOf(*c.event) != Kind::kWrite) return SetBool(false, out);
  const std::string& k = c.event->write().kind();
  return SetBool(k == "close_write" || k == "modify" || k == "create" || k == "rename", out);
}

// Falco renders a mode argument as octal followed by its flags, "0755(S_IXOTH|...)", and
// its chmod rules match `evt.arg.mode contains S_IXUSR`: render it the same way.
bool EvtArgMode(const RuleContext& c, FieldArg, FieldValue* out) {
  auto f = FileOf(*c.event);
  if (!f || !f->chmod) return false;
  uint32_t m = f->mode;
  static constexpr struct {
    uint32_t bit;
    const char* name;
  } kFlags[] = {{01, "S_IXOTH"},  {02, "S_IWOTH"},  {04, "S_IROTH"},  {010, "S_IXGRP"},
                {020, "S_IWGRP"}, {040, "S_IRGRP"}, {0100, "S_IXUSR"}, {0200, "S_IWUSR"},
                {0400, "S_IRUSR"}, {01000, "S_ISVTX"}, {02000, "S_ISGID"}, {04000, "S_ISUID"}};
  char oct[16] = {'0'};
  auto r = std::to_chars(oct + 1, oct + sizeof oct, m & 07777, 8);
  out->buf.assign(oct, r.ptr);
  out->buf.push_back('(');
  bool first = true;
  for (const auto& f : kFlags) {
    if (!(m & f.bit)) continue;
    if (!first) out->buf.push_back('|');
    first = false;
    out->buf.append(f.name);
  }
  out->buf.push_back(')');
  out->str = out->buf;
  return true;
}

bool EvtArgAddsExec(const RuleContext& c, FieldArg, FieldValue* out) {
  auto f = FileOf(*c.event);
  return f && f->chmod && SetBool(f->chmod->adds_exec(), out);
}

// The exec's PATH name, the chmod's path.
bool EvtArgFilename(const RuleContext& c, FieldArg, FieldValue* out) {
  if (auto p = ProcessOf(*c.event); p && p->exec) return SetStr(p->exec->path(), out);
  auto f = FileOf(*c.event);
  return f && f->chmod && SetStr(f->path, out);
}

constexpr FieldInfo kEvtFields[] = {
    {"evt.type", FieldType::kString,
     "execve, execveat, chmod, fchmod, fchmodat; for file events the kind (close_write, "
     "modify, create, attrib, delete, rename); container; sensor_status",
     EvtType},
    {"evt.dir", FieldType::kString, "always \"<\" (every event is a syscall exit)", EvtDir},
    {"evt.res", FieldType::kString, "SUCCESS, or the errno name of a failed syscall", EvtRes},
    {"evt.rawres", FieldType::kNumber, "syscall return value (-errno on failure)", EvtRawRes},
    {"evt.time", FieldType::kNumber, "event time, ns since the epoch", EvtTime},
    {"evt.num", FieldType::kNumber, "event sequence number of the sensor run", EvtNum},
    {"evt.hostname", FieldType::kString, "node that saw the event", EvtHostname},
    {"evt.is_open_write", FieldType::kBool,
     "a file was written (close_write, modify, create, rename)", EvtIsOpenWrite},
    {"evt.arg.mode", FieldType::kString,
     "chmod: new mode as Falco prints it, \"0755(S_IXOTH|S_IROTH|...)\"", EvtArgMode},
    {"evt.arg.adds_exec", FieldType::kBool, "chmod: the new mode adds an exec bit",
     EvtArgAddsExec},
    {"evt.arg.filename", FieldType::kString, "exec or chmod: the path the syscall named",
     EvtArgFilename},
};

}  // namespace

std::span<const FieldInfo> EvtFields() { return kEvtFields; }

}  // namespace driftwatch
