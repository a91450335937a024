// event_view: the one place that knows which kinds of event exist (the body of
// v1::Event) and where each kind keeps its process, its file and its syscall result.
// Every stage that only asks "which kind is this" or "where is its pid, its path" asks
// here instead of branching on the oneof: a new kind is added here (and in the registry
// of the fields it prints), not in every reader.
//
// Views hold string_views into the event and copies of its integers: valid while the event
// lives and is not modified. Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "driftwatch/v1/event.pb.h"

namespace driftwatch {

// The kinds of event, as the CLI (`events --kind`), the store and metrics name them.
enum class Kind : uint8_t {
  kNone, kExec, kChmod, kWrite, kContainer, kStatus, kPrevented, kNetwork, kRead
};

// Every kind but kNone, in the order of the proto's oneof.
std::span<const Kind> AllKinds();

Kind KindOf(const v1::Event& ev);  // inline below

// "exec", "chmod", "write", "container", "status", "prevented", "network", "read"; "" for
// kNone.
const char* KindName(Kind k);

// The kind of a name KindName gives; nullopt for any other text ("" included).
std::optional<Kind> ParseKind(std::string_view name);

// "exec, chmod, write, container, status, prevented, network, read": for error messages.
std::string KindNames();

// The body's field number in v1::Event (10 exec ... 17 read; 0 for kNone): the store's
// kind column.
int KindFieldNumber(Kind k);
Kind KindOfFieldNumber(int number);  // inline below

// A set of kinds, e.g. the kinds whose event JSON prints a field.
class KindSet {
 public:
  constexpr KindSet() = default;
  constexpr KindSet(std::initializer_list<Kind> kinds) {
    for (Kind k : kinds) bits_ |= Bit(k);
  }
  constexpr bool Has(Kind k) const { return (bits_ & Bit(k)) != 0; }
  constexpr bool empty() const { return bits_ == 0; }

 private:
  static constexpr uint16_t Bit(Kind k) {
    return static_cast<uint16_t>(1u << static_cast<int>(k));
  }
  uint16_t bits_ = 0;
};

// evt.type: the syscall (exec, chmod, network), the file event's (FileEventType), "container",
// "sensor_status", "exec_prevented"; "" for kNone.
std::string_view EventType(const v1::Event& ev);

// A file event's evt.type, named as the syscall Falco would have seen do it: content
// written (close_write, modify, create) "openat" (opened for writing), rename "renameat2",
// delete "unlinkat"; attrib stays "attrib" (driftwatch's own: a chmod comes from audit).
// Other text is returned as it is.
std::string_view FileEventType(std::string_view kind);

// The syscall's outcome. Exec and chmod carry one; a file write is a finished operation
// (success, exit 0); other kinds have none.
struct ResultView {
  bool success = false;
  int32_t exit = 0;             // syscall return value; -errno on failure
  std::string_view errno_name;  // "EACCES", ...; empty on success or when the log gave none
};
std::optional<ResultView> ResultOf(const v1::Event& ev);

// The process behind an event: exec and chmod say most of it, a file write its pid (0: the
// kernel did not say), comm and exe. Members a kind does not carry are left at their zero
// values; `has` says which of the optional groups the kind carries.
struct ProcessView {
  enum Has : uint16_t {
    kPid = 1 << 6,         // pid (a file write's is 0 when the kernel did not say)
    kPpid = 1 << 0,        // ppid
    kIds = 1 << 1,         // uid, euid, auid
    kGid = 1 << 2,         // gid
    kCwd = 1 << 3,         // cwd
    kTerminal = 1 << 4,    // tty, session
    kParentName = 1 << 5,  // parent_name
  };
  uint16_t has = 0;
  bool Carries(Has h) const { return (has & h) != 0; }

