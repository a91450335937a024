#!/bin/bash
# Issue 20 through the collector: Docker containers get what CRI pods get there.
# A private dockerd (docker_env.sh), the real collector (approved images: the image id of
# localhost/webapp:3) and the whole sensor (audit owner mode, fanotify, no CRI).
#  1. Approved images: shop-web (localhost/webapp:3, its image id listed) raises no
#     "Container Image Not Approved"; other (localhost/other:1, an image committed from it,
#     another id) raises it, naming the container, the image and its id; pinned (the same
#     image pushed to a private registry, run as REGISTRY/other:1: its repo digest listed,
#     not its id) raises none.
#  2. Collector-requested inventories: after a binary dropped and run in shop-web, the
#     collector asks the sensor for shop-web's inventory, and it lists /tmp/echo.
#  3. Engine down, then up: the sensor restarted while dockerd is stopped (SIGSTOP: its
#     socket accepts and never answers) reports shop-web and other from their cgroups with no
#     name; once dockerd runs again it names them (the source asks again and the registry
#     reports them again), a `docker rename` reaches the sensor, and the next alert carries
#     the new name.
# Usage: docker_collector_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/docker_env.sh"
dw_build "${1:?usage: docker_collector_test.sh BUILD_DIR}" sensor collector dw
dw_harness dw-dockcoll
d=$tmp/d
dw_audit_guard --owner
dw_docker_up "$d"
step "dockerd up"
# A second image: another id, same content (committed from a container never started).
dw_docker "$d" create --name base "$DW_DOCKER_IMAGE" >/dev/null
dw_docker "$d" commit base localhost/other:1 >/dev/null
dw_docker "$d" rm base >/dev/null
other_image_id=$(dw_docker "$d" image inspect -f '{{.Id}}' localhost/other:1)
[[ $other_image_id != "$docker_image_id" ]] || die "the committed image has the same id"

