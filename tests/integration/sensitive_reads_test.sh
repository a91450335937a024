#!/bin/bash
# Sensitive reads in a real pod (the sensor with CRI and fanotify, audit off): a workload
# reads /etc/shadow, an SSH key and a key written into /root/.ssh after it started; each is
# one read event with its container, pod and path, and the shipped rule "Sensitive file read
# in container" fires for each. A file named by a file entry that appears later
# (/root/.aws/credentials) is marked at the next rescan. The image's /etc/sudoers is an
# absolute symlink to /etc/hostname: the container's file is marked, never the host's (a
# read of the host's /etc/hostname is no event). The host reading the container's
# /etc/shadow through /proc/PID/root is an event of the host (no container alert). Writing
# /etc/shadow is no read. 300 reads by one process in a loop are a few events (repeats say
# how many reads each stands for). Usage: sensitive_reads_test.sh BUILD_DIR     env: KEEP=1
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "${1:?usage: sensitive_reads_test.sh BUILD_DIR}"
dw_harness dw-sensitive
ctd=$tmp/ctd

# The image's sensitive files.
mkdir -p "$tmp/extra/etc" "$tmp/extra/root/.ssh"
printf 'root:*:19000:0:99999:7:::\n' >"$tmp/extra/etc/shadow"
chmod 640 "$tmp/extra/etc/shadow"
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n' >"$tmp/extra/root/.ssh/id_ed25519"
ln -s /etc/hostname "$tmp/extra/etc/sudoers"
dw_ctd_up "$ctd" "$tmp/extra"

dw_start sensor "$sensor" --audit-mode off --cri-endpoint "$ctd/containerd.sock" \
  --watch-fs "$ctd/root" --capture "$tmp/capture" --metrics-address "" --status-interval 1 \
  --sensitive-rescan-s 1
dw_wait_log sensor "^driftwatch-sensor [0-9.]*:" 1 15 || die "the sensor did not start"

# The workload reads what /tmp/go names, one file per line, then removes it.
# /tmp/loop: the shell itself reads /etc/shadow 300 times (one process: coalesced).
workload='while :; do if [ -e /tmp/go ]; then while read f; do cat "$f" >/dev/null; done </tmp/go; rm /tmp/go; fi
if [ -e /tmp/loop ]; then i=0; while [ $i -lt 300 ]; do read x </etc/shadow; i=$((i+1)); done; rm /tmp/loop; fi; sleep 0.2; done'
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" vault-agent prod "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$ctd" "$pod" agent -- /bin/sh -c "$workload")
pid=$(dw_cri "$ctd" inspect "$cid" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
root=/proc/$pid/root
sleep 2  # the registry reports the container, the marks follow
step "container $cid (pid $pid)"

read_in_container() {  # FILE...: the workload reads them
  printf '%s\n' "$@" >"$root/tmp/go.new" && mv "$root/tmp/go.new" "$root/tmp/go"
  dw_wait 10 test ! -e "$root/tmp/go" || fail "the workload did not read $*"
}
read_in_container /etc/shadow /root/.ssh/id_ed25519 /etc/passwd /etc/sudoers
# A key written after start, into the marked directory: seen at once.
printf 'late\n' >"$root/root/.ssh/late_key"
read_in_container /root/.ssh/late_key
# A file entry that did not exist at start: marked at the next rescan (1 s here).
mkdir -p "$root/root/.aws" && printf '[default]\n' >"$root/root/.aws/credentials"
sleep 2.5
read_in_container /root/.aws/credentials
touch "$root/tmp/loop"
dw_wait 10 test ! -e "$root/tmp/loop" || fail "the workload did not loop"
# The host: its own /etc/hostname (the symlink's target on the host) and the container's
# shadow through /proc; a write of the container's shadow.
# (A reader still there when the sensor reads the event: one gone by then is taken for a
# process of the file's container.)
cat /etc/hostname >/dev/null
python3 -c 'import sys, time; open(sys.argv[1]).read(); time.sleep(1.5)' "$root/etc/shadow"
printf 'root:*:19001:0:99999:7:::\n' >>"$root/etc/shadow"
sleep 1
dw_stop sensor
"$dw" analyze --events "$tmp/capture" >"$tmp/events.jsonl"
"$dw" analyze "$tmp/capture" >"$tmp/alerts.jsonl"

if python3 - "$tmp/events.jsonl" "$tmp/alerts.jsonl" "$cid" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
alerts = [json.loads(l) for l in open(sys.argv[2])]
cid = sys.argv[3]
reads = [e for e in evs if e.get("evt.is_open_read")]
def show(e):
    return (e["container.id"], e["fd.name"], e.get("sensitive.entry"), e.get("proc.name"))
for e in reads: print("read:", show(e))
ok = True
def check(what, cond):
    global ok
    print(("ok: " if cond else "FAIL: ") + what)
    ok &= bool(cond)
mine = [e for e in reads if e["container.id"] == cid[:12]]
loop = [e for e in mine if e.get("proc.name") == "sh"]
paths = sorted(e["fd.name"] for e in mine if e.get("proc.name") != "sh")
check("the container's reads: shadow, both keys, credentials, sudoers' target",
      paths == sorted(["/etc/shadow", "/root/.ssh/id_ed25519", "/root/.ssh/late_key",
                       "/root/.aws/credentials", "/etc/hostname"]))
check("each names its pod and the entry that marked it",
      all(e.get("k8s.pod.name") == "vault-agent" and e.get("k8s.ns.name") == "prod" and
          e.get("sensitive.entry") for e in mine))
check("the symlinked sudoers marks the container's /etc/hostname",
      [e.get("sensitive.entry") for e in mine if e["fd.name"] == "/etc/hostname"] == ["/etc/sudoers"])
n = sum(1 + e.get("sensitive.repeats", 0) for e in loop)
# fanotify merges identical events still queued: the count is of the reads the sensor saw.
check("300 reads by one shell: %d events standing for %d reads" % (len(loop), n),
      1 <= len(loop) <= 10 and len(loop) < n <= 300 and
      all(e["fd.name"] == "/etc/shadow" for e in loop))
host = [e for e in reads if e["container.id"] == "host"]
check("the host read the container's shadow: one host event, the file's container named",
      [(e["fd.name"], e.get("sensitive.file_container")) for e in host] == [("/etc/shadow", cid)])
check("the host's own /etc/hostname is not watched",
      not any(e["fd.name"] == "/etc/hostname" and e["container.id"] == "host" for e in reads))
sens = [a for a in alerts if a["rule"] == "Sensitive file read in container"]
check("one alert per container read (%d), none for the host" % len(sens),
      len(sens) == len(mine) and all(a["output_fields"]["container.id"] == cid[:12] for a in sens))
sys.exit(0 if ok else 1)
PY
then ok "sensitive reads"; else fail "sensitive reads"; fi
dw_finish
