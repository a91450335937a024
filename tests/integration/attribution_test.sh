#!/bin/bash
# Attribution where it is hard, with the sensor's cheap paths in play (issue 18): the parent
# of a short-lived process is trusted from the cache while the pid counter has not passed its
# pid, so each case below must still come out right.
#   short    200 processes in a pod that exit at once: the pod's (cgroup or parent), and the
#            cache answered without reading the parent's stat (cache_trusted in /status)
#   reuse    a pod process that ran and exited; its pid given to a host process (the pid
#            counter set back to it through /proc/sys/kernel/ns_last_pid, as a wrap would),
#            whose short-lived child must be the host's, not the pod's
#   nsenter  a host process in the pod's namespaces but not its cgroup: host (by cgroup)
#   join     a host process moved into the pod's cgroups, as runc exec does: the pod's
#   leave    a pod process moved out to the host's root cgroups: host (it is read again)
# Global kernel state: audit as in every owner-mode test (saved, restored); ns_last_pid only
# chooses the next pid handed out (the kernel moves it on with every fork); processes moved
# between cgroups are this test's own.
# Usage: attribution_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "$1"
dw_harness dw-attr
ctd=$tmp/ctd
dw_audit_guard --owner
command -v nsenter >/dev/null || skip "nsenter not installed"
[[ -w /proc/sys/kernel/ns_last_pid ]] || skip "/proc/sys/kernel/ns_last_pid not writable"
dw_ctd_up "$ctd"
dw_sensor_start --audit-mode owner --cri-endpoint "$ctd/containerd.sock" --watch-fs "$ctd/root" \
    --metrics-address 127.0.0.1:0
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" attr-pod attr "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$ctd" "$pod" app -- /bin/sleep 1000)
cpid=$(dw_ctr_pid "$ctd" "$cid") || die "no pid for container $cid"
mport=$(sed -n 's/.*metrics on http:\/\/[^ ]* (port \([0-9]*\)).*/\1/p' "$tmp/sensor.log" | tail -1)
[[ -n $mport ]] || die "no metrics port in the sensor's log"
status() { curl -sf --max-time 5 "http://127.0.0.1:$mport/status" >"$tmp/status.json" && grep -q "$cid" "$tmp/status.json"; }
dw_wait 20 status || die "the sensor does not list the container"
n=0
in_pod() { n=$((n + 1)); dw_ctr_exec "$ctd" "$cid" "at$n" "$@" </dev/null; }
procs=/sys/fs/cgroup/pids$(sed -n 's/^[0-9]*:pids:\(.*\)$/\1/p' "/proc/$cpid/cgroup")/cgroup.procs
[[ -r $procs ]] || procs=/sys/fs/cgroup$(sed -n 's/^0::\(.*\)$/\1/p' "/proc/$cpid/cgroup")/cgroup.procs
# pod_pid MARKER: the host pid of the pod process whose argv holds MARKER (waits 5 s).
pod_pid() {
    local q i
    for ((i = 0; i < 100; i++)); do
        while read -r q; do
            grep -qa -- "$1" "/proc/$q/cmdline" 2>/dev/null && { echo "$q"; return 0; }
        done <"$procs"
        sleep 0.05
    done
    return 1
}

# short: 200 processes that exit at once, from a shell that lives on.
in_pod /bin/sh -c 'i=0; while [ $i -lt 200 ]; do /bin/busybox true attr-short-$i; i=$((i + 1)); done' >/dev/null

# reuse: the pod's shell P runs a short-lived child (so that P is cached as the pod's), then
# exits; P is handed to a host subshell whose short-lived child runs the marker. Another
# process may take P first: tried up to 20 times.
reused=
for try in $(seq 1 20); do
    # The host pid of the pod's shell: its argv names it (attr-p<try>).
    in_pod /bin/sh -c "/bin/busybox true attr-reuse-pod-$try; sleep 1; true" "attr-p$try" >/dev/null &
    ep=$!
    p=$(pod_pid "attr-p$try") || p=
    wait "$ep" || true
    [[ -n $p ]] || continue
    sleep 1.2 # the sensor caches P while it runs (its events are read in batches)
    while dw_alive "$p"; do sleep 0.1; done
    echo $((p - 1)) >/proc/sys/kernel/ns_last_pid
    # The subshell lives on while its child is read: its stat is what settles it.
    ( [[ $BASHPID == "$p" ]] && echo "$BASHPID" >"$tmp/reused"; /bin/true "attr-reuse-host-$try"; sleep 1 )
    if [[ -s $tmp/reused ]]; then
        reused=$try
        break
    fi
