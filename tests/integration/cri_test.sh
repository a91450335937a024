#!/usr/bin/env bash
# CRI client end to end against a real containerd: a private containerd runs a pod the way a
# kubelet would (kubelet labels, cgroup parent /kubepods/besteffort/pod<uid>, host network);
# dw-cri (lib/cri_client) must report what the kernel and the runtime actually did: names,
# labels, the container's host PID and its cgroup, the image id, read-only and privileged
# flags; then teardown through the CRI must leave no process, mount or cgroup behind.
# Usage: cri_test.sh BUILD_DIR   (needs root, containerd 1.6, runc, busybox-static, python3).
# Does not touch audit or fanotify.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/harness.sh"
# shellcheck source=containerd_env.sh
source "$here/containerd_env.sh"
dw_build "${1:?usage: cri_test.sh BUILD_DIR}"

# Short path: the containerd socket path must fit in sun_path.
dw_harness dwcri

# jget FILE PATH: a value from a JSON file; PATH is keys/indexes separated by "/" (label keys
# hold dots). Booleans print as true/false, missing values as "".
jget() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("/"):
    if isinstance(v, list):
        v = v[int(k)] if int(k) < len(v) else None
    elif isinstance(v, dict):
        v = v.get(k)
    else:
        v = None
if v is None:
    print("")
elif isinstance(v, bool):
    print("true" if v else "false")
elif isinstance(v, (dict, list)):
    print(json.dumps(v, sort_keys=True))
else:
    print(v)
EOF
}
[ -x "$DW_CRI" ] || die "no dw-cri at $DW_CRI (build target dw-cri)"
command -v python3 >/dev/null || die "python3 missing"
step "check dependencies, start containerd in $tmp, build and import the image"
dw_ctd_up "$tmp"

j=$tmp/j
mkdir -p "$j"
dw_cri "$tmp" version >"$j/version.json"
expect "runtime name" "$(jget "$j/version.json" runtime_name)" containerd
expect "runtime api" "$(jget "$j/version.json" runtime_api_version)" v1

# Pod identity as a kubelet would have it; the uid is a fresh UUID so that cgroup paths are
# ours alone.
uid=$(cat /proc/sys/kernel/random/uuid)
pod_name=web-7d9f8-abcde
pod_ns=dw-test
cgp=/kubepods/besteffort/pod$uid

step "run pod $pod_ns/$pod_name (uid $uid)"
pod=$(dw_pod_run "$tmp" "$pod_name" "$pod_ns" "$uid" "$cgp")
[[ $pod =~ ^[0-9a-f]{64}$ ]] || fail "pod id looks wrong: $pod"

step "containers: app (sleep 1000), ro (--read-only), priv (--privileged)"
c_app=$(dw_pod_container "$tmp" "$pod" app -- sleep 1000)
c_ro=$(dw_pod_container "$tmp" "$pod" ro --read-only -- sleep 1000)
c_priv=$(dw_pod_container "$tmp" "$pod" priv --privileged -- sleep 1000)

step "ps"
dw_cri "$tmp" ps >"$j/ps.json"
expect "ps count" "$(json "$j/ps.json" 'len(j)')" 3
python3 - "$j/ps.json" "$c_app" "$pod" "$pod_name" "$pod_ns" "$uid" "$image_id" 2>"$j/ps.check" <<'EOF' ||
import json, sys
items, cid, pod, name, ns, uid, image_id = json.load(open(sys.argv[1])), *sys.argv[2:]
c = [i for i in items if i["id"] == cid]
if len(c) != 1:
    sys.exit(f"container {cid} not listed once")
c = c[0]
want = {"name": "app", "state": "running", "pod_sandbox_id": pod, "image_ref": image_id,
        "image": "localhost/dw-busybox:1"}
bad = [f"{k}={c.get(k)!r} want {v!r}" for k, v in want.items() if c.get(k) != v]
labels = {"io.kubernetes.container.name": "app", "io.kubernetes.pod.name": name,
          "io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.uid": uid}
bad += [f"label {k}={c['labels'].get(k)!r} want {v!r}" for k, v in labels.items()
        if c["labels"].get(k) != v]
