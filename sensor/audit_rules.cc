#include "sensor/audit_rules.h"

#include <libaudit.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace driftwatch::sensor {

AuditOwnership::~AuditOwnership() { Release(); }

std::expected<std::unique_ptr<AuditOwnership>, std::string> AuditOwnership::Acquire(
    AuditNetlink* nl, const OwnerOptions& options) {
  std::unique_ptr<AuditOwnership> self(new AuditOwnership(nl));
  auto st = nl->GetStatus();
  if (!st) return std::unexpected(st.error());
  self->before_ = *st;
  if (st->enabled == 2) {
    return std::unexpected("audit is locked (enabled 2): rules and settings cannot change");
  }
  if (st->pid != 0 && st->pid != static_cast<uint32_t>(getpid()) &&
      (kill(static_cast<pid_t>(st->pid), 0) == 0 || errno == EPERM)) {
    return std::unexpected("audit daemon pid " + std::to_string(st->pid) +
                           " holds the audit feed; run with --audit-mode observer (or auto)");
  }

  // Register first, so that no record goes to the kernel log meanwhile.
  audit_status set{};
  set.mask = AUDIT_STATUS_PID;
  set.pid = static_cast<uint32_t>(getpid());
  if (auto r = nl->SetStatus(set); !r) return std::unexpected("registering as audit daemon: " + r.error());
  self->registered_ = true;

  // A slow reader must never stall the host's syscalls: no backlog wait where the kernel
  // lets us say so, and a backlog deep enough for bursts.
  set = {};
  set.mask = AUDIT_STATUS_BACKLOG_LIMIT;
  set.backlog_limit = options.backlog_limit;
  bool can_wait = (st->feature_bitmap & AUDIT_FEATURE_BITMAP_BACKLOG_WAIT_TIME) != 0;
  if (can_wait) {
    set.mask |= AUDIT_STATUS_BACKLOG_WAIT_TIME;
    set.backlog_wait_time = 0;
  }
  self->settings_changed_ = true;
  if (auto r = nl->SetStatus(set); !r) return std::unexpected("setting the backlog: " + r.error());
  self->backlog_limit_ = options.backlog_limit;
  self->backlog_wait_time_ = can_wait ? 0 : st->backlog_wait_time;

  if (options.install_rules) {
    self->rule_fd_ = audit_open();
    if (self->rule_fd_ < 0) return std::unexpected(std::string("audit_open: ") + strerror(errno));
    std::string key = "key=" + options.rule_key;
    std::string own = "pid=" + std::to_string(getpid());
    struct R {
      std::vector<std::string> fields, syscalls;
    };
    const R rules[] = {
        {{"arch=b64", key}, {"execve", "execveat"}},
        {{"arch=b32", key}, {"execve", "execveat"}},
        {{"arch=b64", "a1&0x49", key}, {"chmod", "fchmod"}},  // 0x49 = 0111
        {{"arch=b32", "a1&0x49", key}, {"chmod", "fchmod"}},
        {{"arch=b64", "a2&0x49", key}, {"fchmodat"}},
        {{"arch=b32", "a2&0x49", key}, {"fchmodat"}},
    };
    // The sensor's own exclusion names the audited syscalls, not all of them: a rule
    // that matches every syscall is evaluated on every syscall of the host.
    for (const char* arch : {"arch=b32", "arch=b64"}) {  // prepended: b64 ends up first
      auto r = self->AddRule({arch, own},
                             {"execve", "execveat", "chmod", "fchmod", "fchmodat"}, AUDIT_NEVER, true);
      if (!r) return std::unexpected(r.error());
    }
    for (const R& rule : rules) {
      if (auto r = self->AddRule(rule.fields, rule.syscalls, AUDIT_ALWAYS, false); !r) {
        return std::unexpected(r.error());
      }
    }
  }

  set = {};
  set.mask = AUDIT_STATUS_ENABLED;
  set.enabled = 1;
  if (auto r = nl->SetStatus(set); !r) return std::unexpected("enabling audit: " + r.error());
  return self;
}

