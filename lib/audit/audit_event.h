// Stage 2b of the audit data flow: the records of one audit event (same timestamp and
// serial) folded, as they arrive, into the event model (proto/driftwatch/v1/event.proto).
//
// Records are folded one by one instead of being kept, so an in-flight event costs its
// decoded fields only, and records of syscalls we do not model are skipped at once.
// Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/event/argv_caps.h"
#include "lib/audit/audit_record.h"
#include "lib/base/diagnostics.h"

namespace driftwatch {

// What a syscall number means to driftwatch, per audit arch.
enum class SyscallKind {
  kOther, kExecve, kExecveat, kChmod, kFchmod, kFchmodat,
  kConnect, kAccept, kAccept4, kBind, kListen,
  kSocketcall,  // i386, ppc, s390: the call is in a0 (resolved to one of the above or kOther)
};
SyscallKind ClassifySyscall(uint32_t arch, uint32_t nr);
const char* ArchName(uint32_t arch);  // "x86_64", "i386", ... or nullptr
const char* SyscallKindName(SyscallKind k);

class AuditEventBuilder {
 public:
  AuditEventBuilder(uint64_t sec, uint32_t msec, uint64_t serial, const ArgvCaps& caps = {})
      : sec_(sec), msec_(msec), serial_(serial), argv_budget_(caps) {}

  // Starts over as a new builder would, keeping only the argv vectors' capacity (the
  // reassembler reuses builders: one allocation less per event, not one more state kept).
  void Reset(uint64_t sec, uint32_t msec, uint64_t serial, const ArgvCaps& caps);

  // Folds one record of this event. Problems in it are reported to `diag`.
  void Add(const AuditRecord& r, Diagnostics* diag);

  // True when the event is known not to be one we model: its later records are skipped.
  bool ignored() const { return kind_ == SyscallKind::kOther && have_syscall_; }

  // Builds the event. False when the records are not an exec or chmod event.
  bool Finish(v1::Event* out, Diagnostics* diag);

  // Bytes this event holds while in flight, about (its decoded fields and argv).
  size_t footprint() const;

 private:
  void AddSyscall(const AuditRecord& r, Diagnostics* diag);
  void AddExecve(const AuditRecord& r, Diagnostics* diag);
  void AddPath(const AuditRecord& r, Diagnostics* diag);
  void AddSockaddr(const AuditRecord& r, Diagnostics* diag);
  bool IsNetwork() const;
  enum class ArgFate { kKept, kCapped, kIgnored };
  ArgFate SetArg(size_t index, std::string&& value, const AuditRecord& r, Diagnostics* diag);
  // exe_file and is_exe_from_memfd (lib/event/exe_file.h), once argv is in `e`.
  void FinishExeFile(v1::ProcessExec* e) const;
  std::string NamedFile() const;  // PATH item 0 as the kernel resolved it

  uint64_t sec_;
  uint32_t msec_;
  uint64_t serial_;

  // SYSCALL record.
  bool have_syscall_ = false;
  SyscallKind kind_ = SyscallKind::kOther;
  uint32_t arch_ = 0;
  bool success_ = false;
  int64_t exit_ = 0;
  uint64_t a0_ = 0, a1_ = 0, a2_ = 0;
  uint64_t pid_ = 0, ppid_ = 0, uid_ = 0, euid_ = 0, gid_ = 0, egid_ = 0;
  uint64_t auid_ = 4294967295u, ses_ = 4294967295u;
  std::string tty_, comm_, exe_, user_name_, login_name_, group_name_, node_;
  const std::string* source_ = nullptr;  // where the SYSCALL record was, for diagnostics
  uint64_t line_ = 0;

  // EXECVE records: argv by index; split arguments arrive as aN_len then aN[i] chunks. Only
  // what argv_budget_ allows is kept, as it arrives: args_ holds the arguments before
  // first_capped_, the first one the caps left out whole.
  bool have_execve_ = false;
  uint64_t argc_ = 0;
  std::vector<std::string> args_;
  std::vector<bool> arg_present_;
  uint64_t max_arg_index_ = 0;  // highest index that arrived, kept or not
  bool any_arg_ = false;
  uint64_t first_capped_ = UINT64_MAX;
  ArgvBudget argv_budget_;
  uint64_t split_index_ = UINT64_MAX;  // argument being assembled from chunks
  ArgFate split_fate_ = ArgFate::kIgnored;
  uint64_t split_len_ = 0;
  uint64_t split_next_chunk_ = 0;
  uint64_t split_encoded_ = 0;  // encoded bytes received: _len counts hex digits when hex

  // CWD, PATH, PROCTITLE.
  std::string cwd_;
  bool have_path0_ = false;
  std::string path0_name_, path1_name_;
  uint64_t path0_inode_ = 0;
  uint32_t path0_major_ = 0, path0_minor_ = 0, path0_mode_ = 0, path0_ouid_ = 0;
  std::string proctitle_;

  // SOCKADDR: the address connect, bind or accept named (saddr=, decoded).
  bool via_socketcall_ = false;  // the call came through socketcall: a0 is not the socket
  bool have_sockaddr_ = false;
  uint32_t family_ = 0;
  std::string address_;    // 4 or 16 raw bytes
  uint32_t port_ = 0;
  std::string unix_path_;
};

}  // namespace driftwatch
