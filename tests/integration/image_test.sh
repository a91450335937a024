#!/bin/bash
# The driftwatch container image (scripts/build-image.sh) on a real containerd, run as
# deploy/ runs it:
#   - the image is built twice: the same digest and bytes both times; its config has the OCI
#     version and source labels and no entrypoint; `ctr images import` names it
#     ghcr.io/driftwatch/driftwatch:<version>, with the digest and image id the script printed;
#   - the collector runs from the image as deploy/collector.yaml runs it: no capabilities,
#     read-only root, its ConfigMap's collector.yaml, TLS, enrollment CA, allow and deny lists
#     and data directory mounted; it must find the image's shipped rules by itself;
#   - the sensor runs from the image with deploy/sensor-daemonset.yaml's privileges and
#     nothing more: host PID and network namespaces, exactly its six capabilities (all others
#     dropped), no_new_privs, uid 0, read-only root; its ConfigMap's sensor.yaml (this test's
#     paths), the bootstrap certificate, spool and /run/driftwatch, the runtime's socket at
#     /run/containerd/containerd.sock, the runtime's root at its host path (HostToContainer
#     where the host mount allows it), the host's /sys/fs/cgroup read-only. Checked from the
#     host: capabilities, namespaces, no_new_privs, read-only root; it holds the audit pid,
#     has fanotify marks, and enrolled (its own key and certificate on the spool's host path);
#   - a workload pod created through CRI (kubelet labels) on the same containerd drops a
#     binary and runs it: the collector stores "Drop and execute new binary in container"
#     with the node's enrolled name, the pod's name and namespace, the container's name, id
#     and image; then the drift inventory lists the dropped file with its sha256. Both are
#     read with the image's own CLI (`driftwatch alerts|inventory`, exec'd in the collector's
#     container);
#   - the sensor stops on SIGTERM with status 0 and the audit state is as before.
# The sensor runs in a CRI pod (RunPodSandbox hostPID, CreateContainer with the security
# context), as a kubelet would run the DaemonSet, when dw-cri has `runp --host-pid`; else
# (dw-cri cannot ask for a host PID namespace nor capabilities) the same container through
# ctr. The collector runs through ctr (its log in a file; ctr 1.6 cannot set its uid 65532).
# Everything is stopped by PID (dw_ctd_stop) and the audit state restored at exit.
# Usage: image_test.sh BUILD_DIR   (root, containerd 1.6, runc, busybox-static, python3;
# changes global audit state: run under the kernel_audit lock). DW_IMAGE_TAR=FILE: use that
# image instead of building it (the determinism check is then skipped).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "${1:?usage: image_test.sh BUILD_DIR}"
[[ -x $DW_CRI ]] || die "no dw-cri at $DW_CRI"
dw_harness dwimg
ctd=$tmp/ctd
dw_audit_guard --owner
# Containers started with ctr get a cgroup parent of their own (not ctr's shared /k8s.io/NAME).
export DW_CGROUP_PARENT=/dw-image-$$

# ---- the image
step "build the image (twice)"
if [[ -n ${DW_IMAGE_TAR:-} ]]; then
    cp "$DW_IMAGE_TAR" "$tmp/driftwatch.tar"
    tar -xOf "$tmp/driftwatch.tar" index.json >"$tmp/index.json"
    img=$(json "$tmp/index.json" 'j["manifests"][0]["annotations"]["io.containerd.image.name"]')
    digest=$(json "$tmp/index.json" 'j["manifests"][0]["digest"]')
    want_id=
else
    bash "$repo/scripts/build-image.sh" "$build" "$tmp/driftwatch.tar" >"$tmp/build1.out" ||
        die "build-image.sh failed"
    cat "$tmp/build1.out"
    SOURCE_DATE_EPOCH=0 bash "$repo/scripts/build-image.sh" "$build" "$tmp/driftwatch2.tar" \
        >"$tmp/build2.out" || die "build-image.sh failed (second run)"
    get() { sed -n "s/^$1=//p" "$2"; }
    img=$(get name "$tmp/build1.out")
    digest=$(get digest "$tmp/build1.out")
    want_id=$(get image_id "$tmp/build1.out")
    expect "the same build gives the same digest" "$(get digest "$tmp/build2.out")" "$digest"
    check "the same build gives the same archive bytes" cmp -s "$tmp/driftwatch.tar" "$tmp/driftwatch2.tar"
    rm -f "$tmp/driftwatch2.tar"
