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
    {Kind::kPrevented, "prevented", v1::Event::kPrevented},
    {Kind::kNetwork, "network", v1::Event::kNetwork},
    {Kind::kRead, "read", v1::Event::kRead},
};
constexpr Kind kAll[] = {Kind::kExec,   Kind::kChmod,     Kind::kWrite,   Kind::kContainer,
                         Kind::kStatus, Kind::kPrevented, Kind::kNetwork, Kind::kRead};

const KindRow* RowOf(Kind k) {
  for (const KindRow& r : kKinds) {
    if (r.kind == k) return &r;
  }
  return nullptr;
}

}  // namespace

std::span<const Kind> AllKinds() { return kAll; }

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

std::string_view FileEventType(std::string_view kind) {
  if (kind == "close_write" || kind == "modify" || kind == "create") return "openat";
  if (kind == "rename") return "renameat2";
  if (kind == "delete") return "unlinkat";
  return kind;  // "attrib": driftwatch's own (a chmod is audit's)
}

std::string_view EventType(const v1::Event& ev) {
  switch (KindOf(ev)) {
    case Kind::kExec: return ev.exec().syscall();
    case Kind::kChmod: return ev.chmod().syscall();
    case Kind::kWrite: return FileEventType(ev.write().kind());
    case Kind::kContainer: return "container";
    case Kind::kStatus: return "sensor_status";
    case Kind::kPrevented: return "exec_prevented";
    case Kind::kNetwork: return ev.network().syscall();
    case Kind::kRead: return "openat";
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
    case Kind::kNetwork: {
      const v1::NetworkActivity& n = ev.network();
      return ResultView{n.success(), n.exit(), n.errno_name()};
    }
    case Kind::kWrite:  // fanotify reports finished operations
    case Kind::kRead: return ResultView{true, 0, {}};
    case Kind::kPrevented:
    case Kind::kContainer:
    case Kind::kStatus:
    case Kind::kNone: break;
  }
  return std::nullopt;
}


std::string_view ProcessNameOf(const ProcessView& p) {
  return p.exec != nullptr ? ProcessName(*p.exec) : p.comm;
}

bool SetParentName(v1::Event* ev, const std::string& name) {
  switch (KindOf(*ev)) {
    case Kind::kExec: ev->mutable_exec()->set_parent_name(name); return true;
    case Kind::kChmod: ev->mutable_chmod()->set_parent_name(name); return true;
    case Kind::kNetwork: ev->mutable_network()->set_parent_name(name); return true;
    case Kind::kWrite:
    case Kind::kRead:
    case Kind::kPrevented:
    case Kind::kContainer:
    case Kind::kStatus:
    case Kind::kNone: break;
  }
  return false;
}


}  // namespace driftwatch
