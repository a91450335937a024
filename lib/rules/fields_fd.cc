// fd.* fields: the file an event touched (file events, chmod, a prevented exec's file, a
// sensitive read) or
// the socket of a network event (its address: lib/event/net_address.h).
#include "lib/event/event_view.h"
#include "lib/event/file_digest.h"
#include "lib/event/net_address.h"
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

const v1::NetworkActivity* Net(const RuleContext& c) {
  return KindOf(*c.event) == Kind::kNetwork ? &c.event->network() : nullptr;
}

bool FdName(const RuleContext& c, FieldArg, FieldValue* out) {
  if (const v1::NetworkActivity* n = Net(c)) {
    out->buf = NetFdName(*n);
    out->str = out->buf;
    return !out->buf.empty();
  }
  return SetStr(PathOf(c), out);
}

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
  if (const v1::NetworkActivity* n = Net(c)) return !NetFdTypechar(*n).empty() && SetStr(NetFdTypechar(*n), out);
  return FileOf(*c.event) && SetStr("f", out);
}

// The IP side `which` of a network event, as text (kString and kIpNet fields).
template <NetSide NetSides::*which>
bool FdSideIp(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::NetworkActivity* n = Net(c);
  if (!n) return false;
  const NetSide s = SidesOf(*n).*which;
  if (!s.known()) return false;
  out->buf = IpText(s.ip);
  out->str = out->buf;
  return true;
}

template <NetSide NetSides::*which>
bool FdSidePort(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::NetworkActivity* n = Net(c);
  if (!n) return false;
  const NetSide s = SidesOf(*n).*which;
  return s.known() && SetNum(s.port, out);
}

// fd.ip, fd.port, fd.net: "either side": the one audit gave.
bool FdAnyIp(const RuleContext& c, FieldArg a, FieldValue* out) {
  const v1::NetworkActivity* n = Net(c);
  if (!n) return false;
  return SidesOf(*n).server.known() ? FdSideIp<&NetSides::server>(c, a, out)
                                    : FdSideIp<&NetSides::client>(c, a, out);
}

bool FdAnyPort(const RuleContext& c, FieldArg a, FieldValue* out) {
  const v1::NetworkActivity* n = Net(c);
  if (!n) return false;
  return SidesOf(*n).server.known() ? FdSidePort<&NetSides::server>(c, a, out)
                                    : FdSidePort<&NetSides::client>(c, a, out);
}

bool FdSockFamily(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::NetworkActivity* n = Net(c);
  return n && !NetSockFamily(*n).empty() && SetStr(NetSockFamily(*n), out);
}

// accept, accept4, bind and listen are the serving end; connect the client.
bool FdIsServer(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::NetworkActivity* n = Net(c);
  return n && SetBool(n->syscall() != "connect", out);
}

bool FdIsExecutable(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::FileWrite* w = Write(c);
  return w && SetBool(w->executable(), out);
}

// A whole file on disk (a write's, a prevented exec's): size, hash and upper path are its.
bool OnDisk(const RuleContext& c, const std::optional<FileView>& f) {
  return f && (f->write || KindOf(*c.event) == Kind::kPrevented);
}

bool FdSha256(const RuleContext& c, FieldArg, FieldValue* out) {
  auto f = FileOf(*c.event);
  if (!f) return false;
  if (OnDisk(c, f)) {
    if (f->sha256.empty()) return false;
    out->buf = HexOf(std::string(f->sha256));
    out->str = out->buf;
    return true;
  }
  return SetStr(c.file.sha256, out);  // a chmod: what correlation knows of the file
}

bool FdUpperPath(const RuleContext& c, FieldArg, FieldValue* out) {
  auto f = FileOf(*c.event);
  return OnDisk(c, f) && SetStr(f->upper_path, out);
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
  auto f = FileOf(*c.event);
  return OnDisk(c, f) && SetNum(static_cast<int64_t>(f->size), out);
}

// A file event's or chmod's: see fields::kFileEventFdNum. fchmod's descriptor is in the
// audit record but not kept; chmod and fchmodat name a path, not a descriptor.
bool FdNum(const RuleContext& c, FieldArg, FieldValue* out) {
  if (const v1::NetworkActivity* n = Net(c)) return n->fd() >= 0 && SetNum(n->fd(), out);
  const bool read = KindOf(*c.event) == Kind::kRead;
  return (Write(c) || read) && SetNum(fields::kFileEventFdNum, out);
}

bool FdType(const RuleContext& c, FieldArg, FieldValue* out) {
  if (const v1::NetworkActivity* n = Net(c)) return !NetFdType(*n).empty() && SetStr(NetFdType(*n), out);
  return FileOf(*c.event) && SetStr("file", out);
}

// Names of files never change under an event here; a socket's tuple is the one the call
// named (Falco's case is an unconnected UDP socket's sendto: not an event here).
bool FdNameChanged(const RuleContext& c, FieldArg, FieldValue* out) {
  return (FileOf(*c.event) || Net(c)) && SetBool(false, out);
}

bool FdWriteKind(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::FileWrite* w = Write(c);
  return w && SetStr(w->kind(), out);
}

