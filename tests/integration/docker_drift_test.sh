#!/bin/bash
# Issue 20: drift in a plain Docker container is alerted with what the engine says of it.
# A private dockerd (docker_env.sh) and the whole sensor (audit owner mode, fanotify, no CRI,
# --docker-endpoint on the private socket): in container shop-web (image localhost/webapp:3,
# compose labels), a binary copied, chmod'ed and run raises "Drop and execute new binary in
# container" with container.name shop-web, container.image.repository localhost/webapp,
# container.image.tag 3, and a rule on container.label[com.docker.compose.project] = shop
# fires; a shell and a package manager run in it alert with its name, image and image id; the sensor's container report has the image id and the flags; `driftwatch diff
# shop-web` finds it by name and lists the drift; `--prevent drift` denies a dropped binary
# there (exit 126, "Drift Prevented" naming shop-web). The sensor starts before the engine; a
# container that lives well under a second is named too.
# Usage: docker_drift_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/docker_env.sh"
dw_build "$1" sensor dw
dw_harness dw-dockdrift
d=$tmp/d
dw_audit_guard --owner
# The sensor first, as at boot when its unit starts before the engine's: it connects once
# the engine answers.
mkdir -p "$d/data"
dw_sensor_start --audit-mode owner --no-cri --docker-endpoint "$d/docker.sock" \
    --watch-fs "$d/data" --status-interval 1 --resync 1 --metrics-address 127.0.0.1:0
mport=$(sed -n 's/.*metrics on http:\/\/[^ ]* (port \([0-9]*\)).*/\1/p' "$tmp/sensor.log" | tail -1)
[[ -n $mport ]] || die "the sensor serves no /status"
dw_docker_up "$d"
dw_wait_log sensor "Docker engine on $d/docker.sock: docker" 1 10 ||
    die "the sensor did not connect to the engine started after it"
id=$(dw_docker_run "$d" shop-web --label com.docker.compose.project=shop \
    --label com.docker.compose.service=web)
# The sensor names it from the engine before anything runs in it.
known() {
    curl -sf "http://127.0.0.1:$mport/status" >"$tmp/status.json" &&
        python3 - "$tmp/status.json" "$id" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
sys.exit(0 if any(c["id"] == sys.argv[2] and c.get("name") == "shop-web" and c.get("source") == "docker"
                  for c in s.get("containers", [])) else 1)
PY
}
dw_wait 10 known || die "the sensor did not learn shop-web from the engine"
ok "the sensor knows shop-web from the engine"
"$dw" status --sensor "127.0.0.1:$mport" >"$tmp/status.txt"
check "driftwatch status names the engine: $(grep '^containers' "$tmp/status.txt")" \
    grep -qF "(runtime docker $d/docker.sock)" "$tmp/status.txt"
check "driftwatch status lists shop-web with its image" \
    grep -qE "shop-web +localhost/webapp:3" "$tmp/status.txt"

dw_docker "$d" exec shop-web /bin/sh -c \
    'cp /bin/busybox /tmp/echo && chmod 755 /tmp/echo && /tmp/echo ran-dropped' \
    >"$tmp/exec.out" 2>&1 || { cat "$tmp/exec.out"; die "docker exec in shop-web"; }
grep -qx ran-dropped "$tmp/exec.out" || die "the dropped binary did not run: $(cat "$tmp/exec.out")"
# A shell spawned in it, and a package manager run (busybox answers "applet not found": the
# exec is what counts).
dw_docker "$d" exec shop-web /bin/sh -c 'ln -s /bin/busybox /tmp/apt-get; /tmp/apt-get update; /bin/sh -c true' \
    >>"$tmp/exec.out" 2>&1 || true
# driftwatch diff finds shop-web by its Docker name and lists the dropped binary.
"$dw" diff shop-web --docker-endpoint "$d/docker.sock" >"$tmp/diff.txt" 2>&1 ||
    { cat "$tmp/diff.txt"; die "driftwatch diff shop-web"; }
check "driftwatch diff shop-web lists /tmp/echo: $(grep -c . "$tmp/diff.txt") lines" \
    grep -qE "^added +/tmp/echo " "$tmp/diff.txt"
check "driftwatch diff names the container it compared" grep -qF "container $id" "$tmp/diff.txt"
ro=$(dw_docker_run "$d" ro --read-only)
# A container that lives well under a second: its drift is still named (cgroup-first
# discovery; the engine inspected while the registry holds the container's first events).
blink=$(dw_docker_run "$d" blink -- /bin/sh -c \
    'cp /bin/busybox /tmp/echo && chmod 755 /tmp/echo && /tmp/echo ran-blink')
sleep 1
dw_stop sensor
dw_audit_same "$tmp" || die "audit state not restored"

cat >"$tmp/compose.yaml" <<'EOF'
- rule: Drift in a compose project (test)
  desc: the compose labels reach the rules
  condition: >
    spawned_process and container and proc.exe_written_at_runtime = true
    and container.label[com.docker.compose.project] = shop
  output: >
    drift in compose project %container.label[com.docker.compose.project]
    service %container.label[com.docker.compose.service]
  priority: WARNING
