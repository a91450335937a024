#!/bin/bash
# Issue 15, drift prevention (driftwatch-sensor --prevent drift) against a real pod created
# through CRI on a private containerd, with fanotify exec permission events on the kernel:
#   - denied (exit 126, EPERM): a dropped binary (copied, chmod'ed, run), a dropped script
#     run by path, the binary renamed, a hard link to it, a file run through its fd after
#     its last name went, and drift present before the sensor started;
#   - run: the image's binaries, `sh -c` commands, a script read by a shell (an ordinary
#     open, not an exec: the README says so), --prevent-allow'ed paths, and host execs of
#     dropped files;
#   - each denial is an event whose "Drift Prevented" alert names the pod and the file;
#   - --prevent-dry-run denies nothing and reports each would-be denial;
#   - a sensor SIGKILLed during an exec storm in the pod and on the host leaves no exec
#     blocked: every exec of the storm finishes (a timed-out one fails the test), and the
#     image's execs all succeed (none wrongly denied, with both cores busy);
#   - the collector's --prevent-policy reaches the sensor, follows the collector's SIGHUP,
#     outlives a sensor restart without the collector, and goes when the collector has none;
#   - --prevent-events open (FAN_OPEN_PERM, for kernels before 5.0) reaches the same
#     verdicts, and an exec storm meets no wrongful denial and no deadline;
#   - --prevent-marks mount (each container's overlay mount marked: kernels before 6.5)
#     reaches the same verdicts, and a SIGKILL during an exec storm holds nothing;
#   - --respond stop stops the container a denial came from through the CRI, at most
#     --respond-max-per-minute of them (the next is logged and counted, not stopped), and
#     the container of a collector's --respond-rules alert.
# Usage: prevent_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "$1"
dw_harness dw-prevent
command -v gcc >/dev/null || die "gcc missing (apt-get install -y gcc libc6-dev)"

extra=$tmp/extra
mkdir -p "$extra/opt/dw"
gcc -static -O2 -Wall -Wextra -o "$extra/opt/dw/fd_exec" "$here/fd_exec.c"
echo 'int main(void) { return 0; }' | gcc -static -O2 -x c -o "$extra/opt/dw/victim" -
ctd=$tmp/ctd
dw_ctd_up "$ctd" "$extra"
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" prevent-pod shop "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$ctd" "$pod" app -- /bin/sleep 1000)
in_pod() { timeout -k 5 60 ctr --address "$ctd/containerd.sock" -n "$DW_NS" tasks exec \
    --exec-id "x$RANDOM$RANDOM" --fifo-dir "$ctd/fifo" "$cid" "$@"; }

step "drift present before the sensor starts"
in_pod /bin/sh -c 'cp /bin/busybox /tmp/busybox-pre && chmod 755 /tmp/busybox-pre' || die "cp in the pod"

