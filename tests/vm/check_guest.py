#!/usr/bin/env python3
"""Checks the captures the 6.1 guest wrote (kernel_vm.sh reads /out back from its image).

Usage: check_guest.py DRIFTWATCH_CLI OUT_DIR
Each capture is read with `driftwatch analyze --events`. Prints `ok: ...` / `FAIL: ...` per
check and one `seen: ...` line per fanotify mode (the write kinds it reported for each file),
exit 1 on any failure. What guest_test.sh did, in its order:
  owner.cap     audit owner mode: host and container execs with markers
  observer.cap  audit observer mode (multicast) beside the owner: its own markers
  fan-MODE.cap  each fanotify mode forced: in the container /tmp/w-MODE.txt created, an ELF
                dropped as /tmp/elf-MODE (chmod 755), then /tmp/w-MODE.txt written again
  auto.cap      everything on auto with --prevent drift: an image exec with a marker (a
                shell that lives a second, so that its cgroup can be read), a
                dropped binary /tmp/busybox-dropped (cp, chmod, exec)
"""
import hashlib
import json
import os
import subprocess
import sys

cli, out = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(good, what):
    global passed, failed
    if good:
        passed += 1
        print(f"ok: {what}")
    else:
        failed += 1
        print(f"FAIL: {what}")


def events(name):
    path = os.path.join(out, name + ".cap")
    if not os.path.exists(path):
        check(False, f"{name}.cap exists")
        return []
    p = subprocess.run([cli, "analyze", "--events", path], capture_output=True, text=True,
                       errors="surrogateescape")
    if p.returncode != 0:
        check(False, f"driftwatch analyze --events {name}.cap: exit {p.returncode}: {p.stderr}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def execs_with(evs, marker):
    # nsenter's own exec (the helper that enters the container) carries the marker too.
    return [e for e in evs if e.get("evt.type") in ("execve", "execveat")
            and marker in e.get("proc.argv", []) and e.get("proc.argv", [""])[0] != "nsenter"]


cid, pod, _ = open(os.path.join(out, "container.ids")).read().split()
busybox_sha = hashlib.sha256(open("/bin/busybox", "rb").read()).hexdigest()

# --- audit ---------------------------------------------------------------------------------
ev = events("owner")
for m in ("dw-owner-host-marker", "dw-owner-ctr-marker", "dw-observer-host-marker"):
    check(len(execs_with(ev, m)) == 1, f"owner mode: one exec event for {m}")
h = execs_with(ev, "dw-owner-host-marker")
check(bool(h) and h[0].get("evt.res") == "SUCCESS" and h[0].get("proc.exepath") == "/bin/busybox",
      "owner mode: the host exec's result and executable")
ev = events("observer")
for m in ("dw-observer-host-marker", "dw-observer-ctr-marker"):
    check(len(execs_with(ev, m)) == 1, f"observer mode: one exec event for {m}")
check(not execs_with(ev, "dw-owner-host-marker"), "observer mode: nothing from before it started")

# --- fanotify, each mode ---------------------------------------------------------------------
# Before 6.5 overlayfs hides a container's file I/O from filesystem marks (FMODE_NONOTIFY on
# its layers' files): fid-filesystem sees creates (not writes), fd-filesystem nothing; the
# guest checks the sensor's warning, and auto takes fd-mount.
release = open(os.path.join(out, "uname")).read().strip()
major, minor = (int(x) for x in release.split(".")[:2])
old_ovl = (major, minor) < (6, 5)
for mode in ("fid-filesystem", "fd-filesystem", "fd-mount"):
    ev = events("fan-" + mode)
    if old_ovl and mode == "fid-filesystem":
        c = [e for e in ev if e.get("fd.name") == f"/tmp/w-{mode}.txt" and e.get("fd.write_kind") == "create"]
        check(bool(c) and all(e.get("container.full_id") == cid for e in c),
              f"fanotify {mode} before 6.5: the create still seen and attributed")
        continue
    if old_ovl and mode == "fd-filesystem":
        continue
    writes = [e for e in ev if e.get("fd.name", "").startswith("/tmp/")]
    kinds = {}
    for e in writes:
        kinds.setdefault(e["fd.name"], []).append(e.get("fd.write_kind"))
    print(f"seen: {mode}: " + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "nothing"))
    w = [e for e in writes if e["fd.name"] == f"/tmp/w-{mode}.txt"]
    check(bool(w), f"fanotify {mode}: the container's new file /tmp/w-{mode}.txt reported")
    check(bool(w) and all(e.get("container.full_id") == cid for e in w),
          f"fanotify {mode}: attributed to the container")
    check(bool(w) and all(e.get("k8s.pod.uid") == pod for e in w),
          f"fanotify {mode}: the pod uid from the cgroup path")
    elf = [e for e in writes if e["fd.name"] == f"/tmp/elf-{mode}" and e.get("fd.sha256")]
    check(any(e.get("fd.is_executable") and e["fd.sha256"] == busybox_sha for e in elf),
          f"fanotify {mode}: the dropped ELF flagged executable with its sha256")
    # The file written again (no create): only content events (close_write, modify) say so.
    content = [k for k in kinds.get(f"/tmp/w-{mode}.txt", []) if k in ("close_write", "modify")]
    check(bool(content), f"fanotify {mode}: a content write (close_write) of /tmp/w-{mode}.txt "
          f"reported (kinds seen: {kinds.get(f'/tmp/w-{mode}.txt', [])})")

