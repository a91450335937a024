#!/bin/bash
# Learned per-image baselines end to end: the real sensor (audit owner mode with
# --audit-network all, CRI, fanotify) and the real collector (--baseline-learn 20s) with a
# Kubernetes-labelled pod whose workload runs a fixed set of commands and connects to one
# server on the host while the baseline learns. Then the workload also runs a new command,
# connects to a new port and binds a new one, every second: exactly that new behaviour
# alerts, once each. The collector is restarted: the baseline is intact (nothing alerts
# again, a further new command alerts once; killed with SIGKILL, so what it had decided
# stands or falls with the alerts and cursors it committed with). `driftwatch baseline` shows, exports (a Falco
# rules file) and imports it; the running collector loads the import and the command
# removed from the baseline alerts again, once. The same commands on the host raise no
# baseline alert. Usage: baseline_test.sh BUILD_DIR     env: KEEP=1 keeps the tmp dir
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "${1:?usage: baseline_test.sh BUILD_DIR}"
dw_harness dw-baseline
ctd=$tmp/ctd
dw_audit_guard --owner
learn=20

# Two servers on the host (pods here share the host's network): accept and close.
python3 - >"$tmp/servers.json" 2>"$tmp/servers.log" <<'PY' &
import json, socket, sys, threading
socks = []
for _ in range(2):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0)); s.listen(64); socks.append(s)
free = socket.socket(); free.bind(("127.0.0.1", 0)); port3 = free.getsockname()[1]; free.close()
print(json.dumps({"p1": socks[0].getsockname()[1], "p2": socks[1].getsockname()[1], "p3": port3}))
sys.stdout.flush()
def serve(s):
    while True:
        c, _ = s.accept(); c.close()
for s in socks:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
threading.Event().wait()
PY
echo $! >"$tmp/servers.pid"
dw_at_exit dw_stop servers 5
dw_wait 10 test -s "$tmp/servers.json" || die "the servers did not start"
p1=$(json "$tmp/servers.json" 'j["p1"]')
p2=$(json "$tmp/servers.json" 'j["p2"]')
p3=$(json "$tmp/servers.json" 'j["p3"]')

dw_ctd_up "$ctd"
# Each new behaviour must be its own stored alert, also ls again after the import within a
# minute of the first: no aggregation of repeats (aggregation_test.sh tests that).
start_collector() {
  dw_collector_start collector --insecure --listen "127.0.0.1:${1:-0}" --db "$tmp/collector.db" \
    --metrics-address 127.0.0.1:0 --alerts-output "$tmp/alerts.jsonl" --baseline-learn ${learn}s \
    --aggregate-window 0
}
start_collector
dw_start sensor "$sensor" --audit-mode owner --audit-state-file "$tmp/audit-state" \
  --audit-network all --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
  --collector "127.0.0.1:$port" --insecure --node node-bl --spool-dir "$tmp/spool" \
  --metrics-address "" --status-interval 1
dw_wait_log sensor "connected to collector" 1 30 || die "the sensor did not connect"

# The workload: the same commands every second; /tmp/go adds new ones (ls, a connect to p2,
# a listener on p3), /tmp/go2 one more (uname). By path: busybox's shell runs some applets
# named bare in its own process, without an exec.
workload="while :; do cat /etc/hostname >/dev/null; busybox nc -w 2 127.0.0.1 $p1 </dev/null >/dev/null
if [ -e /tmp/go ]; then /bin/ls / >/dev/null; busybox nc -w 2 127.0.0.1 $p2 </dev/null >/dev/null
  busybox nc -l -p $p3 </dev/null >/dev/null 2>&1 & l=\$!; sleep 0.3; kill \$l 2>/dev/null; fi
