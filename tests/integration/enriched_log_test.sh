#!/bin/bash
# Offline analysis of an ENRICHED audit.log (auditd's default format) written here by a
# private auditd, with a private containerd whose container starts after the rules: the
# container's workload execs are attributed to it, none of runc's, host execs to host.
# Usage: enriched_log_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
dw_build "$1"
source "$here/auditd_env.sh"
source "$here/containerd_env.sh"
dw_harness dw-enr
ctd=$tmp/ctd
dw_audit_guard

dw_auditd_start "$tmp" ENRICHED
# rules -a|-d: the sensor's rule set (execs, chmods that add an exec bit), added or deleted.
rules() {
    for arch in b64 b32; do
        auditctl "$1" always,exit -F arch=$arch -S execve,execveat -k dwenr >/dev/null
        auditctl "$1" always,exit -F arch=$arch -S chmod,fchmod -F a1\&0111 -k dwenr >/dev/null
        auditctl "$1" always,exit -F arch=$arch -S fchmodat -F a2\&0111 -k dwenr >/dev/null
    done
}
rules -a

name=dw-enr-$$
dw_ctd_up "$ctd"
dw_ctr_run "$ctd" "$name" -- /bin/sleep 1000 >/dev/null
dw_ctr_exec "$ctd" "$name" e1 /bin/sh -c 'cp /bin/busybox /tmp/busybox_dropped && chmod 755 /tmp/busybox_dropped && /tmp/busybox_dropped uname -a' </dev/null >/dev/null
dw_ctr_exec "$ctd" "$name" e2 /bin/ls -la /root </dev/null >/dev/null
/bin/echo "host-marker-$$" >/dev/null
dw_ctd_stop "$ctd"

rules -d
dw_auditd_stop "$tmp"
log=$tmp/log/audit.log
grep -q $'\x1d' "$log" || die "the log is not ENRICHED"

"$dw" analyze --events "$log" >"$tmp/events.jsonl"
want=$(grep -cE '^type=SYSCALL .* syscall=(59|322) ' "$log")
cat >"$tmp/spec.json" <<JSON
{
  "unique_serials": true,
  "total_execs": $want,
  "container_only": {"$name": ["sleep", "sh", "ls", "busybox_dropped"]},
  "no_runtime_in": ["$name"],
  "execs": [
    {"argv": ["/bin/sleep", "1000"], "container": "$name", "res": "SUCCESS"},
    {"argv": ["/tmp/busybox_dropped", "uname", "-a"], "container": "$name", "res": "SUCCESS"},
    {"argv": ["/bin/ls", "-la", "/root"], "container": "$name"},
    {"argv": ["/bin/echo", "host-marker-$$"], "container": "host"}
  ]
}
JSON
python3 "$here/check_events.py" "$tmp/spec.json" <"$tmp/events.jsonl"
# The chmod inside the container is an event of the container too, and ENRICHED names users.
python3 - "$tmp/events.jsonl" "$name" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
ch = [e for e in evs if e["evt.type"] == "chmod" and e["fd.name"] == "/tmp/busybox_dropped"]
assert len(ch) == 1 and ch[0]["container.full_id"] == sys.argv[2], ch
assert all(e.get("user.name") == "root" for e in evs if e["evt.type"] == "execve" and e["user.uid"] == 0)
assert all(e.get("group.name") == "root" for e in evs if e["evt.type"] == "execve" and e["group.gid"] == 0)
print("chmod attributed, user.name and group.name from ENRICHED: ok")
PY
dw_audit_restore "$tmp"
dw_audit_same "$tmp" || die "audit state differs"