if not c.get("created_at_ns", 0) > 0:
    bad.append("created_at_ns not set")
if bad:
    sys.exit("ps: " + "; ".join(bad))
EOF
    fail "$(cat "$j/ps.check" 2>/dev/null) (see $j/ps.json)"

step "inspect app"
dw_cri "$tmp" inspect "$c_app" >"$j/app.json"
expect "app name" "$(jget "$j/app.json" name)" app
expect "app state" "$(jget "$j/app.json" state)" running
expect "app not_found" "$(jget "$j/app.json" not_found)" false
expect "app pod id" "$(jget "$j/app.json" pod_sandbox_id)" "$pod"
expect "app image_ref" "$(jget "$j/app.json" image_ref)" "$image_id"
expect "app label pod name" "$(jget "$j/app.json" labels/io.kubernetes.pod.name)" "$pod_name"
expect "app label pod namespace" "$(jget "$j/app.json" labels/io.kubernetes.pod.namespace)" "$pod_ns"
expect "app label pod uid" "$(jget "$j/app.json" labels/io.kubernetes.pod.uid)" "$uid"
expect "app label container name" "$(jget "$j/app.json" labels/io.kubernetes.container.name)" app
expect "app read_only_rootfs" "$(jget "$j/app.json" read_only_rootfs)" false
expect "app privileged" "$(jget "$j/app.json" privileged)" false
expect "app cgroup_path" "$(jget "$j/app.json" cgroup_path)" "$cgp/$c_app"
expect "app snapshot_key" "$(jget "$j/app.json" snapshot_key)" "$c_app"
pid_app=$(jget "$j/app.json" pid)
[[ $pid_app =~ ^[1-9][0-9]*$ ]] || fail "app pid: '$pid_app'"
# The PID is the real, live container process: the kernel's view must agree.
if dw_alive "$pid_app"; then
    expect "app pid cmdline" "$(tr '\0' ' ' <"/proc/$pid_app/cmdline")" "sleep 1000 "
    # Every hierarchy places it in <cgroup parent>/<container id>.
    grep -q -- "$c_app" "/proc/$pid_app/cgroup" || fail "/proc/$pid_app/cgroup lacks $c_app"
    n_bad=$(grep -v -c -- ":$cgp/$c_app\$" "/proc/$pid_app/cgroup" || true)
    expect "app cgroup lines outside $cgp/$c_app" "$n_bad" 0
    [ "$(jget "$j/app.json" started_at_ns)" -gt 0 ] || fail "app started_at_ns not set"
else
    fail "app pid $pid_app is not a live process"
fi

step "inspect ro, priv"
dw_cri "$tmp" inspect "$c_ro" >"$j/ro.json"
expect "ro read_only_rootfs" "$(jget "$j/ro.json" read_only_rootfs)" true
expect "ro privileged" "$(jget "$j/ro.json" privileged)" false
expect "ro name" "$(jget "$j/ro.json" name)" ro
pid_ro=$(jget "$j/ro.json" pid)
dw_cri "$tmp" inspect "$c_priv" >"$j/priv.json"
expect "priv privileged" "$(jget "$j/priv.json" privileged)" true
expect "priv read_only_rootfs" "$(jget "$j/priv.json" read_only_rootfs)" false
pid_priv=$(jget "$j/priv.json" pid)
# The flags are real: the kernel refuses a write to ro's rootfs and allows one to app's.
if dw_ctr_exec "$tmp" "$c_ro" w1 /bin/touch /dw-write-test </dev/null 2>/dev/null; then
    fail "write to the read-only rootfs of ro succeeded"
fi
dw_ctr_exec "$tmp" "$c_app" w2 /bin/touch /dw-write-test </dev/null || fail "write to app's rootfs failed"
[ -e "/proc/$pid_app/root/dw-write-test" ] || fail "app's write not visible through /proc/$pid_app/root"