# --- auto: attribution, prevention reports ---------------------------------------------------------
ev = events("auto")
st = [e for e in ev if e.get("evt.type") == "sensor_status"]
if st:
    print(f"seen: auto: sensor.audit_mode {st[-1].get('sensor.audit_mode')}, "
          f"sensor.fanotify_mode {st[-1].get('sensor.fanotify_mode')}, "
          f"sensor.prevent_mode {st[-1].get('sensor.prevent_mode')}, "
          f"prevent_denied {st[-1].get('sensor.prevent_denied')}")
a = execs_with(ev, "dw-attr-marker")
check(len(a) == 1, "auto: one exec event for the container's image exec")
if a:
    a = a[0]
    check(a.get("container.full_id") == cid and a.get("k8s.pod.uid") == pod,
          f"auto: the exec attributed to the container and pod (got {a.get('container.full_id')})")
    check(a.get("container.attribution") == "cgroup",
          f"auto: attribution by cgroup (got {a.get('container.attribution')})")
    check(a.get("proc.is_exe_upper_layer") is False,
          f"auto: an image exec is not from the upper layer (got {a.get('proc.is_exe_upper_layer')})")
d = [e for e in ev if e.get("evt.type") in ("execve", "execveat")
     and e.get("proc.exepath") == "/tmp/busybox-dropped"]
# Denied at its open, the exec may leave no exec event; one that is there is the container's.
check(all(e.get("container.full_id") == cid for e in d),
      "auto: the dropped binary's exec attempt (if audited) attributed to the container")
check(all(e.get("proc.is_exe_upper_layer") is True for e in d),
      "auto: the dropped binary's exec attempt (if audited) is from the upper layer")
if old_ovl:
    check(st and st[-1].get("sensor.fanotify_mode") == "fd-mount",
          "auto before 6.5: the write watcher takes fd-mount")
ch = [e for e in ev if e.get("evt.type") in ("chmod", "fchmod", "fchmodat")
      and e.get("container.full_id") == cid]
check(bool(ch), "auto: the chmod +x in the container (audit) attributed to it")
pv = [e for e in ev if e.get("evt.type") == "exec_prevented"]
check(any(e.get("prevent.verdict") == "denied" and e.get("fd.name") == "/tmp/busybox-dropped"
          and e.get("container.full_id") == cid for e in pv),
      f"auto: a prevented event (denied) for /tmp/busybox-dropped ({len(pv)} prevented events)")
ev = events("prevent-open")
pv = [e for e in ev if e.get("evt.type") == "exec_prevented"]
check(any(e.get("prevent.verdict") == "denied" and e.get("fd.name") == "/tmp/busybox-dropped"
          for e in pv), f"--prevent-events open: a prevented event (denied) ({len(pv)} prevented events)")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
