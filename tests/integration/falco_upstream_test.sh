#!/bin/bash
# Issue 13, Falco's own rule files as they are (../shared/falco-rules: falcosecurity/rules,
# unmodified) against a real pod created through CRI, with the whole sensor running (audit
# owner mode, fanotify, CRI), and the same actions on the host:
#   - `rules check` loads the three files (and falco_rules + incubating alone) with exit 0
#     and an active/inactive summary, and the collector starts with them;
#   - in the pod, each of these upstream rules fires on the action it describes (the drift
#     rules upstream ships disabled are enabled with Falco's `override`):
#       Drop and execute new binary in container   a copy of busybox run from /tmp
#       Container Drift Detected (chmod)           chmod +x of a written file
#       Container Drift Detected (open+create)     a file created with an exec bit
#       Terminal shell in container                a shell with a tty (ctr exec -t)
#       Run shell untrusted                        "nginx" spawning a shell
#       Execution from /dev/shm                    a shell running a script from /dev/shm
#       Fileless execution via memfd_create        execveat of a memfd
#       Launch Package Management Process ...      apt-get (the image's)
#       Set Setuid or Setgid bit                   chmod u+s
#       Read sensitive file untrusted              cat /etc/shadow
#       Contact EC2 Instance Metadata Service ...  a connect to 169.254.169.254:80
#                                                  (--audit-network connect)
#   - on the host, the same actions raise none of the rules whose condition asks for a
#     container; the others (shell untrusted, /dev/shm, memfd, setuid) are host rules in
#     Falco too and fire there (for the host, not for a container).
# Usage: falco_upstream_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/containerd_env.sh"
dw_build "$1" collector
dw_harness dw-falco
upstream=$(cd "$here/../../../shared/falco-rules" 2>/dev/null && pwd) ||
    die "../shared/falco-rules beside the checkout is missing"
files=("$upstream/falco_rules.yaml" "$upstream/falco-incubating_rules.yaml"
    "$upstream/falco-sandbox_rules.yaml")
command -v gcc >/dev/null || die "gcc missing (apt-get install -y gcc libc6-dev)"

# The drift rules upstream ships disabled, enabled as a Falco user would.
cat >"$tmp/enable.yaml" <<'EOF'
- rule: Container Drift Detected (chmod)
  enabled: true
  override:
    enabled: replace
- rule: Container Drift Detected (open+create)
  enabled: true
  override:
    enabled: replace
EOF
rules=(--no-shipped-rules)
for f in "${files[@]}" "$tmp/enable.yaml"; do rules+=(--rules "$f"); done

step "rules check"
"$dw" rules check "${rules[@]}" >"$tmp/check.out" 2>&1 || { cat "$tmp/check.out"; die "rules check on the three upstream files"; }
grep -E '[0-9]+ active' "$tmp/check.out" && ok "rules check: upstream files load" ||
    { cat "$tmp/check.out"; fail "rules check printed no active/inactive summary"; }
"$dw" rules check --no-shipped-rules --rules "${files[0]}" --rules "${files[1]}" >"$tmp/check2.out" 2>&1 &&
    ok "rules check: falco_rules + incubating" || { cat "$tmp/check2.out"; fail "falco_rules + incubating"; }

step "the collector starts with them"
dw_collector_start col --insecure --listen 127.0.0.1:0 --db "$tmp/col.db" \
    --metrics-address 127.0.0.1:0 "${rules[@]}"
curl -sf "http://127.0.0.1:$mport/healthz" >/dev/null && ok "collector healthy with the upstream rules" ||
    fail "collector /healthz"
dw_stop col 30 || true

# The image: busybox, fd_exec (memfd and fd execs), a busybox named nginx (a server that
# spawns a shell) and an apt-get of the image's own (a copy of true).
extra=$tmp/extra
mkdir -p "$extra/opt/dw" "$extra/usr/bin" "$extra/etc"
printf 'root:*:19000:0:99999:7:::\n' >"$extra/etc/shadow"
gcc -static -O2 -Wall -Wextra -o "$extra/opt/dw/fd_exec" "$here/fd_exec.c"
gcc -static -O2 -Wall -Wextra -o "$extra/opt/dw/nb_connect" "$here/nb_connect.c"
cp /bin/busybox "$extra/opt/dw/nginx"
cp /bin/busybox "$extra/usr/bin/apt-get"
ctd=$tmp/ctd
dw_audit_guard --owner
dw_ctd_up "$ctd" "$extra"
dw_sensor_start --audit-mode owner --audit-network connect --cri-endpoint "$ctd/containerd.sock" \
    --watch-fs "$ctd/root" --status-interval 1 --resync 1
uid=$(cat /proc/sys/kernel/random/uuid)
pod=$(dw_pod_run "$ctd" falco-up shop "$uid" "/kubepods/besteffort/pod$uid")
cid=$(dw_pod_container "$ctd" "$pod" app -- /bin/sleep 1000)

