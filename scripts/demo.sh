#!/bin/bash
# The main job: driftwatch on one machine, end to end.
#   installs what is missing and builds; starts a private containerd, the collector (SQLite,
#   mTLS) and the sensor, each as its systemd unit starts it (same flags, config files made
#   from systemd/*.yaml); creates a Kubernetes-labelled pod through CRI; drifts inside it (a
#   shell spawned by the workload, a package manager, a binary dropped and executed, a write
#   to /etc) and does the same on the host; prints the alerts as a table and the drift
#   inventory the collector asked the sensor for after them; cleans up.
# Needs root (audit, fanotify, containers). Audit settings and rules are put back on exit.
#   env: DW_BUILD=DIR     use this build instead of installing and building
#        DW_DEMO_OUT=DIR  keep the alerts (alerts.jsonl), events and logs there
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) == 0 ]] || { echo "demo: run as root (audit, fanotify and containers need it)"; exit 1; }
if [[ -z ${DW_BUILD:-} ]]; then
  "$root/scripts/install-deps.sh"
  echo "== building (build/)"
  "$root/scripts/build.sh" "$root/build" >/dev/null
  DW_BUILD=$root/build
fi
bin=$DW_BUILD
source "$root/tests/integration/containerd_env.sh"
source "$root/tests/integration/audit_state.sh"
export DW_CRI=$bin/tools/dw-cri
t0=$SECONDS

