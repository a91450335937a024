#!/bin/bash
# Legitimate drift, declared once (issue 19's noise scenario), end to end: the real sensor
# (audit owner mode, fanotify, CRI) and the real collector with a drift policy
# (--drift-policy) and a Falco-syntax exception in a user rules file, and three pods whose
# jobs drift on purpose:
#   - ci/build (label app=builder, so its workload is "builder"): compiles tools into /workspace/out and runs them, from
#     shells;                       allowed by `namespaces: [ci], paths: [/workspace/out/*]`
#                                   and the rule exception builder_shells (k8s.ns.name,
#                                   k8s.pod.label[app]) for its shells;
#   - infra/setup-<n>: its init container runs the package manager (apt-get);
#                                   allowed by `images: [...], pods: [setup-*], rules:
#                                   [Package Manager Execution in Container]`;
#   - prod/agent (annotation driftwatch.io/allow-drift=/tmp/helper): downloads a helper to
#     /tmp/helper, chmods and runs it; allowed by `path_annotation: driftwatch.io/allow-drift`.
# Each exception is one line. The declared drift raises no alert and appears in the
# allowed-drift summary (`driftwatch alerts --allowed`, per workload and day, with what
# allowed it, and driftwatch_collector_allowed_drift_total); a real drop-and-execute in each
# of the same pods, and the package manager run in a pod the entry does not name, still
# alert; the runtime's own setup of each container (runc's init creating /etc/hosts and
# /etc/resolv.conf) raises nothing. Usage: allowed_drift_test.sh BUILD_DIR     env: KEEP=1 keeps the tmp dir
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "${1:?usage: allowed_drift_test.sh BUILD_DIR}"
dw_harness dw-allowed
ctd=$tmp/ctd
dw_audit_guard --owner

# The image: the test image with a package manager's name (busybox answers "applet not
# found": the exec is what counts).
mkdir -p "$tmp/extra/usr/bin"
ln -s /bin/busybox "$tmp/extra/usr/bin/apt-get"
dw_ctd_up "$ctd" "$tmp/extra"

cat >"$tmp/policy.yaml" <<EOF
allow:
  - {name: ci-builds, namespaces: [ci], paths: ["/workspace/out/*"]}
  - {name: setup-installs, images: ["$DW_IMAGE"], pods: ["setup-*"], rules: [Package Manager Execution in Container]}
  - {name: declared-in-pod, path_annotation: driftwatch.io/allow-drift}
EOF
cat >"$tmp/exceptions.yaml" <<'EOF'
- rule: Container Shell Spawned
  exceptions:
    - {name: builder_shells, fields: [k8s.ns.name, "k8s.pod.label[app]"], values: [[ci, builder]]}
  override: {exceptions: append}
EOF

dw_collector_start collector --insecure --listen 127.0.0.1:0 --db "$tmp/collector.db" \
  --metrics-address 127.0.0.1:0 --alerts-output "$tmp/alerts.jsonl" --aggregate-window 0 \
  --drift-policy "$tmp/policy.yaml" --rules "$tmp/exceptions.yaml"
dw_start sensor "$sensor" --audit-mode owner --audit-state-file "$tmp/audit-state" \
  --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
  --collector "127.0.0.1:$port" --insecure --node node-ad --spool-dir "$tmp/spool" \
  --metrics-address "" --status-interval 1
dw_wait_log sensor "connected to collector" 1 30 || die "the sensor did not connect"

pod() {  # pod NAME NS RUNP-OPTS...: a pod sandbox; prints its id
  local name=$1 ns=$2 uid
  shift 2
  uid=$(cat /proc/sys/kernel/random/uuid)
  dw_pod_run "$ctd" "$name" "$ns" "$uid" "/kubepods/besteffort/pod$uid" "$@"
}
run() {  # run POD NAME SCRIPT: a container that runs SCRIPT and exits; waits for its exit
  local id
  id=$(dw_pod_container "$ctd" "$1" "$2" -- /bin/sh -c "$3") || die "container $2"
  exited() { dw_cri "$ctd" inspect "$id" | grep -q '"state": "exited"'; }
  dw_wait 60 exited || die "container $2 did not finish"
  echo "$id"
}

build=$(pod build ci --label app=builder)
setup=$(pod setup-1 infra)
agent=$(pod agent prod --annotation driftwatch.io/allow-drift=/tmp/helper)
step "pods: build $build, setup $setup, agent $agent"

# The build job: 10 tools compiled (copied) into /workspace/out and run, from shells.
run "$build" build 'mkdir -p /workspace/out; for i in 1 2 3 4 5 6 7 8 9 10; do
  cp /bin/busybox /workspace/out/tool$i; chmod 755 /workspace/out/tool$i
  /bin/sh -c "/workspace/out/tool$i true"; done
  cp /bin/busybox /tmp/evil-build; /tmp/evil-build true' >/dev/null
