#!/usr/bin/env bash
# exec_latency.sh: how long from an exec in a container to its event stored at the collector,
# and to its alert?
#
# A private containerd runs a Kubernetes-labelled pod; inside it a static pacer
# (bench/exec_pacer.c) fork+execs a static no-op RATE times a second for SECONDS. The no-op
# is copied into the running container (its upper layer), so each exec of it is drift: the
# shipped rules alert on every one (image-modified binary, drop and execute). The real
# sensor (audit owner mode, containers, fanotify) streams over mTLS to the real collector
# (SQLite, the shipped rules). Latency = the collector's commit time of the event, or of the
# alert, minus the audit timestamp of the exec (millisecond resolution: audit stamps are
# sec.msec). Prints p50/p90/p99/max and how many of the execs were stored and alerted on.
#
# Usage (root): bench/exec_latency.sh [BUILD_DIR]    env: RATE=1000 SECONDS=20
# Audit state is saved and restored (also on failure); everything started is stopped by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
BUILD=${1:-$REPO/build}
RATE=${RATE:-1000}
RUN_SECONDS=$(printenv SECONDS || echo 20)
# The harness the tests use (temp dir, exit steps, daemons by PID, audit state), containerd.
source "$REPO/tests/integration/containerd_env.sh"
dw_build "$BUILD"
[[ $EUID -eq 0 ]] || die "must run as root"
dw_harness dw-lat
TMP=$tmp
CTD=$TMP/ctd
dw_ctd_check_deps
dw_audit_guard
[[ $(dw_audit_pid) == 0 ]] || die "an audit daemon is running"

gcc -static -O2 -o "$TMP/exec_pacer" "$HERE/exec_pacer.c"
gcc -static -O2 -o "$TMP/noop" "$HERE/noop.c"
bash "$REPO/scripts/make-certs.sh" "$TMP/certs" node-lat >/dev/null
dw_image_build "$TMP/image.tar"
dw_at_exit dw_ctd_stop "$CTD"
dw_ctd_start "$CTD"
dw_image_import "$CTD" "$TMP/image.tar" >/dev/null

dw_collector_start collector --listen 127.0.0.1:0 --tls-cert "$TMP/certs/collector.crt" \
	--tls-key "$TMP/certs/collector.key" --client-ca "$TMP/certs/ca.crt" --db "$TMP/collector.db"
dw_start sensor "$sensor" --audit-mode owner --audit-state-file "$TMP/audit-state" \
	--cri-endpoint "$CTD/containerd.sock" --watch-fs "$CTD/root" \
	--collector "localhost:$port" --tls-ca "$TMP/certs/ca.crt" \
	--tls-cert "$TMP/certs/node-lat.crt" --tls-key "$TMP/certs/node-lat.key" \
	--spool-dir "$TMP/spool"
dw_wait_log sensor "connected to collector" 1 10 || die "the sensor did not connect"

uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$CTD" lat-bench bench "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$CTD" "$pod" pacer -- /bin/sleep 100000)
cpid=$(dw_ctr_pid "$CTD" "$cid")
cp "$TMP/exec_pacer" "$TMP/noop" "/proc/$cpid/root/bin/"
sleep 1
started=$(dw_ctr_exec "$CTD" "$cid" pace /bin/exec_pacer "$RATE" "$RUN_SECONDS" /bin/noop </dev/null)
sleep 2
# Peak resident memory of both daemons over the run.
sensor_hwm=$(dw_hwm_kb "$(dw_pid sensor)")
collector_hwm=$(dw_hwm_kb "$(dw_pid collector)")
dw_stop sensor 60 && ((dw_status == 0)) || die "sensor exit status $dw_status"
dw_stop collector 60 && ((dw_status == 0)) || die "collector exit status $dw_status"
"$BUILD/cli/driftwatch" events --db "$TMP/collector.db" --kind exec --container "$cid" >"$TMP/execs.jsonl"
python3 - "$TMP/execs.jsonl" "$started" "$RATE" "$RUN_SECONDS" "$sensor_hwm" "$collector_hwm" \
	"$TMP/collector.db" "$cid" <<'PY'
import datetime, json, sqlite3, sys
path, started, rate, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
db, cid = sys.argv[7], sys.argv[8]
lat = []
for line in open(path):
    e = json.loads(line)
    if (e.get("proc.argv") or [""])[0] != "/bin/noop":
        continue
    t = e["evt.time"]  # 2026-11-28T10:28:14.683797100Z
    base, frac = t[:-1].split(".")
    sec = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    ns = int(sec) * 10**9 + int(frac.ljust(9, "0"))
    lat.append((e["collector.stored_ns"] - ns) / 1e6)
lat.sort()
if not lat:
    sys.exit("exec_latency: no exec of the pod stored")
def pct(v, p):
    return v[min(len(v) - 1, int(p * len(v)))]
print(f"exec_latency: {started} execs started at {rate:.0f}/s for {secs:.0f} s, {len(lat)} stored "
      f"({100.0 * len(lat) / max(started, 1):.1f}%)")
print(f"exec -> stored at collector (ms): p50 {pct(lat, 0.50):.1f}  p90 {pct(lat, 0.90):.1f}  "
      f"p99 {pct(lat, 0.99):.1f}  max {lat[-1]:.1f}")
# Alerts: the table keeps the event's time (time_ns, the audit stamp) and the alert's commit
# time (stored_ns). The first alert of each exec of the no-op counts.
noop = '%"proc.exepath":"/bin/noop"%'
rows = sqlite3.connect(db).execute(
    "SELECT event_key, min(stored_ns - time_ns), count(*) FROM alerts "
    "WHERE container_id = ? AND json LIKE ? GROUP BY event_key", (cid, noop)).fetchall()
alat = sorted(r[1] / 1e6 for r in rows)
by_rule = sqlite3.connect(db).execute(
    "SELECT rule, count(*) FROM alerts WHERE container_id = ? AND json LIKE ? "
    "GROUP BY rule ORDER BY rule", (cid, noop)).fetchall()
if not alat:
    sys.exit("exec_latency: no alert on the pod's execs")
print(f"exec -> alert stored (ms): p50 {pct(alat, 0.50):.1f}  p90 {pct(alat, 0.90):.1f}  "
      f"p99 {pct(alat, 0.99):.1f}  max {alat[-1]:.1f}  ({len(alat)} execs alerted: "
      + ", ".join(f"{r} {n}" for r, n in by_rule) + ")")
print(f"peak RSS: sensor {int(sys.argv[5]) / 1024:.1f} MiB, collector {int(sys.argv[6]) / 1024:.1f} MiB")
PY
