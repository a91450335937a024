// Fields over what the sensor reads of a process at its exec (ProcessExec.vpid ...
// group_name; sensor/enrich.h) and over a container's mounts (ContainerInfo.mounts), as
// Falco names them: proc.is_vpgid_leader, proc.duration, proc.env, user.loginname,
// container.mount.dest[N], ... The stored values themselves (proc.vpid, thread.cap_*, ...)
// are event fields (lib/event/event_fields.cc); those defined here too read as Falco's in
// rules (proc.env one string, container.mounts joined by ','). Offline logs carry none of
// the process state: these fields are unset there, except the names an ENRICHED log gives.
#include <fnmatch.h>

#include <string>

#include "lib/event/event_view.h"
#include "lib/rules/rule_fields.h"

namespace driftwatch {
namespace {

using fields::SetBool;
using fields::SetNum;
using fields::SetStr;

constexpr uint32_t kUnset = 4294967295u;

const v1::ProcessExec* Exec(const RuleContext& c) {
  return KindOf(*c.event) == Kind::kExec ? &c.event->exec() : nullptr;
}

// Falco: proc.vpgid == proc.vpid (the host's ids for host processes, which is what
// /proc/<pid>/status says for them too).
bool IsVpgidLeader(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  return x && x->has_vpgid() && x->has_vpid() && SetBool(x->vpgid() == x->vpid(), out);
}

bool IsSidLeader(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  return x && x->has_vsid() && x->has_vpid() && SetBool(x->vsid() == x->vpid(), out);
}

// The group leader's argv[0]: known when the process leads its group itself.
bool VpgidExe(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x || !x->has_vpgid() || !x->has_vpid() || x->vpgid() != x->vpid()) return false;
  return SetStr(x->args_size() > 0 ? x->args(0) : x->exe(), out);
}

// The group leader's executable path: the process itself, or the ancestor whose pid is the
// process group id.
bool VpgidExepath(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x || !x->has_pgid()) return false;
  if (x->pgid() == x->pid()) return SetStr(x->exe(), out);
  for (const ProcessInfo& a : c.lineage) {
    if (a.pid == x->pgid()) return SetStr(a.exepath, out);
  }
  return false;
}

bool PgidName(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  return x && SetStr(x->pgid_leader_name(), out);
}

// Event time minus the process's start (its fork), ns.
bool Duration(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  return x && x->start_time_ns() != 0 && SetNum(c.event->time_ns() - x->start_time_ns(), out);
}

// The parent's: its exec seen by the same sensor (the lineage), with its start read.
bool PpidDuration(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x || c.lineage.empty() || c.lineage[0].pid != x->ppid() || c.lineage[0].start_ns == 0)
    return false;
  return SetNum(c.event->time_ns() - c.lineage[0].start_ns, out);
}

// Falco: clone_ts - exe ctime: how long before the process started its executable was
// last changed (negative when it changed after the fork, before the exec).
bool CtimeDurationProcStart(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  return x && x->start_time_ns() != 0 && x->exe_ctime_ns() != 0 &&
         SetNum(x->start_time_ns() - x->exe_ctime_ns(), out);
}

// Falco's concatenate_all_env: the entries joined by one space.
bool Env(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x || !x->env_read()) return false;
  for (int i = 0; i < x->env_size(); ++i) {
    if (i) out->buf.push_back(' ');
    out->buf += x->env(i);
  }
  out->str = out->buf;
  return true;
}

// Names as Falco's user.name gives them: the name found, "root" for id 0, else unset.
bool LoginName(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x || x->auid() == kUnset) return false;
  if (!x->login_name().empty()) return SetStr(x->login_name(), out);
  return x->auid() == 0 && SetStr("root", out);
}

bool GroupName(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ProcessExec* x = Exec(c);
  if (!x) return false;
  if (!x->group_name().empty()) return SetStr(x->group_name(), out);
  return x->gid() == 0 && SetStr("root", out);
}

// container.mounts: Falco's mounts joined by ','. Unset for host processes and containers
// the runtime did not describe.
bool Mounts(const RuleContext& c, FieldArg, FieldValue* out) {
  const v1::ContainerInfo* ci = fields::ContainerOf(c);
  if (!ci || ci->mounts_size() == 0) return false;
  for (int i = 0; i < ci->mounts_size(); ++i) {
    if (i) out->buf.push_back(',');
    out->buf += MountText(ci->mounts(i));
  }
  out->str = out->buf;
  return true;
}

// The mount of the event's container that [arg] names: number N, or the first whose
// source (`by_dest`: destination) matches the glob [key], as Falco's container fields do.
const v1::Mount* MountAt(const RuleContext& c, FieldArg a, bool by_dest = false) {
  const v1::ContainerInfo* ci = fields::ContainerOf(c);
  if (!ci) return nullptr;
  if (a.key != nullptr) {
    for (const v1::Mount& m : ci->mounts()) {
      const std::string& s = by_dest ? m.destination() : m.source();
      if (fnmatch(a.key->c_str(), s.c_str(), 0) == 0) return &m;
    }
    return nullptr;
  }
  if (!a.present() || a.index >= ci->mounts_size()) return nullptr;
  return &ci->mounts(a.index);
}

