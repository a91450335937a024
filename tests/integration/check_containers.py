#!/usr/bin/env python3
"""Checks `driftwatch analyze --events` output of a sensor capture made by containers_test.sh."""
import argparse
import hashlib
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("events")
    ap.add_argument("--container", required=True)
    ap.add_argument("--pod", required=True)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--uid", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--image-id", required=True)
    ap.add_argument("--mode", required=True)
    ap.add_argument("--sha256", required=True, help="sha256 of the dropped binary")
    ap.add_argument("--odd-container", help="a container whose pod and own names are not UTF-8")
    ap.add_argument("--odd-uid", help="its pod's uid")
    ap.add_argument("--odd-mount", help="its one mount, as container.mounts prints it")
    ap.add_argument("--no-cri", action="store_true")
    a = ap.parse_args()

    events = [json.loads(line) for line in open(a.events, encoding="utf-8")]
    failures = []

    def fail(msg):
        failures.append(msg)

    cid = a.container
    mine = [e for e in events if e.get("container.full_id") == cid]

    # The container as the registry reported it.
    infos = [e for e in mine if e["evt.type"] == "container"]
    if not infos:
        fail("no container event for %s" % cid)
    else:
        last = infos[-1]
        want = {"k8s.pod.uid": a.uid, "container.state": "running"}
        if not a.no_cri:
            want.update({"k8s.pod.name": a.pod, "k8s.ns.name": a.namespace,
                         "container.name": a.name, "container.image.id": a.image_id,
                         "container.source": "cri"})
        for k, v in want.items():
            if last.get(k) != v:
                fail("container event: %s = %r, want %r" % (k, last.get(k), v))
        if not last.get("container.upperdir"):
            fail("container event without upperdir: %r" % last)

    # File writes, with the path inside the container.
    writes = [e for e in events if e.get("fd.write_kind") in ("close_write", "modify", "create", "attrib")]
    def write_of(path):
        ws = [e for e in writes if e.get("fd.name") == path and e["fd.write_kind"] == "close_write"]
        if not ws:
            fail("no close_write of %s (writes seen: %s)" % (
                path, sorted({e.get("fd.name") for e in writes if e.get("container.full_id") == cid})[:40]))
            return None
        w = ws[-1]
        if w.get("container.full_id") != cid:
            fail("%s attributed to %r, want %s" % (path, w.get("container.full_id"), cid))
        if not a.no_cri and w.get("k8s.pod.name") != a.pod:
            fail("%s: k8s.pod.name %r, want %r" % (path, w.get("k8s.pod.name"), a.pod))
        return w

    w = write_of("/tmp/hello.txt")
    if w and (w.get("fd.is_executable") or w.get("fd.size") != 6 or "fd.sha256" in w):
        fail("/tmp/hello.txt: want a 6-byte non-executable without hash: %r" % w)
    write_of("/srv/data/notes.txt")
    w = write_of("/tmp/busybox_dropped")
    if w and (not w.get("fd.is_executable") or w.get("fd.sha256") != a.sha256):
        fail("/tmp/busybox_dropped: want executable with sha256 %s: %r" % (a.sha256, w))
    # /tmp/<0xff>x: JSON gives each byte that is not UTF-8 as a lone surrogate \udc80..\udcff.
    odd = "/tmp/\udcffx"
    w = write_of(odd)
    if w and (not w.get("fd.is_executable") or w.get("fd.sha256") != a.sha256):
        fail("%r: want executable with sha256 %s: %r" % (odd, a.sha256, w))
    if w and a.mode == "fid-filesystem" and not str(w.get("fd.upper_path", "")).endswith(odd):
        fail("%r: fd.upper_path %r" % (odd, w.get("fd.upper_path")))
    if w and w.get("fd.filename") != "\udcffx":
        fail("%r: fd.filename %r" % (odd, w.get("fd.filename")))
    w = write_of("/tmp/script.sh")
    script = hashlib.sha256(b"#!/bin/sh\necho hi\n").hexdigest()
    if w and (not w.get("fd.is_executable") or w.get("fd.sha256") != script):
        fail("/tmp/script.sh: want executable (#!) with sha256 %s: %r" % (script, w))
    own = [e for e in writes if "/capture" in str(e.get("fd.name")) or "sensor.log" in str(e.get("fd.name"))]
    if own:
        fail("the sensor reported its own writes: %r" % own[:3])

    # Execs: the dropped binary from the upper layer, an image binary from below.
    execs = [e for e in events if e["evt.type"] in ("execve", "execveat")]
    def exec_of(argv):
        xs = [e for e in execs if e.get("proc.argv") == argv]
        if len(xs) != 1:
            fail("exec %r seen %d times, want once" % (argv, len(xs)))
            return None
        x = xs[0]
        if x.get("container.full_id") != cid:
            fail("exec %r attributed to %r (%s), want %s" % (
                argv, x.get("container.full_id"), x.get("container.attribution"), cid))
        return x

    x = exec_of(["/tmp/busybox_dropped", "echo", "dropped-ran"])
    if x and x.get("proc.is_exe_upper_layer") is not True:
        fail("dropped binary exec: proc.is_exe_upper_layer = %r, want true" % x.get("proc.is_exe_upper_layer"))
    if x and not a.no_cri and x.get("k8s.pod.name") != a.pod:
        fail("dropped binary exec: k8s.pod.name = %r" % x.get("k8s.pod.name"))
    x = exec_of([odd])
    if x and (x.get("proc.is_exe_upper_layer") is not True or x.get("proc.exepath") != odd):
        fail("exec of %r: %r" % (odd, {k: x.get(k) for k in ("proc.exepath", "proc.is_exe_upper_layer")}))
    x = exec_of(["/bin/ls", "/"])
    if x and x.get("proc.is_exe_upper_layer") is not False:
        fail("image binary exec: proc.is_exe_upper_layer = %r, want false" % x.get("proc.is_exe_upper_layer"))
    # The image's busybox replaced by an upper-layer copy right after it ran: the run after
    # reads as upper (the one before may too, when both were read in one batch: looked at
    # after both, as it always was).
    x = exec_of(["/bin/busybox", "true", "image-then-upper-2"])
    if x and x.get("proc.is_exe_upper_layer") is not True:
        fail("exec of the replaced image binary: proc.is_exe_upper_layer = %r, want true"
             % x.get("proc.is_exe_upper_layer"))

    # The process state the sensor read at the exec (not for --no-cri: no init pid, so the
    # names come from the process's own root, which is the same here; checked all the same).
    x = exec_of(["/tmp/busybox_dropped", "sh", "-c", "sleep 1; true", "state-probe"])
    if x:
        st = {k: x.get(k) for k in ("proc.pid", "proc.vpid", "proc.vpgid", "proc.vsid", "proc.sname",
                                    "proc.pid.ts", "thread.cap_effective", "proc.env",
                                    "proc.exe_ino.ctime", "proc.exe_ino.mtime", "user.name",
                                    "group.name", "evt.time")}
        def bad(what):
            fail("state probe: %s: %r" % (what, st))
        if not isinstance(st["proc.vpid"], int) or st["proc.vpid"] == st["proc.pid"]:
            bad("proc.vpid is not the pid in the container's namespace")
        if not isinstance(st["proc.vsid"], int) or not isinstance(st["proc.vpgid"], int):
            bad("no session or group id")
        if not st["proc.sname"]:
            bad("no session leader name")
        caps = (st["thread.cap_effective"] or "").split()
        if "CAP_CHOWN" not in caps or "CAP_SYS_ADMIN" in caps:
            bad("thread.cap_effective is not a default container's set")
        if "DW_MARK=m\udcff" not in (st["proc.env"] or []):
            bad("the environment entry DW_MARK (bytes m 0xff) is missing")
        if not isinstance(st["proc.exe_ino.ctime"], int) or not isinstance(st["proc.pid.ts"], int) \
                or not 0 < st["proc.pid.ts"] - st["proc.exe_ino.ctime"] < 600 * 10**9:
            bad("proc.exe_ino.ctime is not shortly before the process started (a dropped binary)")
        if st["user.name"] != "croot" or st["group.name"] != "cgrp":
            bad("names not from the container's /etc/passwd and /etc/group")

    short = [e for e in execs if len(e.get("proc.argv", [])) == 3 and e["proc.argv"][1] == "true"
             and e["proc.argv"][2].startswith("short-")]
    seen = {e["proc.argv"][2] for e in short}
    if len(short) != 200 or len(seen) != 200:
        fail("short-lived execs: %d events, %d distinct, want 200" % (len(short), len(seen)))
    wrong = [e for e in short if e.get("container.full_id") != cid]
    if wrong:
        fail("%d of the 200 short-lived execs not attributed to the container, e.g. %r" % (
            len(wrong), {k: wrong[0].get(k) for k in ("proc.argv", "container.full_id", "container.attribution")}))
    how = {}
    for e in short:
        how[e.get("container.attribution")] = how.get(e.get("container.attribution"), 0) + 1

    # The pod and container whose names are not UTF-8: reported, names exact.
    if a.odd_container:
        infos = [e for e in events if e["evt.type"] == "container"
                 and e.get("container.full_id") == a.odd_container]
        if not infos:
            fail("no container event for the odd container %s" % a.odd_container)
        else:
            last = infos[-1]
            want = {"k8s.pod.uid": a.odd_uid}
            if not a.no_cri:
                want.update({"k8s.pod.name": "odd-\udcff", "container.name": "app\udcfe",
                             "container.source": "cri"})
                if a.odd_mount:
                    want["container.mounts"] = [a.odd_mount]
            for k, v in want.items():
                if last.get(k) != v:
                    fail("odd container event: %s = %r, want %r" % (k, last.get(k), v))

    status = [e for e in events if e["evt.type"] == "sensor_status"]
    final = [e for e in status if e.get("sensor.final")]
    if not final:
        fail("no final sensor status")
    else:
        f = final[-1]
        if f.get("sensor.fanotify_mode") != a.mode:
            fail("status: fanotify mode %r, want %r" % (f.get("sensor.fanotify_mode"), a.mode))
        for k in ("sensor.fanotify_overflows", "sensor.kernel_lost", "sensor.queue_drops"):
            if f.get(k) != 0:
                fail("status: %s = %r, want 0" % (k, f.get(k)))

    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print("ok: %d events, %d of the container, %d writes; short-lived execs attributed by %s" % (
        len(events), len(mine), len(writes), how))


if __name__ == "__main__":
    main()