tmp=$(mktemp -d /tmp/driftwatch-demo.XXXXXX)
ctd=$tmp/ctd
sensor_pid= collector_pid=
cleanup() {
  local rc=$?
  set +e
  [[ -n $sensor_pid ]] && { kill -TERM "$sensor_pid"; wait "$sensor_pid"; }
  [[ -n $collector_pid ]] && { kill -TERM "$collector_pid"; wait "$collector_pid"; }
  dw_ctd_stop "$ctd" >/dev/null 2>&1
  dw_audit_restore "$tmp"
  if ((rc != 0)); then
    echo "demo: failed; the daemons' logs:"
    tail -n 15 "$tmp"/*.log 2>/dev/null
  fi
  if [[ -n ${DW_DEMO_OUT:-} ]]; then
    mkdir -p "$DW_DEMO_OUT"
    cp "$tmp"/*.log "$tmp"/*.jsonl "$DW_DEMO_OUT"/ 2>/dev/null
  fi
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
dw_ctd_check_deps
dw_audit_save "$tmp"
[[ $(dw_audit_pid) == 0 ]] ||
  echo "demo: an audit daemon holds the audit feed: the sensor reads beside it (observer mode)"

echo "== private containerd, image built from busybox-static"
dw_image_build "$tmp/image.tar"
dw_ctd_start "$ctd"
image_id=$(dw_image_import "$ctd" "$tmp/image.tar")

echo "== certificates, config files (from systemd/*.yaml), an approved-images manifest"
bash "$root/scripts/make-certs.sh" "$tmp/tls" demo-node >/dev/null
mkdir -p "$tmp/etc" "$tmp/state"
# The approved images: a Deployment pinned to another digest, so the demo pod's image is
# not approved (locally imported images are known by their image id: sha256:<id>).
cat >"$tmp/etc/approved-images.yaml" <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      containers:
        - name: app
          image: registry.example.com/shop/web@sha256:$(printf '%064d' 7)
EOF
# config FILE KEY=VALUE...: the shipped config file with the demo's values for some keys
# (VALUE in YAML: lists as [a, b]).
config() {
  local src=$1
  shift
  python3 - "$src" "$@" <<'PY'
import sys, yaml
conf = yaml.safe_load(open(sys.argv[1])) or {}
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    conf[k] = yaml.safe_load(v)
yaml.safe_dump(conf, sys.stdout, default_flow_style=False, sort_keys=False)
PY
}
config "$root/systemd/collector.yaml" listen=127.0.0.1:0 \
  "approved-images=[$tmp/etc/approved-images.yaml]" "alerts-output=[$tmp/alerts.jsonl]" \
  metrics-address=127.0.0.1:0 >"$tmp/etc/collector.yaml"

echo "== driftwatch-collector"
# As systemd/driftwatch-collector.service runs it, with the demo's paths.
"$bin/collector/driftwatch-collector" --config "$tmp/etc/collector.yaml" \
  --db "$tmp/state/collector.db" --tls-cert "$tmp/tls/collector.crt" \
  --tls-key "$tmp/tls/collector.key" --client-ca "$tmp/tls/ca.crt" \
  --port-file "$tmp/port" 2>"$tmp/collector.log" &
collector_pid=$!
for _ in $(seq 100); do [[ -s $tmp/port ]] && break; sleep 0.05; done
[[ -s $tmp/port ]] || { echo "demo: the collector did not start"; exit 1; }
head -1 "$tmp/collector.log"

config "$root/systemd/sensor.yaml" "collector=localhost:$(cat "$tmp/port")" \
  "tls-ca=$tmp/tls/ca.crt" "tls-cert=$tmp/tls/demo-node.crt" "tls-key=$tmp/tls/demo-node.key" \
  "cri-endpoint=[$ctd/containerd.sock]" "watch-fs=[$ctd/root]" "spool-dir=$tmp/state/spool" \
  "audit-state-file=$tmp/audit-state" metrics-address=127.0.0.1:0 >"$tmp/etc/sensor.yaml"

echo "== driftwatch-sensor"
"$bin/sensor/driftwatch-sensor" --config "$tmp/etc/sensor.yaml" 2>"$tmp/sensor.log" &
sensor_pid=$!
for _ in $(seq 200); do grep -q "connected to collector" "$tmp/sensor.log" && break; sleep 0.05; done
grep -q "connected to collector" "$tmp/sensor.log" || { echo "demo: the sensor did not connect"; exit 1; }
grep -E "^driftwatch-sensor [0-9.]+:" "$tmp/sensor.log"

echo "== a pod through CRI: shop/web-7d9f8-x2kqp, container app (image $DW_IMAGE)"
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" web-7d9f8-x2kqp shop "$uid" "/kubepods/besteffort/pod$uid")
# The workload: a loop that, when told, spawns a shell of its own (as a compromised
# service would).
cid=$(dw_pod_container "$ctd" "$pod" app -- /bin/sh -c \
  'while :; do if [ -f /tmp/.go ]; then rm -f /tmp/.go; sh -c "id >/dev/null"; fi; usleep 100000; done')
sleep 1

echo "== drift inside the pod"
in_pod() { dw_ctr_exec "$ctd" "$cid" "demo$1" /bin/sh -c "$2" </dev/null >/dev/null 2>&1 || true; }
echo "   a shell spawned by the workload";   in_pod 1 'touch /tmp/.go; sleep 0.5'
echo "   a package manager";                  in_pod 2 'cp /bin/busybox /tmp/apk; /tmp/apk add curl'
echo "   a binary dropped and executed";      in_pod 3 'cp /bin/busybox /tmp/.kworker && chmod +x /tmp/.kworker && /tmp/.kworker uname -a'
echo "   a write to /etc";                    in_pod 4 'echo "backdoor:x:0:0::/:/bin/sh" >>/etc/passwd'
echo "== the same on the host (no container alert expected)"
sh -c 'id >/dev/null'
cp /bin/busybox "$tmp/apk" && { "$tmp/apk" add curl >/dev/null 2>&1 || true; }
# After drift alerts the collector asks the sensor for the container's drift inventory, once
# its alerts pause (inventory-quiet-ms): wait for one that has the last change, /etc/passwd.
echo "== waiting for the collector's drift inventory of the pod"
inventory() { "$bin/cli/driftwatch" inventory --db "$tmp/state/collector.db" "$@"; }
for _ in $(seq 100); do
  inventory shop/web-7d9f8-x2kqp/app 2>/dev/null | grep -q ' /etc/passwd ' && break
  sleep 0.2
done

kill -TERM "$sensor_pid"; wait "$sensor_pid" || true; sensor_pid=
kill -TERM "$collector_pid"; wait "$collector_pid" || true; collector_pid=
tail -1 "$tmp/collector.log"

echo "== alerts (driftwatch alerts --table; Falco JSON in alerts.jsonl)"
"$bin/cli/driftwatch" alerts --db "$tmp/state/collector.db" --table
"$bin/cli/driftwatch" alerts --db "$tmp/state/collector.db" >"$tmp/stored-alerts.jsonl"
echo "== the pod's drift inventory, taken by the sensor after the alerts (driftwatch inventory)"
inventory shop/web-7d9f8-x2kqp/app || true
inventory --json >"$tmp/inventories.jsonl"
"$bin/cli/driftwatch" events --db "$tmp/state/collector.db" >"$tmp/events.jsonl"
echo "== demo done in $((SECONDS - t0)) s (pod $cid)"