std::expected<void, std::string> AuditOwnership::AddRule(const std::vector<std::string>& fields,
                                                         const std::vector<std::string>& syscalls,
                                                         int action, bool prepend) {
  audit_rule_data* rule = audit_rule_create_data();
  std::string what = "audit rule";
  // libaudit's order: arch before the syscalls (it resolves their names for that arch),
  // the syscalls before a key (it refuses a key on a rule without one).
  auto add_field = [&](const std::string& f) -> bool {
    what += " -F " + f;
    std::string copy = f;  // libaudit writes into the string it parses
    int rc = audit_rule_fieldpair_data(&rule, copy.data(), AUDIT_FILTER_EXIT);
    if (rc == 0) return true;
    what += ": libaudit refused the field (" + std::to_string(rc) + ")";
    return false;
  };
  bool ok = true;
  for (const std::string& f : fields) {
    if (f.rfind("arch=", 0) == 0) ok = ok && add_field(f);
  }
  for (const std::string& s : syscalls) {
    if (!ok) break;
    what += " -S " + s;
    if (audit_rule_syscallbyname_data(rule, s.c_str()) != 0) {
      what += ": unknown syscall for this arch";
      ok = false;
    }
  }
  for (const std::string& f : fields) {
    if (!ok || f.rfind("arch=", 0) == 0) continue;
    if (f.rfind("key=", 0) == 0) {
      // libaudit accepts a key only after auditctl's own -S parsing (a private flag), so
      // the key field is appended here as the kernel expects it: its length as the
      // value, its bytes in the rule's buffer.
      std::string_view key = std::string_view(f).substr(4);
      what += " -F " + f;
      if (rule->field_count >= AUDIT_MAX_FIELDS || key.size() > AUDIT_MAX_KEY_LEN) {
        ok = false;
        break;
      }
      auto* grown = static_cast<audit_rule_data*>(
          realloc(rule, sizeof(*rule) + rule->buflen + key.size()));
      if (grown == nullptr) {
        ok = false;
        break;
      }
      rule = grown;
      uint32_t n = rule->field_count++;
      rule->fields[n] = AUDIT_FILTERKEY;
      rule->fieldflags[n] = AUDIT_EQUAL;
      rule->values[n] = static_cast<uint32_t>(key.size());
      std::memcpy(rule->buf + rule->buflen, key.data(), key.size());
      rule->buflen += static_cast<uint32_t>(key.size());
      continue;
    }
    ok = add_field(f);
  }
  if (!ok) {
    audit_rule_free_data(rule);
    return std::unexpected(what);
  }
  int flags = AUDIT_FILTER_EXIT | (prepend ? AUDIT_FILTER_PREPEND : 0);
  int rc = audit_add_rule_data(rule_fd_, rule, flags, action);
  if (rc == -EEXIST) {
    ++present_;  // someone else's identical rule: leave it, and leave it in place later
    audit_rule_free_data(rule);
    return {};
  }
  if (rc < 0) {
    audit_rule_free_data(rule);
    return std::unexpected(what + ": " + strerror(-rc));
  }
  added_.push_back({rule, AUDIT_FILTER_EXIT, action});
  return {};
}

void AuditOwnership::Release() {
  audit_status set{};
  if (registered_) {
    // Stop the feed first, so that rule removal does not race with records to a reader
    // that is gone.
    set.mask = AUDIT_STATUS_ENABLED;
    set.enabled = before_.enabled;
    nl_->SetStatus(set);
  }
  for (Added& a : added_) {
    audit_delete_rule_data(rule_fd_, a.rule, a.flags, a.action);
    audit_rule_free_data(a.rule);
  }
  added_.clear();
  if (rule_fd_ >= 0) {
    audit_close(rule_fd_);
    rule_fd_ = -1;
  }
  if (settings_changed_) {
    set = {};
    set.mask = AUDIT_STATUS_BACKLOG_LIMIT;
    set.backlog_limit = before_.backlog_limit;
    if (backlog_wait_time_ != before_.backlog_wait_time) {
      set.mask |= AUDIT_STATUS_BACKLOG_WAIT_TIME;
      set.backlog_wait_time = before_.backlog_wait_time;
    }
    nl_->SetStatus(set);
    settings_changed_ = false;
  }
  if (registered_) {
    set = {};
    set.mask = AUDIT_STATUS_PID;
    set.pid = 0;
    nl_->SetStatus(set);
    registered_ = false;
  }
}

}  // namespace driftwatch::sensor