fi
version=$("$dw" --version | awk 'NR == 1 { print $NF }')
expect "image name" "$img" "ghcr.io/driftwatch/driftwatch:$version"
[[ $digest =~ ^sha256:[0-9a-f]{64}$ ]] || fail "digest looks wrong: $digest"
tar -xOf "$tmp/driftwatch.tar" "blobs/sha256/${digest#sha256:}" >"$tmp/manifest.json"
cfg=$(json "$tmp/manifest.json" 'j["config"]["digest"]')
tar -xOf "$tmp/driftwatch.tar" "blobs/sha256/${cfg#sha256:}" >"$tmp/config.json"
expect "label org.opencontainers.image.version" \
    "$(json "$tmp/config.json" 'j["config"]["Labels"]["org.opencontainers.image.version"]')" "$version"
expect "label org.opencontainers.image.source" \
    "$(json "$tmp/config.json" 'j["config"]["Labels"]["org.opencontainers.image.source"]')" \
    https://github.com/driftwatch/driftwatch
expect "no entrypoint (the manifests name the binary)" "$(json "$tmp/config.json" 'j["config"].get("Entrypoint")')" None

step "containerd in $ctd, busybox image, import the driftwatch image"
dw_ctd_up "$ctd"
id=$(dw_image_import "$ctd" "$tmp/driftwatch.tar")
[[ -z $want_id ]] || expect "imported image id (config digest)" "$id" "$want_id"
_dw_ctr "$ctd" -n "$DW_NS" images ls >"$tmp/images.txt"
expect "ctr lists the image under its name with the manifest digest" \
    "$(awk -v n="$img" '$1 == n { print $3 }' "$tmp/images.txt")" "$digest"

# ---- certificates, as deploy/secrets.yaml's Secrets hold them: the collector's TLS (ca.crt,
# tls.crt, tls.key), the enrollment CA (ca.crt, ca.key), the sensors' bootstrap certificate
# (ca.crt, bootstrap.crt, bootstrap.key); the node makes its own key and enrolls.
node="img-node"
bash "$repo/scripts/make-certs.sh" "$tmp/certs" --bootstrap >/dev/null
mkdir -p "$tmp/collector-tls" "$tmp/enroll-ca" "$tmp/node-identity" "$tmp/sensor-tls" \
    "$tmp/collector-data" "$tmp/sensor-lib" "$tmp/sensor-run"
