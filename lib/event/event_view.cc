#include "lib/event/event_view.h"

#include "lib/event/event_json.h"

namespace driftwatch {
namespace {

// One row per kind: its name and its field number in the proto's oneof.
struct KindRow {
  Kind kind;
  const char* name;
  v1::Event::BodyCase body;
};
constexpr KindRow kKinds[] = {
    {Kind::kExec, "exec", v1::Event::kExec},
    {Kind::kChmod, "chmod", v1::Event::kChmod},
    {Kind::kWrite, "write", v1::Event::kWrite},
    {Kind::kContainer, "container", v1::Event::kContainer},
    {Kind::kStatus, "status", v1::Event::kStatus},
};
constexpr Kind kAll[] = {Kind::kExec, Kind::kChmod, Kind::kWrite, Kind::kContainer,
                         Kind::kStatus};

const KindRow* RowOf(Kind k) {
  for (const KindRow& r : kKinds) {
    if (r.kind == k) return &r;
  }
  return nullptr;
}

}  // namespace

std::span<const Kind> AllKinds() { return kAll; }

Kind KindOf(const v1::Event& ev) { return KindOfFieldNumber(ev.body_case()); }

const char* KindName(Kind k) {
  const KindRow* r = RowOf(k);
  return r ? r->name : "";
}

std::optional<Kind> ParseKind(std::string_view name) {
  for (const KindRow& r : kKinds) {
    if (name == r.name) return r.kind;
  }
  return std::nullopt;
}

std::string KindNames() {
  std::string s;
  for (const KindRow& r : kKinds) {
    if (!s.empty()) s += ", ";
    s += r.name;
  }
  return s;
}

int KindFieldNumber(Kind k) {
  const KindRow* r = RowOf(k);
  return r ? static_cast<int>(r->body) : 0;
}

// A switch, not the table: every field extractor asks, once per event and field.
Kind KindOfFieldNumber(int number) {
  switch (number) {
    case v1::Event::kExec: return Kind::kExec;
    case v1::Event::kChmod: return Kind::kChmod;
    case v1::Event::kWrite: return Kind::kWrite;
    case v1::Event::kContainer: return Kind::kContainer;
    case v1::Event::kStatus: return Kind::kStatus;
    default: return Kind::kNone;
  }
}

std::string_view EventType(const v1::Event& ev) {
  switch (KindOf(ev)) {
    case Kind::kExec: return ev.exec().syscall();
    case Kind::kChmod: return ev.chmod().syscall();
    case Kind::kWrite: return ev.write().kind();
    case Kind::kContainer: return "container";
    case Kind::kStatus: return "sensor_status";
    case Kind::kNone: break;
  }
  return {};
}

std::optional<ResultView> ResultOf(const v1::Event& ev) {
  switch (KindOf(ev)) {
    case Kind::kExec: {
      const v1::ProcessExec& x = ev.exec();
      return ResultView{x.success(), x.exit(), x.errno_name()};
    }
    case Kind::kChmod: {
      const v1::Chmod& c = ev.chmod();
      return ResultView{c.success(), c.exit(), c.errno_name()};
    }
    case Kind::kWrite: return ResultView{true, 0, {}};  // fanotify reports finished operations
    case Kind::kContainer:
    case Kind::kStatus:
    case Kind::kNone: break;
  }
  return std::nullopt;
}

std::optional<ProcessView> ProcessOf(const v1::Event& ev) {
  ProcessView p;
  using H = ProcessView;
  switch (KindOf(ev)) {
    case Kind::kExec: {
      const v1::ProcessExec& x = ev.exec();
      p.has = H::kPid | H::kPpid | H::kIds | H::kGid | H::kCwd | H::kTerminal | H::kParentName;
      p.pid = x.pid();
      p.ppid = x.ppid();
      p.uid = x.uid();
      p.euid = x.euid();
      p.gid = x.gid();
      p.auid = x.auid();
      p.session = x.session();
      p.comm = x.comm();
      p.name = ProcessName(x);
      p.exe = x.exe();
      p.cwd = x.cwd();
      p.tty = x.tty();
      p.parent_name = x.parent_name();
      p.exec = &x;
      return p;
    }
    case Kind::kChmod: {
      const v1::Chmod& c = ev.chmod();
      p.has = H::kPid | H::kPpid | H::kIds | H::kCwd | H::kTerminal | H::kParentName;
      p.pid = c.pid();
      p.ppid = c.ppid();
      p.uid = c.uid();
      p.euid = c.euid();
      p.auid = c.auid();
      p.session = c.session();
      p.comm = c.comm();
      p.name = p.comm;
      p.exe = c.exe();
      p.cwd = c.cwd();
      p.tty = c.tty();
      p.parent_name = c.parent_name();
      return p;
    }
    case Kind::kWrite: {
      const v1::FileWrite& w = ev.write();
      if (w.pid() != 0) p.has = H::kPid;
      p.pid = w.pid();
      p.comm = w.comm();
      p.name = p.comm;
      p.exe = w.exe();
      return p;
    }
    case Kind::kContainer:
    case Kind::kStatus:
    case Kind::kNone: break;
  }
  return std::nullopt;
}

bool SetParentName(v1::Event* ev, const std::string& name) {
  switch (KindOf(*ev)) {
    case Kind::kExec: ev->mutable_exec()->set_parent_name(name); return true;
    case Kind::kChmod: ev->mutable_chmod()->set_parent_name(name); return true;
    case Kind::kWrite:
    case Kind::kContainer:
    case Kind::kStatus:
    case Kind::kNone: break;
  }
  return false;
}

std::optional<FileView> FileOf(const v1::Event& ev) {
  FileView f;
  switch (KindOf(ev)) {
    case Kind::kChmod: {
      const v1::Chmod& c = ev.chmod();
      f.path = c.path();
      f.inode = c.inode();
      f.dev_major = c.dev_major();
      f.dev_minor = c.dev_minor();
      f.mode = c.new_mode();
      f.chmod = &c;
      return f;
    }
    case Kind::kWrite: {
      const v1::FileWrite& w = ev.write();
      f.path = w.path();
      f.inode = w.inode();
      f.dev_major = w.dev_major();
      f.dev_minor = w.dev_minor();
      f.mode = w.mode();
      f.write = &w;
      return f;
    }
    case Kind::kExec:
    case Kind::kContainer:
    case Kind::kStatus:
    case Kind::kNone: break;
  }
  return std::nullopt;
}

}  // namespace driftwatch
