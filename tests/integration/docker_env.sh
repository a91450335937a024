# shellcheck shell=bash
# docker_env.sh: a private, throw-away Docker engine (Debian's docker.io) for driftwatch tests.
#
# Source it, then:
#   dw_docker_check_deps              root; Debian's dockerd and docker, installed when missing
#   dw_docker_start DIR               a private containerd (containerd_env.sh) in DIR/ctd, then
#                                     dockerd on it: data in DIR/data, runtime state in
#                                     DIR/exec (a tmpfs), socket DIR/docker.sock; no iptables,
#                                     no bridge
#   dw_docker DIR ARGS...             Debian's docker CLI on the private socket, bounded
#   dw_docker_run DIR NAME [OPTS... --] [CMD...]  `docker run -d --name NAME OPTS IMAGE CMD`;
#                                     prints the container id; its cgroups recorded
#   dw_docker_stop DIR                every container removed, dockerd and its containerd
#                                     stopped by PID, mounts under DIR unmounted, cgroups removed
#   dw_docker_up DIR                  all of the above (stopped at exit: harness.sh); the test
#                                     image built (dw_image_build) and loaded as
#                                     $DW_DOCKER_IMAGE; sets docker_image_id
#   dw_docker_registry_up DIR         a private image registry (Debian's docker-registry,
#                                     installed when missing) on 127.0.0.1, storage in
#                                     DIR/registry, stopped by PID at exit; sets docker_registry
#                                     (HOST:PORT: dockerd takes 127.0.0.0/8 registries over
#                                     plain HTTP), so that pushed images get RepoDigests
#
# Debian's binaries by path: /usr/local/bin/docker on this machine kind is another docker CLI
# (28.x, API 1.50), which Debian's 20.10 engine (API 1.41) would refuse.
# Rules kept as in containerd_env.sh: processes are stopped by PID, never by name; every wait
# is bounded; nothing of the system's /var/lib/docker, /run/docker or /etc/docker/daemon.json
# is used (dockerd 20.10 still writes its trust key to /etc/docker/key.json).

source "$(dirname "${BASH_SOURCE[0]}")/containerd_env.sh"  # harness, private containerd

DW_DOCKERD=${DW_DOCKERD:-/usr/sbin/dockerd}
DW_DOCKER=${DW_DOCKER:-/usr/bin/docker}
DW_DOCKER_IMAGE=${DW_DOCKER_IMAGE:-localhost/webapp:3}
DW_DOCKER_START_TIMEOUT=${DW_DOCKER_START_TIMEOUT:-30}

_dw_docker_log() { printf 'docker_env: %s\n' "$*" >&2; }

# dw_docker_check_deps: root, containerd's tools (containerd_env.sh) and Debian's docker.io,
# installed when missing with no service started (policy-rc.d denies it while apt runs).
dw_docker_check_deps() {
    local policy=/usr/sbin/policy-rc.d added=
    dw_ctd_check_deps || return 1
    if [ ! -x "$DW_DOCKERD" ] || [ ! -x "$DW_DOCKER" ]; then
        _dw_docker_log "installing Debian's docker.io"
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
        fi
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq \
            --no-install-recommends docker.io >/dev/null 2>&1 || true
        [ -n "$added" ] && rm -f "$policy"
    fi
    if [ ! -x "$DW_DOCKERD" ] || [ ! -x "$DW_DOCKER" ]; then
        _dw_docker_log "missing: $DW_DOCKERD or $DW_DOCKER (apt-get install -y docker.io)"
        return 1
    fi
}

dw_docker() {
    local dir
    dir=$(_dw_abs "${1:?usage: dw_docker DIR ARGS...}")
    shift
    timeout -k 5 "$DW_CTR_TIMEOUT" "$DW_DOCKER" -H "unix://$dir/docker.sock" "$@"
}

