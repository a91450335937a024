#!/bin/bash
# Issue 19, drift beyond the upper layer: a file written at runtime to a pod's volume and then
# run is joined and alerted like an upper-layer drop. Pods through CRI with bind mounts as a
# kubelet makes them, the whole sensor (audit owner mode, fanotify, CRI) running:
#   - emptyDir on disk   (a directory under the pod's volumes dir, the runtime's filesystem)
#   - emptyDir in memory (medium: Memory: a tmpfs the test mounts there, as the kubelet
#                         does; its filesystem gets its own fanotify mark)
#   - hostPath           (a host directory outside the pod's dir)
#   - a shared emptyDir  (two containers of the pod: one writes, the other runs it)
#   - a file the host writes into the volume (the kubelet filling a configMap) and the
#     container runs: no drop alert (host writes are not the container's drift)
# Each alert names the file as the container sees it, and the sensor watched every volume
# (volumes_unwatched 0). In fd modes an upper-layer file's path reads as the path in its
# container: a rootfs write under a path that is also a volume's host source (here /cache/d2
# against the hostPath's source) must keep its own name.
# Usage: volume_drift_test.sh BUILD_DIR [FANOTIFY_MODE (auto)]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "$1"
dw_harness dw-vol
ctd=$tmp/ctd
dw_audit_guard --owner
dw_ctd_up "$ctd"

uid=$(cat /proc/sys/kernel/random/uuid)
vols=$tmp/pods/$uid/volumes
mkdir -p "$vols/kubernetes.io~empty-dir/cache" "$vols/kubernetes.io~empty-dir/mem" \
    "$vols/kubernetes.io~empty-dir/shared" "$tmp/hostpath"
mount -t tmpfs -o size=64m tmpfs "$vols/kubernetes.io~empty-dir/mem"
dw_at_exit umount "$vols/kubernetes.io~empty-dir/mem"
# A hostPath whose host source is also a path in the container's own rootfs.
twin=/var/tmp/dw-vol-twin.$$
mkdir "$twin"
dw_at_exit rm -rf "$twin"

dw_sensor_start --audit-mode owner --cri-endpoint "$ctd/containerd.sock" \
    --watch-fs "$ctd/root" --status-interval 1 --resync 1 --metrics-address 127.0.0.1:0 \
    --fanotify-mode "${2:-auto}"
pod=$(dw_pod_run "$ctd" vol-drift shop "$uid" "/kubepods/besteffort/pod$uid")
app=$(dw_pod_container "$ctd" "$pod" app \
    --mount "$vols/kubernetes.io~empty-dir/cache:/cache" \
    --mount "$vols/kubernetes.io~empty-dir/mem:/mem" \
    --mount "$tmp/hostpath:/host-data" \
    --mount "$vols/kubernetes.io~empty-dir/shared:/shared" \
    --mount "$twin:/twin" \
    -- /bin/sleep 1000)
side=$(dw_pod_container "$ctd" "$pod" sidecar \
    --mount "$vols/kubernetes.io~empty-dir/shared:/work" -- /bin/sleep 1000)
mport=$(sed -n 's/.*metrics on http:\/\/[^ ]* (port \([0-9]*\)).*/\1/p' "$tmp/sensor.log" | tail -1)
[[ -n $mport ]] || die "the sensor serves no /status"
# The sensor knows both containers from CRI (their mounts with them) before anything is written.
known() {
    curl -sf "http://127.0.0.1:$mport/status" >"$tmp/status.json" &&
        python3 - "$tmp/status.json" "$app" "$side" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ids = {c["id"] for c in s.get("containers", []) if c.get("source") == "cri"}
sys.exit(0 if set(sys.argv[2:]) <= ids else 1)
PY
}
dw_wait 20 known || die "the sensor did not learn both containers from CRI"

