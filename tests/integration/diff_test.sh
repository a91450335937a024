#!/usr/bin/env bash
# `driftwatch diff` against real containers of a private containerd: a fresh container has
# no drift; after known changes made inside it (add, add executable, modify, delete, rm -rf
# and recreate a directory, new directory) diff lists exactly those, by id, unique prefix,
# --pid and offline --upperdir/--lowerdir; table form; error cases.
# Usage: diff_test.sh BUILD_DIR. Needs root, containerd, runc, busybox-static. Does not touch
# audit or fanotify.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/harness.sh"
# shellcheck source=containerd_env.sh
source "$here/containerd_env.sh"
dw_build "${1:?usage: diff_test.sh BUILD_DIR}" dw

# Short path: the containerd socket path must fit in sun_path.
dw_harness dwdiff
dw_ctd_up "$tmp"

# Names unique to this run: ctr's default cgroup /k8s.io/NAME is shared by every containerd.
a=dwd$$-alpha
b=dwd$$-beta
pid_a=$(dw_ctr_run "$tmp" "$a" /bin/sleep 1000000)
pid_b=$(dw_ctr_run "$tmp" "$b" /bin/sleep 1000000)
echo "containers $a (pid $pid_a), $b (pid $pid_b)"
sed 's/^/  cgroup: /' "/proc/$pid_a/cgroup"

# 1. A fresh container has no drift. Its upper layer is not empty: runc creates the mount
#    points the image lacks (ctr's spec mounts a tmpfs at /run; the busybox image has no
#    /run), which diff leaves out unless asked.
runtime_made='{"kind":"added","path":"/run","type":"d","mode":"0755","size":4096,"executable":false,"sha256":"","opaque":false}'
out=$("$dw" diff --json "$a") || fail "diff of a fresh container failed"
check "fresh container drift: $out" [ -z "$out" ]
out=$("$dw" diff --json --include-mount-points "$a") || fail "diff --include-mount-points failed"
check "fresh container mount targets: $out" [ "$out" = "$runtime_made" ]

# 2. Known changes, made inside the container.
dw_ctr_exec "$tmp" "$a" change-1 /bin/sh -c '
    set -e
    echo hello > /root/added.txt
    printf "#!/bin/sh\necho drift\n" > /tmp/drift.sh
    chmod +x /tmp/drift.sh
    echo "evil:x:0:0::/:/bin/sh" >> /etc/passwd
    rm /etc/group
    rm /bin/uname
    rm -rf /var
    mkdir -p /var/log
    echo new > /var/log/new.log
    mkdir /newdir
    echo f > /newdir/f
' </dev/null || fail "changes inside the container failed"
sha=$(printf '#!/bin/sh\necho drift\n' | sha256sum | cut -d' ' -f1)

# kind path type [mode executable sha opaque], one line per expected entry, sorted by path.
expected="deleted /bin/uname l
modified /etc/passwd f 0644 false - false
deleted /etc/group f
added /newdir d 0755 false - false
added /newdir/f f 0644 false - false
added /root/added.txt f 0644 false - false
added /tmp/drift.sh f 0755 true $sha false
modified /var d 0755 false - true
added /var/log/new.log f 0644 false - false
deleted /var/tmp d"

# JSON lines -> the compact form above (deleted entries: kind path type only).
summarize() {
    python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    assert set(e) == {"kind", "path", "type", "mode", "size", "executable", "sha256", "opaque"}, e
    if e["kind"] == "deleted":
        print(e["kind"], e["path"], e["type"])
    else:
        print(e["kind"], e["path"], e["type"], e["mode"], str(e["executable"]).lower(),
              e["sha256"] or "-", str(e["opaque"]).lower())
'
}
sorted_expected=$(printf '%s\n' "$expected" | sort -k2,2)

json=$("$dw" diff --json "$a") || fail "diff --json $a failed"
got=$(printf '%s\n' "$json" | summarize | sort -k2,2)
check "diff --json by id:
--- expected
$sorted_expected
--- got
$got" [ "$got" = "$sorted_expected" ]
# Output order is by path.
check "JSON not sorted by path" [ "$(printf '%s\n' "$json" | summarize | awk '{print $2}')" = \
    "$(printf '%s\n' "$json" | summarize | awk '{print $2}' | LC_ALL=C sort)" ]
# Sizes: the appended passwd line and the script.
check "size of /tmp/drift.sh" grep -q '"path":"/tmp/drift.sh".*"size":21,' <<<"$json"

# 3. A unique prefix and --pid give the same answer; the other container has no drift.
check "unique prefix" [ "$("$dw" diff --json "dwd$$-al")" = "$json" ]
check "--pid" [ "$("$dw" diff --json --pid "$pid_a")" = "$json" ]
check "other container has drift" [ -z "$("$dw" diff --json "$b")" ]

# 4. Offline, from the layers named in the container's root mount.
read -r upper lower < <(python3 - "$pid_a" <<'EOF'
import sys
lines = open(f"/proc/{sys.argv[1]}/mountinfo").read().splitlines()
root = [l for l in lines if l.split()[4] == "/"][-1]
opts = root.split(" - ")[1].split()[2].split(",")
kv = dict(o.split("=", 1) for o in opts if "=" in o)
print(kv["upperdir"], kv["lowerdir"])
EOF
)
# Offline there is no mount table to leave the runtime's mount targets out by.
check "offline --upperdir/--lowerdir" [ "$("$dw" diff --json --upperdir "$upper" --lowerdir "$lower")" = \
    "$("$dw" diff --json --include-mount-points "$a")" ]

# 5. The table.
table=$("$dw" diff "$a") || fail "table form failed"
printf '%s\n' "$table"
check "table header" grep -qE '^KIND +PATH +TYPE +MODE +SIZE +SHA256$' <<<"$table"
check "table row for the script" grep -qE "^added +/tmp/drift.sh +f +0755 +21 +$sha\$" <<<"$table"
check "table opaque row" grep -qE '^modified +/var/ +d .*opaque' <<<"$table"
check "table summary" grep -qE "^10 change\(s\): 5 added, 2 modified, 3 deleted \(container $a, pid $pid_a," <<<"$table"

# 6. Errors: exit 1 with a message that names the problem.
expect_error() { # expect_error PATTERN ARGS...
    local pat=$1 rc=0 err
    shift
    err=$("$dw" diff "$@" 2>&1 >/dev/null) || rc=$?
    if [ "$rc" = 1 ] && grep -q -- "$pat" <<<"$err"; then ok "diff $*: $pat"; else fail "diff $* -> rc $rc: $err"; fi
}
expect_error "no running container matches 'dwd$$-nope'" "dwd$$-nope"
expect_error "is ambiguous" "dwd$$-"
expect_error "$a" "dwd$$-"
expect_error "$b" "dwd$$-"
expect_error "is not an overlay" --pid $$
expect_error "no such process" --pid 999999999
expect_error "exactly one of" 
expect_error "exactly one of" "$a" --pid "$pid_a"
expect_error "needs --lowerdir" --upperdir "$upper"
expect_error "opening lowerdir" --upperdir "$upper" --lowerdir "$tmp/missing"