# The actions, as one script run in the pod and on the host (DIR: a scratch directory;
# SHM: a directory under /dev/shm; TOOLS: where fd_exec, nginx and apt-get are).
cat >"$tmp/actions.sh" <<'EOF'
set -e
dir=$1 shm=$2 tools=$3 bin=$4
mkdir -p "$dir" "$shm"
cp /bin/busybox "$dir/true"                    # created with an exec bit: open+create
"$dir/true"                                    # drop and execute (busybox's applet "true")
printf 'x' >"$dir/plain"
chmod 755 "$dir/plain"                         # drift (chmod)
chmod u+s "$dir/plain"                         # setuid bit
printf 'true\n' >"$shm/run.sh"                 # a pod's /dev/shm is noexec: a shell runs
sh "$shm/run.sh"                               # a script from it (proc.args /dev/shm/...)
"$tools/fd_exec" memfd payload /bin/busybox true
/bin/busybox sh -c "exec -a sh $tools/nginx -c '/bin/sh -c true; true'"  # ash: exec -a
"$bin/apt-get" || true                         # busybox has no such applet: exits 127
cat /etc/shadow >/dev/null 2>&1 || true        # a sensitive read (marked in containers only)
"$tools/nb_connect" 169.254.169.254 80         # the cloud metadata service (non-blocking)
echo actions-done
EOF
step "actions in the pod"
dw_ctr_exec "$ctd" "$cid" a1 /bin/sh -s /tmp/act /dev/shm/act /opt/dw /usr/bin \
    <"$tmp/actions.sh" >"$tmp/pod.out" 2>&1 || { cat "$tmp/pod.out"; die "the actions in the pod"; }
grep -qx actions-done "$tmp/pod.out" || { cat "$tmp/pod.out"; die "actions in the pod"; }
# A shell with a terminal: ctr exec -t on a pty of its own (in_pty.py: bounded, and its
# input stays open, unlike script(1)'s).
python3 "$here/in_pty.py" 30 ctr --address "$ctd/containerd.sock" -n "$DW_NS" tasks exec -t \
    --exec-id t1 --fifo-dir "$ctd/fifo" "$cid" /bin/sh -c 'tty; echo tty-shell-done' \
    </dev/null >"$tmp/tty.out" 2>&1 || true
grep -q tty-shell-done "$tmp/tty.out" || { cat "$tmp/tty.out"; die "the shell with a tty in the pod"; }

step "the same actions on the host"
host=$tmp/host
mkdir -p "$host/tools"
cp "$extra/opt/dw/fd_exec" "$extra/opt/dw/nginx" "$extra/opt/dw/nb_connect" "$host/tools/"
cp /bin/busybox "$host/tools/apt-get"
bash "$tmp/actions.sh" "$host/act" "/dev/shm/dw-falco-$$" "$host/tools" "$host/tools" \
    >"$tmp/host.out" 2>&1 || { cat "$tmp/host.out"; die "the actions on the host"; }
rm -rf "/dev/shm/dw-falco-$$"
python3 "$here/in_pty.py" 30 /bin/sh -c 'tty; echo host-tty-done' </dev/null >"$tmp/htty.out" 2>&1 || true
sleep 1
dw_stop sensor
dw_audit_same "$tmp" || die "audit state not restored"

step "analyze the capture with the upstream rules"
"$dw" analyze "${rules[@]}" "$tmp/capture" >"$tmp/alerts.jsonl" 2>"$tmp/analyze.err" ||
    { cat "$tmp/analyze.err"; die "driftwatch analyze with the upstream rules"; }
python3 - "$tmp/alerts.jsonl" "$cid" <<'PY'
import json, sys
alerts = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
cid = sys.argv[2][:12]
# Read sensitive file untrusted: a host rule in Falco too, but the sensor watches sensitive
# files inside containers only (--sensitive-paths): the host's read is no event.
container_rules = ["Drop and execute new binary in container", "Container Drift Detected (chmod)",
                   "Container Drift Detected (open+create)", "Terminal shell in container",
                   "Launch Package Management Process in Container", "Read sensitive file untrusted",
                   "Contact EC2 Instance Metadata Service From Container"]
host_rules = ["Run shell untrusted", "Execution from /dev/shm",
              "Fileless execution via memfd_create", "Set Setuid or Setgid bit"]
def where(a):  # host alerts name no container (detect.cc adds a container's fields only)
    return a["output_fields"].get("container.id") or "host"
fails = []
for rule in container_rules + host_rules:
    got = [a for a in alerts if a["rule"] == rule]
    if not any(where(a) == cid for a in got):
        fails.append(f"{rule!r}: no alert in the pod (alerts: {sorted({where(a) for a in got})})")
    # (The pod's sandbox may raise them too: runc's init sets up its rootfs.)
    on_host = [a for a in got if where(a) == "host"]
    if rule in container_rules and on_host:
        fails.append(f"{rule!r} raised on the host: {on_host[0]['output']}")
    if rule in host_rules and not any(where(a) == "host" for a in got):
        fails.append(f"{rule!r}: a host rule in Falco, no alert for the host's action")
for f in fails:
    print("FAIL:", f)
if fails:
    print("alerts:", sorted({(a["rule"], where(a)) for a in alerts}))
    sys.exit(1)
print("upstream rules fire in the pod:", len(container_rules + host_rules))
PY
ok "upstream rules fire on the actions they describe"

step "offline: the k8s corpus"
corpus=$(cd "$here/../../../shared/corpus" && pwd)/audit-raw-k8s-api.log.xz
"$dw" analyze "${rules[@]}" "$corpus" >"$tmp/corpus.jsonl" 2>"$tmp/corpus.err" ||
    { tail -5 "$tmp/corpus.err"; die "analyze the corpus with the upstream rules"; }
n=$(python3 -c 'import json, sys; print(sum(json.loads(l)["rule"] == "Launch Package Management Process in Container" for l in open(sys.argv[1])))' "$tmp/corpus.jsonl")
[[ $n -ge 1 ]] && ok "offline: upstream's package-management alert ($n)" ||
    fail "offline: no package-management alert in the corpus"
dw_finish "upstream Falco rules checks passed"