# The init container installs packages; the main one then drifts for real.
run "$setup" install '/usr/bin/apt-get install -y curl; /usr/bin/apt-get clean; true' >/dev/null
run "$setup" app 'cp /bin/busybox /tmp/evil-setup; /tmp/evil-setup true' >/dev/null
# The agent downloads its helper and runs it; then a real drop, and a package manager run
# its pod is not allowed.
run "$agent" agent 'cp /bin/busybox /tmp/helper; chmod +x /tmp/helper; /tmp/helper true
  /tmp/helper true; cp /bin/busybox /tmp/evil-agent; /tmp/evil-agent true
  /usr/bin/apt-get update; true' >/dev/null

drop="Drop and execute new binary in container"
# Alerts stored: "rule|pod|file" lines.
stored() {
  "$dw" alerts --db "$tmp/collector.db" >"$tmp/alerts.now"
  python3 - "$tmp/alerts.now" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    a = json.loads(line)
    f = a["output_fields"]
    what = f.get("proc.exe_file") or f.get("proc.exepath") or f.get("fd.name") or f.get("proc.name")
    if a["rule"] in ("Package Manager Execution in Container", "Container Shell Spawned"):
        what = f.get("proc.name") or ""
    print("%s|%s|%s" % (a["rule"], f.get("k8s.pod.name"), what))
PY
}
all_real() {
  local s
  s=$(stored)
  grep -qx "$drop|build|/tmp/evil-build" <<<"$s" && grep -qx "$drop|setup-1|/tmp/evil-setup" <<<"$s" &&
    grep -qx "$drop|agent|/tmp/evil-agent" <<<"$s" &&
    grep -q "^Package Manager Execution in Container|agent|" <<<"$s"
}
dw_wait 60 all_real || true
sleep 2  # what is still on its way
stored >"$tmp/stored.txt"
cat "$tmp/stored.txt"
for want in "$drop|build|/tmp/evil-build" "$drop|setup-1|/tmp/evil-setup" "$drop|agent|/tmp/evil-agent"; do
  grep -qxF "$want" "$tmp/stored.txt" && ok "a real drop still alerts: $want" || fail "no alert: $want"
done
grep -q "^Package Manager Execution in Container|agent|" "$tmp/stored.txt" &&
  ok "the package manager in a pod the entry does not name alerts" ||
  fail "no package manager alert in the agent pod"
# Nothing of the declared drift alerted.
grep -E '/workspace/out/|/tmp/helper' "$tmp/stored.txt" && fail "declared drift alerted" ||
  ok "no alert for /workspace/out/* (ci-builds) nor /tmp/helper (the pod's annotation)"
grep -q "^Package Manager Execution in Container|setup-1|" "$tmp/stored.txt" &&
  fail "the setup pod's package manager alerted" || ok "no alert for the init container's apt-get"
grep -q "^Container Shell Spawned|build|" "$tmp/stored.txt" &&
  fail "the build pod's shells alerted" || ok "no alert for the build pod's shells (rule exception)"

# The runtime's setup (runc's init creating /etc/hosts and /etc/resolv.conf empty) is no drift.
grep -E "^Container File System Write\|[^|]*\|/etc/(hosts|resolv.conf)$" "$tmp/stored.txt" &&
  fail "the runtime's setup alerted as a file system write" ||
  ok "no alert for the runtime's setup of /etc/hosts and /etc/resolv.conf"

# The allowed-drift summary says all of it, with what allowed it.
"$dw" alerts --db "$tmp/collector.db" --allowed >"$tmp/allowed.jsonl"
"$dw" alerts --db "$tmp/collector.db" --allowed --table
python3 - "$tmp/allowed.jsonl" <<'PY' || fail "the allowed-drift summary"
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
by = collections.defaultdict(int)
for r in rows:
    by[(r["namespace"], r["workload"], r["rule"], r["allowed_by"])] += r["count"]
for k, v in sorted(by.items()):
    print("  %s/%s %s: %s x%d" % (k[0], k[1], k[2], k[3], v))
drop = "Drop and execute new binary in container"
want = [(("ci", "builder", drop, "policy ci-builds"), 10),
        (("infra", "setup-1", "Package Manager Execution in Container", "policy setup-installs"), 2),
        (("prod", "agent", drop, "policy declared-in-pod"), 2),
        (("ci", "builder", "Container Shell Spawned", "exception builder_shells"), 1)]
bad = 0
for key, least in want:
    if by.get(key, 0) < least:
        print("FAIL: summary %s: %d, want at least %d" % (key, by.get(key, 0), least))
        bad = 1
    else:
        print("ok: summary %s/%s %s: %s x%d" % (key[0], key[1], key[2], key[3], by[key]))
sys.exit(bad)
PY
allowed_total=$(metric driftwatch_collector_allowed_drift_total)
[[ ${allowed_total:-0} -gt 0 ]] && ok "driftwatch_collector_allowed_drift_total $allowed_total" ||
  fail "driftwatch_collector_allowed_drift_total ${allowed_total:-unset}"
dw_stop sensor
dw_audit_same "$tmp" || die "audit state not restored"
dw_finish "declared drift: no alert, summarized; real drift in the same pods alerts"
