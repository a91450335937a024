#!/bin/bash
# The README's main command, end to end, as a test: scripts/demo.sh starts the collector and
# the sensor as their systemd units do (same flags, config files made from systemd/*.yaml),
# creates a Kubernetes-labelled pod through CRI and drifts in it and on the host. Then:
#   - drop-and-execute, a shell spawned by the workload, a package manager, a write to /etc,
#     and the image digest each raised their alert, with pod name and namespace in
#     output_fields;
#   - the host's own shell, package manager name and writes raised no container alert;
#   - the alerts are Falco JSON (the outputs file and `driftwatch alerts` agree);
#   - after the alerts the collector asked the sensor for the pod's drift inventory: it lists
#     the dropped binary (with its sha256), the package manager's copy and /etc/passwd, and
#     nothing was asked of the host.
# Usage: demo_test.sh BUILD_DIR
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/harness.sh"
dw_harness dw-demo-test
out=$tmp
DW_BUILD=$build DW_DEMO_OUT=$out bash "$repo/scripts/demo.sh" >"$out/demo.txt" 2>&1 || {
    cat "$out/demo.txt"; die "the demo failed"; }
grep -q "== alerts" "$out/demo.txt"
python3 - "$out" "$(sha256sum /bin/busybox | cut -d' ' -f1)" <<'PY'
import json, sys
out, busybox_sha = sys.argv[1], sys.argv[2]
stored = [json.loads(l) for l in open(f"{out}/stored-alerts.jsonl")]
emitted = [json.loads(l) for l in open(f"{out}/alerts.jsonl")]
fails = []
# Repeats within the collector's aggregation window are one stored alert with a count: the
# output has its first occurrence at once and the summary (driftwatch.count) at the end.
as_text = lambda a: json.dumps(a, sort_keys=True)
summaries = [a for a in stored if "driftwatch.count" in a["output_fields"]]
firsts = {(a["rule"], a["output_fields"].get("container.id")) for a in summaries}
extra = [a for a in emitted if as_text(a) not in {as_text(s) for s in stored}]
if not {as_text(a) for a in stored} <= {as_text(a) for a in emitted} or any(
        (a["rule"], a["output_fields"].get("container.id")) not in firsts for a in extra) or \
        len(extra) != len(summaries):
    fails.append(f"the alerts output ({len(emitted)}) and the store ({len(stored)}, "
                 f"{len(summaries)} with repeats) differ")
keys = {"hostname", "output", "output_fields", "priority", "rule", "source", "tags", "time"}
for a in stored:
    if set(a) != keys:
        fails.append(f"not Falco's JSON shape: {sorted(a)}")
        break
pod = [a for a in stored if a["output_fields"].get("k8s.pod.name") == "web-7d9f8-x2kqp"
       and a["output_fields"].get("k8s.ns.name") == "shop"]
def has(rule, pred=lambda a: True):
    return any(a["rule"] == rule and pred(a) for a in pod)
f = lambda a, k: a["output_fields"].get(k)
checks = {
    "drop and execute (with the binary's sha256)": has("Drop and execute new binary in container",
        lambda a: f(a, "proc.exe_sha256") == busybox_sha and f(a, "proc.exepath") == "/tmp/.kworker"),
    "new binary from the upper layer": has("Drift Detected (Container Image Modified Binary)",
        lambda a: f(a, "proc.exepath") == "/tmp/.kworker"),
    "a shell spawned by the workload": has("Container Shell Spawned",
        lambda a: f(a, "proc.name") == "sh" or "shell=sh" in a["output"]),
    "a package manager": has("Package Manager Execution in Container",
        lambda a: "apk add curl" in a["output"]),
    "a write to /etc": has("Container File System Write", lambda a: "/etc/passwd" in a["output"]),
    "the image digest": has("Container Image Not Approved"),
    "chmod +x": has("Container Drift Detected (chmod)", lambda a: "/tmp/.kworker" in a["output"]),
}
for what, ok in checks.items():
    if not ok:
        fails.append(f"no alert for {what} with pod and namespace in output_fields")
inv = [json.loads(l) for l in open(f"{out}/inventories.jsonl")]
pod_inv = [i for i in inv if i["k8s.pod.name"] == "web-7d9f8-x2kqp" and i["k8s.ns.name"] == "shop"
           and i["container.name"] == "app" and not i["error"]]
if not pod_inv:
    fails.append(f"no drift inventory of the pod's container app stored: {inv}")
else:
    last = {e["path"]: e for e in pod_inv[-1]["entries"]}
    want = {"/tmp/.kworker": lambda e: e["kind"] == "added" and e["executable"] and e["sha256"] == busybox_sha,
            "/tmp/apk": lambda e: e["kind"] == "added",
            "/etc/passwd": lambda e: e["kind"] == "modified" and not e["executable"]}
    for path, ok in want.items():
        if path not in last or not ok(last[path]):
            fails.append(f"the newest inventory has no right entry for {path}: {last.get(path)}")
    if not any("Drop and execute new binary in container" in i["rules"] for i in pod_inv):
        fails.append(f"no inventory names the drop-and-execute rule: {[i['rules'] for i in pod_inv]}")
if any(i["container.id"] in ("", "host") for i in inv):
    fails.append("an inventory was asked of the host")
host = [a for a in stored if f(a, "container.id") in (None, "host")]
if host:
    fails.append(f"{len(host)} container alerts for host processes: {[a['output'][:120] for a in host]}")
for x in fails:
    print("FAIL:", x)
if fails:
    print("alerts:", *[f"{a['rule']} | {a['output'][:150]}" for a in stored], sep="\n  ")
    sys.exit(1)
print(f"ok: {len(stored)} alerts, {len(pod)} of the pod; none for the host; "
      f"{len(pod_inv)} inventories of the pod")
PY
echo "PASS demo"
