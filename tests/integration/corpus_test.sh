#!/bin/bash
# Acceptance on the shared reference log: every exec event once, /bin/true execs on the
# host (20,000 of the storm and one through env -i), the container's workload execs attributed to it and none of runc's, the refused
# exec in /dev/shm with its errno. Usage: corpus_test.sh DRIFTWATCH_BINARY
set -euo pipefail
dw=$1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
corpus=$here/../../../shared/corpus/audit-raw-k8s-api.log.xz
[[ -r $corpus ]] || die "corpus not found at $corpus (../shared beside the checkout)"
dw_harness dw-corpus

"$dw" analyze --events "$corpus" >"$tmp/events.jsonl" 2>"$tmp/stderr"
cat "$tmp/stderr"
# The ground truth from the log itself: one SYSCALL record per exec attempt.
want=$(xz -dc "$corpus" | grep -cE '^type=SYSCALL .* syscall=(59|322) ')
c=api-5d8b7c9f4-x2kqp
cat >"$tmp/spec.json" <<JSON
{
  "unique_serials": true,
  "total_execs": $want,
  "host_argv0": {"/bin/true": 20001},
  "container_only": {"$c": ["sleep", "sh", "cat", "apk", "ls", "/dev/shm/kworker"]},
  "no_runtime_in": ["$c"],
  "failed": [{"path": "/dev/shm/kworker", "res": "EACCES", "container": "$c"}],
  "execs": [
    {"argv": ["/bin/sleep", "100000"], "container": "$c"},
    {"argv": ["apk", "add", "nmap"], "container": "$c"},
    {"argv": ["/bin/echo", "", "", "x"], "container": "host"}
  ]
}
JSON
python3 "$here/check_events.py" "$tmp/spec.json" <"$tmp/events.jsonl"
# The same log through stdin and gzip gives the same events.
xz -dc "$corpus" | gzip -1 | "$dw" analyze --events - 2>/dev/null | cmp - "$tmp/events.jsonl"
echo "stdin+gzip: identical"

# Offline through the shipped rules: the container's alerts, none for host processes.
"$dw" analyze "$corpus" >"$tmp/alerts.jsonl" 2>/dev/null
python3 - "$tmp/alerts.jsonl" "$c" <<'PY'
import json, sys
alerts = [json.loads(l) for l in open(sys.argv[1])]
c = sys.argv[2]
rules = {a["rule"] for a in alerts}
want = {"Container Shell Spawned", "Package Manager Execution in Container",
        "Execution from /dev/shm", "Forbidden Exec Attempt in Container",
        "Container Drift Detected (chmod)"}
fails = []
if want - rules:
    fails.append(f"missing alerts: {sorted(want - rules)}")
other = [a for a in alerts if a["output_fields"].get("container.id") != c]
if other:
    fails.append(f"{len(other)} alerts not of container {c}: {[a['output'][:100] for a in other]}")
for f in fails:
    print("FAIL:", f)
if fails:
    sys.exit(1)
print(f"alerts: {len(alerts)}, all of {c}: {sorted(rules)}")
PY