# The actions: NAME=EXIT lines, one per exec tried.
cat >"$tmp/actions.sh" <<'EOF'
t() { name=$1; shift; "$@" >/dev/null 2>&1; echo "$name=$?"; }
t image /bin/busybox true
t sh_c /bin/sh -c 'true'
cp /bin/busybox /tmp/busybox-dropped && chmod 755 /tmp/busybox-dropped
t dropped /tmp/busybox-dropped true
printf '#!/bin/sh\nexit 0\n' >/tmp/s.sh && chmod 755 /tmp/s.sh
t script /tmp/s.sh
t script_by_shell /bin/sh /tmp/s.sh
mv /tmp/busybox-dropped /tmp/busybox-renamed
t renamed /tmp/busybox-renamed true
ln /tmp/busybox-renamed /tmp/busybox-hardlink
t hardlink /tmp/busybox-hardlink true
t pre /tmp/busybox-pre true
mkdir -p /tmp/allowed && cp /bin/busybox /tmp/allowed/busybox-tool && chmod 755 /tmp/allowed/busybox-tool
t allowed /tmp/allowed/busybox-tool true
cp /bin/busybox /tmp/busybox-gone && chmod 755 /tmp/busybox-gone
t unlinked /opt/dw/fd_exec fd-unlinked /tmp/busybox-gone true
echo actions-done
EOF
actions() { # OUT: the actions in the pod
    in_pod /bin/sh -s <"$tmp/actions.sh" >"$1" 2>&1 || true
    grep -qx actions-done "$1" || { cat "$1"; die "the actions in the pod did not finish"; }
}
sensor_port() { sed -n 's/.*metrics on http:\/\/[^ ]* (port \([0-9]*\)).*/\1/p' "$tmp/sensor.log" | tail -1; }
# The sensor's /status into $tmp/status.json; true once it lists the pod's container.
sensor_status() {
    curl -sf "http://127.0.0.1:$(sensor_port)/status" >"$tmp/status.json" && grep -q "$cid" "$tmp/status.json"
}
sensor_cli_status() { "$dw" status --sensor "127.0.0.1:$(sensor_port)"; }
want() { # OUT NAME EXIT
    local got
    got=$(sed -n "s/^$2=//p" "$1")
    expect "$2 exits $3" "$got" "$3"
}

step "prevent drift"
# The policy file: drift under /tmp/policy/ may run in namespace shop (this pod's).
bb_sha=$(sha256sum /bin/busybox | cut -d' ' -f1)
printf 'allow:\n  - name: shop-tools\n    namespaces: [shop]\n    paths: ["/tmp/policy/*"]\n  - name: other-by-hash\n    namespaces: [other]\n    sha256: [%s]\n' \
    "$bb_sha" >"$tmp/policy.yaml"
dw_sensor_start --audit-mode off --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
    --prevent drift --prevent-allow '/tmp/allowed/*' --prevent-policy "$tmp/policy.yaml" \
    --status-interval 1 --metrics-address 127.0.0.1:0
grep -q "prevent drift (fail open after 50 ms; marks on $ctd/root)" "$tmp/sensor.log" &&
    ok "the banner names prevent mode and marks" || fail "banner: $(grep -m1 prevent "$tmp/sensor.log")"
