#!/bin/bash
# Hostile containers (issue 11) against the whole sensor and the shipped rules, in real pods
# of a private containerd: each technique a workload can use to hide its drift is tried,
# and the alert must still name the right file; a noisy neighbour must not hide another
# container's alert.
#   - a parent renamed to an allowed entrypoint name (a script called tini) spawns a shell;
#   - a binary dropped, hard-linked and run through the link; another renamed, then run;
#   - names with terminal escapes and bytes that are not UTF-8;
#   - a neighbour container floods execs with huge argument lists while the victim drops
#     and runs a binary.
# Usage: adversarial_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "$1"
dw_harness dw-adv
ctd=$tmp/ctd
dw_audit_guard --owner
dw_ctd_up "$ctd"
dw_sensor_start --audit-mode owner --cri-endpoint "$ctd/containerd.sock" \
    --watch-fs "$ctd/root" --status-interval 1 --resync 1

uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" victim shop "$uid" "/kubepods/besteffort/pod$uid")
victim=$(dw_pod_container "$ctd" "$pod" app -- /bin/sleep 1000)
nuid=$(cat /proc/sys/kernel/random/uuid)
npod=$(dw_pod_run "$ctd" neighbour shop "$nuid" "/kubepods/besteffort/pod$nuid")
noisy=$(dw_pod_container "$ctd" "$npod" noisy -- /bin/sleep 1000)

# The neighbour: execs with ~1 MiB of arguments each (the kernel allows up to a quarter of
# the stack limit), in the background while the victim acts.
dw_ctr_exec "$ctd" "$noisy" flood /bin/sh -c '
    big=$(head -c 65536 /dev/zero | tr "\0" a)
    args=""; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do args="$args $big"; done
    i=0; while [ $i -lt 40 ]; do /bin/true $args; i=$((i + 1)); done; echo flood-done
' </dev/null >"$tmp/flood.out" 2>&1 &
flood=$!

dw_ctr_exec "$ctd" "$victim" e1 /bin/sh -c '
    # A script named tini (an allowed entrypoint name) spawns the shell.
    printf "#!/bin/sh\n/bin/sh -c \"echo renamed-parent-ran\"\n" >/tmp/tini && chmod 755 /tmp/tini
    /tmp/tini
    cp /bin/busybox /tmp/orig && chmod 755 /tmp/orig && ln /tmp/orig /tmp/linked
    /tmp/linked echo linked-ran
    cp /bin/busybox /tmp/a && chmod 755 /tmp/a && mv /tmp/a /tmp/renamed
    /tmp/renamed echo renamed-ran
    f=/tmp/$(printf "\033]0;owned\007\033[2Jx\377"); cp /bin/busybox "$f"; chmod 755 "$f"; "$f" 2>/dev/null
    echo escapes-ran
' </dev/null >"$tmp/victim.out" 2>&1
wait "$flood" || true
for word in renamed-parent-ran escapes-ran; do
    grep -q "$word" "$tmp/victim.out" || { cat "$tmp/victim.out"; die "$word missing"; }
done
grep -q flood-done "$tmp/flood.out" || { cat "$tmp/flood.out"; die "the flood did not run"; }
sleep 1
dw_stop sensor
dw_audit_same "$tmp" || die "audit state not restored"

"$dw" analyze "$tmp/capture" >"$tmp/alerts.jsonl" 2>"$tmp/analyze.err" ||
    { cat "$tmp/analyze.err"; die "driftwatch analyze"; }
"$dw" analyze --events "$tmp/capture" >"$tmp/events.jsonl" 2>/dev/null
python3 - "$tmp/alerts.jsonl" "$tmp/events.jsonl" "${victim:0:12}" "${noisy:0:12}" <<'PY'
import json, sys
alerts = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
events = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
victim, noisy = sys.argv[3], sys.argv[4]
fails = []
def have(rule, cid, **fields):
    for a in alerts:
        f = a["output_fields"]
        if a["rule"] == rule and f.get("container.id") == cid and all(
                f.get(k) == v for k, v in fields.items()):
            return a
    fails.append("no %r in %s with %s; got %s" % (rule, cid, fields, sorted(
        {(a["rule"], a["output_fields"].get("proc.exepath")) for a in alerts
         if a["output_fields"].get("container.id") == cid})))
# The shell the script named tini started: its parent's name is allowed, its path is not.
have("Container Shell Spawned", victim)
# Two shells in the victim: the exec into it (parent runc) and the one the fake tini ran.
sh = [a for a in alerts if a["rule"] == "Container Shell Spawned"
      and a["output_fields"].get("container.id") == victim]
if len(sh) != 2:
    fails.append("%d shell alerts in the victim, want 2 (one from the fake tini)" % len(sh))
have("Drop and execute new binary in container", victim, **{"proc.exepath": "/tmp/linked"})
have("Drop and execute new binary in container", victim, **{"proc.exepath": "/tmp/renamed"})
odd = "/tmp/\x1b]0;owned\x07\x1b[2Jx\udcff"
have("Drop and execute new binary in container", victim, **{"proc.exepath": odd})
# The flood ran and was seen, and did not hide the victim's alerts above.
big = [e for e in events if e.get("container.id") == noisy and e.get("proc.name") == "true"]
if len(big) != 40:
    fails.append("flood: %d of 40 huge execs seen" % len(big))
for f in fails:
    print("FAIL:", f)
sys.exit(1 if fails else 0)
PY
echo "PASS adversarial"
