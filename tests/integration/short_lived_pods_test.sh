#!/bin/bash
# Issue 19, complete metadata for short-lived containers: DW_PODS pods (40; 500 for the
# issue's acceptance run) whose one container lives a few milliseconds and drops and runs a
# binary (copies busybox into its upper layer, chmods and runs it, exits), each pod removed
# as soon as its container has exited (container stopped and removed, sandbox stopped and
# removed, its cgroup directory gone: a CronJob's TTL or the kubelet's GC, only faster),
# DW_PARALLEL (4) pods at a time. The whole sensor (audit owner mode, fanotify, CRI) streams
# to the collector, --aggregate-window 0 so that each pod's alert is its own:
#   - every pod raises "Drop and execute new binary in container";
#   - every such alert carries k8s.pod.name, k8s.ns.name, container.name,
#     container.image.repository and container.image.id in output_fields (the pod's own);
#   - the collector counted no alert without metadata
#     (driftwatch_collector_alerts_without_metadata_total), the sensor no container whose
#     events went out before its info (driftwatch_sensor_container_info_late_total);
#   - the sensor forgot every pod (driftwatch_sensor_pods_cached 0) and container.
# The alerts are the collector's stored ones (its database holds each one's Falco JSON; the
# --alerts-output file's lines, deliveries of them, are counted apart). Prints the alerts that
# arrived, the fraction with complete metadata and the time taken.
# Usage: short_lived_pods_test.sh BUILD_DIR     env: DW_PODS=40 DW_PARALLEL=4 KEEP=1
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "${1:?usage: short_lived_pods_test.sh BUILD_DIR}" collector sensor
dw_harness dw-short
pods=${DW_PODS:-40}
parallel=${DW_PARALLEL:-4}
ctd=$tmp/ctd
drop="Drop and execute new binary in container"
dw_audit_guard --owner
dw_ctd_up "$ctd"

dw_collector_start collector --insecure --listen 127.0.0.1:0 --db "$tmp/collector.db" \
    --alerts-output "$tmp/alerts.jsonl" --aggregate-window 0 --metrics-address 127.0.0.1:0
cport=$mport
dw_sensor_start --audit-mode owner --cri-endpoint "$ctd/containerd.sock" \
    --watch-fs "$ctd/root" --collector "127.0.0.1:$port" --insecure --node node-short \
    --spool-dir "$tmp/spool" --status-interval 1 --metrics-address 127.0.0.1:0
dw_wait_log sensor "connected to collector" 1 30 || die "the sensor did not connect"
sport=$(sed -n 's/.*metrics on http:\/\/[^ ]* (port \([0-9]*\)).*/\1/p' "$tmp/sensor.log" | tail -1)

# Every cgroup directory of a pod (its parent, in each hierarchy), as a kubelet removes them.
cgroup_mounts=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i+1) ~ /^cgroup2?$/) print $5; break } }' /proc/self/mountinfo)
rm_pod_cgroup() { # CGROUP_PARENT
    local m
    for m in $cgroup_mounts; do
        [[ -d $m$1 ]] && find "$m$1" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    return 0
}
state_of() { dw_cri "$ctd" inspect "$1" 2>/dev/null | sed -n 's/^  "state": "\([^"]*\)".*/\1/p'; }
# One pod's life: run, its container drops and runs a binary and exits, the pod goes.
pod_life() { # I
    local name=job-$1 uid pod cid i
    uid=$(cat /proc/sys/kernel/random/uuid)
    pod=$(dw_pod_run "$ctd" "$name" batch "$uid" "/kubepods/besteffort/pod$uid") || return 1
    cid=$(dw_pod_container "$ctd" "$pod" task -- /bin/sh -c \
        'cp /bin/busybox /tmp/x && chmod 755 /tmp/x && /tmp/x true') || return 1
    printf '%s %s\n' "$cid" "$name" >>"$tmp/pods.list"
    for ((i = 0; i < 200; i++)); do
        [[ $(state_of "$cid") == exited ]] && break
        sleep 0.02
    done
    [[ $(state_of "$cid") == exited ]] || echo "$name: container $cid did not exit" >>"$tmp/errors"
    dw_cri "$ctd" stop --timeout 0 "$cid" >/dev/null 2>&1 || true
    dw_cri "$ctd" rm "$cid" >/dev/null || echo "$name: rm $cid" >>"$tmp/errors"
    dw_cri "$ctd" stopp "$pod" >/dev/null || echo "$name: stopp $pod" >>"$tmp/errors"
    dw_cri "$ctd" rmp "$pod" >/dev/null || echo "$name: rmp $pod" >>"$tmp/errors"
    rm_pod_cgroup "/kubepods/besteffort/pod$uid"
}
worker() { # W: pods W, W+parallel, ...
    local i
    for ((i = $1; i < pods; i += parallel)); do
        pod_life "$i" || echo "job-$i: could not be run" >>"$tmp/errors"
    done
}