run() { # CONTAINER EXECID SCRIPT
    dw_ctr_exec "$ctd" "$1" "$2" /bin/sh -c "$3" </dev/null >>"$tmp/exec.out" 2>&1 ||
        { cat "$tmp/exec.out"; die "exec $2 in the pod"; }
}
run "$app" e1 'mkdir /cache/d && cp /bin/busybox /cache/d/echo && /cache/d/echo ran-disk'
run "$app" e2 'mkdir /mem/d && cp /bin/busybox /mem/d/echo && /mem/d/echo ran-mem'
run "$app" e3 'mkdir /host-data/d && cp /bin/busybox /host-data/d/echo && /host-data/d/echo ran-host'
run "$app" e4 'mkdir /shared/d && cp /bin/busybox /shared/d/echo'
run "$side" e5 '/work/d/echo ran-shared'
run "$app" e7 "mkdir -p $twin/d && cp /bin/busybox $twin/d/echo && $twin/d/echo ran-rootfs"
# The host's write, by a live host process (this shell closes the file last, as the kubelet
# would), then the container runs it.
mkdir "$vols/kubernetes.io~empty-dir/cache/h"
exec 5>"$vols/kubernetes.io~empty-dir/cache/h/echo"
cat /bin/busybox >&5
exec 5>&-
chmod 755 "$vols/kubernetes.io~empty-dir/cache/h/echo"
sleep 1
run "$app" e6 '/cache/h/echo ran-from-host'
# Each `run` exits 0 only if its binary ran (sh -c with &&). Its echo is not the proof: ctr
# can close an exec's FIFO before it has copied a short process's last output.
sleep 1
unwatched=$(metric driftwatch_sensor_fanotify_volumes_unwatched_total)
dw_stop sensor
dw_audit_same "$tmp" || die "audit state not restored"
expect "volumes the sensor could not watch" "$unwatched" 0

"$dw" analyze --events "$tmp/capture" >"$tmp/events.jsonl"
"$dw" analyze "$tmp/capture" >"$tmp/alerts.jsonl" 2>"$tmp/analyze.err" ||
    { cat "$tmp/analyze.err"; die "driftwatch analyze"; }
python3 - "$tmp/events.jsonl" "$tmp/alerts.jsonl" "$app" "$side" "$twin" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
alerts = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
app, side, twin = sys.argv[3][:12], sys.argv[4][:12], sys.argv[5]
drop = "Drop and execute new binary in container"
fails = []

def drops(cid, path):
    return [a for a in alerts if a["rule"] == drop
            and a["output_fields"].get("container.id") == cid
            and path in (a["output_fields"].get("proc.exepath"),
                         a["output_fields"].get("proc.exe_file"))]

def writes(cid, path):
    return [e for e in events if e.get("fd.write_kind") is not None
            and e.get("container.id") == cid and e.get("fd.name") == path]

for cid, path, kind in ((app, "/cache/d/echo", "emptyDir on disk"),
                        (app, "/mem/d/echo", "emptyDir in memory"),
                        (app, "/host-data/d/echo", "hostPath"),
                        (side, "/work/d/echo", "shared emptyDir, run by the other container"),
                        (app, twin + "/d/echo", "rootfs path that is also a volume's host path")):
    if not writes(cid, path):
        fails.append(f"{kind}: no write event of {path} in {cid}")
    if not drops(cid, path):
        fails.append(f"{kind}: no drop-and-execute alert for {path} in {cid}")
    else:
        print(f"ok: {kind}: {drops(cid, path)[0]['output']}")
if not [e for e in events if e.get("evt.type") == "execve" and e.get("container.id") == app
        and e.get("proc.exepath") == "/cache/h/echo"]:
    fails.append("no exec event of /cache/h/echo, the file the host wrote")
if drops(app, "/cache/h/echo"):
    fails.append("a file the host wrote into the volume alerted as the container's drift")
for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
PY
dw_finish "volume drift: emptyDir (disk, memory), hostPath and a shared volume alert"