step "inspectp, pods"
dw_cri "$tmp" inspectp "$pod" >"$j/pod.json"
expect "pod name" "$(jget "$j/pod.json" name)" "$pod_name"
expect "pod namespace" "$(jget "$j/pod.json" namespace)" "$pod_ns"
expect "pod uid" "$(jget "$j/pod.json" uid)" "$uid"
expect "pod state" "$(jget "$j/pod.json" state)" ready
expect "pod host_network" "$(jget "$j/pod.json" host_network)" true
expect "pod cgroup_parent" "$(jget "$j/pod.json" cgroup_parent)" "$cgp"
expect "pod label name" "$(jget "$j/pod.json" labels/io.kubernetes.pod.name)" "$pod_name"
expect "pod label namespace" "$(jget "$j/pod.json" labels/io.kubernetes.pod.namespace)" "$pod_ns"
expect "pod label uid" "$(jget "$j/pod.json" labels/io.kubernetes.pod.uid)" "$uid"
pid_sandbox=$(jget "$j/pod.json" pid)
# The sandbox image's entrypoint must be a long-lived process, not a shell that exits.
dw_alive "$pid_sandbox" || fail "sandbox pid '$pid_sandbox' is not a live process"
grep -q -- ":$cgp/$pod\$" "/proc/$pid_sandbox/cgroup" || fail "sandbox not in $cgp/$pod"
dw_cri "$tmp" pods -q >"$j/pods.json"
expect "pods" "$(jget "$j/pods.json" 0)/$(json "$j/pods.json" 'len(j)')" "$pod/1"

step "unknown ids"
set +e
dw_cri "$tmp" inspect 0000000000000000000000000000000000000000000000000000000000000000 \
    >"$j/nf.json" 2>/dev/null
rc=$?
set -e
expect "inspect unknown: exit" "$rc" 1
expect "inspect unknown: not_found" "$(jget "$j/nf.json" not_found)" true

step "stop and remove through the CRI"
for c in "$c_app" "$c_ro" "$c_priv"; do
    dw_cri "$tmp" stop --timeout 0 "$c" >/dev/null || fail "stop $c"
done
dw_cri "$tmp" inspect "$c_app" >"$j/app-stopped.json"
expect "app state after stop" "$(jget "$j/app-stopped.json" state)" exited
for c in "$c_app" "$c_ro" "$c_priv"; do
    dw_cri "$tmp" rm "$c" >/dev/null || fail "rm $c"
done
set +e
dw_cri "$tmp" inspect "$c_app" >"$j/app-gone.json" 2>/dev/null
set -e
expect "app after rm: not_found" "$(jget "$j/app-gone.json" not_found)" true
dw_cri "$tmp" stopp "$pod" >/dev/null || fail "stopp"
dw_cri "$tmp" rmp "$pod" >/dev/null || fail "rmp"
dw_cri "$tmp" ps -q >"$j/ps-after.json"
dw_cri "$tmp" pods -q >"$j/pods-after.json"
expect "containers left" "$(json "$j/ps-after.json" 'len(j)')" 0
expect "pods left" "$(json "$j/pods-after.json" 'len(j)')" 0
# Bounded wait: the runtime reports a stop before the kernel has always reaped everything.
_dw_wait_gone 10 "$pid_app" "$pid_ro" "$pid_priv" "$pid_sandbox" || true
for p in "$pid_app" "$pid_ro" "$pid_priv" "$pid_sandbox"; do
    dw_alive "$p" && fail "process $p survived its container"
done

step "stop containerd"
shims=$(_dw_pids_with_args -address "$tmp/containerd.sock" | tr '\n' ' ')
ctd=$(cat "$tmp/containerd.pid")
dw_ctd_stop "$tmp"
for p in $ctd $shims; do
    dw_alive "$p" && fail "process $p (containerd or shim) survived dw_ctd_stop"
done
mounts=$(dw_mounts_under "$tmp")
[ -z "$mounts" ] || fail "mounts left under $tmp: $mounts"
for m in /sys/fs/cgroup/*/; do
    for d in "$m${cgp#/}" "$m${cgp#/}/$c_app" "$m${cgp#/}/$pod"; do
        [ -e "$d" ] && fail "cgroup left: $d"
    done
done
step "done"