step "$pods pods, $parallel at a time"
t0=$(_dw_now_us)
workers=()
for ((w = 0; w < parallel; w++)); do
    worker "$w" &
    workers+=($!)
done
for p in "${workers[@]}"; do wait "$p" || true; done
t_pods=$((($(_dw_now_us) - t0) / 1000))
[[ ! -s $tmp/errors ]] || { head -5 "$tmp/errors"; fail "$(wc -l <"$tmp/errors") pod steps failed"; }
expect "pods run" "$(wc -l <"$tmp/pods.list")" "$pods"
registry_empty() {
    [[ $(curl -sf "http://127.0.0.1:$sport/status" |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin)["containers"]))') == 0 ]]
}
check "sensor: no container left in its registry" dw_wait 10 registry_empty
# Its pod cache goes with the pods' sandboxes (a node running CronJobs forever must not grow).
mport=$sport
pods_forgotten() { [[ $(metric driftwatch_sensor_pods_cached) == 0 ]]; }
check "sensor: no pod left in its pod cache" dw_wait 10 pods_forgotten
late=$(metric driftwatch_sensor_container_info_late_total)

# The alerts the collector stored (their Falco JSON), one per (event, rule); the lines of its
# --alerts-output file are deliveries of them, counted apart.
drops() { sqlite3 "$tmp/collector.db" "SELECT count(*) FROM alerts WHERE rule = '$drop'" 2>/dev/null || echo 0; }
all_drops() { (($(drops) >= pods)); }
dw_wait 60 all_drops || true
# Anything still on its way (a late alert would be a second one for a pod: counted below).
mport=$cport
caught_up() { [[ $(metric driftwatch_collector_detect_lag_events) == 0 ]]; }
dw_wait 30 caught_up || fail "the collector's detection did not catch up"
sleep 1
t_all=$((($(_dw_now_us) - t0) / 1000))
without=$(metric driftwatch_collector_alerts_without_metadata_total)

python3 - "$tmp/pods.list" "$tmp/collector.db" "$tmp/alerts.jsonl" "$drop" "$pods" \
    >"$tmp/result.txt" <<'PY' || true
import json, sqlite3, sys
pods = dict(l.split() for l in open(sys.argv[1]) if l.strip())
short = {cid[:12]: name for cid, name in pods.items()}
db, out, drop, want = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
rows = sqlite3.connect(db).execute("SELECT json FROM alerts WHERE rule = ?", (drop,))
alerts = [json.loads(r[0]) for r in rows]
drops = [a for a in alerts if a["output_fields"].get("container.id") in short]
keys = ("k8s.pod.name", "k8s.ns.name", "container.name", "container.image.repository",
        "container.image.id")
complete, missing = 0, {}
for a in drops:
    f = a["output_fields"]
    gaps = [k for k in keys if not f.get(k)]
    if f.get("k8s.pod.name") and f["k8s.pod.name"] != short[f["container.id"]]:
        gaps.append("k8s.pod.name of another pod")
    if gaps:
        missing[short[f["container.id"]]] = gaps
    else:
        complete += 1
alerted = {a["output_fields"]["container.id"] for a in drops}
lines = [json.loads(l) for l in open(out) if l.strip()]
sent = sum(l["rule"] == drop and l["output_fields"].get("container.id") in short for l in lines)
print(f"pods {want} alerted {len(alerted)} alerts {len(drops)} complete {complete}")
print(f"fraction {complete}/{len(drops)} = {complete / len(drops) if drops else 0:.4f}")
print(f"output file: {sent} lines for these {len(drops)} alerts")
for name, gaps in sorted(missing.items())[:10]:
    print(f"missing: {name}: {', '.join(gaps)}")
for cid, name in sorted(pods.items(), key=lambda p: p[1]):
    if cid[:12] not in alerted:
        print(f"no alert: {name} ({cid[:12]})")
PY
cat "$tmp/result.txt"
alerted=0 n_alerts=0 complete=0
read -r _ _ _ alerted _ n_alerts _ complete < <(head -1 "$tmp/result.txt") || true
echo "time: $pods pods run and removed in $((t_pods / 1000)).$((t_pods % 1000 / 100)) s," \
    "all alerts in $((t_all / 1000)).$((t_all % 1000 / 100)) s"
expect "every pod raised '$drop'" "$alerted" "$pods"
expect "one alert per pod" "$n_alerts" "$pods"
expect "alerts with pod, namespace, container, image and image id" "$complete" "$n_alerts"
expect "collector: alerts without metadata" "$without" 0
expect "sensor: containers whose events went out before their info" "$late" 0
dw_stop sensor
dw_audit_same "$tmp" || die "audit state not restored"
dw_finish "short-lived pods: $complete of $n_alerts alerts carry complete metadata ($pods pods)"
