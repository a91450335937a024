#!/bin/bash
# Issue 11, execs that run another file than audit's exe= names, in a pod created through CRI
# with the whole sensor (audit owner mode, fanotify, CRI) running:
#   - a program dropped without an exec bit and run through the image's dynamic loader
#     (exe= is the loader): "Drop and execute new binary in container" names the program;
#   - a dropped #! script (exe= is busybox, its shell): the alert names the script;
#   - a program copied into a memfd and run by execveat(AT_EMPTY_PATH): "Fileless execution
#     via memfd_create" names /memfd:payload (deleted);
#   - a dropped program run by its fd (execveat(fd, "", AT_EMPTY_PATH)): the alert names it;
#     unlinked before the exec, its event names "/tmp/fdgone (deleted)" with the written
#     file's inode and no upper-layer verdict, and the drop alert names it all the same;
#   - the dynamic loader given a memfd (`ld.so /proc/self/fd/N`, left running): the sensor
#     reads the fd of the running process, and Falco's memfd rule names /memfd:held (deleted);
#   - the same loader and shell running the image's own program and script: no drop alert.
# fd_exec.c is built here (gcc -static) into the image, beside the host's glibc loader and
# libc, as a workload image ships them.
# Usage: exec_file_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "$1"
dw_harness dw-exe
ctd=$tmp/ctd
for c in gcc readelf ldd; do
    command -v "$c" >/dev/null || die "$c missing (apt-get install -y gcc libc6-dev)"
done
dw_audit_guard --owner

# The image: busybox, the host's dynamic loader and libc at the paths /usr/bin/true names
# them, fd_exec, and a program and a script of the image's own.
extra=$tmp/extra
loader=$(readelf -l /usr/bin/true | sed -n 's/.*program interpreter: \([^]]*\)\]/\1/p')
[[ -n $loader ]] || die "/usr/bin/true names no program interpreter"
for lib in $(ldd /usr/bin/true | grep -o '/[^ ]*'); do
    install -D -m 755 "$(readlink -f "$lib")" "$extra$lib"
done
install -D -m 755 /usr/bin/true "$extra/opt/dw/true"
install -D -m 755 /usr/bin/sleep "$extra/opt/dw/sleep"  # needs the same libc only
gcc -static -O2 -Wall -Wextra -o "$extra/opt/dw/fd_exec" "$here/fd_exec.c"
printf '#!/bin/sh\necho image-script-ran\n' >"$extra/opt/dw/image.sh"
chmod 755 "$extra/opt/dw/image.sh"
dw_ctd_up "$ctd" "$extra"

dw_sensor_start --audit-mode owner --cri-endpoint "$ctd/containerd.sock" \
    --watch-fs "$ctd/root" --status-interval 1 --resync 1
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" exec-file shop "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$ctd" "$pod" app -- /bin/sleep 1000)

dw_ctr_exec "$ctd" "$cid" e1 /bin/sh -c "
    set -e
    cat /opt/dw/true >/tmp/evil
    $loader /tmp/evil && echo loader-ran
    printf '#!/bin/sh\necho script-ran\n' >/tmp/drop.sh
    chmod 755 /tmp/drop.sh
    /tmp/drop.sh
    /opt/dw/fd_exec memfd payload /bin/busybox echo memfd-ran
    cp /bin/busybox /tmp/fdexec
    /opt/dw/fd_exec fd /tmp/fdexec echo fd-ran
    $loader /opt/dw/true && echo image-loader-ran
    /opt/dw/image.sh
    cp /bin/busybox /tmp/fdgone
    /opt/dw/fd_exec fd-unlinked /tmp/fdgone echo gone-ran
    /opt/dw/fd_exec memfd-loader held /opt/dw/sleep $loader 1000 </dev/null >/dev/null 2>&1 &
" </dev/null >"$tmp/exec.out" 2>&1 || { cat "$tmp/exec.out"; die "the execs in the pod"; }
for w in loader-ran script-ran memfd-ran fd-ran image-loader-ran image-script-ran; do
    grep -qx "$w" "$tmp/exec.out" || { cat "$tmp/exec.out"; die "$w missing"; }