dw_wait 10 sensor_status || die "the sensor does not know the container"
actions "$tmp/pod.out"
cat "$tmp/pod.out"
for n in image sh_c script_by_shell allowed; do want "$tmp/pod.out" "$n" 0; done
for n in dropped script renamed hardlink pre; do want "$tmp/pod.out" "$n" 126; done
want "$tmp/pod.out" unlinked 127  # fd_exec: execveat failed (EPERM)
# Once a verdict has found a file in an image layer, later files opened through that layer's
# mount are allowed from the mount alone. An image file changed in the container is copied
# up to the upper layer (its own mount): drift, however warm that shortcut is.
in_pod_rc() { in_pod /bin/sh -c "$1"' >/dev/null 2>&1; echo rc=$?' 2>&1 | sed -n 's/^rc=//p' | tail -1; }
expect "an image file runs (twice)" "$(in_pod_rc '/opt/dw/victim && /opt/dw/victim')" 0
expect "the same file copied up by a chmod is denied" "$(in_pod_rc 'chmod 755 /opt/dw/victim && /opt/dw/victim')" 126
policy_run() { in_pod /bin/sh -c 'mkdir -p /tmp/policy && cp /bin/busybox /tmp/policy/busybox-p &&
    chmod 755 /tmp/policy/busybox-p; /tmp/policy/busybox-p true >/dev/null 2>&1; echo $?' 2>&1 | tail -1; }
expect "the policy file lets /tmp/policy/ run in namespace shop" "$(policy_run)" 0
# The same file by hash, but for another namespace: not this pod's.
printf 'allow:\n  - namespaces: [other]\n    sha256: [%s]\n' "$bb_sha" >"$tmp/policy.yaml"
kill -HUP "$(dw_pid sensor)"
dw_wait 5 grep -q "prevention policy .* reloaded: 2 entries" "$tmp/sensor.log" ||
    fail "SIGHUP: $(grep SIGHUP "$tmp/sensor.log" | tail -1)"
expect "after SIGHUP the policy no longer lets it run" "$(policy_run)" 126
printf 'allow:\n  - namespaces: [shop]\n    sha256: [%s]\n' "$bb_sha" >"$tmp/policy.yaml"
kill -HUP "$(dw_pid sensor)"
reloads_at_least() { test "$(grep -c "prevention policy .* reloaded" "$tmp/sensor.log")" -ge "$1"; }
dw_wait 5 reloads_at_least 2 || fail "second SIGHUP"
expect "a sha256 entry lets the same file run" "$(policy_run)" 0
printf 'allow:\n  - bogus: 1\n' >"$tmp/policy.yaml"
kill -HUP "$(dw_pid sensor)"
dw_wait 5 grep -q "SIGHUP: .*policy.yaml:2:5: unknown key bogus.*the policy in force stays" "$tmp/sensor.log" &&
    ok "a bad policy file is refused with its line, the old one stays" || fail "bad policy: $(tail -2 "$tmp/sensor.log")"
expect "the old policy still in force" "$(policy_run)" 0
# Host execs of a dropped file on the same filesystem run.
cp /bin/busybox "$ctd/root/busybox-host-dropped" && chmod 755 "$ctd/root/busybox-host-dropped"
"$ctd/root/busybox-host-dropped" true && ok "host exec of a dropped file runs" || fail "host exec denied"
sensor_status
expect "status: denials" "$(json "$tmp/status.json" 'j["prevent"]["denied"]')" 8
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["prevent"]["image_mount"] > 0 else 1)' \
    "$tmp/status.json" && ok "status: execs allowed from an image layer's mount ($(json "$tmp/status.json" 'j["prevent"]["image_mount"]'))" ||
    fail "status: image_mount $(json "$tmp/status.json" 'j["prevent"]["image_mount"]')"
expect "status: allowed by policy" "$(json "$tmp/status.json" 'j["prevent"]["allowed_by_policy"]')" 4
expect "status: mode" "$(json "$tmp/status.json" 'j["prevent"]["mode"]')" drift
expect "status: fail answers" "$(json "$tmp/status.json" 'j["prevent"]["fail_answers"]')" 0
dw_stop sensor
mv "$tmp/capture" "$tmp/capture.deny"

step "alerts"
"$dw" analyze "$tmp/capture.deny" >"$tmp/alerts.jsonl" 2>"$tmp/analyze.err" ||
    { cat "$tmp/analyze.err"; die "analyze"; }
python3 - "$tmp/alerts.jsonl" "${cid:0:12}" <<'PY' && ok "Drift Prevented alerts name pod and file" || fail "Drift Prevented alerts"
import json, sys
alerts = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
got = [a for a in alerts if a["rule"] == "Drift Prevented"]
files = sorted(a["output_fields"]["fd.name"] for a in got)
# A hard link's denial may name the file's other link: overlayfs opens a hard-linked
# file through the upper dentry it met first.
want = {"/tmp/busybox-dropped", "/tmp/busybox-gone", "/tmp/busybox-pre", "/tmp/busybox-renamed",
        "/tmp/s.sh"}
bad = [a for a in got if a["priority"] != "Critical" or a["output_fields"]["k8s.pod.name"] != "prevent-pod"
       or a["output_fields"]["container.id"] != sys.argv[2] or not a["output_fields"].get("fd.sha256")]
print("denied files:", files)
if bad:
    print("bad alert:", bad[0])
want.add("/tmp/policy/busybox-p")  # once, between the two SIGHUPs
want.add("/opt/dw/victim")  # the image file copied up
ok = len(got) == 8 and want <= set(files) <= want | {"/tmp/busybox-hardlink"} and not bad
sys.exit(0 if ok else 1)
PY

