#!/bin/bash
# The whole sensor (audit owner mode + container registry + fanotify) against a private
# containerd with a pod created through CRI as a kubelet would: writes, a dropped binary,
# image binaries and 200 short-lived processes, each attributed to the right container and
# pod. Run once per fanotify mode (the mode is forced). Names that are not UTF-8 (issue 11):
# a binary dropped as /tmp/<0xff>x and run, and a second pod and container whose names are
# not UTF-8 (containerd 1.6 takes them as they are); nothing of them may be lost, and the
# drop and execute alert must fire for the odd name.
# Usage: containers_test.sh BUILD_DIR FANOTIFY_MODE [--no-cri]
set -euo pipefail
mode=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "$1"
shift 2
extra=("$@")
dw_harness dw-ctr
ctd=$tmp/ctd
dw_audit_guard --owner
dw_ctd_up "$ctd"

# The sensor first: the pod is started while it runs, as on a live node.
dw_sensor_start --audit-mode owner --fanotify-mode "$mode" \
    --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" --status-interval 1 \
    --resync 1 ${extra[@]+"${extra[@]}"}
grep -q "fanotify $mode" "$tmp/sensor.log" || die "sensor not in fanotify mode $mode"

# The odd pod first: the CRI answers that hold its name must not hide the other pod.
odd_uid=$(cat /proc/sys/kernel/random/uuid)
odd_pod=$(dw_pod_run "$ctd" "odd-$(printf '\377')" shop "$odd_uid" "/kubepods/besteffort/pod$odd_uid")
# It also has a bind mount (read-only), as CRI reports it: container.mounts.
mkdir -p "$tmp/vol"
odd_cid=$(dw_pod_container "$ctd" "$odd_pod" "app$(printf '\376')" --mount "$tmp/vol:/vol:ro" -- /bin/sleep 1000)
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" web-7d9f8-x2kqp shop "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$ctd" "$pod" app -- /bin/sleep 1000)
cpid=$(dw_ctr_pid "$ctd" "$cid") || true
[[ -n $cpid ]] || die "no pid for container $cid"

# Drift inside the container. A copy of busybox (busybox_dropped) is a binary written at
# runtime; /bin/ls is an image binary; the loop starts 200 processes that exit at once.
dw_ctr_exec "$ctd" "$cid" e1 /bin/sh -c '
    echo hello >/tmp/hello.txt
    mkdir -p /srv/data && printf "%s\n" one two >/srv/data/notes.txt
    cp /bin/busybox /tmp/busybox_dropped && chmod 755 /tmp/busybox_dropped
    printf "#!/bin/sh\necho hi\n" >/tmp/script.sh
    /tmp/busybox_dropped echo dropped-ran
    # Run as the issue did it: busybox, named so, knows no such applet, and says so.
    f=/tmp/$(printf "\377")x; cp /bin/busybox "$f"; chmod 755 "$f"
    "$f" 2>&1 | grep -q "applet not found" && echo odd-ran
    /bin/ls / >/dev/null
    # What the sensor reads of a process at its exec (vpid, session, caps, environment, the
    # executable'"'"'s times) and names from the container'"'"'s own /etc/passwd and /etc/group,
    # not the host'"'"'s: uid and gid 0 are named "croot" and "cgrp" here. The sensor checks
    # those files at most once a second: wait for it. The probe lives a second, to be read.
    mkdir -p /etc
    echo "croot:x:0:0:container root:/root:/bin/sh" >/etc/passwd
    echo "cgrp:x:0:" >/etc/group
    sleep 1.2
    DW_MARK="$(printf "m\377")" /tmp/busybox_dropped sh -c "sleep 1; true" state-probe
    i=0
    while [ $i -lt 200 ]; do /tmp/busybox_dropped true short-$i; i=$((i + 1)); done
    # Last (every applet runs the new file after this): the image binary run, replaced by a
    # copy in the upper layer and run again at once, likely within one of the sensor'"'"'s
    # batches, whose upper-layer answers serve all of its execs: the second reads as upper.
    /bin/busybox true image-then-upper-1
    cp /bin/busybox /tmp/bb.new && mv /tmp/bb.new /bin/busybox
    /bin/busybox true image-then-upper-2