done
# Give the watcher and the parser their batching delay, then stop the sensor.
sleep 1
dw_stop sensor
dw_audit_same "$tmp" || die "audit state not restored"

"$dw" analyze --events "$tmp/capture" >"$tmp/events.jsonl"
"$dw" analyze "$tmp/capture" >"$tmp/alerts.jsonl" 2>"$tmp/analyze.err" ||
    { cat "$tmp/analyze.err"; die "driftwatch analyze"; }
python3 - "$tmp/events.jsonl" "$tmp/alerts.jsonl" "$cid" "$loader" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
alerts = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
cid, loader = sys.argv[3][:12], sys.argv[4]
fails = []
drop, memfd = "Drop and execute new binary in container", "Fileless execution via memfd_create"

def alert(rule, exe_file):
    return [a for a in alerts if a["rule"] == rule
            and a["output_fields"].get("proc.exe_file") == exe_file]

def expect_alert(rule, exe_file, exepath):
    got = alert(rule, exe_file)
    if not got:
        fails.append(f"no {rule!r} alert naming {exe_file}")
        return
    a = got[0]
    if a["output_fields"].get("proc.exepath") != exepath:
        fails.append(f"{rule!r} for {exe_file}: proc.exepath {a['output_fields'].get('proc.exepath')}, want {exepath}")
    if a["output_fields"].get("container.id") != cid:
        fails.append(f"{rule!r} for {exe_file}: container {a['output_fields'].get('container.id')}")
    if f"proc.exe_file={exe_file}" not in a["output"]:
        fails.append(f"{rule!r} output does not name {exe_file}: {a['output']}")

expect_alert(drop, "/tmp/evil", loader)
expect_alert(drop, "/tmp/drop.sh", "/bin/busybox")
expect_alert(memfd, "/memfd:payload (deleted)", "/memfd:payload (deleted)")
expect_alert(drop, "/tmp/fdexec", "/tmp/fdexec")
expect_alert(drop, "/tmp/fdgone (deleted)", "/tmp/fdgone (deleted)")
expect_alert(memfd, "/memfd:held (deleted)", loader)
for f in ("/opt/dw/true", "/opt/dw/image.sh"):
    if alert(drop, f):
        fails.append(f"drop alert for the image's own {f}")

# The sensor found the loader's program and the script under the container's root.
def exec_of(exe_file):
    return [e for e in events if e.get("evt.type") in ("execve", "execveat")
            and e.get("proc.exe_file") == exe_file and e.get("container.id") == cid]
for f, upper in (("/tmp/evil", True), ("/tmp/drop.sh", True), ("/opt/dw/true", False),
                 ("/opt/dw/image.sh", False)):
    ev = exec_of(f)
    if not ev:
        fails.append(f"no exec event naming {f}")
        continue
    e = ev[0]
    if e.get("proc.exe_file.stat") != "ok" or not e.get("proc.exe_file.ino"):
        fails.append(f"{f}: not looked at: {e}")
    if e.get("proc.is_exe_upper_layer") is not upper:
        fails.append(f"{f}: proc.is_exe_upper_layer {e.get('proc.is_exe_upper_layer')}, want {upper}")
mem = exec_of("/memfd:payload (deleted)")
if not mem or mem[0].get("proc.is_exe_from_memfd") is not True or mem[0]["evt.type"] != "execveat":
    fails.append(f"memfd exec event: {mem}")
gone = exec_of("/tmp/fdgone (deleted)")
written = [e for e in events if e.get("fd.write_kind") == "close_write" and e.get("fd.name") == "/tmp/fdgone"]
# The write's inode when the sensor could still look at the file (in FID mode it looks by
# name, and the file may already be unlinked: then it is 0, and the chmod's inode joins).
if not gone or not written or written[0].get("fd.ino") not in (0, gone[0].get("proc.exe_ino")) \
        or "proc.is_exe_upper_layer" in gone[0]:
    fails.append(f"unlinked fd exec: {gone}, written: {written}")
for f in fails:
    print("FAIL:", f)
if fails:
    print("alerts:", sorted({(a["rule"], a["output_fields"].get("proc.exe_file")) for a in alerts}))
    sys.exit(1)
print("alerts naming the files run: ok")
PY
echo "PASS exec_file"