  uint32_t pid = 0;
  uint32_t ppid = 0;
  uint32_t uid = 0;
  uint32_t euid = 0;
  uint32_t gid = 0;
  uint32_t auid = 4294967295u;     // loginuid; 4294967295 unset
  uint32_t session = 4294967295u;  // 4294967295 unset
  std::string_view comm;           // the task's comm
  std::string_view exe;            // the executable's path
  std::string_view cwd;
  std::string_view tty;            // "(none)" when none
  std::string_view parent_name;    // comm of the parent, when known
  const v1::ProcessExec* exec = nullptr;  // the exec's own body: argv, exe_file, ...
};
// nullopt for kinds without a process (container, status, kNone).
std::optional<ProcessView> ProcessOf(const v1::Event& ev);  // inline below

// Falco's proc.name: ProcessName (lib/event/event_json.h) for an exec, else comm.
std::string_view ProcessNameOf(const ProcessView& p);

// Sets the process's parent_name where its kind carries one (ProcessView::kParentName);
// false (nothing changed) for the others.
bool SetParentName(v1::Event* ev, const std::string& name);

// The file an event touched: a file write's file, a chmod's, a sensitive read's. An exec's executable is its
// process's (ProcessView::exe, ProcessView::exec).
struct FileView {
  std::string_view path;  // inside the container; empty for fchmod (only an fd is known)
  uint64_t inode = 0;     // 0: unknown
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  uint32_t mode = 0;      // write, prevented: st_mode; chmod: the requested permission bits
  uint64_t size = 0;             // write, prevented
  std::string_view sha256;       // write, prevented: raw bytes; empty when not hashed
  std::string_view upper_path;   // write, prevented: the file on the host, when known
  const v1::FileWrite* write = nullptr;  // the write's own body: kind, old path, ...
  const v1::Chmod* chmod = nullptr;      // the chmod's own body: old mode, adds_exec
};
// nullopt for kinds without a file (exec, container, status, kNone). A prevented exec's
// file is the one it was denied.
std::optional<FileView> FileOf(const v1::Event& ev);  // inline below

// Inline: every field extractor asks, once per event and field, and reads one or two
// members of the view; the compiler drops the loads of the others. KindOf is a switch, not
// a walk of the table of kinds in event_view.cc, for the same reason.
inline Kind KindOfFieldNumber(int number) {
  switch (number) {
    case v1::Event::kExec: return Kind::kExec;
    case v1::Event::kChmod: return Kind::kChmod;
    case v1::Event::kWrite: return Kind::kWrite;
    case v1::Event::kContainer: return Kind::kContainer;
    case v1::Event::kStatus: return Kind::kStatus;
    case v1::Event::kPrevented: return Kind::kPrevented;
    case v1::Event::kNetwork: return Kind::kNetwork;
    case v1::Event::kRead: return Kind::kRead;
    default: return Kind::kNone;
  }
}

inline Kind KindOf(const v1::Event& ev) { return KindOfFieldNumber(ev.body_case()); }

// The process fields an audit syscall record gives (exec, chmod and network bodies share them).
template <typename Body>
inline void CopyAuditProcess(const Body& b, ProcessView* p) {
  p->pid = b.pid();
  p->ppid = b.ppid();
  p->uid = b.uid();
  p->euid = b.euid();
  p->auid = b.auid();
  p->session = b.session();
  p->comm = b.comm();
  p->exe = b.exe();
  p->cwd = b.cwd();
  p->tty = b.tty();
  p->parent_name = b.parent_name();
}

inline std::optional<ProcessView> ProcessOf(const v1::Event& ev) {
  ProcessView p;
  using H = ProcessView;
  switch (KindOf(ev)) {
    case Kind::kExec: {
      const v1::ProcessExec& x = ev.exec();
      p.has = H::kPid | H::kPpid | H::kIds | H::kGid | H::kCwd | H::kTerminal | H::kParentName;
      CopyAuditProcess(x, &p);
      p.gid = x.gid();
      p.exec = &x;
      return p;
    }
    case Kind::kChmod: {
      const v1::Chmod& c = ev.chmod();
      p.has = H::kPid | H::kPpid | H::kIds | H::kCwd | H::kTerminal | H::kParentName;
      CopyAuditProcess(c, &p);
      return p;
    }
    case Kind::kNetwork: {
      const v1::NetworkActivity& n = ev.network();
      p.has = H::kPid | H::kPpid | H::kIds | H::kCwd | H::kTerminal | H::kParentName;
      CopyAuditProcess(n, &p);
      return p;
    }
    case Kind::kWrite: {
      const v1::FileWrite& w = ev.write();
      if (w.pid() != 0) p.has = H::kPid;
      p.pid = w.pid();
      p.comm = w.comm();
      p.exe = w.exe();
      return p;
    }
    case Kind::kRead: {
      const v1::FileRead& r = ev.read();
      if (r.pid() != 0) p.has = H::kPid;
      p.pid = r.pid();
      p.comm = r.comm();
      p.exe = r.exe();
      return p;
    }
    case Kind::kPrevented: {
      const v1::ExecPrevented& x = ev.prevented();
      p.has = H::kPid;
      p.pid = x.pid();
      p.comm = x.comm();
      p.exe = x.exe();
      return p;
    }
    case Kind::kContainer:
    case Kind::kStatus:
    case Kind::kNone: break;
  }
  return std::nullopt;
}

inline std::optional<FileView> FileOf(const v1::Event& ev) {
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
      f.size = w.size();
      f.sha256 = w.sha256();
      f.upper_path = w.upper_path();
      f.write = &w;
      return f;
    }
    case Kind::kPrevented: {
      const v1::ExecPrevented& x = ev.prevented();
      f.path = x.path();
      f.inode = x.inode();
      f.dev_major = x.dev_major();
      f.dev_minor = x.dev_minor();
      f.mode = x.mode();
      f.size = x.size();
      f.sha256 = x.sha256();
      f.upper_path = x.upper_path();
      return f;
    }
    case Kind::kRead: {
      const v1::FileRead& r = ev.read();
      f.path = r.path();
      f.inode = r.inode();
      f.dev_major = r.dev_major();
      f.dev_minor = r.dev_minor();
      return f;
    }
    case Kind::kExec:
    case Kind::kNetwork:
    case Kind::kContainer:
    case Kind::kStatus:
    case Kind::kNone: break;
  }
  return std::nullopt;
}

}  // namespace driftwatch
