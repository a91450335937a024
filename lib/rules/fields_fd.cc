// fd.* fields: the file an event touched (file events, chmod).
#include "lib/event/event_view.h"
#include "lib/event/file_digest.h"
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

using fields::SetBool;
using fields::SetNum;
using fields::SetStr;

std::string_view PathOf(const RuleContext& c) {
  auto f = FileOf(*c.event);
  return f ? f->path : std::string_view();
}

// The file's write event, when the event is one.
const v1::FileWrite* Write(const RuleContext& c) {
  auto f = FileOf(*c.event);
  return f ? f->write : nullptr;
}

bool FdName(const RuleContext& c, FieldArg, FieldValue* out) { return SetStr(PathOf(c), out); }

// fd.directory and fd.filename split fd.name at its last slash, as Falco does.
bool FdDirectory(const RuleContext& c, FieldArg, FieldValue* out) {
  std::string_view p = PathOf(c);
  size_t slash = p.rfind('/');
  if (p.empty() || slash == std::string_view::npos) return false;
  return SetStr(slash == 0 ? p.substr(0, 1) : p.substr(0, slash), out);
}

bool FdFilename(const RuleContext& c, FieldArg, FieldValue* out) {
  std::string_view p = PathOf(c);
  size_t slash = p.rfind('/');
  return SetStr(slash == std::string_view::npos ? p : p.substr(slash + 1), out);
}

bool FdTypechar(const RuleContext& c, FieldArg, FieldValue* out) {
  return FileOf(*c.event) && SetStr("f", out);
}

bool FdIsExecutable(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::FileWrite* w = Write(c);
  return w && SetBool(w->executable(), out);
}

bool FdSha256(const RuleContext& c, FieldArg, FieldValue* out) {
  auto f = FileOf(*c.event);
  if (!f) return false;
  if (f->write) {
    if (f->write->sha256().empty()) return false;
    out->buf = HexOf(f->write->sha256());
    out->str = out->buf;
    return true;
  }
  return SetStr(c.file.sha256, out);  // a chmod: what correlation knows of the file
}

bool FdUpperPath(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::FileWrite* w = Write(c);
  return w && SetStr(w->upper_path(), out);
}

bool FdOldname(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::FileWrite* w = Write(c);
  return w && SetStr(w->old_path(), out);
}

// A chmod's inode is 0 when the PATH record gave none (fchmod).
bool FdIno(const RuleContext& c, FieldArg, FieldValue* out) {
  auto f = FileOf(*c.event);
  if (!f || (f->chmod && f->inode == 0)) return false;
  return SetNum(static_cast<int64_t>(f->inode), out);
}

bool FdSize(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::FileWrite* w = Write(c);
  return w && SetNum(static_cast<int64_t>(w->size()), out);
}

constexpr FieldInfo kFdFields[] = {
    {"fd.name", FieldType::kString, "path of the file (inside the container)", FdName},
    {"fd.directory", FieldType::kString, "directory part of fd.name", FdDirectory},
    {"fd.filename", FieldType::kString, "last component of fd.name", FdFilename},
    {"fd.typechar", FieldType::kString, "'f' for files", FdTypechar},
    {"fd.is_executable", FieldType::kBool, "ELF, #! script or exec bit", FdIsExecutable},
    {"fd.sha256", FieldType::kString, "sha256 (hex) of an executable file", FdSha256},
    {"fd.upper_path", FieldType::kString, "the file in the container's upper layer on the host",
     FdUpperPath},
    {"fd.oldname", FieldType::kString, "rename: the path before", FdOldname},
    {"fd.ino", FieldType::kNumber, "inode number", FdIno},
    {"fd.size", FieldType::kNumber, "file size after the write", FdSize},
};

}  // namespace

std::span<const FieldInfo> FdFields() { return kFdFields; }

}  // namespace driftwatch