cp "$tmp/certs/ca.crt" "$tmp/collector-tls/ca.crt"
cp "$tmp/certs/collector.crt" "$tmp/collector-tls/tls.crt"
cp "$tmp/certs/collector.key" "$tmp/collector-tls/tls.key"
cp "$tmp/certs/ca.crt" "$tmp/certs/ca.key" "$tmp/enroll-ca/"
cp "$tmp/certs/ca.crt" "$tmp/certs/bootstrap.crt" "$tmp/certs/bootstrap.key" "$tmp/sensor-tls/"
chmod 0400 "$tmp"/collector-tls/* "$tmp"/enroll-ca/* "$tmp"/sensor-tls/*
printf '%s\n' "$node" >"$tmp/node-identity/enroll-allow"
printf '# node worker-7\n' >"$tmp/node-identity/deny-list"
chmod 0700 "$tmp/sensor-lib"

bind() {  # bind SRC DST [OPTS]: a ctr --mount argument
    printf 'type=bind,src=%s,dst=%s,options=rbind:%s\n' "$1" "$2" "${3:-rw}"
}
# The capabilities ctr's default spec gives, all dropped: what is left is what --cap-add names
# (Kubernetes' `drop: [ALL]`).
default_caps=(CAP_CHOWN CAP_DAC_OVERRIDE CAP_FSETID CAP_FOWNER CAP_MKNOD CAP_NET_RAW CAP_SETGID
    CAP_SETUID CAP_SETFCAP CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_SYS_CHROOT CAP_KILL CAP_AUDIT_WRITE)
drop_all=()
for c in "${default_caps[@]}"; do drop_all+=(--cap-drop "$c"); done

# ---- the collector from the image (deploy/collector.yaml: no capabilities, read-only root,
# its ConfigMap's collector.yaml, TLS and data mounted; the image's own shipped rules)
step "collector from the image"
cat >"$tmp/collector.yaml" <<EOF
# deploy/collector.yaml's ConfigMap, on loopback (host network) at any free port.
listen: 127.0.0.1:0
tls-cert: /etc/driftwatch/tls/tls.crt
tls-key: /etc/driftwatch/tls/tls.key
client-ca: /etc/driftwatch/tls/ca.crt
db: /var/lib/driftwatch/collector.db
retention-hours: 168
enroll-ca-cert: /etc/driftwatch/enroll-ca/ca.crt
enroll-ca-key: /etc/driftwatch/enroll-ca/ca.key
enroll-validity: 30d
enroll-allow: /etc/driftwatch/node-identity/enroll-allow
deny-list: /etc/driftwatch/node-identity/deny-list
metrics-address: 127.0.0.1:0
EOF
DW_IMAGE=$img dw_ctr_run "$ctd" dw-collector --net-host --read-only "${drop_all[@]}" \
    --mount "$(bind "$tmp/collector.yaml" /etc/driftwatch/collector.yaml ro)" \
    --mount "$(bind "$tmp/collector-tls" /etc/driftwatch/tls ro)" \
    --mount "$(bind "$tmp/enroll-ca" /etc/driftwatch/enroll-ca ro)" \
    --mount "$(bind "$tmp/node-identity" /etc/driftwatch/node-identity ro)" \
    --mount "$(bind "$tmp/collector-data" /var/lib/driftwatch)" -- \
    /usr/bin/driftwatch-collector --config=/etc/driftwatch/collector.yaml \
    --port-file /var/lib/driftwatch/port >"$tmp/collector.pid"
ln -sf "$ctd/logs/dw-collector.log" "$tmp/collector.log"
dw_wait 20 test -s "$tmp/collector-data/port" || die "the collector did not listen"
port=$(cat "$tmp/collector-data/port")
# The shipped rules, found beside the binary (/usr/share/driftwatch/rules).
if dw_wait_log collector "rules: [1-9][0-9]* rules" 1 10; then
    ok "collector: $(grep -m1 "rules: " "$tmp/collector.log")"
else
    fail "the collector loaded no rules"
fi

# ---- the sensor from the image, as the DaemonSet runs it
step "sensor from the image with the DaemonSet's privileges"
cat >"$tmp/sensor.yaml" <<EOF
# deploy/sensor-daemonset.yaml's ConfigMap; the runtime's root and the collector are this test's.
audit-mode: auto
fanotify-mode: auto
cri-endpoint: [/run/containerd/containerd.sock]
watch-fs: [$ctd/root]
collector: localhost:$port
tls-ca: /etc/driftwatch/tls/ca.crt
bootstrap-cert: /etc/driftwatch/tls/bootstrap.crt
bootstrap-key: /etc/driftwatch/tls/bootstrap.key
node-cert-dir: /var/lib/driftwatch/identity
spool-dir: /var/lib/driftwatch/spool
audit-state-file: /run/driftwatch/audit-state
metrics-address: 127.0.0.1:0
status-interval: 1
EOF
sensor_caps=(CAP_AUDIT_CONTROL CAP_AUDIT_READ CAP_SYS_ADMIN CAP_DAC_READ_SEARCH CAP_SYS_PTRACE CAP_NET_ADMIN)
# HostToContainer propagation (rslave) needs the host mount holding the runtime's root to be
# shared or slave (containerd refuses otherwise): true where systemd is PID 1, not here.
root_prop=:rslave
[[ $(findmnt -no PROPAGATION --target "$ctd/root" 2>/dev/null) == *private* ]] && root_prop=
if "$DW_CRI" runp --help 2>/dev/null | grep -q -- --host-pid; then
    # As a kubelet runs the DaemonSet's pod: CRI RunPodSandbox with hostPID (and host network),
    # CreateContainer with the container's securityContext and volumeMounts.
    sensor_via=cri
    suid=$(cat /proc/sys/kernel/random/uuid)
    printf '%s\n' "/kubepods/pod$suid" >>"$ctd/cgroups.list"
    spod=$(dw_cri "$ctd" runp --name driftwatch-sensor-x7k2p --namespace driftwatch --uid "$suid" \
        --cgroup-parent "/kubepods/pod$suid" --host-pid --log-dir "$tmp/pod-logs" | _dw_json_id)
    [[ -n $spod ]] || die "RunPodSandbox (hostPID) for the sensor failed"
    printf '%s\n' "$spod" >>"$ctd/cri-pods.list"
    cri_caps=()
    for c in "${sensor_caps[@]}"; do cri_caps+=(--cap-add "${c#CAP_}"); done
    scid=$(DW_IMAGE=$img dw_pod_container "$ctd" "$spod" sensor --read-only --no-new-privs \
        --run-as-user 0 --cap-drop ALL "${cri_caps[@]}" \
        --mount "$tmp/sensor.yaml:/etc/driftwatch/sensor.yaml:ro" \
        --mount "$tmp/sensor-tls:/etc/driftwatch/tls:ro" \
        --mount "$tmp/sensor-lib:/var/lib/driftwatch" \
        --mount "$tmp/sensor-run:/run/driftwatch" \
        --mount "$ctd/containerd.sock:/run/containerd/containerd.sock:ro" \
        --mount "$ctd/root:$ctd/root:ro$root_prop" \
        --mount "/sys/fs/cgroup:/sys/fs/cgroup:ro" \
        --env "NODE_NAME=$node" --pod-log-dir "$tmp/pod-logs" --log-path sensor.log -- \
        /usr/bin/driftwatch-sensor --config=/etc/driftwatch/sensor.yaml "--node=$node") ||
        die "the sensor's container could not be created"
    dw_cri "$ctd" inspect "$scid" >"$tmp/sensor-inspect.json"
    json "$tmp/sensor-inspect.json" 'j["pid"]' >"$tmp/sensor.pid"
    ln -sf "$tmp/pod-logs/sensor.log" "$tmp/sensor.log"
else
    # dw-cri cannot ask for a host PID namespace nor a capability set: the same container
    # through ctr. hostPID: the host's PID namespace joined (ctr has no flag of its own for
    # it), named through this shell: PID 1 here is a VM init with capabilities root lacks, so
    # its /proc/1/ns links cannot be opened. hostNetwork: --net-host. ctr sets no_new_privs
    # unless --allow-new-privs (allowPrivilegeEscalation: false).
    sensor_via=ctr
    add_caps=()
    for c in "${sensor_caps[@]}"; do add_caps+=(--cap-add "$c"); done
    DW_IMAGE=$img dw_ctr_run "$ctd" dw-sensor --net-host --with-ns "pid:/proc/$$/ns/pid" --read-only \
        "${drop_all[@]}" "${add_caps[@]}" \
        --mount "$(bind "$tmp/sensor.yaml" /etc/driftwatch/sensor.yaml ro)" \
        --mount "$(bind "$tmp/sensor-tls" /etc/driftwatch/tls ro)" \
        --mount "$(bind "$tmp/sensor-lib" /var/lib/driftwatch)" \
        --mount "$(bind "$tmp/sensor-run" /run/driftwatch)" \
        --mount "$(bind "$ctd/containerd.sock" /run/containerd/containerd.sock ro)" \
        --mount "$(bind "$ctd/root" "$ctd/root" "ro$root_prop")" \
        --mount "$(bind /sys/fs/cgroup /sys/fs/cgroup ro)" -- \
        /usr/bin/driftwatch-sensor --config=/etc/driftwatch/sensor.yaml "--node=$node" >"$tmp/sensor.pid"
    ln -sf "$ctd/logs/dw-sensor.log" "$tmp/sensor.log"
fi
[[ -n $root_prop ]] || note "the runtime root is mounted without rslave: the host mount holding it is private"
note "sensor started through $sensor_via"
spid=$(cat "$tmp/sensor.pid")
dw_wait_log sensor "connected to collector" 1 60 || die "the sensor did not connect to the collector"
# Enrolled: its own key and certificate on the spool's hostPath, as the DaemonSet keeps them.
check "the node enrolled (identity/node.crt, node.key on the host path)" \
    test -s "$tmp/sensor-lib/identity/node.crt" -a -s "$tmp/sensor-lib/identity/node.key"

# Its privileges, as the kernel sees them.
capeff=$(awk '/^CapEff:/ { print $2 }' "/proc/$spid/status")
want_caps=$(python3 -c '
import sys
bits = {"CAP_DAC_READ_SEARCH": 2, "CAP_NET_ADMIN": 12, "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21,
        "CAP_AUDIT_CONTROL": 30, "CAP_AUDIT_READ": 37}
print("%016x" % sum(1 << bits[c] for c in sys.argv[1:]))' "${sensor_caps[@]}")
expect "sensor CapEff is exactly the DaemonSet's six capabilities" "$capeff" "$want_caps"
expect "sensor CapBnd the same" "$(awk '/^CapBnd:/ { print $2 }' "/proc/$spid/status")" "$want_caps"
expect "sensor no_new_privs" "$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$spid/status")" 1
expect "sensor uid 0" "$(awk '/^Uid:/ { print $2 }' "/proc/$spid/status")" 0
expect "sensor in the host PID namespace" "$(readlink "/proc/$spid/ns/pid")" "$(readlink /proc/self/ns/pid)"
expect "sensor in the host network namespace" "$(readlink "/proc/$spid/ns/net")" "$(readlink /proc/self/ns/net)"
if [[ $(readlink "/proc/$spid/ns/mnt") != "$(readlink /proc/self/ns/mnt)" ]]; then
    ok "sensor in a mount namespace of its own"
else
    fail "sensor in the host mount namespace"
fi
expect "sensor root read-only" "$(awk '$5 == "/" { print $6 }' "/proc/$spid/mountinfo" | cut -d, -f1)" ro
expect "sensor runs /usr/bin/driftwatch-sensor of the image" "$(readlink "/proc/$spid/exe")" /usr/bin/driftwatch-sensor
check "sensor holds the audit pid (owner mode)" dw_audit_held_by "$spid"
check "sensor has fanotify marks" dw_fanotify_marked "$spid"

# ---- a pod on the same containerd, drifting
step "workload pod through CRI; a binary dropped and run in it"
uid=$(cat /proc/sys/kernel/random/uuid)
pod_name=shop-api-6b7c9-x4t2q
pod_ns=shop
pod=$(dw_pod_run "$ctd" "$pod_name" "$pod_ns" "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$ctd" "$pod" app -- sleep 100000)
dw_cri "$ctd" inspect "$cid" >"$tmp/app.json"
image_ref=$(json "$tmp/app.json" 'j["image"]')
# The sensor learns of the container (cgroup inotify + CRI) before the drift.
sleep 2
dw_ctr_exec "$ctd" "$cid" drift /bin/sh -c 'cp /bin/busybox /tmp/busybox-dropped && /tmp/busybox-dropped true' </dev/null ||
    fail "the drift commands failed in the pod"

step "the alert at the collector, read with the image's CLI"
alerts() {
    dw_ctr_exec "$ctd" dw-collector "q$RANDOM" /usr/bin/driftwatch alerts --db /var/lib/driftwatch/collector.db \
        --rule "Drop and execute new binary in container" </dev/null >"$tmp/alerts.jsonl" 2>"$tmp/alerts.err"
}
has_alert() { alerts && grep -q /tmp/busybox-dropped "$tmp/alerts.jsonl"; }
dw_wait 60 has_alert || fail "no drop-and-execute alert stored within 60 s ($(cat "$tmp/alerts.err"))"
if python3 - "$tmp/alerts.jsonl" "$pod_name" "$pod_ns" "$cid" "$image_ref" "$node" >"$tmp/alert.check" <<'PY'; then
import json, sys
path, pod_name, pod_ns, cid, image, node = sys.argv[1:]
alerts = [json.loads(l) for l in open(path) if l.strip()]
mine = [a for a in alerts if a["output_fields"].get("proc.exepath") == "/tmp/busybox-dropped"]
if not mine:
    sys.exit(f"no alert for /tmp/busybox-dropped among {len(alerts)}")
f = mine[0]["output_fields"]
repo, _, tag = image.rpartition(":")
want = {"k8s.pod.name": pod_name, "k8s.ns.name": pod_ns, "container.name": "app",
        "container.image.repository": repo, "container.image.tag": tag}
bad = [f"{k}={f.get(k)!r} want {v!r}" for k, v in want.items() if f.get(k) != v]
if mine[0].get("hostname") != node:
    bad.append(f"hostname={mine[0].get('hostname')!r} want {node!r} (the enrolled name)")
if not cid.startswith(str(f.get("container.id") or "-")):
    bad.append(f"container.id={f.get('container.id')!r} not a prefix of {cid}")
if bad:
    sys.exit("; ".join(bad) + "\n" + json.dumps(f, indent=1, sort_keys=True))
print(f"{mine[0]['rule']}: pod {pod_ns}/{pod_name}, container app ({f['container.id']}), "
      f"image {repo}:{tag}, node {mine[0].get('hostname')}")
PY
    ok "$(cat "$tmp/alert.check")"
else
    fail "the alert's attribution: $(cat "$tmp/alert.check")"
fi

# After the drift alerts the collector asks the sensor for the container's drift inventory:
# the sensor reads the container's upper layer through the runtime root mounted into it.
step "the pod's drift inventory, from the sensor in its container"
inventory() {
    dw_ctr_exec "$ctd" dw-collector "i$RANDOM" /usr/bin/driftwatch inventory --db /var/lib/driftwatch/collector.db \
        --json --all "$cid" </dev/null >"$tmp/inventory.jsonl" 2>"$tmp/inventory.err"
}
has_inventory() { inventory && grep -q /tmp/busybox-dropped "$tmp/inventory.jsonl"; }
dw_wait 30 has_inventory || fail "no inventory of the pod's container lists /tmp/busybox-dropped ($(cat "$tmp/inventory.err"))"
if python3 - "$tmp/inventory.jsonl" "$(sha256sum /bin/busybox | cut -d' ' -f1)" >"$tmp/inventory.check" <<'PY'; then
import json, sys
path, sha = sys.argv[1:]
for line in open(path):
    i = json.loads(line)
    for e in i.get("entries", []):
        if e.get("path") == "/tmp/busybox-dropped" and e.get("kind") == "added" and e.get("sha256") == sha:
            print(f"{i['k8s.ns.name']}/{i['k8s.pod.name']} {i['container.name']}: {len(i['entries'])} entries")
            sys.exit(0)
sys.exit(1)
PY
    ok "drift inventory: $(cat "$tmp/inventory.check"), /tmp/busybox-dropped added with busybox's sha256"
else
    fail "no inventory entry: /tmp/busybox-dropped added with busybox's sha256 (see $tmp/inventory.jsonl)"
fi

# ---- stop: the sensor on SIGTERM puts the audit state back
step "stop the sensor (SIGTERM)"
if [[ $sensor_via == cri ]]; then
    # As a kubelet ends the pod: StopContainer with the grace period (SIGTERM, then SIGKILL).
    dw_cri "$ctd" stop --timeout 30 "$scid" >/dev/null || fail "CRI StopContainer of the sensor"
    dw_cri "$ctd" inspect "$scid" >"$tmp/sensor-inspect.json"
    expect "the sensor's exit code after SIGTERM" "$(json "$tmp/sensor-inspect.json" 'j["exit_code"]')" 0
else
    _dw_ctr "$ctd" -n "$DW_NS" tasks kill --signal SIGTERM dw-sensor
    sensor_gone() { [[ $(_dw_ctr "$ctd" -n "$DW_NS" tasks ls | awk '$1 == "dw-sensor" { print $3 }') == STOPPED ]]; }
    dw_wait 30 sensor_gone || fail "the sensor did not stop within 30 s of SIGTERM"
    # ctr warns "task ... exit with non-zero exit code N" when deleting a task that failed.
    _dw_ctr "$ctd" -n "$DW_NS" tasks delete dw-sensor >"$tmp/sensor-delete.txt" 2>&1 || true
    if grep -q "exit code" "$tmp/sensor-delete.txt"; then
        fail "the sensor's exit: $(cat "$tmp/sensor-delete.txt")"
    else
        ok "the sensor's exit code after SIGTERM: 0"
    fi
fi
check "audit state as before the sensor" dw_audit_same "$tmp"
if grep -E "libprotobuf|error while loading shared libraries|cannot open shared object" \
    "$tmp/sensor.log" "$tmp/collector.log"; then
    fail "a library problem in the daemons' logs"
fi
dw_finish "the image ran the sensor, the collector and the CLI; the pod's drift alerted"
