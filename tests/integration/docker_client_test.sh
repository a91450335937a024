#!/bin/bash
# Issue 20: the Docker Engine client (lib/k8s/docker_client, through dw-docker) against a
# private dockerd (Debian's docker.io, docker_env.sh): a container shop-web with compose
# labels as `docker compose` would label it is read back with its name, image name and tag,
# image id, repo digests (none for a loaded image), labels, pid, overlay upper dir and flags;
# a privileged read-only one (created: not startable here) with its flags; an unknown id is "not found"; the event stream
# reports a container started after it opened within a second.
# Usage: docker_client_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/harness.sh"
source "$here/docker_env.sh"
dw_build "$1"
dd=$build/tools/dw-docker
[[ -x $dd ]] || die "$dd not built"
dw_harness dw-docker
d=$tmp/d
dw_docker_up "$d"
ddk() { timeout -k 5 30 "$dd" --endpoint "$d/docker.sock" "$@"; }

step "engine up"
ddk version >"$tmp/version.json"
expect "engine" "$(json "$tmp/version.json" 'j["engine"]')" docker
expect "API version spoken" "$(json "$tmp/version.json" 'j["api_version"]')" \
    "$(dw_docker "$d" version -f '{{.Server.APIVersion}}')"

id=$(dw_docker_run "$d" shop-web --label com.docker.compose.project=shop \
    --label com.docker.compose.service=web)
ddk inspect shop-web >"$tmp/inspect.json"
j() { json "$tmp/inspect.json" "$1"; }
expect "id" "$(j 'j["id"]')" "$id"
expect "name" "$(j 'j["name"]')" shop-web
expect "image" "$(j 'j["image"]')" localhost/webapp:3
expect "image repository" "$(j 'j["image_repository"]')" localhost/webapp
expect "image tag" "$(j 'j["image_tag"]')" 3
expect "image id" "$(j 'j["image_id"]')" "$docker_image_id"
expect "repo digests (a loaded image has none)" "$(j 'json.dumps(j["repo_digests"])')" \
    "$(dw_docker "$d" image inspect -f '{{json .RepoDigests}}' "$docker_image_id")"
expect "image digest" "$(j 'j["image_digest"]')" ""
expect "compose labels" "$(j 'j["labels"].get("com.docker.compose.project"), j["labels"].get("com.docker.compose.service")')" \
    "shop web"
expect "state" "$(j 'j["state"]')" running
expect "pid" "$(j 'j["pid"]')" "$(dw_docker "$d" inspect -f '{{.State.Pid}}' "$id")"
expect "graph driver" "$(j 'j["graph_driver"]')" overlay2
upper=$(j 'j["upper_dir"]')
check "upper dir $upper exists" test -d "$upper"
# The same directory the container's root overlay names (what the sensor reads from
# mountinfo when the engine is not asked).
pid=$(j 'j["pid"]')
check "upper dir is the rootfs overlay's upperdir" grep -qF "upperdir=$upper" "/proc/$pid/mountinfo"
check "started_at_ns set" test "$(j 'j["started_at_ns"]')" -gt 0
expect "flags of shop-web" "$(j 'j["privileged"], j["read_only_rootfs"]')" "False False"

# Created, not started: this machine withholds capabilities a privileged container would get
# (runc: "unable to apply caps"); the flags are the engine's all the same.
dw_docker "$d" create --name ro-priv --network none --privileged --read-only "$DW_DOCKER_IMAGE" >/dev/null
ddk inspect ro-priv >"$tmp/ro.json"
expect "flags of ro-priv" "$(json "$tmp/ro.json" 'j["privileged"], j["read_only_rootfs"], j["state"], j["pid"]')" \
    "True True created 0"

ddk ps >"$tmp/ps.json"
expect "ps lists the running one" "$(json "$tmp/ps.json" 'sorted(c["name"] for c in j)')" "['shop-web']"
ddk ps --all >"$tmp/ps.json"
expect "ps --all lists both" "$(json "$tmp/ps.json" 'sorted(c["name"] for c in j)')" "['ro-priv', 'shop-web']"
if ddk inspect no-such-container >"$tmp/nf.json" 2>"$tmp/nf.err"; then
    fail "an unknown container is found"
else
    expect "unknown container" "$(json "$tmp/nf.json" 'j["not_found"]')" True
    check "the error names the call: $(cat "$tmp/nf.err")" grep -q "containers/no-such-container/json" "$tmp/nf.err"
fi

step "events"
rm -f "$tmp/ready"
ddk events --count 2 --wait-ms 10000 --ready-file "$tmp/ready" >"$tmp/events.jsonl" 2>"$tmp/events.err" &
evpid=$!
dw_wait 10 test -f "$tmp/ready" || die "the event stream did not open: $(cat "$tmp/events.err")"
late=$(dw_docker_run "$d" late)
wait "$evpid" || fail "dw-docker events: $(cat "$tmp/events.err")"
if python3 - "$tmp/events.jsonl" "$late" <<'PY'
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
starts = [e for e in evs if e["id"] == sys.argv[2] and e["action"] == "start" and e["name"] == "late"]
sys.exit(0 if starts and 0 <= starts[0]["received_ns"] - starts[0]["time_ns"] < 1_000_000_000 else 1)
PY
then
    ok "start event of a container started after the stream opened, within a second"
else
    fail "start event: $(cat "$tmp/events.jsonl")"
fi
dw_finish "docker client: ok"