step "dry run"
dw_sensor_start --audit-mode off --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
    --prevent drift --prevent-dry-run --metrics-address 127.0.0.1:0
dw_wait 10 sensor_status || die "the sensor does not know the container (dry run)"
in_pod /bin/sh -c 'rm -f /tmp/busybox-hardlink /tmp/busybox-renamed /tmp/s.sh' || true
actions "$tmp/dry.out"
for n in image sh_c dropped script renamed hardlink pre unlinked; do want "$tmp/dry.out" "$n" 0; done
sensor_status
expect "dry run: would-deny count" "$(json "$tmp/status.json" 'j["prevent"]["would_deny"]')" 7
expect "dry run: nothing denied" "$(json "$tmp/status.json" 'j["prevent"]["denied"]')" 0
dw_stop sensor
"$dw" analyze "$tmp/capture" >"$tmp/dry-alerts.jsonl" 2>/dev/null || die "analyze (dry run)"
expect "dry run alerts" "$(grep -c '"rule":"Drift Prevention Dry Run"' "$tmp/dry-alerts.jsonl" || true)" 7

step "exec storms: prevention on, then SIGKILL in the middle"
dw_sensor_start --audit-mode off --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
    --prevent drift --metrics-address 127.0.0.1:0
dw_wait 10 sensor_status || die "the sensor does not know the container (storm)"
# Two storms of image execs, one per core: in the pod and on the host (a copy of busybox on
# the marked filesystem). Each counts its failures; timeout marks a hung exec.
storm='n=0; f=0; while [ $n -lt 3000 ]; do /bin/busybox true || f=$((f+1)); n=$((n+1)); done; echo "failed=$f"'
cp /bin/busybox "$ctd/root/busybox-bb"
# First a whole storm with prevention on: no allowed exec denied, none past the deadline.
(in_pod /bin/sh -c "$storm" >"$tmp/storm0-pod.out" 2>&1; echo "rc=$?" >>"$tmp/storm0-pod.out") &
pod_storm=$!
timeout -k 5 60 /bin/sh -c "${storm//\/bin\/busybox/$ctd/root/busybox-bb}" >"$tmp/storm0-host.out" 2>&1 || true
wait "$pod_storm" || true
expect "storm: no image exec denied in the pod" "$(sed -n 's/^failed=//p' "$tmp/storm0-pod.out")" 0
expect "storm: no host exec denied" "$(sed -n 's/^failed=//p' "$tmp/storm0-host.out")" 0
sensor_status
expect "storm: no exec answered by the deadline" "$(json "$tmp/status.json" 'j["prevent"]["deadline_answers"]')" 0
expect "storm: none undecided" "$(json "$tmp/status.json" 'j["prevent"]["undecided"]')" 0
expect "storm: none denied" "$(json "$tmp/status.json" 'j["prevent"]["denied"]')" 0
note "storm: $(json "$tmp/status.json" 'j["prevent"]["allowed"]') execs allowed, longest answer $(json "$tmp/status.json" 'j["prevent"]["latency_max_ns"]') ns"
# Then the same, with the sensor killed in the middle.
(in_pod /bin/sh -c "$storm" >"$tmp/storm-pod.out" 2>&1; echo "rc=$?" >>"$tmp/storm-pod.out") &
pod_storm=$!
(timeout -k 5 60 /bin/sh -c "${storm//\/bin\/busybox/$ctd/root/busybox-bb}" >"$tmp/storm-host.out" 2>&1
 echo "rc=$?" >>"$tmp/storm-host.out") &
