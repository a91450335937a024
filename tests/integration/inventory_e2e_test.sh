#!/bin/bash
# Drift inventories end to end: the real sensor (containers + fanotify, audit off) and the
# real collector over gRPC, with a Kubernetes-labelled pod of two containers. In one, 64,000
# directories with 250-byte names: an inventory of about 18 MiB, over the collector's 16 MiB
# message limit, which reaches the store whole, in chunks, on a stream that never breaks.
# In the other, a chain of 10,000 nested directories: the walk stops at the depth cap and
# the stored inventory and `driftwatch inventory` say so. A write in each container (the
# "Container File System Write" rule, tagged drift) makes the collector ask. The sensor's
# peak RSS is printed.
# Usage: inventory_e2e_test.sh BUILD_DIR     env: KEEP=1 keeps the tmp dir
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "${1:?usage: inventory_e2e_test.sh BUILD_DIR}"
dw_harness dw-inv-e2e
ctd=$tmp/ctd

# Removes the chain from the bottom up, one fd at a time (".." is the parent): a recursive
# remove keeps a directory open per level and builds paths far over PATH_MAX.
remove_chain() {  # DIR: holds the chain "d/d/d/..."
  [[ -d $1 ]] || return 0
  python3 - "$1" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
levels = 0
while True:
    try:
        down = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    except FileNotFoundError:
        break
    os.close(fd)
    fd, levels = down, levels + 1
for _ in range(levels):
    up = os.open("..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = up
    os.rmdir("d", dir_fd=fd)
PY
}
dw_ctd_up "$ctd"

dw_collector_start collector --insecure --listen 127.0.0.1:0 --db "$tmp/collector.db" \
  --metrics-address "" --inventory-quiet-ms 500
# Paths of 64,000 names of 256 bytes: 16.4 MB, over the default cap of 16 MiB.
dw_start sensor "$sensor" --audit-mode off --cri-endpoint "$ctd/containerd.sock" \
  --watch-fs "$ctd/root" --collector "127.0.0.1:$port" --insecure \
  --node node-inv --spool-dir "$tmp/spool" --metrics-address "" \
  --inventory-max-path-bytes 33554432
sensor_pid=$(dw_pid sensor)
dw_wait_log sensor "connected to collector" 1 30 || die "sensor did not connect"

uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" inv-e2e prod "$uid" "/kubepods/besteffort/pod$uid")
wide=$(dw_pod_container "$ctd" "$pod" wide -- /bin/sleep 1000000)
deep=$(dw_pod_container "$ctd" "$pod" deep -- /bin/sleep 1000000)
upper_of() {  # CONTAINER_ID: the upper directory of its root overlay
  local pid
  pid=$(dw_cri "$ctd" inspect "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
  python3 - "$pid" <<'PY'
import sys
lines = open(f"/proc/{sys.argv[1]}/mountinfo").read().splitlines()
root = [l for l in lines if l.split()[4] == "/"][-1]
opts = root.split(" - ")[1].split()[2].split(",")
print(dict(o.split("=", 1) for o in opts if "=" in o)["upperdir"])
PY
}
wide_upper=$(upper_of "$wide")
deep_upper=$(upper_of "$deep")
dw_at_exit remove_chain "$deep_upper/deep"
# Made from the host, in the upper layers: directories, which fanotify does not report.
python3 - "$wide_upper" "$deep_upper" <<'PY'
import os, sys
wide, deep = sys.argv[1], sys.argv[2]
os.mkdir(f"{wide}/data")
for i in range(64000):
    os.mkdir(f"{wide}/data/" + str(i).rjust(250, "n"))
os.mkdir(f"{deep}/deep")
fd = os.open(f"{deep}/deep", os.O_RDONLY | os.O_DIRECTORY)
for _ in range(10000):
    os.mkdir("d", dir_fd=fd)
    nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
os.close(fd)
PY
hwm() { dw_hwm_kb "$sensor_pid"; }
# Its inventory taken after the trigger write (the container's start alerts may have asked
# for one before: that one does not count).
triggered() {  # CONTAINER
  (($(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from inventories where container_id = ? and instr(reply, ?) > 0", (sys.argv[2], b"/etc/drift-trigger")).fetchone()[0])' \
    "$tmp/collector.db" "$1" 2>/dev/null || echo 0) >= 1))
}
inventories() { dw_wait 60 triggered "$1" || fail "no inventory of $1 with the trigger stored within 60 s"; }
# One at a time, the deep one first: the sensor's peak RSS after each (the collector asks
# 0.5 s after the container's alerts pause).
hwm_start=$(hwm)
dw_ctr_exec "$ctd" "$deep" w-deep /bin/sh -c 'echo drift > /etc/drift-trigger' </dev/null || fail "write in deep"
inventories "$deep"
hwm_deep=$(hwm)
dw_ctr_exec "$ctd" "$wide" w-wide /bin/sh -c 'echo drift > /etc/drift-trigger' </dev/null || fail "write in wide"
inventories "$wide"
echo "sensor peak RSS: ${hwm_start} kB at start, ${hwm_deep} kB after the 10,000-level tree, $(hwm) kB after the 64,000 entries"

"$dw" inventory --db "$tmp/collector.db" --all --json >"$tmp/inv.jsonl" || fail "driftwatch inventory --json"
expect "wide: stored whole, not cut" "$(python3 - "$tmp/inv.jsonl" "$wide" <<'PY'
import json, sys
inv = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["container.id"] == sys.argv[2]]
i = inv[-1]
data = [e for e in i["entries"] if e["path"].startswith("/data/")]
print(i["error"], i["truncated"], len(data), len({e["path"] for e in data}),
      any(e["path"] == "/etc/drift-trigger" for e in i["entries"]))
PY
)" " None 64000 64000 True"
expect "wide: the stored reply is over the 16 MiB message limit" "$(python3 -c '
import sqlite3, sys
n = sqlite3.connect(sys.argv[1]).execute("select max(length(reply)) from inventories where container_id = ?", (sys.argv[2],)).fetchone()[0]
print(n > 16 << 20)' "$tmp/collector.db" "$wide")" True
chain=$(printf '/d%.0s' $(seq 128))
expect "deep: cut at the depth cap" "$(python3 - "$tmp/inv.jsonl" "$deep" <<'PY'
import json, sys
i = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["container.id"] == sys.argv[2]][-1]
t = i["truncated"]
print(i["error"], t["depth"], t["entries"], t["path_bytes"], t["dirs_not_entered"],
      len([e for e in i["entries"] if e["path"].startswith("/deep")]))
PY
)" " True False False 1 129"
"$dw" inventory --db "$tmp/collector.db" "$deep" >"$tmp/deep.table" || fail "driftwatch inventory $deep"
tail -1 "$tmp/deep.table" | grep -qF "the listing is incomplete: 1 directory below the depth cap (128 levels) not entered, the first /deep$chain (the sensor's --inventory-max-* caps)" &&
  ok "deep: driftwatch inventory says the listing is incomplete, and why" ||
  fail "deep: $(tail -2 "$tmp/deep.table")"
expect "one stream all along" "$(grep -c "connected to collector" "$tmp/sensor.log")" 1
grep -q "inventory of container $deep: incomplete" "$tmp/sensor.log" && ok "sensor logs the cut" ||
  fail "sensor does not log the cut"
if grep -qE "retrying in|not sent|dropped" "$tmp/sensor.log"; then fail "sensor: $(grep -E "retrying in|not sent|dropped" "$tmp/sensor.log" | head -3)"; fi
if grep -q "discarded" "$tmp/collector.log"; then fail "collector discarded: $(grep discarded "$tmp/collector.log" | head -3)"; fi
dw_finish "PASS inventory end to end"
