#include "sensor/audit_rules.h"
#include "lib/base/log.h"
#include "lib/node/procfs.h"

#include <libaudit.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <cstdio>
#include <memory>
#include <vector>

namespace driftwatch::sensor {
namespace {

// The key of a rule as the kernel lists it: string fields' values are lengths into buf.
std::string RuleKey(const audit_rule_data* r) {
  uint32_t off = 0;
  for (uint32_t i = 0; i < r->field_count && i < AUDIT_MAX_FIELDS; ++i) {
    uint32_t f = r->fields[i] & ~AUDIT_OPERATORS;
    bool is_string = f == AUDIT_WATCH || f == AUDIT_DIR || f == AUDIT_FILTERKEY ||
                     f == AUDIT_EXE || (f >= AUDIT_SUBJ_USER && f <= AUDIT_SUBJ_CLR) ||
                     (f >= AUDIT_OBJ_USER && f <= AUDIT_OBJ_LEV_HIGH);
    if (!is_string) continue;
    uint32_t len = r->values[i];
    if (off + len > r->buflen) return "";
    if (f == AUDIT_FILTERKEY) return std::string(r->buf + off, len);
    off += len;
  }
  return "";
}

// Deletes every exit-filter rule carrying `key`; returns how many.
std::expected<size_t, std::string> RemoveRulesWithKey(int fd, const std::string& key) {
  if (audit_request_rules_list_data(fd) <= 0)
    return std::unexpected(std::string("listing audit rules: ") + strerror(errno));
  std::vector<std::vector<char>> stale;
  for (;;) {
    audit_reply rep{};
    int rc = audit_get_reply(fd, &rep, GET_REPLY_BLOCKING, 0);
    if (rc <= 0) break;
    if (rep.type == NLMSG_DONE) break;
    if (rep.type == NLMSG_ERROR) {
      if (rep.error && rep.error->error != 0)
        return std::unexpected(std::string("listing audit rules: ") + strerror(-rep.error->error));
      continue;
    }
    if (rep.type != AUDIT_LIST_RULES || rep.ruledata == nullptr) continue;
    const audit_rule_data* r = rep.ruledata;
    if ((r->flags & ~AUDIT_FILTER_PREPEND) != AUDIT_FILTER_EXIT || RuleKey(r) != key) continue;
    const char* b = reinterpret_cast<const char*>(r);
    stale.emplace_back(b, b + sizeof(*r) + r->buflen);
  }
  size_t n = 0;
  for (auto& bytes : stale) {
    auto* r = reinterpret_cast<audit_rule_data*>(bytes.data());
    if (audit_delete_rule_data(fd, r, r->flags & ~AUDIT_FILTER_PREPEND, static_cast<int>(r->action)) > 0) ++n;
  }
  return n;
}

// "pid enabled backlog_limit backlog_wait_time\n"
bool ReadState(const std::string& path, pid_t* pid, audit_status* st) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return false;
  long p = 0;
  unsigned en = 0, bl = 0, bw = 0;
  bool ok = std::fscanf(f, "%ld %u %u %u", &p, &en, &bl, &bw) == 4 && en <= 1;
  std::fclose(f);
  if (!ok) return false;
  *pid = static_cast<pid_t>(p);
  st->enabled = en;
  st->backlog_limit = bl;
  st->backlog_wait_time = bw;
  return true;
}

void WriteState(const std::string& path, const audit_status& st) {
  std::string dir = path.substr(0, path.rfind('/'));
  if (!dir.empty()) mkdir(dir.c_str(), 0700);
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) {
    LogWarn("%s: %s (audit settings not kept for crash recovery)\n",
                 tmp.c_str(), strerror(errno));
    return;
  }
  std::fprintf(f, "%d %u %u %u\n", getpid(), st.enabled, st.backlog_limit, st.backlog_wait_time);
  std::fclose(f);
  rename(tmp.c_str(), path.c_str());
}

}  // namespace

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
      ProcessAlive(static_cast<pid_t>(st->pid))) {
    return std::unexpected("audit daemon pid " + std::to_string(st->pid) +
                           " holds the audit feed; run with --audit-mode observer (or auto)");
  }

  // A sensor that died without Release left its settings (and rules, below): the host's
  // own settings are the ones it saved.
  self->state_file_ = options.state_file;
  if (!options.state_file.empty()) {
    pid_t old = 0;
    audit_status saved{};
    if (ReadState(options.state_file, &old, &saved) && old != getpid() && !ProcessAlive(old)) {
      self->before_.enabled = saved.enabled;
      self->before_.backlog_limit = saved.backlog_limit;
      self->before_.backlog_wait_time = saved.backlog_wait_time;
      self->recovered_from_ = old;
    }
    WriteState(options.state_file, self->before_);
  }

  // Register first, so that no record goes to the kernel log meanwhile.
  audit_status set{};
  set.mask = AUDIT_STATUS_PID;
  set.pid = static_cast<uint32_t>(getpid());
  if (auto r = nl->SetStatus(set); !r) return std::unexpected("registering as audit daemon: " + r.error());
  self->registered_ = true;

  // By default a slow reader never stalls the host's syscalls: no backlog wait where the
  // kernel lets us say so, and a backlog deep enough for bursts.
  set = {};
  set.mask = AUDIT_STATUS_BACKLOG_LIMIT;
  set.backlog_limit = options.backlog_limit;
  bool can_wait = (st->feature_bitmap & AUDIT_FEATURE_BITMAP_BACKLOG_WAIT_TIME) != 0;
  if (can_wait) {
    set.mask |= AUDIT_STATUS_BACKLOG_WAIT_TIME;
    set.backlog_wait_time = options.backlog_wait_time;
  }
  self->settings_changed_ = true;
  if (auto r = nl->SetStatus(set); !r) return std::unexpected("setting the backlog: " + r.error());
  self->backlog_limit_ = options.backlog_limit;
  self->backlog_wait_time_ = can_wait ? options.backlog_wait_time : st->backlog_wait_time;

  if (options.install_rules) {
    self->rule_fd_ = audit_open();
    if (self->rule_fd_ < 0) return std::unexpected(std::string("audit_open: ") + strerror(errno));
    std::string key = "key=" + options.rule_key;
    std::string own = "pid=" + std::to_string(getpid());
    auto stale = RemoveRulesWithKey(self->rule_fd_, options.rule_key);
    if (!stale) return std::unexpected(stale.error());
    self->stale_removed_ = *stale;
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
    // Socket calls. i386 makes them through socketcall(2) (libc's choice, not the
    // program's) or, since 4.3, directly: both are audited, the call told apart later.
    // socketcall carries every socket operation (send and receive too): only the calls
    // modelled, by number (a0: 2 bind, 3 connect, 4 listen, 5 accept, 18 accept4).
    std::vector<R> net;
    if (options.network != AuditNetwork::kOff) {
      net.push_back({{"arch=b64", key}, {"connect"}});
      net.push_back({{"arch=b32", key}, {"connect"}});
      net.push_back({{"arch=b32", "a0=3", key}, {"socketcall"}});
    }
    if (options.network == AuditNetwork::kAll) {
      net.push_back({{"arch=b64", key}, {"bind", "listen"}});
      net.push_back({{"arch=b32", key}, {"bind", "listen"}});
      net.push_back({{"arch=b64", "success=1", key}, {"accept", "accept4"}});
      net.push_back({{"arch=b32", "success=1", key}, {"accept4"}});
      net.push_back({{"arch=b32", "a0=2", key}, {"socketcall"}});
      net.push_back({{"arch=b32", "a0=4", key}, {"socketcall"}});
      net.push_back({{"arch=b32", "a0=5", "success=1", key}, {"socketcall"}});
      net.push_back({{"arch=b32", "a0=18", "success=1", key}, {"socketcall"}});
    }
    // The sensor's own exclusion names the audited syscalls, not all of them: a rule
    // that matches every syscall is evaluated on every syscall of the host. Its own
    // connections (collector, CRI) would otherwise feed back into its events.
    for (const char* arch : {"arch=b32", "arch=b64"}) {  // prepended: b64 ends up first
      std::vector<std::string> mine = {"execve", "execveat", "chmod", "fchmod", "fchmodat"};
      for (const R& n : net) {
        if (n.fields[0] != arch) continue;
        for (const std::string& s : n.syscalls) {
          if (std::find(mine.begin(), mine.end(), s) == mine.end()) mine.push_back(s);
        }
      }
      auto r = self->AddRule({arch, own, key}, mine, AUDIT_NEVER, true);
      if (!r) return std::unexpected(r.error());
    }
    for (const R& rule : rules) {
      if (auto r = self->AddRule(rule.fields, rule.syscalls, AUDIT_ALWAYS, false); !r) {
        return std::unexpected(r.error());
      }
    }
    for (const R& rule : net) {
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
    // Someone else's identical rule: leave it, and leave it in place later.
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
  if (!state_file_.empty()) {
    unlink(state_file_.c_str());
    state_file_.clear();
  }
}

}  // namespace driftwatch::sensor
