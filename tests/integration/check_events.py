#!/usr/bin/env python3
"""Checks `driftwatch analyze --events` output (JSON lines on stdin) against a spec.

Usage: check_events.py SPEC.json < events.jsonl
SPEC keys (all optional):
  execs: list of {"argv": [...], "container": "id or host", "count": 1, "res": "SUCCESS",
         "capped": true, "argc": N}
         each must match exactly `count` events with that exact proc.argv; "capped": the
         argument caps cut it (proc.args_capped, proc.argc N) or not
  unique_serials: true      no audit serial twice
  total_execs: N            execve+execveat events
  host_argv0: {"argv0": N}  N events with proc.argv[0]==argv0, all in container host
  container_only: {"id": [argv0,...]}  the non-plumbing execs of container id have exactly
                            these argv[0] basenames (as a multiset is not required: a set)
  no_runtime_in: ["id"]     no event in these containers whose proc.name is runc/containerd-shim
Prints one line per failed check and `N passed, M failed` last; exit 1 on any failure.
"""
import collections
import json
import os
import sys

spec = json.load(open(sys.argv[1]))
events = []
for n, line in enumerate(sys.stdin, 1):
    try:
        e = json.loads(line)
        # Captures also hold status and container reports: only audit events count here.
        if e["evt.type"] in ("execve", "execveat", "chmod", "fchmod", "fchmodat"):
            events.append(e)
    except ValueError as e:
        print(f"line {n}: not JSON: {e}")
        sys.exit(1)
execs = [e for e in events if e["evt.type"] in ("execve", "execveat")]
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


for want in spec.get("execs", []):
    hits = [e for e in execs if e["proc.argv"] == want["argv"]]
    count = want.get("count", 1)
    shown = [a if len(a) < 60 else a[:40] + f"...({len(a)} chars)" for a in want["argv"]]
    check(len(hits) == count, f"{shown}: {len(hits)} events, want {count}")
    for h in hits:
        if "container" in want:
            check(h["container.full_id"] == want["container"],
                  f"{shown}: container {h['container.full_id']}, want {want['container']}")
        if "res" in want:
            check(h["evt.res"] == want["res"], f"{shown}: evt.res {h['evt.res']}, want {want['res']}")
        if "capped" in want:
            got = h.get("proc.args_capped", False)
            check(got == want["capped"], f"{shown}: proc.args_capped {got}, want {want['capped']}")
            check(not want["capped"] or h["proc.cmdline"].endswith("..."),
                  f"{shown}: proc.cmdline does not end with ...")
        if "argc" in want:
            check(h.get("proc.argc") == want["argc"], f"{shown}: proc.argc {h.get('proc.argc')}, "
                  f"want {want['argc']}")

if spec.get("unique_serials"):
    serials = collections.Counter(e["audit.serial"] for e in events)
    dup = [s for s, c in serials.items() if c > 1]
    check(not dup, f"serials seen twice: {dup[:5]}")

if "total_execs" in spec:
    check(len(execs) == spec["total_execs"], f"{len(execs)} exec events, want {spec['total_execs']}")

for argv0, n in spec.get("host_argv0", {}).items():
    hits = [e for e in execs if e["proc.argv"][:1] == [argv0]]
    check(len(hits) == n, f"{argv0}: {len(hits)} execs, want {n}")
    bad = [e for e in hits if e["container.full_id"] != "host"]
    check(not bad, f"{argv0}: {len(bad)} not attributed to host")

for cid, names in spec.get("container_only", {}).items():
    got = {os.path.basename(e["proc.argv"][0]) if e["proc.argv"] else e["evt.arg.filename"]
           for e in execs if e["container.full_id"] == cid and not e["proc.is_runtime_plumbing"]}
    check(got == set(names), f"container {cid}: execs {sorted(got)}, want {sorted(names)}")

for cid in spec.get("no_runtime_in", []):
    bad = [e["proc.cmdline"][:80] for e in execs if e["container.full_id"] == cid
           and e["proc.name"] in ("runc", "containerd-shim") and not e["proc.is_runtime_plumbing"]]
    check(not bad, f"container {cid}: runtime processes attributed to it: {bad[:3]}")

for want in spec.get("failed", []):
    hits = [e for e in execs if e["evt.arg.filename"] == want["path"] and e["evt.res"] != "SUCCESS"]
    check(len(hits) == 1 and hits[0]["evt.res"] == want["res"]
          and hits[0]["container.full_id"] == want.get("container", hits[0]["container.full_id"]),
          f"failed exec of {want['path']}: {[(h['evt.res'], h['container.full_id']) for h in hits]}")

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
