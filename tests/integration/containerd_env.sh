# shellcheck shell=bash
# containerd_env.sh: a private, throw-away containerd for driftwatch tests and demos.
#
# Source it, then:
#   dw_ctd_check_deps                     root + containerd, runc, ctr, busybox-static present?
#   dw_ctd_start DIR                      start containerd (config, root, state, socket under DIR),
#                                         the pod sandbox image (pause.c, DW_PAUSE_IMAGE) imported
#   dw_image_build TARFILE [NAME] [EXTRA_DIR]  build a busybox-static docker-archive image
#                                         tarball (EXTRA_DIR's tree copied into its rootfs)
#   dw_image_import DIR TARFILE           import it into namespace k8s.io; prints the image id
#   dw_ctr_run DIR NAME [OPTS... --] [CMD...]  run a detached container; prints its task PID
#   dw_ctr_exec DIR NAME EXECID CMD...    exec in a running container (stdio passed through)
#   dw_ctr_pid DIR NAME                   print the task PID of a container
#   dw_ctd_stop DIR                       stop containers, containerd, shims; unmount; rmdir cgroups
#   dw_ctd_up DIR [EXTRA_DIR]             dependencies checked, containerd started in DIR (and
#                                         stopped at exit: harness.sh), the image built with
#                                         EXTRA_DIR and imported; sets image_id
#
# Kubernetes pods through the CRI plugin, as a kubelet would run them (host network, no CNI).
# These need DW_CRI = the path of the dw-cri binary (built from tools/), set by the caller:
#   dw_cri DIR ARGS...                    dw-cri against the private socket (JSON on stdout)
#   dw_pod_run DIR NAME NS UID [CGROUP_PARENT]  run a pod sandbox with kubelet labels; prints its id
#   dw_pod_container DIR POD_ID NAME [CREATE-OPTS...] [-- CMD...]  create and start a container
#                                         in the pod (CREATE-OPTS: dw-cri create flags such as
#                                         --read-only, --privileged); prints its id
# With DW_CRI set, dw_ctd_stop first stops and removes every CRI container and pod through
# the CRI (without it, the ctr path below still kills and deletes them), and rmdirs the pod
# cgroup directories, which CRI teardown leaves behind.
#
# Rules kept here (see DESIGN.md "Global kernel state"): nothing under /run/containerd or
# /var/lib/containerd is used except the shim sockets (/run/containerd/s/, hard-coded in
# containerd 1.6); processes are killed by PID only, never by name; every wait is bounded.
# The library does not touch audit or fanotify. It is `set -u` and `set -e` safe and sets no
# shell options of its own.

source "$(dirname "${BASH_SOURCE[0]}")/harness.sh"  # dw_alive, dw_mounts_under

DW_IMAGE=${DW_IMAGE:-localhost/dw-busybox:1}
# The CRI sandbox_image: a real pause (pause.c), imported by dw_ctd_start.
DW_PAUSE_IMAGE=${DW_PAUSE_IMAGE:-localhost/dw-pause:1}
# Namespace used for everything: the CRI plugin only sees images and pods in k8s.io.
DW_NS=${DW_NS:-k8s.io}
# Bounds (seconds) for waits.
DW_CTD_START_TIMEOUT=${DW_CTD_START_TIMEOUT:-30}
DW_CTR_TIMEOUT=${DW_CTR_TIMEOUT:-60}
DW_STOP_TIMEOUT=${DW_STOP_TIMEOUT:-10}
# Optional cgroup parent for dw_ctr_run containers (e.g. /dw-$$), default ctr's /k8s.io.
DW_CGROUP_PARENT=${DW_CGROUP_PARENT:-}

_dw_log() { printf 'containerd_env: %s\n' "$*" >&2; }