// fs.path.*: the path a successful file syscall named. name for openat, unlinkat and the
// chmod family; source and target for renameat2.
std::string_view FsPathName(const RuleContext& c) {
  auto f = FileOf(*c.event);
  if (!f) return {};
  if (f->chmod) return f->chmod->success() ? f->path : std::string_view();
  std::string_view t = EventType(*c.event);
  return t == "openat" || t == "unlinkat" ? f->path : std::string_view();
}

bool FsPathNameField(const RuleContext& c, FieldArg, FieldValue* out) {
  return SetStr(FsPathName(c), out);
}

bool FsPathSource(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::FileWrite* w = Write(c);
  return w && EventType(*c.event) == "renameat2" && SetStr(w->old_path(), out);
}

bool FsPathTarget(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::FileWrite* w = Write(c);
  return w && EventType(*c.event) == "renameat2" && SetStr(w->path(), out);
}

constexpr FieldInfo kFsPathFields[] = {
    {"fs.path.name", FieldType::kString,
     "the path of openat, unlinkat and chmod family events (successful ones)", FsPathNameField},
    {"fs.path.nameraw", FieldType::kString, "fs.path.name (paths here are already absolute)",
     FsPathNameField},
    {"fs.path.source", FieldType::kString, "renameat2: the path before", FsPathSource},
    {"fs.path.sourceraw", FieldType::kString, "fs.path.source", FsPathSource},
    {"fs.path.target", FieldType::kString, "renameat2: the path after", FsPathTarget},
    {"fs.path.targetraw", FieldType::kString, "fs.path.target", FsPathTarget},
};

constexpr FieldInfo kFdFields[] = {
    {"fd.name", FieldType::kString,
     "path of the file (inside the container); network events: \"CIP:CPORT->SIP:SPORT\" "
     "with the side audit does not give left out, \"IP:PORT\" for a bind, a unix socket's path",
     FdName},
    {"fd.directory", FieldType::kString, "directory part of fd.name", FdDirectory},
    {"fd.filename", FieldType::kString, "last component of fd.name", FdFilename},
    {"fd.typechar", FieldType::kString, "'f' for files; network events: '4', '6', 'u'", FdTypechar},
    {"fd.is_executable", FieldType::kBool, "ELF, #! script or exec bit", FdIsExecutable},
    {"fd.sha256", FieldType::kString, "sha256 (hex) of an executable file", FdSha256},
    {"fd.upper_path", FieldType::kString, "the file in the container's upper layer on the host",
     FdUpperPath},
    {"fd.oldname", FieldType::kString, "rename: the path before", FdOldname},
    {"fd.ino", FieldType::kNumber, "inode number", FdIno},
    {"fd.size", FieldType::kNumber, "file size after the write (of a prevented exec: its file's)",
     FdSize},
    {"fd.num", FieldType::kNumber,
     "file events: 2147483647, no real descriptor: fanotify never says which descriptor the "
     "writer used, only that its open succeeded (Falco's open_write asks fd.num>=0); network events: "
     "the socket (accept: the new connection's); unset for other events",
     FdNum},
    {"fd.nameraw", FieldType::kString, "fd.name (the path as the event gave it)", FdName},
    {"fd.type", FieldType::kString,
     "\"file\" for file events and chmods; network events: \"ipv4\", \"ipv6\", \"unix\"", FdType},
    {"fd.name_changed", FieldType::kBool, "false for file events, chmods and network events",
     FdNameChanged},
    {"fd.ip", FieldType::kString, "network events: the IP audit gave (server or client)", FdAnyIp},
    {"fd.port", FieldType::kNumber, "network events: the port audit gave", FdAnyPort},
    {"fd.rip", FieldType::kString, "remote IP: connect's and accept's peer", FdSideIp<&NetSides::remote>},
    {"fd.rport", FieldType::kNumber, "remote port", FdSidePort<&NetSides::remote>},
    {"fd.lip", FieldType::kString, "local IP: a bind's address", FdSideIp<&NetSides::local>},
    {"fd.lport", FieldType::kNumber, "local port: a bind's", FdSidePort<&NetSides::local>},
    {"fd.net", FieldType::kIpNet, "fd.ip, compared with networks (fd.net = \"10.0.0.0/8\")", FdAnyIp},
    {"fd.snet", FieldType::kIpNet, "fd.sip, compared with networks", FdSideIp<&NetSides::server>},
    {"fd.cnet", FieldType::kIpNet, "fd.cip, compared with networks", FdSideIp<&NetSides::client>},
    {"fd.rnet", FieldType::kIpNet, "fd.rip, compared with networks", FdSideIp<&NetSides::remote>},
    {"fd.lnet", FieldType::kIpNet, "fd.lip, compared with networks", FdSideIp<&NetSides::local>},
    {"fd.sockfamily", FieldType::kString, "network events: \"ip\" or \"unix\"", FdSockFamily},
    {"fd.is_server", FieldType::kBool,
     "network events: true for accept, accept4, bind and listen, false for connect", FdIsServer},
    {"fd.write_kind", FieldType::kString,
     "file events: fanotify's kind, close_write, modify, create, attrib, delete or rename "
     "(evt.type names it as a syscall: openat, renameat2, unlinkat, attrib)",
     FdWriteKind},
};

}  // namespace

std::span<const FieldInfo> FdFields() { return kFdFields; }
std::span<const FieldInfo> FsPathFields() { return kFsPathFields; }

}  // namespace driftwatch