EOF
"$dw" analyze --events "$tmp/capture" >"$tmp/events.jsonl"
"$dw" analyze --rules "$tmp/compose.yaml" "$tmp/capture" >"$tmp/alerts.jsonl" 2>"$tmp/analyze.err" ||
    { cat "$tmp/analyze.err"; die "driftwatch analyze"; }
python3 - "$tmp/events.jsonl" "$tmp/alerts.jsonl" "$id" "$docker_image_id" "$blink" "$ro" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
alerts = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
cid, image_id, blink, ro = sys.argv[3][:12], sys.argv[4], sys.argv[5][:12], sys.argv[6][:12]
fails = []

def check(what, got, want):
    if got == want:
        print(f"ok: {what}")
    else:
        fails.append(f"{what}: got {got!r}, want {want!r}")

drops = [a for a in alerts if a["rule"] == "Drop and execute new binary in container"
         and a["output_fields"].get("container.id") == cid]
if not drops:
    fails.append("no drop-and-execute alert in shop-web")
else:
    f = drops[0]["output_fields"]
    print("ok: " + drops[0]["output"])
    check("alert container.name", f.get("container.name"), "shop-web")
    check("alert container.image.repository", f.get("container.image.repository"), "localhost/webapp")
    check("alert container.image.tag", f.get("container.image.tag"), "3")
for rule in ("Container Shell Spawned", "Package Manager Execution in Container"):
    hits = [a for a in alerts if a["rule"] == rule and a["output_fields"].get("container.id") == cid]
    if not hits:
        fails.append(f"no {rule!r} alert in shop-web")
        continue
    f = hits[0]["output_fields"]
    check(f"{rule}: container.name", f.get("container.name"), "shop-web")
    check(f"{rule}: container.image.repository", f.get("container.image.repository"), "localhost/webapp")
    check(f"{rule}: container.image.id", f.get("container.image.id"), image_id)
short = [a for a in alerts if a["rule"] == "Drop and execute new binary in container"
         and a["output_fields"].get("container.id") == blink]
if not short:
    fails.append("no drop-and-execute alert in the short-lived container blink")
else:
    check("short-lived container's alert container.name", short[0]["output_fields"].get("container.name"), "blink")
compose = [a for a in alerts if a["rule"] == "Drift in a compose project (test)"]
if not compose:
    fails.append("no alert of the rule on container.label[com.docker.compose.project]")
else:
    f = compose[0]["output_fields"]
    check("container.label[com.docker.compose.project]",
          f.get("container.label[com.docker.compose.project]"), "shop")
    check("container.label[com.docker.compose.service]",
          f.get("container.label[com.docker.compose.service]"), "web")
# The sensor's report of the container (its ContainerInfo event, as JSON).
infos = [e for e in events if e.get("container.id") == cid and e.get("evt.type") == "container"
         and e.get("container.name") == "shop-web"]
if not infos:
    fails.append("no container report of shop-web with its name")
else:
    i = infos[-1]
    check("report container.image.id", i.get("container.image.id"), image_id)
    check("report container.image", i.get("container.image"), "localhost/webapp:3")
    check("report container.privileged", i.get("container.privileged"), False)
    check("report container.read_only_rootfs", i.get("container.read_only_rootfs"), False)
ro_infos = [e for e in events if e.get("container.id") == ro and e.get("evt.type") == "container"
            and e.get("container.name") == "ro"]
check("report of the read-only container: container.read_only_rootfs",
      ro_infos[-1].get("container.read_only_rootfs") if ro_infos else None, True)
print("\n".join("FAIL: " + f for f in fails))
sys.exit(1 if fails else 0)
PY

# Prevention in a Docker container: the sensor again, with --prevent drift and a policy that
# lets images of another repository drift: the dropped binary is denied (exit 126) and the
# image's own binaries run.
printf 'allow:\n  - {name: other-images, images: ["localhost/other:*"]}\n' >"$tmp/policy.yaml"
rm -rf "$tmp/capture"
dw_sensor_start --audit-mode off --no-cri --docker-endpoint "$d/docker.sock" \
    --watch-fs "$d/data" --prevent drift --prevent-policy "$tmp/policy.yaml" \
    --status-interval 1 --metrics-address ""
dw_wait_log sensor "Docker engine on $d/docker.sock: docker" 1 10 || die "prevent: no engine"
run_in() { dw_docker "$d" exec shop-web /bin/sh -c "$1" 2>&1 | tail -1; }
expect "prevent: the image's busybox runs" "$(run_in '/bin/busybox true; echo $?')" 0
expect "prevent: the dropped binary is denied" \
    "$(run_in 'cp /bin/busybox /tmp/denied && chmod 755 /tmp/denied; /tmp/denied true 2>/dev/null; echo $?')" 126
dw_stop sensor
dw_audit_same "$tmp" || die "audit state not restored"
"$dw" analyze "$tmp/capture" >"$tmp/prevent.jsonl" 2>/dev/null || true
check "prevent: the denial alerts as Drift Prevented in shop-web" python3 -c '
import json, sys
sys.exit(0 if any(a["rule"] == "Drift Prevented" and a["output_fields"].get("container.name") == "shop-web"
                  for a in map(json.loads, open(sys.argv[1]))) else 1)' "$tmp/prevent.jsonl"
dw_finish "docker drift: named, imaged and labelled from the engine; prevention denies drift"
