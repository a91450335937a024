#!/bin/bash
# scripts/demo-docker.sh (the demo's Docker part), end to end, as a test: the stored alerts
# of the shell, the package manager and the dropped binary in shop-web each name the
# container, its image and image id (from the engine); its image, approved by id, raises no
# "Container Image Not Approved"; `driftwatch diff shop-web` and the inventory the collector
# asked for list /tmp/.kworker.
# Usage: demo_docker_test.sh BUILD_DIR
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/harness.sh"
dw_harness dw-demo-docker-test
out=$tmp
DW_BUILD=$build DW_DEMO_OUT=$out bash "$repo/scripts/demo-docker.sh" >"$out/demo.txt" 2>&1 || {
    cat "$out/demo.txt"; die "the Docker demo failed"; }
check "the demo printed its alerts and finished: $(grep '^== demo-docker done' "$out/demo.txt")" \
    grep -q "^== demo-docker done in" "$out/demo.txt"
check "driftwatch diff shop-web lists /tmp/.kworker" grep -qE "^added +/tmp/.kworker " "$out/diff.txt"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
alerts = [json.loads(l) for l in open(f"{out}/stored-alerts.jsonl")]
invs = [json.loads(l) for l in open(f"{out}/inventories.jsonl")]
fails = []
def fields(rule):
    return [a["output_fields"] for a in alerts if a["rule"] == rule]
image_ids = set()
for rule in ("Container Shell Spawned", "Package Manager Execution in Container",
             "Drop and execute new binary in container"):
    hits = fields(rule)
    if not hits:
        fails.append(f"no {rule!r} alert")
        continue
    f = hits[0]
    got = (f.get("container.name"), f.get("container.image.repository"))
    if got != ("shop-web", "localhost/webapp") or not f.get("container.image.id", "").startswith("sha256:"):
        fails.append(f"{rule}: {got} {f.get('container.image.id')!r}")
    else:
        print(f"ok: {rule}: shop-web, localhost/webapp, {f['container.image.id'][:19]}...")
if fields("Container Image Not Approved"):
    fails.append("the demo image, approved by id, alerted as not approved")
if not any(e["path"] == "/tmp/.kworker" for i in invs for e in i.get("entries", [])):
    fails.append("no inventory lists /tmp/.kworker")
else:
    print("ok: the collector's inventory of shop-web lists /tmp/.kworker")
print("\n".join("FAIL: " + f for f in fails))
sys.exit(1 if fails else 0)
PY
dw_finish "the Docker demo: alerts named from the engine, diff and inventory"