host_storm=$!
sleep 1.5
dw_kill sensor
wait "$pod_storm" || true
wait "$host_storm" || true
cat "$tmp/storm-pod.out" "$tmp/storm-host.out"
expect "pod storm finished" "$(sed -n 's/^rc=//p' "$tmp/storm-pod.out")" 0
expect "host storm finished" "$(sed -n 's/^rc=//p' "$tmp/storm-host.out")" 0
expect "no image exec denied in the pod" "$(sed -n 's/^failed=//p' "$tmp/storm-pod.out")" 0
expect "no host exec denied" "$(sed -n 's/^failed=//p' "$tmp/storm-host.out")" 0
# After the kill nothing is marked: a dropped binary runs again.
got=$(in_pod /bin/sh -c '/tmp/busybox-pre true; echo $?' 2>&1 | tail -1)
expect "after SIGKILL the kernel holds no exec" "$got" 0

step "open permission events (--prevent-events open, the path of kernels before 5.0)"
# FAN_OPEN_PERM: every open on the filesystem waits for a verdict; only the opens of a
# thread inside execve are judged. The same verdicts as with exec events.
in_pod /bin/sh -c 'rm -f /tmp/busybox-hardlink /tmp/busybox-renamed /tmp/s.sh' || true
dw_sensor_start --audit-mode off --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
    --prevent drift --prevent-events open --prevent-allow '/tmp/allowed/*' --metrics-address 127.0.0.1:0
dw_wait 5 grep -q "marks on $ctd/root; open permission events)" "$tmp/sensor.log" &&
    ok "the banner says open permission events" || fail "banner: $(grep -m1 prevent "$tmp/sensor.log")"
dw_wait 10 sensor_status || die "the sensor does not know the container (open events)"
actions "$tmp/open.out"
for n in image sh_c script_by_shell allowed; do want "$tmp/open.out" "$n" 0; done
for n in dropped script renamed hardlink pre; do want "$tmp/open.out" "$n" 126; done
want "$tmp/open.out" unlinked 127
storm1k='n=0; f=0; while [ $n -lt 1000 ]; do /bin/busybox true || f=$((f+1)); n=$((n+1)); done; echo "failed=$f"'
(in_pod /bin/sh -c "$storm1k" >"$tmp/storm-open-pod.out" 2>&1) &
pod_storm=$!
timeout -k 5 60 /bin/sh -c "${storm1k//\/bin\/busybox/$ctd/root/busybox-bb}" >"$tmp/storm-open-host.out" 2>&1 || true
wait "$pod_storm" || true
expect "open events storm: no image exec denied in the pod" "$(sed -n 's/^failed=//p' "$tmp/storm-open-pod.out")" 0
expect "open events storm: no host exec denied" "$(sed -n 's/^failed=//p' "$tmp/storm-open-host.out")" 0
sensor_status
expect "open events: status says so" "$(json "$tmp/status.json" 'j["prevent"]["events"]')" open
expect "open events: denials" "$(json "$tmp/status.json" 'j["prevent"]["denied"]')" 6
expect "open events: no deadline answers" "$(json "$tmp/status.json" 'j["prevent"]["deadline_answers"]')" 0
expect "open events: none undecided" "$(json "$tmp/status.json" 'j["prevent"]["undecided"]')" 0
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["prevent"]["not_exec"] > 10 else 1)' \
    "$tmp/status.json" && ok "open events: plain opens allowed as no exec ($(json "$tmp/status.json" 'j["prevent"]["not_exec"]'))" ||
    fail "open events: not_exec $(json "$tmp/status.json" 'j["prevent"]["not_exec"]')"
dw_stop sensor

step "mount marks (--prevent-marks mount, the path of kernels before 6.5)"
# Before 6.5 overlayfs hides a container's execs from marks on the upper dirs' filesystem:
# each container's overlay mount is marked instead, and the fd is the overlay's file.
in_pod /bin/sh -c 'rm -f /tmp/busybox-hardlink /tmp/busybox-renamed /tmp/s.sh' || true
dw_sensor_start --audit-mode off --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
    --prevent drift --prevent-marks mount --prevent-allow '/tmp/allowed/*' --metrics-address 127.0.0.1:0
dw_wait 5 grep -q "marks on each container's overlay mount)" "$tmp/sensor.log" &&
    ok "the banner says mount marks" || fail "banner: $(grep -m1 prevent "$tmp/sensor.log")"