# The other image pushed to a private registry: a RepoDigest for REGISTRY/other.
dw_docker_registry_up "$d"
dw_docker "$d" tag localhost/other:1 "$docker_registry/other:1"
dw_docker "$d" push "$docker_registry/other:1" >/dev/null
repo_digest=$(dw_docker "$d" image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' \
    "$docker_registry/other:1" | grep -F "$docker_registry/other@sha256:" | head -1)
[[ -n $repo_digest ]] || die "no RepoDigest after docker push $docker_registry/other:1"
printf '# test: the webapp image by id, the other one by its repo digest\n%s\n%s\n' \
    "$docker_image_id" "$repo_digest" >"$tmp/approved.list"
dw_collector_start collector --insecure --listen 127.0.0.1:0 --db "$tmp/collector.db" \
    --metrics-address "" --inventory-quiet-ms 500 --approved-images "$tmp/approved.list"
sensor_on() {
    dw_start sensor "$sensor" --audit-mode owner --no-cri --docker-endpoint "$d/docker.sock" \
        --watch-fs "$d/data" --collector "127.0.0.1:$port" --insecure --node node-docker \
        --spool-dir "$tmp/spool" --status-interval 1 --resync 1 --metrics-address 127.0.0.1:0
    dw_wait_log sensor "connected to collector" "$1" 30 || die "the sensor did not connect"
    mport=$(sed -n 's/.*metrics on http:\/\/[^ ]* (port \([0-9]*\)).*/\1/p' "$tmp/sensor.log" | tail -1)
}
sensor_on 1
id=$(dw_docker_run "$d" shop-web)
oid=$(DW_DOCKER_IMAGE=localhost/other:1 dw_docker_run "$d" other)
pinned_id=$(DW_DOCKER_IMAGE=$docker_registry/other:1 dw_docker_run "$d" pinned)

# Stored alerts as "container.id|container.name|repository:tag|image id|rule" lines.
alerts() {
    "$dw" alerts --db "$tmp/collector.db" >"$tmp/alerts.jsonl" || return 1
    python3 - "$tmp/alerts.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    a = json.loads(line)
    f = a["output_fields"]
    image = "%s:%s" % (f.get("container.image.repository"), f.get("container.image.tag"))
    print("|".join((str(f.get("container.id")), str(f.get("container.name")), image,
                    str(f.get("container.image.id")), a["rule"])))
PY
}
has_alert() { alerts | grep -qF -- "$1"; }
not_approved="Container Image Not Approved"
dw_wait 30 has_alert "${oid:0:12}|other|localhost/other:1|$other_image_id|$not_approved" ||
    fail "no '$not_approved' alert naming other, localhost/other:1 and $other_image_id"
ok "other (image not in the list) alerts: $(python3 -c '
import json, sys
print(next(a["output"] for a in map(json.loads, open(sys.argv[1])) if a["rule"] == sys.argv[2]))' \
    "$tmp/alerts.jsonl" "$not_approved")"
dw_docker "$d" exec shop-web /bin/sh -c \
    'cp /bin/busybox /tmp/echo && chmod 755 /tmp/echo && /tmp/echo ran-dropped' >/dev/null ||
    die "docker exec in shop-web"
drop="Drop and execute new binary in container"
dw_wait 30 has_alert "${id:0:12}|shop-web|localhost/webapp:3|$docker_image_id|$drop" ||
    fail "no drop-and-execute alert naming shop-web: $(grep -F "${id:0:12}|" <(alerts) | sort -u | tr '\n' ' ')"
alerts >"$tmp/phase1.txt"
if grep -F "${id:0:12}|" "$tmp/phase1.txt" | grep -qF "|$not_approved"; then
    fail "shop-web, whose image id is approved, alerted: $(grep -F "|$not_approved" "$tmp/phase1.txt")"
else
    ok "no '$not_approved' for shop-web ($(grep -c . "$tmp/phase1.txt") alerts stored)"
fi
# Its container event came before shop-web's drift: stored and judged by now, with its digest.
"$dw" events --db "$tmp/collector.db" --container "$pinned_id" --kind container >"$tmp/pinned.jsonl"
expect "pinned's stored report carries the repo digest" "$(python3 -c '
import json, sys
print(" ".join(sorted({e.get("container.image.digest") or "-" for e in map(json.loads, open(sys.argv[1]))})))' \
    "$tmp/pinned.jsonl")" "${repo_digest#*@}"
if grep -F "${pinned_id:0:12}|" "$tmp/phase1.txt" | grep -qF "|$not_approved"; then
    fail "pinned, whose repo digest is approved, alerted: $(grep -F "${pinned_id:0:12}|" "$tmp/phase1.txt")"
else
    ok "no '$not_approved' for pinned (approved by $repo_digest; other, same image id, alerts)"
fi

# 2. The inventory the collector asked for after the drift alert lists the dropped binary.
inventory_has() {  # CONTAINER_ID PATH
    "$dw" inventory --db "$tmp/collector.db" --all --json >"$tmp/inv.jsonl" 2>/dev/null &&
        python3 - "$tmp/inv.jsonl" "$1" "$2" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    i = json.loads(line)
    if i["container.id"] == sys.argv[2] and any(e["path"] == sys.argv[3] for e in i.get("entries", [])):
        sys.exit(0)
sys.exit(1)
PY
}
if dw_wait 30 inventory_has "$id" /tmp/echo; then
    ok "the collector asked for shop-web's inventory and it lists /tmp/echo"
else
    fail "no stored inventory of shop-web listing /tmp/echo"
fi
"$dw" inventory --db "$tmp/collector.db" "$id" >"$tmp/inv.txt" 2>&1 || true
check "driftwatch inventory names shop-web: $(head -1 "$tmp/inv.txt")" grep -qF "shop-web" "$tmp/inv.txt"

# 3. The engine hung while the sensor starts: the containers are found by cgroup alone.
dw_stop sensor
dpid=$(_dw_dockerd_pid "$d") || die "no dockerd pid"
dw_at_exit kill -CONT "$dpid"  # before dw_docker_stop (registered earlier, runs later)
kill -STOP "$dpid"
step "dockerd stopped (SIGSTOP $dpid)"
rm -f "$tmp/capture"
sensor_on 2
named() {  # CONTAINER_ID NAME ("": no name)
    curl -sf "http://127.0.0.1:$mport/status" >"$tmp/status.json" &&
        python3 - "$tmp/status.json" "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c = [c for c in s.get("containers", []) if c["id"] == sys.argv[2]]
sys.exit(0 if c and c[0].get("name", "") == sys.argv[3] else 1)
PY
}
dw_wait 20 named "$id" "" || die "the sensor did not report shop-web from its cgroup while dockerd is stopped"
ok "while dockerd does not answer, shop-web is known by its cgroup, without a name"
sleep 3  # the container registry has long given up asking (its lookups bounded by the 2 s deadline)
named "$id" "" || die "shop-web got a name while dockerd was stopped?"
kill -CONT "$dpid"
step "dockerd running again"
dw_wait 20 named "$id" shop-web || die "the sensor did not name shop-web once dockerd answered again"
named "$oid" other || fail "the sensor did not name other once dockerd answered again"
ok "once dockerd answers, the sensor names shop-web and other"
dw_docker "$d" rename shop-web shop-web-2
dw_wait 20 named "$id" shop-web-2 || die "the rename did not reach the sensor"
ok "docker rename: the sensor reports shop-web-2"
dw_docker "$d" exec shop-web-2 /bin/sh -c \
    'mkdir /tmp/d2 && cp /bin/busybox /tmp/d2/echo && chmod 755 /tmp/d2/echo && /tmp/d2/echo ran-again' >/dev/null ||
    die "docker exec in shop-web-2"
dw_wait 30 has_alert "${id:0:12}|shop-web-2|localhost/webapp:3|$docker_image_id|$drop" ||
    fail "no drop-and-execute alert naming shop-web-2 after the rename: $(grep -F "${id:0:12}|" <(alerts) | tail -3)"
ok "the alert after the rename names shop-web-2 and its image"
dw_stop sensor
dw_audit_same "$tmp" || die "audit state not restored"
dw_finish "docker through the collector: approved images, inventories, engine down then up, rename"