' </dev/null >"$tmp/exec.out"
grep -q dropped-ran "$tmp/exec.out" || die "the exec in the container did not run"
grep -q odd-ran "$tmp/exec.out" || die "the binary with the odd name did not run"
# The same drift, read from the upper layer, with the container named as in its pod.
"$dw" diff --json --cri-endpoint "$ctd/containerd.sock" shop/web-7d9f8-x2kqp/app \
    >"$tmp/diff.jsonl" 2>"$tmp/diff.err" || { cat "$tmp/diff.err"; die "driftwatch diff"; }
python3 - "$tmp/diff.jsonl" "$(sha256sum /bin/busybox | cut -d' ' -f1)" <<'PY'
import json, sys
got = {(e["kind"], e["path"]) for e in map(json.loads, open(sys.argv[1]))}
want = {("added", p) for p in ("/tmp/hello.txt", "/srv", "/srv/data", "/srv/data/notes.txt",
                               "/tmp/busybox_dropped", "/tmp/script.sh",
                               "/tmp/\udcffx")}  # /tmp/<0xff>x, as driftwatch's JSON escapes it
want |= {("modified", "/etc/passwd"), ("modified", "/etc/group"),  # the image's, rewritten
         ("modified", "/bin/busybox")}
# /tmp may or may not be in the image; ash keeps no history file: nothing else may appear.
extra = {g for g in got - want if g[1] not in ("/tmp", "/bin") or g[0] not in ("added", "modified")}
drop = [e for e in map(json.loads, open(sys.argv[1])) if e["path"] == "/tmp/busybox_dropped"]
if want - got or extra or not drop or drop[0].get("sha256") != sys.argv[2]:
    sys.exit("FAIL: diff: missing %s, unexpected %s, dropped %s" % (sorted(want - got), sorted(extra), drop))
PY
# Give the watcher and the parser their batching delay, then stop the sensor.
sleep 1
dw_stop sensor
dw_audit_same "$tmp" || die "audit state not restored"

"$dw" analyze --events "$tmp/capture" >"$tmp/events.jsonl"
python3 "$here/check_containers.py" "$tmp/events.jsonl" --container "$cid" --pod web-7d9f8-x2kqp \
    --namespace shop --uid "$uid" --name app --image-id "$image_id" --mode "$mode" \
    --sha256 "$(sha256sum /bin/busybox | cut -d' ' -f1)" --odd-container "$odd_cid" \
    --odd-uid "$odd_uid" --odd-mount "$tmp/vol:/vol::false:private" ${extra[@]+"${extra[@]}"}
# Nothing refused for its encoding on the way: no protobuf complaint in the sensor's log.
if grep -E "libprotobuf|not an event|failed to serialize" "$tmp/sensor.log"; then
    die "the sensor could not encode an event"
fi
# The shipped rules on the capture: the drop and execute of the odd name is alerted.
"$dw" analyze "$tmp/capture" >"$tmp/alerts.jsonl" 2>"$tmp/analyze.err" ||
    { cat "$tmp/analyze.err"; die "driftwatch analyze (alerts)"; }
python3 - "$tmp/alerts.jsonl" "$cid" <<'PY'
import json, sys
odd = "/tmp/\udcffx"  # bytes 2f 74 6d 70 2f ff 78: a lone surrogate per byte that is not UTF-8
alerts = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
drop = [a for a in alerts if a["rule"] == "Drop and execute new binary in container"
        and a["output_fields"].get("proc.exepath") == odd]
if not drop:
    sys.exit("FAIL: no drop and execute alert for %r; rules alerted: %s" % (
        odd, sorted({(a["rule"], a["output_fields"].get("proc.exepath")) for a in alerts})))
a = drop[0]
if a["output_fields"].get("container.id") != sys.argv[2][:12] or odd not in a["output"]:
    sys.exit("FAIL: drop and execute alert: %r" % a)
if odd.encode("utf-8", "surrogateescape") != b"/tmp/\xffx":
    sys.exit("FAIL: the name does not read back as its bytes")
PY
echo "PASS containers ($mode${extra[*]:+ ${extra[*]}})"