dw_wait 10 sensor_status || die "the sensor does not know the container (mount marks)"
actions "$tmp/mount.out"
for n in image sh_c script_by_shell allowed; do want "$tmp/mount.out" "$n" 0; done
for n in dropped script renamed hardlink pre; do want "$tmp/mount.out" "$n" 126; done
want "$tmp/mount.out" unlinked 127
"$ctd/root/busybox-host-dropped" true && ok "mount marks: host exec of a dropped file runs" ||
    fail "mount marks: host exec denied"
sensor_status
expect "mount marks: status says so" "$(json "$tmp/status.json" 'j["prevent"]["marks"]')" mount
expect "mount marks: denials" "$(json "$tmp/status.json" 'j["prevent"]["denied"]')" 6
expect "mount marks: none undecided" "$(json "$tmp/status.json" 'j["prevent"]["undecided"]')" 0
storm='n=0; f=0; while [ $n -lt 400 ]; do /bin/busybox true || f=$((f+1)); n=$((n+1)); done; echo "failed=$f"'
(in_pod /bin/sh -c "$storm" >"$tmp/storm-mount.out" 2>&1) &
mount_storm=$!
sleep 0.3
dw_kill sensor
wait "$mount_storm" || true
expect "mount marks: SIGKILL during a storm leaves no exec held or denied" \
    "$(sed -n 's/^failed=//p' "$tmp/storm-mount.out")" 0
expect "mount marks: after SIGKILL drift runs again (no mark left)" \
    "$(in_pod /bin/sh -c '/tmp/busybox-pre true; echo $?' 2>&1 | tail -1)" 0