done
[[ -n $reused ]] || die "could not hand a pod process's pid to a host process in 20 tries"

# nsenter: the pod's namespaces, the host's cgroup. The process lives on to be read.
nsenter -t "$cpid" -m -u -i -n -p /bin/busybox sh -c 'sleep 1' attr-nsenter

# join: a host shell moves itself into the pod's cgroups (every hierarchy), then runs.
join_cg() { # PID: into the pod's cgroups
    local line h path
    while IFS= read -r line; do
        h=${line#*:}; h=${h%%:*}; path=${line#*:*:}
        if [[ -z $h ]]; then
            echo "$1" >"/sys/fs/cgroup/unified$path/cgroup.procs" 2>/dev/null ||
                echo "$1" >"/sys/fs/cgroup$path/cgroup.procs"
        else
            echo "$1" >"/sys/fs/cgroup/${h#name=}$path/cgroup.procs"
        fi
    done <"/proc/$cpid/cgroup"
}
leave_cg() { # PID: back to the root cgroup of every hierarchy
    local line h
    while IFS= read -r line; do
        h=${line#*:}; h=${h%%:*}
        if [[ -z $h ]]; then
            echo "$1" >/sys/fs/cgroup/unified/cgroup.procs 2>/dev/null || echo "$1" >/sys/fs/cgroup/cgroup.procs
        else
            echo "$1" >"/sys/fs/cgroup/${h#name=}/cgroup.procs"
        fi
    done <"/proc/$cpid/cgroup"
}
( join_cg "$BASHPID"; exec /bin/busybox sh -c 'sleep 1' attr-join )

# leave: a pod shell is moved out by the host, then runs the marker (alive, to be read).
in_pod /bin/sh -c 'sleep 1.5; /bin/busybox sh -c "sleep 1" attr-leave; true' attr-leaver >/dev/null &
ep=$!
p=$(pod_pid attr-leaver) || die "the pod shell to move out was not found"
leave_cg "$p"
wait "$ep" || die "the pod shell moved out failed"

sleep 1
status || die "no /status"
trusted=$(json "$tmp/status.json" 'j["enrich"]["cache_trusted"]')
dw_stop sensor
"$dw" analyze --events "$tmp/capture" >"$tmp/events.jsonl"
python3 - "$tmp/events.jsonl" "$cid" "$reused" <<'PY'
import json, sys
cid, reused = sys.argv[2], sys.argv[3]
execs = [e for e in map(json.loads, open(sys.argv[1])) if e.get("evt.type") in ("execve", "execveat")]
def find(marker):  # nsenter's own exec carries the marker too: not it
    return [e for e in execs if marker in (e.get("proc.argv") or [])
            and (e.get("proc.argv") or [""])[0] != "nsenter"]
fails = []
def expect(what, events, want, n=1):
    got = [(e.get("container.full_id"), e.get("container.attribution")) for e in events]
    if len(events) != n or any(g[0] != want for g in got):
        fails.append("%s: want %d events of %s, got %s" % (what, n, want, got[:5]))
short = [e for e in execs if any(a.startswith("attr-short-") for a in e.get("proc.argv") or [])]
expect("short", short, cid, 200)
expect("reuse (pod side)", find("attr-reuse-pod-" + reused), cid)
expect("reuse (host side)", find("attr-reuse-host-" + reused), "host")
expect("nsenter", find("attr-nsenter"), "host")
expect("join", find("attr-join"), cid)
expect("leave", find("attr-leave"), "host")
how = {}
for e in short:
    how[e.get("container.attribution")] = how.get(e.get("container.attribution"), 0) + 1
if fails:
    sys.exit("FAIL: " + "; ".join(fails))
print("ok: short-lived attributed by %s" % how)
PY
((trusted > 0)) || die "the cache was never trusted by the pid cursor (cache_trusted $trusted)"
echo "PASS attribution (pid reused at try $reused, cache_trusted $trusted)"