# The dockerd PID from DIR/docker.pid, only while that process is still our dockerd.
_dw_dockerd_pid() {
    local dir=$1 pid
    pid=$(cat "$dir/docker.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && dw_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/docker.sock" || return 1
    printf '%s\n' "$pid"
}

dw_docker_start() {
    local dir pid i
    dir=$(_dw_abs "${1:?usage: dw_docker_start DIR}")
    # DIR/ctd/containerd.sock.ttrpc must fit a unix socket path (108 bytes).
    if [ ${#dir} -gt 70 ]; then
        _dw_docker_log "DIR too long for unix socket paths: $dir"
        return 1
    fi
    if pid=$(_dw_dockerd_pid "$dir"); then
        _dw_docker_log "dockerd already running for $dir (pid $pid)"
        return 0
    fi
    mkdir -p "$dir/data" "$dir/exec" || return 1
    # The exec root on a tmpfs, as /run/docker is on a host: runc's state (runc init's
    # exec.fifo) then stays off the filesystem the sensor marks for the layers in DIR/data.
    if ! mountpoint -q "$dir/exec"; then
        mount -n -t tmpfs -o size=64m,mode=0711 dw-docker-exec "$dir/exec" || return 1
    fi
    dw_ctd_start "$dir/ctd" || return 1
    # An empty config: the system's /etc/docker/daemon.json (if any) stays out of it.
    printf '{}\n' >"$dir/daemon.json"
    # --containerd: the private one (dockerd would otherwise take the system's socket when it
    # exists); its containers live in namespace moby, its runc state under --exec-root.
    "$DW_DOCKERD" --config-file "$dir/daemon.json" --data-root "$dir/data" \
        --exec-root "$dir/exec" -H "unix://$dir/docker.sock" --pidfile "$dir/docker.pid" \
        --containerd "$dir/ctd/containerd.sock" --iptables=false --ip6tables=false \
        --ip-masq=false --bridge=none --storage-driver overlay2 \
        --exec-opt native.cgroupdriver=cgroupfs --log-level warn \
        </dev/null >>"$dir/dockerd.log" 2>&1 &
    pid=$!
    disown "$pid" 2>/dev/null || true
    # The pidfile is dockerd's own; ours too, so a start that fails early is still stopped.
    printf '%s\n' "$pid" >"$dir/dockerd.started"
    for ((i = 0; i < DW_DOCKER_START_TIMEOUT * 10; i++)); do
        if ! dw_alive "$pid"; then
            _dw_docker_log "dockerd (pid $pid) exited during start-up; log tail:"
            tail -n 30 "$dir/dockerd.log" >&2
            return 1
        fi
        if [ -S "$dir/docker.sock" ] && dw_docker "$dir" version >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    _dw_docker_log "dockerd (pid $pid) did not answer within ${DW_DOCKER_START_TIMEOUT}s; log tail:"
    tail -n 30 "$dir/dockerd.log" >&2
    return 1
}

# dw_docker_run DIR NAME [OPTS... --] [CMD...]: a detached container of $DW_DOCKER_IMAGE with
# no network; prints its id.
dw_docker_run() {
    local dir name id pid
    local -a opts=()
    dir=$(_dw_abs "${1:?usage: dw_docker_run DIR NAME [OPTS... --] [CMD...]}")
    name=${2:?usage: dw_docker_run DIR NAME [OPTS... --] [CMD...]}
    shift 2
    case ${1:-} in
    -*)
        while [ $# -gt 0 ] && [ "$1" != -- ]; do
            opts+=("$1")
            shift
        done
        [ $# -gt 0 ] && shift
        ;;
    esac
    id=$(dw_docker "$dir" run -d --name "$name" --network none ${opts[@]+"${opts[@]}"} \
        "$DW_DOCKER_IMAGE" "$@") || {
        _dw_docker_log "docker run $name failed"
        return 1
    }
    pid=$(dw_docker "$dir" inspect -f '{{.State.Pid}}' "$id" 2>/dev/null) || pid=
    [ -n "$pid" ] && [ "$pid" != 0 ] && _dw_record_cgroups "$dir/ctd" "$pid"
    printf '%s\n' "$id"
}

dw_docker_stop() {
    local dir pid
    local -a ids pids
    dir=$(_dw_abs "${1:?usage: dw_docker_stop DIR}")
    [ -d "$dir" ] || return 0
    # 1. Every container, through the engine (it unmounts their layers and netns files).
    if _dw_dockerd_pid "$dir" >/dev/null && [ -S "$dir/docker.sock" ]; then
        mapfile -t ids < <(DW_CTR_TIMEOUT=10 dw_docker "$dir" ps -aq 2>/dev/null || true)
        for pid in $(DW_CTR_TIMEOUT=10 dw_docker "$dir" inspect -f '{{.State.Pid}}' \
            ${ids[@]+"${ids[@]}"} 2>/dev/null || true); do
            [ "$pid" != 0 ] && _dw_record_cgroups "$dir/ctd" "$pid"
        done
        [ ${#ids[@]} -gt 0 ] &&
            { DW_CTR_TIMEOUT=20 dw_docker "$dir" rm -f "${ids[@]}" >/dev/null 2>&1 || true; }
    fi
    # 2. dockerd, by PID (its pidfile's, and the one we started if it never wrote one).
    mapfile -t pids < <({ _dw_dockerd_pid "$dir" || true
        pid=$(cat "$dir/dockerd.started" 2>/dev/null) && dw_alive "$pid" &&
            tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/docker.sock" &&
            printf '%s\n' "$pid"; } | sort -u)
    [ ${#pids[@]} -gt 0 ] && { _dw_terminate "${pids[@]}" || _dw_docker_log "dockerd ${pids[*]} survived SIGKILL"; }
    rm -f "$dir/dockerd.started"
    # 3. Its containerd, shims and what they left (containers in namespace moby included),
    #    then mounts under DIR (layers, netns files) and the recorded cgroups (/docker/<id>).
    dw_ctd_stop "$dir/ctd"
    _dw_umount_under "$dir"
    return 0
}

# The registry by PID, only while that PID is still the registry serving DIR's config.
_dw_docker_registry_stop() {
    tr '\0' ' ' <"/proc/$2/cmdline" 2>/dev/null | grep -qF -- "$1/registry.yml" || return 0
    _dw_terminate "$2"
}

# shellcheck disable=SC2034  # docker_registry: for the caller
dw_docker_registry_up() {
    local dir policy=/usr/sbin/policy-rc.d added='' port pid i bin=${DW_DOCKER_REGISTRY:-/usr/bin/docker-registry}
    dir=$(_dw_abs "${1:?usage: dw_docker_registry_up DIR}")
    if [ ! -x "$bin" ]; then
        _dw_docker_log "installing Debian's docker-registry"
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
        fi
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq \
            --no-install-recommends docker-registry >/dev/null 2>&1 || true
        [ -n "$added" ] && rm -f "$policy"
        [ -x "$bin" ] || { _dw_docker_log "missing: $bin (apt-get install -y docker-registry)"; return 1; }
    fi
    mkdir -p "$dir/registry" || return 1
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "127.0.0.1:%s"}\n' \
        "$dir/registry" "$port" >"$dir/registry.yml"
    "$bin" serve "$dir/registry.yml" </dev/null >>"$dir/registry.log" 2>&1 &
    pid=$!
    disown "$pid" 2>/dev/null || true
    dw_at_exit _dw_docker_registry_stop "$dir" "$pid"
    for ((i = 0; i < 100; i++)); do
        if ! dw_alive "$pid"; then
            _dw_docker_log "docker-registry exited during start-up; log tail:"
            tail -n 20 "$dir/registry.log" >&2
            return 1
        fi
        curl -sf "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && { docker_registry=127.0.0.1:$port; return 0; }
        sleep 0.1
    done
    _dw_docker_log "docker-registry (pid $pid) did not answer on 127.0.0.1:$port within 10 s"
    return 1
}

# shellcheck disable=SC2034  # docker_image_id: for the caller
dw_docker_up() {
    local dir
    dir=$(_dw_abs "${1:?usage: dw_docker_up DIR}")
    dw_docker_check_deps || return 1
    dw_at_exit dw_docker_stop "$dir"
    dw_docker_start "$dir" || return 1
    dw_image_build "$dir/image.tar" "$DW_DOCKER_IMAGE" || return 1
    dw_docker "$dir" load -i "$dir/image.tar" >&2 || return 1
    docker_image_id=$(dw_docker "$dir" image inspect -f '{{.Id}}' "$DW_DOCKER_IMAGE") || return 1
}
