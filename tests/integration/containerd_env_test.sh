#!/usr/bin/env bash
# Self-check of containerd_env.sh: private containerd up, busybox image built and imported,
# one container run and exec'd into, then full teardown with no processes or mounts left.
# Needs root, containerd 1.6, runc, busybox-static. Does not touch audit or fanotify.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/harness.sh"
# shellcheck source=containerd_env.sh
source "$here/containerd_env.sh"

# Short path: the containerd socket path must fit in sun_path.
dw_harness dwctd

step "check dependencies"
dw_ctd_check_deps
step "build image"
dw_image_build "$tmp/image.tar"
step "start containerd in $tmp"
dw_at_exit dw_ctd_stop "$tmp"
dw_ctd_start "$tmp"
step "import image"
image_id=$(dw_image_import "$tmp" "$tmp/image.tar")
[[ $image_id =~ ^sha256:[0-9a-f]{64}$ ]] || fail "image id looks wrong: $image_id"
step "image id $image_id"

step "run dw-test-1"
pid=$(dw_ctr_run "$tmp" dw-test-1 /bin/sleep 1000)
[ "$(dw_ctr_pid "$tmp" dw-test-1)" = "$pid" ] || fail "task PID mismatch"
[ "$(tr '\0' ' ' <"/proc/$pid/cmdline")" = "/bin/sleep 1000 " ] || fail "task $pid is not sleep"
# runc must keep its state under the private root, not /run/containerd/runc.
[ -d "$tmp/runc/k8s.io/dw-test-1" ] || fail "runc state not under $tmp/runc"

step "exec in dw-test-1"
out=$(dw_ctr_exec "$tmp" dw-test-1 exec-1 /bin/sh -c 'echo hi > /tmp/x; cat /tmp/x' </dev/null)
[ "$out" = hi ] || fail "exec output: '$out'"
[ -f "/proc/$pid/root/tmp/x" ] || fail "/proc/$pid/root/tmp/x missing on the host side"

step "stop"
dw_ctd_stop "$tmp"
# Second call must be a harmless no-op.
dw_ctd_stop "$tmp"

# No live process may still mention the temp dir (zombies are the non-reaping PID 1's).
for f in /proc/[0-9]*/cmdline; do
    p=${f#/proc/}
    p=${p%/cmdline}
    [ "$p" = $$ ] && continue
    if tr '\0' ' ' 2>/dev/null <"$f" | grep -qF "$tmp"; then
        st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$p/status" 2>/dev/null || true)
        [ "$st" = Z ] || [ -z "$st" ] || fail "process $p still running: $(tr '\0' ' ' <"$f")"
    fi
done
# The sleep itself does not mention the dir: check it by PID.
if [ -n "${pid:-}" ] && [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
    fail "container process $pid survived"
fi
mounts=$(dw_mounts_under "$tmp")
[ -z "$mounts" ] || fail "mounts left under $tmp: $mounts"
for d in /sys/fs/cgroup/*/k8s.io/dw-test-1; do
    [ -e "$d" ] && fail "cgroup left: $d"
done
step "done"