if [ -e /tmp/go2 ]; then /bin/uname >/dev/null; fi; sleep 1; done"
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" shop-web prod "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$ctd" "$pod" web -- /bin/sh -c "$workload")
pid=$(dw_cri "$ctd" inspect "$cid" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
step "workload $cid (pid $pid); ports $p1 $p2 $p3; learning ${learn}s"

# The baseline alerts stored (exactly once there; an output may see one again after a
# kill): "rule|item" lines, sorted. All are the workload container's.
baseline_alerts() {
  "$dw" alerts --db "$tmp/collector.db" >"$tmp/alerts.now"
  python3 - "$tmp/alerts.now" "$cid" <<'PY'
import json, sys
out = []
for line in open(sys.argv[1]):
    a = json.loads(line)
    if not a["rule"].startswith("Unexpected "): continue
    f = a["output_fields"]
    assert f.get("container.id") == sys.argv[2][:12], a
    out.append(a["rule"] + "|" + str(f.get("baseline.item")))
print("\n".join(sorted(out)))
PY
}

sleep $((learn + 3))
expect "nothing alerts while the baseline learns and after, for the learned behaviour" \
  "$(baseline_alerts)" ""
"$dw" baseline list --db "$tmp/collector.db" >"$tmp/list1.txt"
cat "$tmp/list1.txt"
grep -q "container web" "$tmp/list1.txt" || fail "no baseline for container web"
grep -q "enforcing since" "$tmp/list1.txt" || fail "the baseline is not enforcing after ${learn}s"

# Same commands on the host: no baseline alert (the host has none).
ls / >/dev/null; uname >/dev/null

touch "/proc/$pid/root/tmp/go"
want="Unexpected connection for image|127.0.0.1:$p2
Unexpected listener for image|$p3
Unexpected process for image|/bin/busybox [ls]"
dw_wait 20 test "$(baseline_alerts | wc -l)" -ge 3 || true
sleep 4  # a few more rounds of the same new behaviour
expect "exactly the new behaviour alerts, once each" "$(baseline_alerts)" "$want"
"$dw" baseline show --db "$tmp/collector.db" sha256: --container web >"$tmp/show.txt"
cat "$tmp/show.txt"
grep -q "process    unexpected /bin/busybox \[ls\]" "$tmp/show.txt" || fail "show: no unexpected ls"
grep -q "connection learned    127.0.0.1:$p1" "$tmp/show.txt" || fail "show: p1 not learned"

learned=$(metric driftwatch_collector_baseline_events_total 'verdict="learned"')
known=$(metric driftwatch_collector_baseline_events_total 'verdict="known"')
note "events learned $learned, known $known"
step "collector killed (SIGKILL) and restarted"
dw_kill collector
start_collector "$port"
sleep 4
expect "after a kill and restart nothing alerts again" "$(baseline_alerts)" "$want"
touch "/proc/$pid/root/tmp/go2"
want2="$want
Unexpected process for image|/bin/busybox [uname]"
dw_wait 20 test "$(baseline_alerts | wc -l)" -ge 4 || true
sleep 3
expect "the baseline survived the restart: a further new command alerts once" \
  "$(baseline_alerts | sort)" "$(sort <<<"$want2")"

# Export, edit (ls removed), import: the running collector loads it and ls alerts again.
"$dw" baseline export --db "$tmp/collector.db" sha256: --container web -o "$tmp/web.yaml"
cat "$tmp/web.yaml"
grep -q '^- list: dw_baseline_web_processes' "$tmp/web.yaml" || fail "export: no processes list"
"$dw" rules check --no-shipped-rules -q "$tmp/web.yaml" >/dev/null || fail "export is not a valid rules file"
sed -i 's|"/bin/busybox \[ls\]", ||; s|, "/bin/busybox \[ls\]"||' "$tmp/web.yaml"
grep -q 'busybox \[ls\]' "$tmp/web.yaml" && fail "the edit left ls in"
"$dw" baseline import --db "$tmp/collector.db" "$tmp/web.yaml" || fail "import failed"
dw_wait_log collector "baselines: 1 edited by the CLI" 1 10 || fail "the collector did not load the edit"
want3="$want2
Unexpected process for image|/bin/busybox [ls]"
dw_wait 20 test "$(baseline_alerts | wc -l)" -ge 5 || true
sleep 3
expect "an imported baseline without ls: ls alerts again, once" \
  "$(baseline_alerts | sort)" "$(sort <<<"$want3")"
grep "baselines:" "$tmp/collector.log" >&2 || true
dw_finish