step "fleet policy pushed by the collector"
# The collector's --prevent-policy reaches the sensor over its stream, is replaced on the
# collector's SIGHUP, survives a sensor restart without the collector (kept beside the
# spool), and is dropped when the collector has none.
fleet_yaml() { printf 'allow:\n  - name: fleet-tools\n    namespaces: [shop]\n    paths: ["%s"]\n' "$1" >"$tmp/fleet.yaml"; }
fleet_run() { in_pod /bin/sh -c 'mkdir -p /tmp/fleet && cp /bin/busybox /tmp/fleet/busybox-f &&
    chmod 755 /tmp/fleet/busybox-f; /tmp/fleet/busybox-f true >/dev/null 2>&1; echo $?' 2>&1 | tail -1; }
applied() { grep -c "fleet prevention policy .* applied" "$tmp/sensor.log" || true; }
applied_at_least() { test "$(applied)" -ge "$1"; }  # for dw_wait, which runs it again
fleet_sensor() {
    dw_sensor_start --audit-mode off --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
        --prevent drift --collector "127.0.0.1:$port" --insecure --node fleet-node \
        --spool-dir "$tmp/spool" --metrics-address 127.0.0.1:0
    dw_wait 10 sensor_status || die "the sensor does not know the container (fleet)"
}
fleet_yaml "/tmp/fleet/*"
dw_collector_start collector --insecure --listen 127.0.0.1:0 --db "$tmp/collector.db" \
    --metrics-address "" --prevent-policy "$tmp/fleet.yaml"
fleet_sensor
dw_wait 10 applied_at_least 1 || die "no fleet policy applied: $(grep -i policy "$tmp/sensor.log" | tail -2)"
expect "the fleet policy lets /tmp/fleet/ run" "$(fleet_run)" 0
sensor_status
sensor_cli_status | grep -q "policy: 1 entries in force, fleet's sha256 $(sha256sum "$tmp/fleet.yaml" | cut -c1-12) (1 entries, from collector" &&
    ok "driftwatch status shows the fleet policy" || fail "driftwatch status: no fleet policy line"
expect "status: fleet policy entries" "$(json "$tmp/status.json" 'j["prevent"]["fleet_policy"]["entries"]')" 1
expect "status: fleet policy sha256" "$(json "$tmp/status.json" 'j["prevent"]["fleet_policy"]["sha256"]')" \
    "$(sha256sum "$tmp/fleet.yaml" | cut -d' ' -f1)"
fleet_yaml "/opt/elsewhere/*"
kill -HUP "$(dw_pid collector)"
dw_wait 10 applied_at_least 2 || die "the reloaded fleet policy did not reach the sensor"
expect "after the collector's SIGHUP /tmp/fleet/ is denied" "$(fleet_run)" 126
printf 'allow:\n  - bogus: 1\n' >"$tmp/fleet.yaml"
kill -HUP "$(dw_pid collector)"
dw_wait 5 grep -q "SIGHUP: --drift-policy: .*fleet.yaml:2:5: unknown key bogus.*the sensors keep" "$tmp/collector.log" &&
    ok "a bad fleet policy is refused by the collector with its line" ||
    fail "bad fleet policy: $(grep SIGHUP "$tmp/collector.log" | tail -1)"
expect "the sensor keeps the policy it had" "$(applied)" 2
fleet_yaml "/tmp/fleet/*"
kill -HUP "$(dw_pid collector)"
dw_wait 10 applied_at_least 3 || die "the third fleet policy did not reach the sensor"
dw_stop sensor
dw_stop collector
# Restarted while the collector is down: the policy kept beside the spool applies.
fleet_sensor
expect "without the collector the kept fleet policy applies" "$(fleet_run)" 0
sensor_status
expect "status: the kept policy's source" "$(json "$tmp/status.json" 'j["prevent"]["fleet_policy"]["source"]')" \
    "$tmp/spool/fleet-policy.yaml"
dw_stop sensor
dw_collector_start collector --insecure --listen 127.0.0.1:0 --db "$tmp/collector.db" --metrics-address ""
fleet_sensor
dw_wait 10 grep -q "collector: no fleet prevention policy applied" "$tmp/sensor.log" ||
    die "the sensor did not hear that the collector has no policy"
expect "a collector without a policy drops the fleet's" "$(fleet_run)" 126
[[ ! -e $tmp/spool/fleet-policy.yaml ]] && ok "the kept policy is removed" || fail "fleet-policy.yaml left"
dw_stop sensor
dw_stop collector

step "respond stop"
out=$("$sensor" --audit-only --respond stop --capture "$tmp/x" 2>&1) && fail "--respond stop with --audit-only ran" ||
    { grep -q "respond stop stops containers through the CRI: not with --audit-only" <<<"$out" &&
        ok "--respond stop needs the container registry" || fail "--respond stop --audit-only: $out"; }
victim=$(dw_pod_container "$ctd" "$pod" victim -- /bin/sleep 1000)
bystander=$(dw_pod_container "$ctd" "$pod" bystander -- /bin/sleep 1000)
in_ctr() { local c=$1; shift; timeout -k 5 60 ctr --address "$ctd/containerd.sock" -n "$DW_NS" tasks exec \
    --exec-id "x$RANDOM$RANDOM" --fifo-dir "$ctd/fifo" "$c" "$@"; }
drop_run() { in_ctr "$1" /bin/sh -c 'cp /bin/busybox /tmp/busybox-r && chmod 755 /tmp/busybox-r;
    /tmp/busybox-r true >/dev/null 2>&1; echo $?' 2>&1 | tail -1; }
state() { dw_cri "$ctd" inspect "$1" | sed -n 's/^  "state": "\(.*\)",*$/\1/p'; }
dw_sensor_start --audit-mode off --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
    --prevent drift --respond stop --respond-max-per-minute 1 --respond-stop-timeout-s 0 \
    --metrics-address 127.0.0.1:0
knows() { sensor_status && grep -q "$victim" "$tmp/status.json" && grep -q "$bystander" "$tmp/status.json"; }
dw_wait 10 knows || die "the sensor does not know the victim and bystander containers"
expect "victim: state before" "$(state "$victim")" running
# The denial asks for the stop at once (timeout 0: SIGKILL), which may kill the exec session
# before it prints the exit status: then the stop it caused says the exec was denied.
r=$(drop_run "$victim")
if [[ $r == 126 ]] || { [[ -z $r ]] && dw_wait 15 grep -q "respond: container $victim stopped through" "$tmp/sensor.log"; }; then
    ok "victim: the dropped binary is denied (${r:-session killed by the stop})"
else
    fail "victim: the dropped binary is denied: got '$r', want 126"
fi
not_running() { test "$(state "$1")" != running; }
dw_wait 15 not_running "$victim" && ok "the victim is stopped ($(state "$victim"))" ||
    fail "the victim still runs: $(grep respond "$tmp/sensor.log")"
grep -q "respond: container $victim stopped through" "$tmp/sensor.log" && ok "the stop is logged" ||
    fail "no stop logged"
expect "bystander: denied too" "$(drop_run "$bystander")" 126
dw_wait 5 grep -q "respond: container $bystander not stopped (drift prevented: /tmp/busybox-r): over --respond-max-per-minute 1" "$tmp/sensor.log" &&
    ok "a second stop within the minute is refused and logged" || fail "rate limit: $(grep respond "$tmp/sensor.log")"
expect "bystander: still running" "$(state "$bystander")" running
sensor_status
expect "status: respond stopped" "$(json "$tmp/status.json" 'j["respond"]["stopped"]')" 1
expect "status: respond rate limited" "$(json "$tmp/status.json" 'j["respond"]["rate_limited"]')" 1
sensor_cli_status | grep -q "respond    stop (at most 1 a minute): 1 stopped, 0 failed, 1 rate limited" &&
    ok "driftwatch status shows the responses" || fail "driftwatch status: $(sensor_cli_status | grep respond)"
dw_stop sensor

step "respond stop asked by the collector (--respond-rules)"
# Dry run: nothing is denied, the would-deny event reaches the collector, whose alert of a
# --respond-rules rule asks the node's sensor to stop the container.
asked=$(dw_pod_container "$ctd" "$pod" asked -- /bin/sleep 1000)
out=$("$collector" --insecure --listen 127.0.0.1:0 --db "$tmp/r0.db" --respond-rules "No Such Rule" 2>&1) &&
    fail "an unknown --respond-rules rule was taken" ||
    { grep -q -- "--respond-rules No Such Rule: no rule of that name is loaded" <<<"$out" &&
        ok "an unknown --respond-rules rule is refused" || fail "unknown rule: $out"; }
dw_collector_start collector --insecure --listen 127.0.0.1:0 --db "$tmp/respond.db" \
    --metrics-address "" --respond-rules "Drift Prevention Dry Run"
dw_sensor_start --audit-mode off --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
    --prevent drift --prevent-dry-run --respond stop --collector "127.0.0.1:$port" --insecure \
    --node respond-node --spool-dir "$tmp/spool-r" --metrics-address 127.0.0.1:0
knows_asked() { sensor_status && grep -q "$asked" "$tmp/status.json"; }
dw_wait 10 knows_asked || die "the sensor does not know the asked container"
expect "dry run: the dropped binary runs" "$(drop_run "$asked")" 0
dw_wait 20 not_running "$asked" && ok "the collector's request stopped the container ($(state "$asked"))" ||
    fail "still running: $(grep respond "$tmp/collector.log" "$tmp/sensor.log")"
grep -q "respond: asked node respond-node to stop container $asked (Drift Prevention Dry Run)" "$tmp/collector.log" &&
    ok "the collector logs the request" || fail "collector: $(grep respond "$tmp/collector.log")"
grep -q "respond: container $asked stopped through .* (collector: Drift Prevention Dry Run)" "$tmp/sensor.log" &&
    ok "the sensor logs the stop and why" || fail "sensor: $(grep respond "$tmp/sensor.log")"
dw_stop sensor
dw_stop collector

dw_finish
