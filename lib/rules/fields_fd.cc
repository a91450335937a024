// fd.* fields: the file an event touched (file events, chmod).
#include "lib/event/file_digest.h"
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

using fields::SetBool;
using fields::SetNum;
using fields::SetStr;

std::string_view PathOf(const RuleContext& c) {
  if (c.event->has_write()) return c.event->write().path();
  if (c.event->has_chmod()) return c.event->chmod().path();
  return {};
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
  if (c.event->has_write() || c.event->has_chmod()) return SetStr("f", out);
  return false;
}

bool FdIsExecutable(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!c.event->has_write()) return false;
  return SetBool(c.event->write().executable(), out);
}

bool FdSha256(const RuleContext& c, FieldArg, FieldValue* out) {
  if (c.event->has_write() && !c.event->write().sha256().empty()) {
    out->buf = HexOf(c.event->write().sha256());
    out->str = out->buf;
    return true;
  }
  if (c.event->has_chmod()) return SetStr(c.file.sha256, out);
  return false;
}

bool FdUpperPath(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!c.event->has_write()) return false;
  return SetStr(c.event->write().upper_path(), out);
}

bool FdOldname(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!c.event->has_write()) return false;
  return SetStr(c.event->write().old_path(), out);
}

bool FdIno(const RuleContext& c, FieldArg, FieldValue* out) {
  if (c.event->has_write()) return SetNum(static_cast<int64_t>(c.event->write().inode()), out);
  if (c.event->has_chmod() && c.event->chmod().inode() != 0)
    return SetNum(static_cast<int64_t>(c.event->chmod().inode()), out);
  return false;
}

bool FdSize(const RuleContext& c, FieldArg, FieldValue* out) {
  if (!c.event->has_write()) return false;
  return SetNum(static_cast<int64_t>(c.event->write().size()), out);
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
