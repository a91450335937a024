#!/bin/bash
# The demo's Docker part (issue 20): driftwatch on a plain Docker host, end to end.
#   installs what is missing and builds (as scripts/demo.sh); starts a private dockerd
#   (Debian's docker.io, installed when missing; its own data root, socket and containerd),
#   the collector (approved images: the demo image's id) and the sensor told the engine's
#   socket (no CRI); runs shop-web (image localhost/webapp:3, compose labels) and drifts in
#   it (a shell, a package manager, a binary dropped and executed); prints `driftwatch diff
#   shop-web`, the alerts as a table (each naming shop-web and its image, from the engine) and
#   the drift inventory the collector asked the sensor for; cleans up.
# Needs root (audit, fanotify, containers). Audit settings and rules are put back on exit.
#   env: DW_BUILD=DIR     use this build instead of installing and building
#        DW_DEMO_OUT=DIR  keep the alerts (stored-alerts.jsonl), diff, inventories and logs there
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "demo-docker: run as root (audit, fanotify and containers need it)"; exit 1; }
if [[ -z ${DW_BUILD:-} ]]; then
  "$root/scripts/install-deps.sh"
  echo "== building (build/)"
  "$root/scripts/build.sh" "$root/build" >/dev/null
  DW_BUILD=$root/build
fi
bin=$DW_BUILD
source "$root/tests/integration/docker_env.sh"
source "$root/tests/integration/audit_state.sh"
t0=$SECONDS

tmp=$(mktemp -d /tmp/driftwatch-demo-docker.XXXXXX)
d=$tmp/d
sensor_pid='' collector_pid=''
cleanup() {
  local rc=$?
  set +e
  [[ -n $sensor_pid ]] && { kill -TERM "$sensor_pid"; wait "$sensor_pid"; }
  [[ -n $collector_pid ]] && { kill -TERM "$collector_pid"; wait "$collector_pid"; }
  dw_docker_stop "$d" >/dev/null 2>&1
  dw_audit_restore "$tmp"
  if ((rc != 0)); then
    echo "demo-docker: failed; the logs:"
    tail -n 15 "$tmp"/*.log "$d/dockerd.log" 2>/dev/null
  fi
  if [[ -n ${DW_DEMO_OUT:-} ]]; then
    mkdir -p "$DW_DEMO_OUT"
    cp "$tmp"/*.log "$tmp"/*.jsonl "$tmp"/*.txt "$DW_DEMO_OUT"/ 2>/dev/null
  fi
  [[ -z $(dw_mounts_under "$tmp") ]] && rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
dw_docker_check_deps
dw_audit_save "$tmp"
[[ $(dw_audit_pid) == 0 ]] ||
  echo "demo-docker: an audit daemon holds the audit feed: the sensor reads beside it (observer mode)"

echo "== private dockerd, image $DW_DOCKER_IMAGE built from busybox-static"
dw_docker_start "$d"
dw_image_build "$tmp/image.tar" "$DW_DOCKER_IMAGE"
dw_docker "$d" load -i "$tmp/image.tar" >/dev/null
image_id=$(dw_docker "$d" image inspect -f '{{.Id}}' "$DW_DOCKER_IMAGE")
# Docker has no manifest to read: images are approved by image id (or repo digest).
printf '# the demo image, by image id\n%s\n' "$image_id" >"$tmp/approved-images.list"

echo "== driftwatch-collector and driftwatch-sensor (Docker engine $d/docker.sock, no CRI)"
"$bin/collector/driftwatch-collector" --insecure --listen 127.0.0.1:0 --port-file "$tmp/port" \
  --db "$tmp/collector.db" --metrics-address "" --inventory-quiet-ms 500 \
  --approved-images "$tmp/approved-images.list" 2>"$tmp/collector.log" &
collector_pid=$!
for _ in $(seq 100); do [[ -s $tmp/port ]] && break; sleep 0.05; done
[[ -s $tmp/port ]] || { echo "demo-docker: the collector did not start"; exit 1; }
"$bin/sensor/driftwatch-sensor" --no-cri --docker-endpoint "$d/docker.sock" --watch-fs "$d/data" \
  --collector "127.0.0.1:$(cat "$tmp/port")" --insecure --node demo-docker \
  --spool-dir "$tmp/spool" --audit-state-file "$tmp/audit-state" --metrics-address "" \
  2>"$tmp/sensor.log" &
sensor_pid=$!
for _ in $(seq 200); do grep -q "connected to collector" "$tmp/sensor.log" && break; sleep 0.05; done
grep -q "connected to collector" "$tmp/sensor.log" || { echo "demo-docker: the sensor did not connect"; exit 1; }
grep -E "^driftwatch-sensor [0-9.]+:" "$tmp/sensor.log"

echo "== docker run shop-web ($DW_DOCKER_IMAGE, compose project shop, service web)"
cid=$(dw_docker_run "$d" shop-web --label com.docker.compose.project=shop \
  --label com.docker.compose.service=web)
in_web() { dw_docker "$d" exec shop-web /bin/sh -c "$1" </dev/null >/dev/null 2>&1 || true; }
echo "== drift inside shop-web"
echo "   a shell";                       in_web '/bin/sh -c id'
echo "   a package manager";             in_web 'cp /bin/busybox /tmp/apk; /tmp/apk add curl'
echo "   a binary dropped and executed"; in_web 'cp /bin/busybox /tmp/.kworker && chmod +x /tmp/.kworker && /tmp/.kworker uname -a'
echo "== driftwatch diff shop-web (the container against its image, by its Docker name)"
"$bin/cli/driftwatch" diff shop-web --docker-endpoint "$d/docker.sock" | tee "$tmp/diff.txt"
# The collector asks for the container's drift inventory once its alerts pause.
echo "== waiting for the collector's drift inventory of shop-web"
inventory() { "$bin/cli/driftwatch" inventory --db "$tmp/collector.db" "$@"; }
for _ in $(seq 100); do
  inventory "$cid" 2>/dev/null | grep -q ' /tmp/.kworker ' && break
  sleep 0.2
done

kill -TERM "$sensor_pid"; wait "$sensor_pid" || true; sensor_pid=
kill -TERM "$collector_pid"; wait "$collector_pid" || true; collector_pid=
tail -1 "$tmp/collector.log"

echo "== alerts (driftwatch alerts --table)"
"$bin/cli/driftwatch" alerts --db "$tmp/collector.db" --table
"$bin/cli/driftwatch" alerts --db "$tmp/collector.db" >"$tmp/stored-alerts.jsonl"
echo "== shop-web's drift inventory, taken by the sensor after the alerts (driftwatch inventory)"
inventory "$cid" || true
inventory --json >"$tmp/inventories.jsonl"
echo "== demo-docker done in $((SECONDS - t0)) s (container $cid)"
