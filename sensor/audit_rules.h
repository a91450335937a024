// Owner mode's hold on the audit subsystem: the sensor registers as the audit daemon,
// sets a backlog that never stalls the host (backlog_wait_time 0 where the kernel allows
// it), installs its rules with libaudit, and gives everything back on Release().
//
// Rules, first to last:
//   never,exit  -F arch=b64|b32 -F pid=<sensor> -S (the syscalls below)   prepended
//   always,exit -F arch=b64|b32 -S execve,execveat
//   always,exit -F arch=b64|b32 -S chmod,fchmod   -F a1&0111   new mode has an exec bit
//   always,exit -F arch=b64|b32 -S fchmodat       -F a2&0111
//   --audit-network connect: always,exit -F arch=b64 -S connect, b32: connect, socketcall
//   --audit-network all: also bind, listen (every result), accept, accept4 (successful
//   ones: a non-blocking server's accept loop ends each round in EAGAIN)
// Only rules this object added are removed; settings are put back as they were found.
//
// Thread-compatible; Release() must run on every exit path (the destructor calls it).
#pragma once

#include <linux/audit.h>

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "sensor/audit_netlink.h"

struct audit_rule_data;

namespace driftwatch::sensor {

// Which socket calls the sensor's rules audit (bench/net_rules_cost.sh for their cost).
enum class AuditNetwork { kOff, kConnect, kAll };

struct OwnerOptions {
  uint32_t backlog_limit = 8192;
  // How long a syscall waits for room when the backlog is full, in the kernel's unit (as
  // auditctl --backlog_wait_time): 0 loses the record (counted by the kernel) rather than
  // stall the host; auditd's choice is to stall (60 s).
  uint32_t backlog_wait_time = 0;
  bool install_rules = true;
  AuditNetwork network = AuditNetwork::kOff;
  // Every rule the sensor installs carries this key. Rules with it that exist at start
  // are an earlier sensor's that did not exit cleanly (kill -9, power cut): removed.
  std::string rule_key = "driftwatch";
  // The audit settings found before the sensor changed them, kept here while it runs, so
  // that a sensor started after a crash puts back the settings the host really had, not
  // the crashed sensor's. Empty: not kept.
  std::string state_file = "/run/driftwatch/audit-state";
};

class AuditOwnership {
 public:
  ~AuditOwnership();
  AuditOwnership(const AuditOwnership&) = delete;
  AuditOwnership& operator=(const AuditOwnership&) = delete;

  // REQUIRES: `nl` was opened in owner mode and outlives this object; no reader runs yet.
  // Fails, changing nothing that it does not put back, when another daemon holds the
  // audit pid or audit is locked (enabled 2).
  static std::expected<std::unique_ptr<AuditOwnership>, std::string> Acquire(
      AuditNetlink* nl, const OwnerOptions& options);

  // Puts back rules and settings. Idempotent. REQUIRES: the reader thread has stopped.
  void Release();

  uint32_t backlog_limit() const { return backlog_limit_; }
  uint32_t backlog_wait_time() const { return backlog_wait_time_; }
  size_t rules_added() const { return added_.size(); }
  // Left behind by an earlier sensor that died: its rules removed, its pid.
  size_t stale_rules_removed() const { return stale_removed_; }
  pid_t recovered_from_pid() const { return recovered_from_; }

 private:
  explicit AuditOwnership(AuditNetlink* nl) : nl_(nl) {}
  std::expected<void, std::string> AddRule(const std::vector<std::string>& fields,
                                           const std::vector<std::string>& syscalls,
                                           int action, bool prepend);

  AuditNetlink* nl_;
  audit_status before_{};
  bool registered_ = false, settings_changed_ = false;
  uint32_t backlog_limit_ = 0, backlog_wait_time_ = 0;
  int rule_fd_ = -1;
  struct Added {
    audit_rule_data* rule;
    int flags;
    int action;
  };
  std::vector<Added> added_;
  size_t stale_removed_ = 0;
  pid_t recovered_from_ = 0;
  std::string state_file_;
};

}  // namespace driftwatch::sensor