# dw_ctd_check_deps: fail (with the install line) unless root and the tools are present.
dw_ctd_check_deps() {
    local c missing=()
    for c in containerd containerd-shim-runc-v2 ctr runc tar sha256sum timeout umount; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || missing+=(busybox-static)
    if [ ${#missing[@]} -gt 0 ]; then
        _dw_log "missing: ${missing[*]} (apt-get install -y containerd runc busybox-static)"
        return 1
    fi
    [ "$(id -u)" = 0 ] || { _dw_log "must run as root"; return 1; }
}

# Absolute path without requiring it to exist (paths go into sockets and cmdlines we match).
_dw_abs() {
    case $1 in
    /*) printf '%s\n' "${1%/}" ;;
    *) printf '%s\n' "$PWD/${1%/}" ;;
    esac
}

# ctr against the private socket, never the system one; bounded so a wedged daemon can't hang us.
_dw_ctr() {
    local dir=$1
    shift
    timeout -k 5 "$DW_CTR_TIMEOUT" ctr --address "$dir/containerd.sock" "$@"
}

# Wait up to SECS for all PIDs to be gone (or zombies). Returns 1 on timeout.
_dw_wait_gone() {
    local secs=$1 p live i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        live=0
        for p in "$@"; do dw_alive "$p" && live=1; done
        [ "$live" = 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# Kill PIDs: SIGTERM, bounded wait, then SIGKILL and another bounded wait.
_dw_terminate() {
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    _dw_wait_gone "$DW_STOP_TIMEOUT" "$@" && return 0
    kill -KILL "$@" 2>/dev/null || true
    _dw_wait_gone 5 "$@"
}

# PIDs whose NUL-separated cmdline contains the argument pair "$1" "$2" (e.g. -address SOCK).
_dw_pids_with_args() {
    local want=$1 val=$2 f pid prev arg
    for f in /proc/[0-9]*/cmdline; do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        prev=
        # read -d '' splits on NULs; a vanished process just yields nothing.
        while IFS= read -r -d '' arg; do
            if [ "$prev" = "$want" ] && [ "$arg" = "$val" ]; then
                dw_alive "$pid" && printf '%s\n' "$pid"
                break
            fi
            prev=$arg
        done 2>/dev/null <"$f" || true
    done
}

# Direct children of PID (for the container processes a shim supervises).
_dw_children() {
    local parent=$1 f ppid pid
    for f in /proc/[0-9]*/status; do
        ppid=$(sed -n 's/^PPid:[[:space:]]*//p' "$f" 2>/dev/null) || continue
        [ "$ppid" = "$parent" ] || continue
        pid=${f#/proc/}
        printf '%s\n' "${pid%/status}"
    done
}

# The containerd PID from DIR/containerd.pid, only if that process is still our containerd
# (guards against PID reuse after a crash).
_dw_ctd_pid() {
    local dir=$1 pid
    pid=$(cat "$dir/containerd.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && dw_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$dir/config.toml" || return 1
    printf '%s\n' "$pid"
}

_dw_write_config() {
    local dir=$1
    # Every path containerd 1.6 would otherwise put under /var/lib/containerd, /run/containerd,
    # /opt/containerd, /etc/cni or /var/run/netns is pointed into DIR.
    cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
# Temporary mounts (image unpack) would otherwise go to \$TMPDIR.
temp = "$dir/tmp"
oom_score = 0
# Snapshotters that cannot work here only add noise to the log.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    # default /opt/containerd (created at start-up)
    path = "$dir/opt"

  [plugins."io.containerd.runtime.v1.linux"]
    # legacy v1 runtime, unused; its default runc root is /run/containerd/runc
    runtime_root = "$dir/runc-v1"

  [plugins."io.containerd.grpc.v1.cri"]
    # The sandbox asks for oom_score_adj -998, which needs CAP_SYS_RESOURCE (withheld here).
    restrict_oom_score_adj = true
    sandbox_image = "$DW_PAUSE_IMAGE"
    # Pod network namespaces under DIR instead of /var/run/netns.
    netns_mounts_under_state_dir = true
    disable_tcp_service = true
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    disable_apparmor = true
    enable_selinux = false

    [plugins."io.containerd.grpc.v1.cri".cni]
      # No CNI: host-network pods need none; keep the system's CNI config out of it.
      bin_dir = "$dir/cni/bin"
      conf_dir = "$dir/cni/net.d"

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          # runc's state dir; default /run/containerd/runc.
          Root = "$dir/runc"
          # PID 1 is not systemd (cgroup v1 hybrid, cgroupfs driver).
          SystemdCgroup = false
EOF
}

# The sandbox image, for pods through CRI (not dw_image_import: DIR/image.id stays the
# workload image's).
_dw_pause_import() {
    local out
    dw_pause_image_build "$1/pause.tar" || return 1
    out=$(_dw_ctr "$1" -n "$DW_NS" images import "$1/pause.tar" 2>&1) || {
        _dw_log "pause image import failed: $out"
        return 1
    }
}

# dw_ctd_start DIR: start a private containerd, wait until it answers; the pause image
# (DW_PAUSE_IMAGE, the CRI sandbox_image) imported.
dw_ctd_start() {
    local dir pid i
    dir=$(_dw_abs "${1:?usage: dw_ctd_start DIR}")
    # sun_path is 108 bytes; the ttrpc socket adds ".ttrpc".
    if [ ${#dir} -gt 80 ]; then
        _dw_log "DIR too long for a unix socket path: $dir"
        return 1
    fi
    if pid=$(_dw_ctd_pid "$dir"); then
        _dw_log "containerd already running for $dir (pid $pid)"
        return 0
    fi
    mkdir -p "$dir/root" "$dir/state" "$dir/tmp" "$dir/runc" "$dir/fifo" "$dir/logs" "$dir/pids" \
        "$dir/cni/net.d" "$dir/cni/bin" || return 1
    _dw_write_config "$dir" || return 1

    # stdin/stdout away from the caller so $(...) around us never waits for containerd.
    containerd --config "$dir/config.toml" </dev/null >>"$dir/containerd.log" 2>&1 &
    pid=$!
    # No job-control "Killed" notices when dw_ctd_stop kills it later.
    disown "$pid" 2>/dev/null || true
    printf '%s\n' "$pid" >"$dir/containerd.pid"

    for ((i = 0; i < DW_CTD_START_TIMEOUT * 10; i++)); do
        if ! dw_alive "$pid"; then
            _dw_log "containerd (pid $pid) exited during start-up; log tail:"
            tail -n 30 "$dir/containerd.log" >&2
            return 1
        fi
        if [ -S "$dir/containerd.sock" ] &&
            timeout 5 ctr --address "$dir/containerd.sock" version >/dev/null 2>&1; then
            _dw_pause_import "$dir"
            return
        fi
        sleep 0.1
    done
    _dw_log "containerd (pid $pid) did not answer within ${DW_CTD_START_TIMEOUT}s; log tail:"
    tail -n 30 "$dir/containerd.log" >&2
    return 1
}

# _dw_archive ROOTFS TARFILE NAME ARCH CMD_JSON HISTORY: a one-layer docker-archive of
# ROOTFS (run in the staging directory that holds it), reproducible (fixed mtimes, owners).
_dw_archive() {
    local rootfs=$1 tarfile=$2 name=$3 arch=$4 cmd=$5 history=$6 layer_hex cfg cfg_hex
    # shellcheck disable=SC2046  # top-level names of the rootfs, none with spaces
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
        -C "$rootfs" -cf layer.tar $(ls -A "$rootfs")
    layer_hex=$(sha256sum layer.tar | cut -d' ' -f1)
    mkdir "$layer_hex"
    mv layer.tar "$layer_hex/layer.tar"
    cfg=$(printf '{"architecture":"%s","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"%s"}]}' \
        "$arch" "$cmd" "$layer_hex" "$history")
    printf '%s' "$cfg" >config.json
    cfg_hex=$(sha256sum config.json | cut -d' ' -f1)
    mv config.json "$cfg_hex.json"
    printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
        "$cfg_hex" "$name" "$layer_hex" >manifest.json
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu \
        -cf "$tarfile.tmp" manifest.json "$cfg_hex.json" "$layer_hex"
    mv "$tarfile.tmp" "$tarfile"
}

_dw_arch() {
    case $(uname -m) in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    *) uname -m ;;
    esac
}

# dw_pause_image_build TARFILE: the pod sandbox image (DW_PAUSE_IMAGE): pause.c built static,
# alone in its rootfs, as Kubernetes' pause image is.
dw_pause_image_build() {
    local tarfile src stage rc=0
    tarfile=$(_dw_abs "${1:?usage: dw_pause_image_build TARFILE}")
    src=$(_dw_abs "$(dirname "${BASH_SOURCE[0]}")")/pause.c
    command -v gcc >/dev/null 2>&1 || { _dw_log "gcc missing (apt-get install -y gcc libc6-dev)"; return 1; }
    stage=$(mktemp -d "${TMPDIR:-/tmp}/dw-pause.XXXXXX") || return 1
    (
        set -e
        cd "$stage"
        mkdir rootfs
        gcc -static -O2 -Wall -Wextra -o rootfs/pause "$src"
        _dw_archive rootfs "$tarfile" "$DW_PAUSE_IMAGE" "$(_dw_arch)" '["/pause"]' \
            "driftwatch dw_pause_image_build: pause.c"
    ) || rc=$?
    rm -rf "$stage"
    [ "$rc" = 0 ] || _dw_log "pause image build failed ($rc)"
    return "$rc"
}

# dw_image_build TARFILE [NAME] [EXTRA_DIR]: a docker-archive (docker.v1.2) tarball with one
# layer built from /bin/busybox (busybox-static), plus EXTRA_DIR's files and symlinks when
# given. Reproducible: fixed mtimes/owners, so the image id is stable for given inputs.
dw_image_build() {
    local tarfile name extra stage arch rc=0 a
    tarfile=$(_dw_abs "${1:?usage: dw_image_build TARFILE [NAME] [EXTRA_DIR]}")
    name=${2:-$DW_IMAGE}
    extra=${3:+$(_dw_abs "$3")}
    # ldd (libc-bin, always there) fails on a static binary; Debian's dynamic "busybox"
    # package would also install /bin/busybox but cannot run without the host's libc.
    if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
        _dw_log "/bin/busybox missing or not static (apt-get install -y busybox-static)"
        return 1
    fi
    arch=$(_dw_arch)
    stage=$(mktemp -d "${TMPDIR:-/tmp}/dw-image.XXXXXX") || return 1
    (
        set -e
        cd "$stage"
        mkdir -p rootfs/bin rootfs/etc rootfs/root rootfs/tmp rootfs/var/log rootfs/var/tmp \
            rootfs/proc rootfs/sys rootfs/dev
        chmod 1777 rootfs/tmp rootfs/var/tmp
        chmod 700 rootfs/root
        cp /bin/busybox rootfs/bin/busybox
        # Applets a test is likely to run; drift tests add their own binaries at run time.
        for a in sh ash ls cat sleep cp mv ln chmod chown echo printf id true false mkdir rmdir rm \
            uname wc head tail touch env ps grep sed awk find stat readlink test [ kill date \
            hostname whoami pwd dd tee xargs sort uniq cut tr sha256sum md5sum basename dirname \
            seq yes nproc; do
            ln -s busybox "rootfs/bin/$a"
        done
        printf 'dw-busybox\n' >rootfs/etc/hostname
        printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >rootfs/etc/passwd
        printf 'root:x:0:\nnogroup:x:65534:\n' >rootfs/etc/group
        [ -z "$extra" ] || cp -a "$extra/." rootfs/

        # Its default command sleeps until SIGTERM (PID 1 ignores signals it has no handler
        # for). Pod sandboxes run pause.c instead (DW_PAUSE_IMAGE).
        _dw_archive rootfs "$tarfile" "$name" "$arch" \
            '["/bin/sh","-c","trap \"exit 0\" TERM INT; sleep 2147483647 & wait"]' \
            "driftwatch dw_image_build: busybox-static"
    ) || rc=$?
    rm -rf "$stage"
    [ "$rc" = 0 ] || _dw_log "image build failed ($rc)"
    return "$rc"
}

# dw_image_import DIR TARFILE: import into namespace k8s.io; prints the image id (sha256 of
# the config, which is also what CRI reports as image_ref: imported images have no repo
# digests). Records DIR/image.id and DIR/image.ref.
dw_image_import() {
    local dir tarfile out ref mdigest id
    dir=$(_dw_abs "${1:?usage: dw_image_import DIR TARFILE}")
    tarfile=${2:?usage: dw_image_import DIR TARFILE}
    out=$(_dw_ctr "$dir" -n "$DW_NS" images import "$tarfile" 2>&1) || {
        _dw_log "image import failed: $out"
        return 1
    }
    printf '%s\n' "$out" >&2
    # ctr prints "unpacking NAME (sha256:MANIFEST)...done" for each image.
    ref=$(printf '%s\n' "$out" | sed -n 's/^unpacking \([^ ]*\) (sha256:[0-9a-f]*).*/\1/p' | head -n 1)
    mdigest=$(printf '%s\n' "$out" | sed -n 's/^unpacking [^ ]* (\(sha256:[0-9a-f]*\)).*/\1/p' | head -n 1)
    if [ -z "$mdigest" ]; then
        _dw_log "could not find the imported image in: $out"
        return 1
    fi
    # The manifest names the config blob; its digest is the image id.
    id=$(_dw_ctr "$dir" -n "$DW_NS" content get "$mdigest" |
        tr -d ' \n' | grep -o '"config":{[^}]*}' | grep -o 'sha256:[0-9a-f]\{64\}' | head -n 1) || true
    if [ -z "$id" ]; then
        _dw_log "could not read the config digest of $ref ($mdigest)"
        return 1
    fi
    printf '%s\n' "$id" >"$dir/image.id"
    printf '%s\n' "$ref" >"$dir/image.ref"
    printf '%s\n' "$id"
}

# Remember a container's cgroup paths so dw_ctd_stop can rmdir them even if containerd died.
_dw_record_cgroups() {
    local dir=$1 pid=$2
    sed -n 's/^[0-9]*:[^:]*:\(\/.*\)$/\1/p' "/proc/$pid/cgroup" 2>/dev/null |
        grep -v '^/$' | sort -u >>"$dir/cgroups.list" || true
}

# dw_ctr_pid DIR NAME: task PID of container NAME (empty + status 1 if no running task).
dw_ctr_pid() {
    local dir pid
    dir=$(_dw_abs "${1:?usage: dw_ctr_pid DIR NAME}")
    pid=$(_dw_ctr "$dir" -n "$DW_NS" tasks ls 2>/dev/null | awk -v n="${2:?}" '$1 == n { print $2 }') || true
    [ -n "$pid" ] && [ "$pid" != 0 ] || return 1
    printf '%s\n' "$pid"
}

# dw_ctr_run DIR NAME [CTR-RUN-OPTS... --] [CMD...]: detached container from $DW_IMAGE.
# Output goes to DIR/logs/NAME.log. Prints the task PID.
dw_ctr_run() {
    local dir name pid
    local -a opts=()
    dir=$(_dw_abs "${1:?usage: dw_ctr_run DIR NAME [OPTS... --] [CMD...]}")
    name=${2:?usage: dw_ctr_run DIR NAME [OPTS... --] [CMD...]}
    shift 2
    # Optional extra `ctr run` flags before a "--" (e.g. --net-host, --cgroup /x/y).
    case ${1:-} in
    -*)
        while [ $# -gt 0 ] && [ "$1" != -- ]; do
            opts+=("$1")
            shift
        done
        [ $# -gt 0 ] && shift
        ;;
    esac
    # No CMD: the image's default command (a pause-like sleep that exits on SIGTERM).
    mkdir -p "$dir/logs" "$dir/pids" "$dir/fifo"
    rm -f "$dir/pids/$name.pid"
    # ctr's default cgroup is /<namespace>/NAME; DW_CGROUP_PARENT gives a private parent.
    [ -n "${DW_CGROUP_PARENT:-}" ] && opts=(--cgroup "$DW_CGROUP_PARENT/$name" ${opts[@]+"${opts[@]}"})
    # --runc-root: ctr turns it into the runc.v2 Options.Root, so runc state lives under DIR
    # (default /run/containerd/runc). --log-uri file://: the shim writes stdout/stderr to a
    # file, so a detached container never blocks on an unread FIFO.
    _dw_ctr "$dir" -n "$DW_NS" run -d \
        --runtime io.containerd.runc.v2 \
        --runc-root "$dir/runc" \
        --fifo-dir "$dir/fifo" \
        --log-uri "file://$dir/logs/$name.log" \
        --pid-file "$dir/pids/$name.pid" \
        ${opts[@]+"${opts[@]}"} \
        "$DW_IMAGE" "$name" "$@" >&2 || {
        _dw_log "ctr run $name failed"
        return 1
    }
    pid=$(cat "$dir/pids/$name.pid" 2>/dev/null) || pid=$(dw_ctr_pid "$dir" "$name") || {
        _dw_log "no task PID for $name"
        return 1
    }
    _dw_record_cgroups "$dir" "$pid"
    printf '%s\n' "$pid"
}

# dw_ctr_exec DIR NAME EXECID CMD...: run CMD in container NAME, stdin/stdout/stderr passed
# through (redirect stdin from /dev/null if the caller's must not be consumed); returns CMD's
# exit status. The private --fifo-dir keeps FIFOs out of /run/containerd/fifo.
dw_ctr_exec() {
    local dir name execid
    dir=$(_dw_abs "${1:?usage: dw_ctr_exec DIR NAME EXECID CMD...}")
    name=${2:?usage: dw_ctr_exec DIR NAME EXECID CMD...}
    execid=${3:?usage: dw_ctr_exec DIR NAME EXECID CMD...}
    shift 3
    mkdir -p "$dir/fifo"
    _dw_ctr "$dir" -n "$DW_NS" tasks exec --exec-id "$execid" --fifo-dir "$dir/fifo" "$name" "$@"
}

# Kill and delete every task and container in every namespace of the private containerd.
_dw_stop_workloads() {
    local dir=$1 ns c i pending
    local -a nss cs
    mapfile -t nss < <(_dw_ctr "$dir" namespaces ls -q 2>/dev/null || true)
    for ns in ${nss[@]+"${nss[@]}"}; do
        [ -n "$ns" ] || continue
        mapfile -t cs < <(_dw_ctr "$dir" -n "$ns" containers ls -q 2>/dev/null || true)
        [ ${#cs[@]} -gt 0 ] || continue
        for c in "${cs[@]}"; do
            [ -n "$c" ] || continue
            # cgroupsPath from the OCI spec: covers CRI pods (/kubepods/.../pod<uid>/<id>) too.
            _dw_ctr "$dir" -n "$ns" containers info "$c" 2>/dev/null |
                sed -n 's/.*"cgroupsPath": *"\(\/[^"]*\)".*/\1/p' >>"$dir/cgroups.list" || true
            # --all: exec'd processes too. SIGKILL: busybox as PID 1 ignores SIGTERM.
            _dw_ctr "$dir" -n "$ns" tasks kill --all --signal SIGKILL "$c" >/dev/null 2>&1 || true
        done
        # Bounded wait until no task of this namespace is still running.
        for ((i = 0; i < DW_STOP_TIMEOUT * 10; i++)); do
            pending=$(_dw_ctr "$dir" -n "$ns" tasks ls 2>/dev/null |
                awk 'NR > 1 && $3 != "STOPPED" { n++ } END { print n + 0 }') || pending=0
            [ "$pending" = 0 ] && break
            sleep 0.1
        done
        for c in "${cs[@]}"; do
            [ -n "$c" ] || continue
            _dw_ctr "$dir" -n "$ns" tasks delete --force "$c" >/dev/null 2>&1 || true
            _dw_ctr "$dir" -n "$ns" containers delete "$c" >/dev/null 2>&1 || true
        done
    done
}

# Unmount everything at or below DIR, deepest first; lazy unmount as a last resort.
_dw_umount_under() {
    local dir=$1 round m
    local -a mounts
    for round in 1 2 3; do
        # Field 5 of mountinfo is the mount point, with spaces etc. as octal escapes.
        mapfile -t mounts < <(awk '{ print $5 }' /proc/self/mountinfo |
            while IFS= read -r m; do printf '%b\n' "$m"; done |
            grep -E "^$(printf '%s' "$dir" | sed 's/[][\.*^$|+?(){}]/\\&/g')(/|$)" | sort -r -u || true)
        [ ${#mounts[@]} -gt 0 ] || return 0
        # -n: no utab update, so util-linux does not create /run/mount as a side effect.
        for m in "${mounts[@]}"; do
            if [ "$round" -lt 3 ]; then
                umount -n "$m" 2>/dev/null || true
            else
                umount -n -l "$m" 2>/dev/null || _dw_log "cannot unmount $m"
            fi
        done
    done
    return 0
}

# Live processes in cgroup dir $1 (and below) whose parent is PID 1.
_dw_orphans_in() {
    local pid
    find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | while read -r pid; do
        [ "$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null)" = 1 ] &&
            dw_alive "$pid" && printf '%s\n' "$pid"
    done
    return 0
}

# rmdir the recorded container cgroups in every hierarchy, deepest first, then their parents
# while they are empty (CRI teardown leaves /kubepods/.../pod<uid> behind; ctr leaves /k8s.io).
_dw_rm_cgroups() {
    local dir=$1 p m d parent round
    local -a paths mnts procs
    [ -s "$dir/cgroups.list" ] || return 0
    mapfile -t paths < <(sort -u "$dir/cgroups.list")
    # Mount points of cgroup v1 and v2 hierarchies (field after " - " is the fs type).
    mapfile -t mnts < <(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i+1) == "cgroup" || $(i+1) == "cgroup2") print $5; break } }' /proc/self/mountinfo)
    for p in "${paths[@]}"; do
        # Never act on a root or relative path: killing cgroup.procs of "/" would kill the host.
        case $p in
        / | "" | *..* | [!/]*) continue ;;
        esac
        for m in ${mnts[@]+"${mnts[@]}"}; do
            d=$m$p
            if [ -d "$d" ]; then
                # Container processes orphaned when their shim died (now children of PID 1).
                # Only orphans: a same-named container of another private containerd shares
                # the ctr default cgroup /k8s.io/NAME, and its processes have a live shim.
                for round in 1 2 3; do
                    mapfile -t procs < <(_dw_orphans_in "$d")
                    [ ${#procs[@]} -gt 0 ] || break
                    kill -KILL "${procs[@]}" 2>/dev/null || true
                    _dw_wait_gone 5 "${procs[@]}" || true
                done
                find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
            fi
            # runc removes the container's own dir; its parents stay (rmdir fails if not empty).
            parent=${p%/*}
            while [ -n "$parent" ] && [ -d "$m$parent" ]; do
                rmdir "$m$parent" 2>/dev/null || break
                parent=${parent%/*}
            done
        done
    done
    return 0
}

# dw_ctd_stop DIR: tear down everything dw_ctd_start started. Idempotent, usable from a trap.
dw_ctd_stop() {
    local dir sock pid f addr
    local -a pids kids
    dir=$(_dw_abs "${1:?usage: dw_ctd_stop DIR}")
    [ -d "$dir" ] || return 0
    sock=$dir/containerd.sock

    # 1. Politely, through containerd: kill and delete tasks and containers (the shims exit
    #    and unmount the rootfs when their last task is deleted). Skipped if it doesn't answer;
    #    shorter ctr timeouts so a wedged daemon can't stall a trap for minutes.
    if pid=$(_dw_ctd_pid "$dir") && [ -S "$sock" ] &&
        timeout 5 ctr --address "$sock" version >/dev/null 2>&1; then
        DW_CTR_TIMEOUT=10 _dw_stop_pods "$dir"
        DW_CTR_TIMEOUT=10 _dw_stop_workloads "$dir"
    fi

    # 2. containerd itself, by recorded PID, plus any other containerd on our config.
    mapfile -t pids < <({ _dw_ctd_pid "$dir" || true; _dw_pids_with_args --config "$dir/config.toml"; } | sort -u)
    [ ${#pids[@]} -gt 0 ] && { _dw_terminate "${pids[@]}" || _dw_log "containerd ${pids[*]} survived SIGKILL"; }
    rm -f "$dir/containerd.pid"

    # 3. Shims left behind (containerd never kills them): first the container processes they
    #    supervise (so nothing is orphaned to PID 1), then the shims.
    mapfile -t pids < <(_dw_pids_with_args -address "$sock")
    if [ ${#pids[@]} -gt 0 ]; then
        kids=()
        for pid in "${pids[@]}"; do
            mapfile -t -O "${#kids[@]}" kids < <(_dw_children "$pid")
        done
        if [ ${#kids[@]} -gt 0 ]; then
            kill -KILL "${kids[@]}" 2>/dev/null || true
            _dw_wait_gone 5 "${kids[@]}" || true
        fi
        _dw_terminate "${pids[@]}" || _dw_log "shims ${pids[*]} survived SIGKILL"
    fi
    # A killed shim leaves its socket in /run/containerd/s/; the bundle's "address" file names it.
    for f in "$dir"/state/io.containerd.runtime.v2.task/*/*/address; do
        [ -f "$f" ] || continue
        addr=$(cat "$f" 2>/dev/null) || continue
        addr=${addr#unix://}
        case $addr in /run/containerd/s/*) rm -f "$addr" ;; esac
    done

    # 4. Mounts (rootfs overlays, sandbox shm, netns) and 5. cgroup directories.
    _dw_umount_under "$dir"
    _dw_rm_cgroups "$dir"
    return 0
}

# shellcheck disable=SC2034  # image_id: for the caller
dw_ctd_up() {
    dw_ctd_check_deps || return 1
    dw_at_exit dw_ctd_stop "$1"
    dw_ctd_start "$1" || return 1
    dw_image_build "$1/image.tar" "$DW_IMAGE" ${2:+"$2"} || return 1
    image_id=$(dw_image_import "$1" "$1/image.tar")
}

# ---- Kubernetes pods through the CRI (dw-cri; see the header) ----

# dw_cri DIR ARGS...: dw-cri on the private socket, bounded like ctr.
dw_cri() {
    local dir
    dir=$(_dw_abs "${1:?usage: dw_cri DIR ARGS...}")
    shift
    if [ -z "${DW_CRI:-}" ] || [ ! -x "$DW_CRI" ]; then
        _dw_log "DW_CRI must name the dw-cri binary (got '${DW_CRI:-}')"
        return 1
    fi
    timeout -k 5 "$DW_CTR_TIMEOUT" "$DW_CRI" --endpoint "$dir/containerd.sock" "$@"
}

# The "id" of dw-cri's {"id": ...} answers.
_dw_json_id() { sed -n 's/^  "id": "\([^"]*\)".*/\1/p'; }
# The strings of a `dw-cri ps -q` / `pods -q` array, one per line.
_dw_json_ids() { sed -n 's/^  "\([^"]*\)",\{0,1\}$/\1/p'; }

# dw_pod_run DIR NAME NS UID [CGROUP_PARENT [RUNP-OPTS...]]: run a host-network pod sandbox
# labelled as a kubelet does; prints its id. The cgroup parent ("" for the runtime's) is
# recorded so dw_ctd_stop rmdirs it. RUNP-OPTS go to dw-cri runp (--label K=V,
# --annotation K=V, ...).
dw_pod_run() {
    local dir name ns uid cgp out id
    local -a opts=()
    dir=$(_dw_abs "${1:?usage: dw_pod_run DIR NAME NS UID [CGROUP_PARENT [RUNP-OPTS...]]}")
    name=${2:?usage: dw_pod_run DIR NAME NS UID [CGROUP_PARENT [RUNP-OPTS...]]}
    ns=${3:?usage: dw_pod_run DIR NAME NS UID [CGROUP_PARENT [RUNP-OPTS...]]}
    uid=${4:?usage: dw_pod_run DIR NAME NS UID [CGROUP_PARENT [RUNP-OPTS...]]}
    cgp=${5:-}
    shift $(($# < 5 ? $# : 5))
    if [ -n "$cgp" ]; then
        case $cgp in
        /?*) ;;
        *)
            _dw_log "CGROUP_PARENT must be an absolute cgroup path: $cgp"
            return 1
            ;;
        esac
        opts=(--cgroup-parent "$cgp")
        # Recorded before the run: a failed run may still have created it.
        printf '%s\n' "$cgp" >>"$dir/cgroups.list"
    fi
    out=$(dw_cri "$dir" runp --name "$name" --namespace "$ns" --uid "$uid" \
        ${opts[@]+"${opts[@]}"} "$@") || {
        _dw_log "RunPodSandbox $ns/$name failed"
        return 1
    }
    id=$(printf '%s\n' "$out" | _dw_json_id)
    [ -n "$id" ] || {
        _dw_log "no pod id in: $out"
        return 1
    }
    printf '%s\n' "$id" >>"$dir/cri-pods.list"
    printf '%s\n' "$id"
}

# dw_pod_container DIR POD_ID NAME [CREATE-OPTS...] [-- CMD...]: create a container from
# $DW_IMAGE in the pod and start it; prints its id. The pod's name, namespace, uid and cgroup
# parent are read back from the pod (dw-cri create does that), as a kubelet would send them.
dw_pod_container() {
    local dir pod name out id
    local -a opts=()
    dir=$(_dw_abs "${1:?usage: dw_pod_container DIR POD_ID NAME [OPTS...] [-- CMD...]}")
    pod=${2:?usage: dw_pod_container DIR POD_ID NAME [OPTS...] [-- CMD...]}
    name=${3:?usage: dw_pod_container DIR POD_ID NAME [OPTS...] [-- CMD...]}
    shift 3
    while [ $# -gt 0 ] && [ "$1" != -- ]; do
        opts+=("$1")
        shift
    done
    out=$(dw_cri "$dir" create "$pod" --name "$name" --image "$DW_IMAGE" \
        ${opts[@]+"${opts[@]}"} "$@") || {
        _dw_log "CreateContainer $name in $pod failed"
        return 1
    }
    id=$(printf '%s\n' "$out" | _dw_json_id)
    [ -n "$id" ] || {
        _dw_log "no container id in: $out"
        return 1
    }
    printf '%s\n' "$id" >>"$dir/cri-containers.list"
    dw_cri "$dir" start "$id" >/dev/null || {
        _dw_log "StartContainer $id failed"
        return 1
    }
    printf '%s\n' "$id"
}

# Stop and remove every CRI container and pod sandbox of the private containerd, as a kubelet
# would (the CRI plugin then also releases the sandbox's mounts and netns). Records the
# containers' cgroups and the pods' cgroup parents for _dw_rm_cgroups. No-op without DW_CRI.
# Never fails.
_dw_stop_pods() {
    local dir=$1 id cgp
    local -a ids
    [ -n "${DW_CRI:-}" ] && [ -x "$DW_CRI" ] || return 0
    mapfile -t ids < <(dw_cri "$dir" ps -q 2>/dev/null | _dw_json_ids || true)
    for id in ${ids[@]+"${ids[@]}"}; do
        # Its cgroup, for _dw_rm_cgroups (containers removed here are gone for the ctr path).
        dw_cri "$dir" inspect "$id" 2>/dev/null |
            sed -n 's/^  "cgroup_path": "\(\/[^"]*\)".*/\1/p' >>"$dir/cgroups.list" || true
        # Timeout 0: busybox as PID 1 ignores SIGTERM (DESIGN.md).
        dw_cri "$dir" stop --timeout 0 "$id" >/dev/null 2>&1 || true
        dw_cri "$dir" rm "$id" >/dev/null 2>&1 || true
    done
    mapfile -t ids < <(dw_cri "$dir" pods -q 2>/dev/null | _dw_json_ids || true)
    for id in ${ids[@]+"${ids[@]}"}; do
        cgp=$(dw_cri "$dir" inspectp "$id" 2>/dev/null |
            sed -n 's/^  "cgroup_parent": "\(\/[^"]*\)".*/\1/p') || true
        [ -n "$cgp" ] && printf '%s\n' "$cgp" >>"$dir/cgroups.list"
        dw_cri "$dir" stopp "$id" >/dev/null 2>&1 || true
        dw_cri "$dir" rmp "$id" >/dev/null 2>&1 || true
    done
    return 0
}
