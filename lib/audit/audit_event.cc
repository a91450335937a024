#include "lib/audit/audit_event.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "lib/event/event_json.h"
#include "lib/event/exe_file.h"

namespace driftwatch {
namespace {

// Audit arch values (AUDIT_ARCH_* in linux/audit.h).
constexpr uint32_t kArchX86_64 = 0xc000003e;
constexpr uint32_t kArchI386 = 0x40000003;
constexpr uint32_t kArchAarch64 = 0xc00000b7;
constexpr uint32_t kArchArm = 0x40000028;
constexpr uint32_t kArchPpc64le = 0xc0000015;
constexpr uint32_t kArchRiscv64 = 0xc00000f3;
constexpr uint32_t kArchS390x = 0x80000016;

// Upper bound on argc we allocate for: far above what ARG_MAX allows, and it keeps a
// corrupt argc= from asking for gigabytes.
constexpr uint64_t kMaxArgc = 1u << 20;

std::string FormatWhat(const char* what, std::string_view detail) {
  std::string s(what);
  s.append(detail);
  return s;
}

}  // namespace

const char* ArchName(uint32_t arch) {
  switch (arch) {
    case kArchX86_64: return "x86_64";
    case kArchI386: return "i386";
    case kArchAarch64: return "aarch64";
    case kArchArm: return "arm";
    case kArchPpc64le: return "ppc64le";
    case kArchRiscv64: return "riscv64";
    case kArchS390x: return "s390x";
  }
  return nullptr;
}

SyscallKind ClassifySyscall(uint32_t arch, uint32_t nr) {
  constexpr uint32_t kNone = UINT32_MAX;
  struct Table {
    uint32_t execve, execveat, chmod, fchmod, fchmodat;
    uint32_t connect, accept, accept4, bind, listen, socketcall;
  };
  Table t;
  switch (arch) {
    case kArchX86_64: t = {59, 322, 90, 91, 268, 42, 43, 288, 49, 50, kNone}; break;
    case kArchI386: t = {11, 358, 15, 94, 306, 362, kNone, 364, 361, 363, 102}; break;
    case kArchArm: t = {11, 387, 15, 94, 333, 283, 285, 366, 282, 284, kNone}; break;
    case kArchPpc64le: t = {11, 362, 15, 94, 297, 328, 330, 344, 327, 329, 102}; break;
    case kArchS390x: t = {11, 354, 15, 94, 299, 362, kNone, 364, 361, 363, 102}; break;
    case kArchAarch64:  // the generic table: no chmod
    case kArchRiscv64: t = {221, 281, kNone, 52, 53, 203, 202, 242, 200, 201, kNone}; break;
    default: return SyscallKind::kOther;
  }
  if (nr == t.execve) return SyscallKind::kExecve;
  if (nr == t.execveat) return SyscallKind::kExecveat;
  if (nr == t.chmod) return SyscallKind::kChmod;
  if (nr == t.fchmod) return SyscallKind::kFchmod;
  if (nr == t.fchmodat || nr == 452) return SyscallKind::kFchmodat;  // 452: fchmodat2
  if (nr == t.connect) return SyscallKind::kConnect;
  if (nr == t.accept) return SyscallKind::kAccept;
  if (nr == t.accept4) return SyscallKind::kAccept4;
  if (nr == t.bind) return SyscallKind::kBind;
  if (nr == t.listen) return SyscallKind::kListen;
  if (nr == t.socketcall) return SyscallKind::kSocketcall;
  return SyscallKind::kOther;
}

// socketcall(2)'s call numbers (linux/net.h) for the calls driftwatch models.
static SyscallKind SocketcallKind(uint64_t call) {
  switch (call) {
    case 2: return SyscallKind::kBind;
    case 3: return SyscallKind::kConnect;
    case 4: return SyscallKind::kListen;
    case 5: return SyscallKind::kAccept;
    case 18: return SyscallKind::kAccept4;
  }
  return SyscallKind::kOther;
}

const char* SyscallKindName(SyscallKind k) {
  switch (k) {
    case SyscallKind::kExecve: return "execve";
    case SyscallKind::kExecveat: return "execveat";
    case SyscallKind::kChmod: return "chmod";
    case SyscallKind::kFchmod: return "fchmod";
    case SyscallKind::kFchmodat: return "fchmodat";
    case SyscallKind::kConnect: return "connect";
    case SyscallKind::kAccept: return "accept";
    case SyscallKind::kAccept4: return "accept4";
    case SyscallKind::kBind: return "bind";
    case SyscallKind::kListen: return "listen";
    case SyscallKind::kSocketcall:
    case SyscallKind::kOther: break;
  }
  return "other";
}

void AuditEventBuilder::Reset(uint64_t sec, uint32_t msec, uint64_t serial,
                              const ArgvCaps& caps) {
  std::vector<std::string> args = std::move(args_);
  std::vector<bool> present = std::move(arg_present_);
  args.clear();
  present.clear();
  *this = AuditEventBuilder(sec, msec, serial, caps);
  args_ = std::move(args);
  arg_present_ = std::move(present);
}

void AuditEventBuilder::Add(const AuditRecord& r, Diagnostics* diag) {
  if (ignored()) return;
  switch (r.type) {
    case kAuditSyscall: AddSyscall(r, diag); break;
    case kAuditExecve: AddExecve(r, diag); break;
    case kAuditPath: AddPath(r, diag); break;
    case kAuditSockaddr: AddSockaddr(r, diag); break;
    case kAuditCwd: {
      std::string_view v;
      if (!FindField(r.body, "cwd", &v) || !DecodeAuditString(v, &cwd_)) {
        diag->Report(r.source, r.line, "CWD record without a readable cwd=");
      }
      break;
    }
    case kAuditProctitle: {
      // Only an exec without its EXECVE record reads it (EXECVE comes first).
      if (have_execve_) break;
      std::string_view v;
      if (!FindField(r.body, "proctitle", &v) || !DecodeAuditString(v, &proctitle_)) {
        diag->Report(r.source, r.line, "PROCTITLE record without a readable proctitle=");
      }
      break;
    }
    default: break;
  }
}

void AuditEventBuilder::AddSyscall(const AuditRecord& r, Diagnostics* diag) {
  if (have_syscall_) {
    diag->Report(r.source, r.line, "second SYSCALL record in one event (ignored)");
    return;
  }
  have_syscall_ = true;
  node_.assign(r.node);
  source_ = r.source;
  line_ = r.line;
  FieldCursor c(r.body);
  std::string_view k, v;
  uint64_t syscall = UINT64_MAX, arch = 0;
  bool have_arch = false, have_pid = false;
  // The first pass finds arch and syscall: if this is not a syscall we model, the rest
  // of the record is not worth decoding.
  while (c.Next(&k, &v)) {
    if (k == "arch") {
      have_arch = ParseHexU64(v, &arch);
    } else if (k == "syscall") {
      ParseU64(v, &syscall);
      break;
    }
  }
  if (!have_arch || syscall == UINT64_MAX) {
    diag->Report(r.source, r.line, "SYSCALL record without arch= or syscall=");
    return;  // kind_ stays kOther: the event is ignored
  }
  arch_ = static_cast<uint32_t>(arch);
  kind_ = ClassifySyscall(arch_, static_cast<uint32_t>(syscall));
  if (kind_ == SyscallKind::kOther) return;
  while (c.Next(&k, &v)) {
    bool ok = true;
    switch (k.size() > 0 ? k[0] : 0) {
      case 'a':
        if (k == "a0") ok = ParseHexU64(v, &a0_);
        else if (k == "a1") ok = ParseHexU64(v, &a1_);
        else if (k == "a2") ok = ParseHexU64(v, &a2_);
        else if (k == "auid") ok = ParseU64(v, &auid_);
        break;
      case 'c':
        if (k == "comm") ok = DecodeAuditString(v, &comm_);
        break;
      case 'e':
        if (k == "exit") ok = ParseI64(v, &exit_);
        else if (k == "euid") ok = ParseU64(v, &euid_);
        else if (k == "egid") ok = ParseU64(v, &egid_);
        else if (k == "exe") ok = DecodeAuditString(v, &exe_);
        break;
      case 'g':
        if (k == "gid") ok = ParseU64(v, &gid_);
        break;
      case 'p':
        if (k == "pid") ok = have_pid = ParseU64(v, &pid_);
        else if (k == "ppid") ok = ParseU64(v, &ppid_);
        break;
      case 's':
        if (k == "success") success_ = (v == "yes");
        else if (k == "ses") ok = ParseU64(v, &ses_);
        break;
      case 't':
        if (k == "tty") tty_.assign(v);
        break;
      case 'u':
        if (k == "uid") ok = ParseU64(v, &uid_);
        break;
    }
    if (!ok) {
      diag->Report(r.source, r.line,
                   FormatWhat("SYSCALL field with a bad value: ", std::string(k)));
    }
  }
  if (c.error() != nullptr) diag->Report(r.source, r.line, c.error());
  if (!have_pid) diag->Report(r.source, r.line, "SYSCALL record without pid=");
  if (kind_ == SyscallKind::kSocketcall) {
    via_socketcall_ = true;
    kind_ = SocketcallKind(a0_);  // kOther: ignored
  }
  if (!r.enriched.empty()) {  // ENRICHED log: UID="root" names the user, AUID= and GID= too
    std::string_view v;
    if (FindField(r.enriched, "UID", &v)) DecodeAuditString(v, &user_name_);
    // auditd writes AUID="unset" for the unset loginuid: no name.
    if (FindField(r.enriched, "AUID", &v)) DecodeAuditString(v, &login_name_);
    if (login_name_ == "unset") login_name_.clear();
    if (FindField(r.enriched, "GID", &v)) DecodeAuditString(v, &group_name_);
  }
}

AuditEventBuilder::ArgFate AuditEventBuilder::SetArg(size_t index, std::string&& value,
                                                     const AuditRecord& r, Diagnostics* diag) {
  if (index >= kMaxArgc || (have_execve_ && index >= argc_)) {
    diag->Report(r.source, r.line, "EXECVE argument index beyond argc (ignored)");
    return ArgFate::kIgnored;
  }
  if (!any_arg_ || index > max_arg_index_) max_arg_index_ = index;
  any_arg_ = true;
  // Past an argument the caps left out, nothing is kept. Every kept argument costs at least
  // its NUL, so no index at or past max_bytes can be kept either: slots up to it would cost
  // more than the caps allow.
  if (index >= first_capped_ || index >= argv_budget_.caps().max_bytes) {
    first_capped_ = std::min<uint64_t>(first_capped_, index);
    argv_budget_.Drop(value.size());
    return ArgFate::kCapped;
  }
  if (index < args_.size() && arg_present_[index]) {
    diag->Report(r.source, r.line, "EXECVE argument given twice (first kept)");
    return ArgFate::kIgnored;
  }
  if (!argv_budget_.StartArg()) {
    first_capped_ = index;
    argv_budget_.Drop(value.size());
    return ArgFate::kCapped;
  }
  if (index >= args_.size()) {
    args_.resize(index + 1);
    arg_present_.resize(index + 1, false);
  }
  const size_t keep = argv_budget_.Take(0, value.size());
  if (keep < value.size()) {
    value.resize(keep);
    value.shrink_to_fit();  // what a long record decoded to is not held
  }
  args_[index] = std::move(value);
  arg_present_[index] = true;
  return ArgFate::kKept;
}

void AuditEventBuilder::AddExecve(const AuditRecord& r, Diagnostics* diag) {
  FieldCursor c(r.body);
  std::string_view k, v;
  std::string decoded;
  while (c.Next(&k, &v)) {
    if (k == "argc") {
      uint64_t n = 0;
      if (!ParseU64(v, &n) || n > kMaxArgc) {
        diag->Report(r.source, r.line, "EXECVE argc= is not a sane number");
        continue;
      }
      if (!have_execve_) {
        have_execve_ = true;
        argc_ = n;
        // One allocation for the usual short argv, not one per argument as they arrive.
        const size_t expect = static_cast<size_t>(std::min<uint64_t>(n, 32));
        args_.reserve(expect);
        arg_present_.reserve(expect);
      }
      continue;
    }
    if (k.size() < 2 || k[0] != 'a' || k[1] < '0' || k[1] > '9') continue;
    // aN, aN_len or aN[i]
    size_t digits = 1;
    while (digits < k.size() && k[digits] >= '0' && k[digits] <= '9') ++digits;
    uint64_t index = 0;
    if (!ParseU64(k.substr(1, digits - 1), &index)) continue;
    std::string_view suffix = k.substr(digits);
    if (suffix.empty()) {
      if (!DecodeAuditString(v, &decoded)) {
        diag->Report(r.source, r.line, FormatWhat("EXECVE bad hex in ", k));
        decoded.assign(v);  // keep the raw text rather than lose the argument
      }
      SetArg(index, std::move(decoded), r, diag);
    } else if (suffix == "_len") {
      uint64_t len = 0;
      if (!ParseU64(v, &len) || len > (64u << 20)) {
        diag->Report(r.source, r.line, FormatWhat("EXECVE bad length in ", k));
        continue;
      }
      split_index_ = index;
      split_len_ = len;
      split_next_chunk_ = 0;
      split_encoded_ = 0;
      split_fate_ = SetArg(index, std::string(), r, diag);
      if (split_fate_ == ArgFate::kKept)
        args_[index].reserve(std::min<uint64_t>(len, argv_budget_.caps().max_arg_bytes));
    } else if (suffix.size() > 2 && suffix.front() == '[' && suffix.back() == ']') {
      uint64_t chunk = 0;
      if (!ParseU64(suffix.substr(1, suffix.size() - 2), &chunk) || index != split_index_ ||
          chunk != split_next_chunk_) {
        diag->Report(r.source, r.line, FormatWhat("EXECVE chunk out of order: ", k));
        continue;
      }
      ++split_next_chunk_;
      bool quoted = !v.empty() && v.front() == '"';
      split_encoded_ += quoted && v.size() >= 2 ? v.size() - 2 : v.size();
      if (!DecodeAuditString(v, &decoded)) {
        diag->Report(r.source, r.line, FormatWhat("EXECVE bad hex in ", k));
        continue;
      }
      if (split_fate_ == ArgFate::kKept) {
        std::string& arg = args_[index];
        arg.append(decoded, 0, argv_budget_.Take(arg.size(), decoded.size()));
      } else if (split_fate_ == ArgFate::kCapped) {
        argv_budget_.Drop(decoded.size());
      }
    }
  }
  if (c.error() != nullptr) diag->Report(r.source, r.line, c.error());
}

bool AuditEventBuilder::IsNetwork() const {
  switch (kind_) {
    case SyscallKind::kConnect:
    case SyscallKind::kAccept:
    case SyscallKind::kAccept4:
    case SyscallKind::kBind:
    case SyscallKind::kListen: return true;
    default: return false;
  }
}

// saddr= is the struct sockaddr as the caller passed it (connect, bind) or as the kernel
// filled it (accept), in hex: the family in host byte order, then the family's fields.
void AuditEventBuilder::AddSockaddr(const AuditRecord& r, Diagnostics* diag) {
  std::string_view v;
  std::string raw;
  if (!FindField(r.body, "saddr", &v) || !HexDecodeAppend(v, &raw) || raw.size() < 2) {
    diag->Report(r.source, r.line, "SOCKADDR record without a readable saddr=");
    return;
  }
  if (have_sockaddr_) return;  // one address per call; a second record adds nothing
  have_sockaddr_ = true;
  const auto* b = reinterpret_cast<const uint8_t*>(raw.data());
  const bool big_endian = arch_ == kArchS390x;
  family_ = big_endian ? (b[0] << 8 | b[1]) : (b[1] << 8 | b[0]);
  auto port = [&] { return static_cast<uint32_t>(b[2] << 8 | b[3]); };  // network order
  switch (family_) {
    case AF_INET:
      if (raw.size() < 8) break;
      port_ = port();
      address_.assign(raw, 4, 4);
      return;
    case AF_INET6:
      if (raw.size() < 24) break;
      port_ = port();
      address_.assign(raw, 8, 16);
      return;
    case AF_UNIX: {
      // A path ends at its NUL; an abstract name (leading NUL) is every byte given.
      std::string_view path(raw.data() + 2, raw.size() - 2);
      if (!path.empty() && path[0] != '\0') path = path.substr(0, path.find('\0'));
      unix_path_.assign(path);
      return;
    }
    default: return;  // another family: only its number is kept
  }
  diag->Report(r.source, r.line, "SOCKADDR record shorter than its family's address");
}

void AuditEventBuilder::AddPath(const AuditRecord& r, Diagnostics* diag) {
  FieldCursor c(r.body);
  std::string_view k, v;
  uint64_t item = UINT64_MAX;
  std::string name;
  uint64_t inode = 0;
  uint32_t major = 0, minor = 0, mode = 0;
  uint64_t ouid = 0;
  while (c.Next(&k, &v)) {
    if (k == "item") {
      ParseU64(v, &item);
    } else if (k == "name") {
      if (!DecodeAuditString(v, &name)) diag->Report(r.source, r.line, "PATH bad hex in name=");
    } else if (k == "inode") {
      ParseU64(v, &inode);
    } else if (k == "dev") {
      size_t colon = v.find(':');
      uint64_t ma = 0, mi = 0;
      if (colon != std::string_view::npos && ParseHexU64(v.substr(0, colon), &ma) &&
          ParseHexU64(v.substr(colon + 1), &mi)) {
        major = static_cast<uint32_t>(ma);
        minor = static_cast<uint32_t>(mi);
      }
    } else if (k == "mode") {
      ParseOctalU32(v, &mode);
    } else if (k == "ouid") {
      ParseU64(v, &ouid);
    }
  }
  if (item == 0) {
    have_path0_ = true;
    path0_name_ = std::move(name);
    path0_inode_ = inode;
    path0_major_ = major;
    path0_minor_ = minor;
    path0_mode_ = mode;
    path0_ouid_ = static_cast<uint32_t>(ouid);
  } else if (item == 1) {
    path1_name_ = std::move(name);
  } else if (item == UINT64_MAX) {
    diag->Report(r.source, r.line, "PATH record without item=");
  }
}

std::string AuditEventBuilder::NamedFile() const {
  // execveat with a directory fd and a relative name (or AT_EMPTY_PATH's ""): not relative
  // to the cwd; the kernel itself names such a file /dev/fd/N[/NAME].
  const bool dirfd = kind_ == SyscallKind::kExecveat &&
                     static_cast<int32_t>(a0_) != AT_FDCWD;
  if (dirfd && (path0_name_.empty() || path0_name_.front() != '/')) {
    std::string s = "/dev/fd/" + std::to_string(static_cast<int32_t>(a0_));
    if (!path0_name_.empty()) s.append("/").append(path0_name_);
    return JoinPath(s, "/");
  }
  return JoinPath(path0_name_, cwd_);
}

void AuditEventBuilder::FinishExeFile(v1::ProcessExec* e) const {
  if (success_) e->set_is_exe_from_memfd(IsMemfdExe(exe_));
  // A #! script (or a binfmt_misc file): PATH item 1 is its interpreter, not the dynamic
  // loader an ELF names. exe= is that interpreter; the file run is item 0.
  if (have_path0_ && !path1_name_.empty() && !IsDynamicLoaderName(Basename(path1_name_))) {
    e->set_exe_file(NamedFile());
    e->set_exe_file_inode(path0_inode_);
    e->set_exe_file_dev_major(path0_major_);
    e->set_exe_file_dev_minor(path0_minor_);
    return;
  }
  // The dynamic loader run as a command: the program it loads is a word of its argv. A
  // name glibc finds by its library path stays as given (the sensor searches for it).
  if (success_ && IsDynamicLoaderName(Basename(exe_))) {
    if (auto prog = ProgramOfLoader(Basename(exe_), e->args())) {
      e->set_exe_file(prog->searched ? prog->name : JoinPath(prog->name, cwd_));
    }
  }
}

size_t AuditEventBuilder::footprint() const {
  return sizeof(*this) + argv_budget_.used() + args_.capacity() * sizeof(std::string) +
         arg_present_.capacity() / 8 + tty_.size() + comm_.size() + exe_.size() +
         user_name_.size() + login_name_.size() + group_name_.size() + node_.size() + cwd_.size() + path0_name_.size() +
         path1_name_.size() + proctitle_.size() + address_.size() + unix_path_.size();
}

namespace {

// Event::Clear() deletes (on an arena: abandons) every message field, proto3's way of
// clearing one, and the strings in them with their buffers. Events are built one after
// another into one scratch event: the messages they keep setting are cleared in place
// instead, so an event of the same kind is built without allocating. Those are the stamp
// (every event here), an exec's body (when this event is an exec) and the id (the
// sensor's output sets one on every event). An id is then present, empty, where Clear()
// would leave none: the same to every reader (seq 0 is no id).
void ClearForRefill(v1::Event* out, bool exec) {
  v1::EventId* id = out->has_id() ? out->unsafe_arena_release_id() : nullptr;
  v1::AuditStamp* stamp = out->has_audit() ? out->unsafe_arena_release_audit() : nullptr;
  v1::ProcessExec* x = exec && out->has_exec() ? out->unsafe_arena_release_exec() : nullptr;
  out->Clear();
  if (id != nullptr) {
    id->Clear();
    out->unsafe_arena_set_allocated_id(id);
  }
  if (stamp != nullptr) {
    stamp->Clear();
    out->unsafe_arena_set_allocated_audit(stamp);
  }
  if (x != nullptr) {
    x->Clear();
    out->unsafe_arena_set_allocated_exec(x);
  }
}

}  // namespace

bool AuditEventBuilder::Finish(v1::Event* out, Diagnostics* diag) {
  if (!have_syscall_ || kind_ == SyscallKind::kOther) return false;
  ClearForRefill(out, kind_ == SyscallKind::kExecve || kind_ == SyscallKind::kExecveat);
  if (!node_.empty()) out->mutable_id()->set_node(node_);
  out->set_time_ns(static_cast<int64_t>(sec_) * 1000000000 + int64_t{msec_} * 1000000);
  auto* stamp = out->mutable_audit();
  stamp->set_sec(sec_);
  stamp->set_msec(msec_);
  stamp->set_serial(serial_);
  const char* errno_name = nullptr;
  if (!success_ && exit_ < 0 && exit_ > -4096) errno_name = strerrorname_np(static_cast<int>(-exit_));
  const char* arch = ArchName(arch_);
  // The syscall and process fields exec and chmod events share (named alike in both).
  auto set_process = [&](auto* m) {
    m->set_syscall(SyscallKindName(kind_));
    m->set_success(success_);
    m->set_exit(static_cast<int32_t>(exit_));
    if (errno_name) m->set_errno_name(errno_name);
    m->set_pid(static_cast<uint32_t>(pid_));
    m->set_ppid(static_cast<uint32_t>(ppid_));
    m->set_uid(static_cast<uint32_t>(uid_));
    m->set_euid(static_cast<uint32_t>(euid_));
    m->set_auid(static_cast<uint32_t>(auid_));
    m->set_session(static_cast<uint32_t>(ses_));
    m->set_tty(tty_);
    m->set_comm(comm_);
    m->set_exe(exe_);
    m->set_cwd(cwd_);
    if (arch) m->set_arch(arch);
  };

  if (kind_ == SyscallKind::kExecve || kind_ == SyscallKind::kExecveat) {
    auto* e = out->mutable_exec();
    set_process(e);
    e->set_gid(static_cast<uint32_t>(gid_));
    e->set_egid(static_cast<uint32_t>(egid_));
    if (!user_name_.empty()) e->set_user_name(user_name_);
    if (!login_name_.empty()) e->set_login_name(login_name_);
    if (!group_name_.empty()) e->set_group_name(group_name_);
    if (have_execve_) {
      e->set_argc(static_cast<uint32_t>(argc_));
      // Arguments arrive in order from the kernel; ones kept out of order past one the caps
      // left out are left out too, so that args stays a prefix of argv.
      const size_t kept = static_cast<size_t>(std::min<uint64_t>(args_.size(), first_capped_));
      bool missing = any_arg_ ? max_arg_index_ + 1 < argc_ : argc_ > 0;
      for (size_t i = 0; i < kept; ++i) {
        if (!arg_present_[i]) missing = true;
        e->add_args(std::move(args_[i]));
      }
      for (size_t i = kept; i < args_.size(); ++i) argv_budget_.Drop(args_[i].size());
      // The kernel's aN_len counts the argument as encoded (hex digits when hex).
      if (split_index_ != UINT64_MAX && split_encoded_ != split_len_) {
        diag->Report(source_, line_, "EXECVE split argument shorter than its _len");
        missing = true;
      }
      e->set_args_truncated(missing);
      if (missing) diag->Report(source_, line_, "EXECVE arguments missing: fewer than argc");
    } else if (success_ && !proctitle_.empty()) {
      // No EXECVE record (lost, or not audited): the new process's proctitle is the
      // best argv there is, NUL-separated and cut at 128 bytes by the kernel.
      size_t start = 0;
      bool room = true;
      while (start <= proctitle_.size()) {
        size_t nul = proctitle_.find('\0', start);
        if (nul == std::string::npos) nul = proctitle_.size();
        const size_t n = nul - start;
        room = room && argv_budget_.StartArg();
        if (room) {
          e->add_args(proctitle_.substr(start, argv_budget_.Take(0, n)));
        } else {
          argv_budget_.Drop(n);
        }
        start = nul + 1;
      }
      e->set_args_truncated(true);
    }
    if (argv_budget_.capped()) {
      e->set_args_capped(true);
      e->set_args_dropped_bytes(argv_budget_.dropped_bytes());
    }
    if (have_path0_) {
      e->set_path(path0_name_);
      e->set_exe_inode(path0_inode_);
      e->set_exe_dev_major(path0_major_);
      e->set_exe_dev_minor(path0_minor_);
      e->set_exe_mode(path0_mode_);
      e->set_exe_ouid(path0_ouid_);
    }
    if (!path1_name_.empty()) e->set_interpreter(path1_name_);
    FinishExeFile(e);
    // runc re-executes itself ("runc init", first through /proc/self/exe, then through
    // execveat of a cloned binary with exe="/") to set up the container: runtime
    // plumbing, not a workload exec.
    if (e->args_size() >= 2 && e->args(1) == "init" && Basename(e->args(0)) == "runc") {
      e->set_runtime_plumbing(true);
    }
    return true;
  }

  if (IsNetwork()) {
    auto* n = out->mutable_network();
    set_process(n);
    // The socket: the first argument of connect, bind and listen, accept's result (a new
    // descriptor); socketcall passes its arguments behind a pointer.
    int64_t fd = -1;
    if (kind_ == SyscallKind::kAccept || kind_ == SyscallKind::kAccept4) {
      if (success_ && exit_ >= 0) fd = exit_;
    } else if (!via_socketcall_ && a0_ <= INT32_MAX) {
      fd = static_cast<int64_t>(a0_);
    }
    n->set_fd(static_cast<int32_t>(fd));
    if (have_sockaddr_) {
      n->set_family(family_);
      n->set_address(address_);
      n->set_port(port_);
      n->set_unix_path(unix_path_);
      n->set_address_is_local(kind_ == SyscallKind::kBind);
    }
    return true;
  }

  auto* c = out->mutable_chmod();
  set_process(c);
  uint32_t new_mode = static_cast<uint32_t>(kind_ == SyscallKind::kFchmodat ? a2_ : a1_) & 07777;
  c->set_new_mode(new_mode);
  if (have_path0_) {
    c->set_path(path0_name_);
    c->set_old_mode(path0_mode_);
    c->set_inode(path0_inode_);
    c->set_dev_major(path0_major_);
    c->set_dev_minor(path0_minor_);
  }
  uint32_t old_exec = have_path0_ ? (path0_mode_ & 0111) : 0;
  c->set_adds_exec((new_mode & 0111 & ~old_exec) != 0);
  return true;
}

}  // namespace driftwatch