// Falco's container fields say "N/A" for a mount no [N] or [glob] names (upstream's
// sensitive_mount macro tests `not container.mount.dest[/proc*] in ("<NA>","N/A")`); unset
// when the container itself is unknown.
bool NoMount(const RuleContext& c, FieldValue* out) {
  return fields::ContainerOf(c) != nullptr && SetStr("N/A", out);
}

bool Mount(const RuleContext& c, FieldArg a, FieldValue* out) {
  const v1::Mount* m = MountAt(c, a);
  if (!m) return NoMount(c, out);
  out->buf = MountText(*m);
  out->str = out->buf;
  return true;
}

bool MountSource(const RuleContext& c, FieldArg a, FieldValue* out) {
  const v1::Mount* m = MountAt(c, a, /*by_dest=*/true);
  return m ? SetStr(m->source(), out) : NoMount(c, out);
}

bool MountDest(const RuleContext& c, FieldArg a, FieldValue* out) {
  const v1::Mount* m = MountAt(c, a);
  return m ? SetStr(m->destination(), out) : NoMount(c, out);
}

// CRI mounts have no mode: "" as Falco's CRI lookup gives.
bool MountMode(const RuleContext& c, FieldArg a, FieldValue* out) {
  if (!MountAt(c, a)) return NoMount(c, out);
  out->str = "";
  return true;
}

bool MountRdwr(const RuleContext& c, FieldArg a, FieldValue* out) {
  const v1::Mount* m = MountAt(c, a);
  return m ? SetStr(m->read_only() ? "false" : "true", out) : NoMount(c, out);
}

bool MountPropagation(const RuleContext& c, FieldArg a, FieldValue* out) {
  const v1::Mount* m = MountAt(c, a);
  return m ? SetStr(m->propagation(), out) : NoMount(c, out);
}

constexpr FieldArgMode kReq = FieldArgMode::kIndexOrKey;  // [N] or [glob]
constexpr FieldType kStr = FieldType::kString;

constexpr FieldInfo kProcStateFields[] = {
    {"proc.is_vpgid_leader", FieldType::kBool,
     "the process leads its process group (proc.vpgid = proc.vpid)", IsVpgidLeader},
    {"proc.is_sid_leader", FieldType::kBool,
     "the process leads its session (its session id, proc.vsid, = proc.vpid)", IsSidLeader},
    {"proc.vpgid.exe", kStr,
     "argv[0] of the process group leader; known when the process is the leader", VpgidExe},
    {"proc.vpgid.exepath", kStr,
     "executable path of the process group leader: the process, or the ancestor whose pid is "
     "the group id",
     VpgidExepath},
    {"proc.pgid.name", kStr, "name of the process group leader (the same as proc.vpgid.name)",
     PgidName},
    {"proc.duration", FieldType::kNumber,
     "ns from the process's start (its fork, at clock-tick resolution) to the event", Duration},
    {"proc.ppid.duration", FieldType::kNumber,
     "ns from the parent's start to the event, when the parent's exec was seen and its start "
     "read",
     PpidDuration},
    {"proc.exe_ino.ctime_duration_proc_start", FieldType::kNumber,
     "proc.pid.ts - proc.exe_ino.ctime: ns from the executable's last status change to the "
     "process's start (negative when it changed after the fork)",
     CtimeDurationProcStart},
    {"proc.env", kStr,
     "the environment after the exec, NAME=value entries joined by spaces (as far as "
     "--environ-max-bytes kept them); unset when the sensor did not read it",
     Env},
    {"user.loginname", kStr,
     "name of user.loginuid: an ENRICHED log's AUID=, or the process's /etc/passwd (its "
     "container's); \"root\" for 0; unset when unset or not found",
     LoginName},
    {"group.name", kStr,
     "name of group.gid: an ENRICHED log's GID=, or the process's /etc/group; \"root\" for 0",
     GroupName},
    {"container.mounts", kStr,
     "the container's mounts as the runtime reports them, each "
     "\"source:dest:mode:rdrw:propagation\", joined by ','",
     Mounts},
    {"container.mount", kStr, "mount number N, or the first whose source matches the glob [KEY], as in container.mounts; \"N/A\" when none", Mount, kReq},
    {"container.mount.source", kStr, "host path of mount number N, or of the first whose destination matches the glob [KEY]; \"N/A\" when none", MountSource, kReq},
    {"container.mount.dest", kStr, "path in the container of mount number N, or of the first whose source matches the glob [KEY]; \"N/A\" when none", MountDest, kReq},
    {"container.mount.mode", kStr, "mode of mount number N (always empty: CRI has none)",
     MountMode, kReq},
    {"container.mount.rdwr", kStr, "\"true\" when mount number N is writable, else \"false\"",
     MountRdwr, kReq},
    {"container.mount.propagation", kStr,
     "propagation of mount number N: private, rslave, rshared", MountPropagation, kReq},
};

}  // namespace

std::span<const FieldInfo> ProcStateFields() { return kProcStateFields; }

}  // namespace driftwatch
