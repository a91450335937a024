# shellcheck shell=bash
# systemd_env.sh: a throw-away Debian 12 container booted by a real systemd (PID 1 of its own
# PID namespace), for tests of the systemd units. Source it after harness.sh and dw_harness.
#
#   dwsd_tree              the cached Debian tree (debootstrap, minbase + systemd + the runtime
#                          libraries of the binaries): dwsd_lower=/var/cache/driftwatch-test/
#                          systemd-<key>/root, built when missing (about 4 min, under a lock);
#                          <key> hashes DWSD_TREE_VERSION, the suite, the mirror, the packages
#   dwsd_boot NAME [--host-network] [--no-seccomp]
#                          boot an overlay over the cached tree (upper in $tmp/NAME: the cache
#                          stays clean) with systemd-nspawn; waits for `systemctl
#                          is-system-running --wait`; at exit: halt, unmount, cgroups removed.
#                          Sets dwsd_root (the container's / as seen from here), dwsd_pid
#                          (nspawn), dwsd_leader (the container's PID 1, host PID), dwsd_name
#                          --host-network: the host's network namespace (default: a private
#                          one, loopback only); --no-seccomp: without nspawn's syscall filter
#                          (SYSTEMD_SECCOMP=0), so that NETLINK_AUDIT sockets can be made
#   dwsd_exec CMD...       CMD in the container's namespaces (clean environment, cwd /)
#   dwsd_sh SCRIPT         bash -c SCRIPT in the container
#   dwsd_prop UNIT PROP    a property of UNIT (systemctl show --value)
#   dwsd_wait_state UNIT STATE SECONDS   until UNIT's ActiveState is STATE
#   dwsd_journal UNIT      the unit's journal of this boot (short-precise)
#   dwsd_halt [SECONDS]    clean halt (SIGTERM to nspawn: SIGRTMIN+3 to systemd), bounded; then
#                          SIGKILL to the container's PID 1 and nspawn
#
# How it runs here (no systemd on the host, PID 1 is not systemd, cgroup v1 + v2 hybrid):
#   systemd-nspawn --register=no --keep-unit: no machined/scope (no system bus here); nspawn
#   then puts the container in <its own cgroup>/payload of the name=systemd and unified
#   hierarchies, so the launcher first moves itself to cgroups of its own (dwsd-NAME) that are
#   removed at exit. --private-network: the container's ports (7443, 9465, 9464) cannot clash
#   with the host's. No --private-users: the container's root is the host's root user
#   namespace (fanotify FAN_MARK_FILESYSTEM needs CAP_SYS_ADMIN there). nspawn's seccomp
#   allow list leaves out fanotify_init, fanotify_mark and open_by_handle_at (EPERM), so
#   --system-call-filter= adds them back. It also makes socket(AF_NETLINK, NETLINK_AUDIT) fail
#   with EAFNOSUPPORT whatever the options; only SYSTEMD_SECCOMP=0 (--no-seccomp), which drops
#   its whole filter, lifts that. Even then the kernel refuses audit control messages (AUDIT_GET,
#   AUDIT_SET, rules) from a PID namespace other than the initial one (EPERM), and multicasts
#   audit records only in the initial network namespace (--host-network).
# shellcheck disable=SC2034,SC2154  # dwsd_* are for the caller; tmp comes from dw_harness
[[ -z ${_dwsd_sourced:-} ]] || return 0
_dwsd_sourced=1

DWSD_TREE_VERSION=${DWSD_TREE_VERSION:-1}
DWSD_CACHE=${DWSD_CACHE:-/var/cache/driftwatch-test}
DWSD_SUITE=bookworm
# systemd and what a booted container and the test use; then the shared libraries the three
# binaries link (ldd, dpkg -S), so a DESTDIR install runs and the .deb's Depends hold.
DWSD_PACKAGES=(
    systemd systemd-sysv dbus libnss-systemd iproute2 procps curl openssl ca-certificates
    libabsl20220623 libaudit1 libc-ares2 libcap-ng0 libcap2 libgcc-s1 libgcrypt20
    libgpg-error0 libgrpc++1.51 libgrpc29 liblz4-1 liblzma5 libmnl0 libprotobuf32 libre2-9
    libpq5 libsqlite3-0 libssl3 libstdc++6 libsystemd0 libyaml-cpp0.7 libzstd1 zlib1g
)

# The Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org.
dwsd_mirror() {
    local m
    m=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ && $2 !~ /security/ { print $2; exit }' \
        /etc/apt/sources.list.d/*.sources 2>/dev/null)
    [[ -n $m ]] || m=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ { print $2; exit }' \
        /etc/apt/sources.list 2>/dev/null)
    echo "${m:-http://deb.debian.org/debian}"
}

dwsd_key() {
    printf '%s\n' "$DWSD_TREE_VERSION" "$DWSD_SUITE" "$(dwsd_mirror)" "${DWSD_PACKAGES[@]}" |
        sha256sum | cut -c1-12
}

# The tree, made once per key: debootstrap into a temporary directory, trimmed, then renamed
# (a half-made tree is never used; a stale one of another key is left for the operator).
dwsd_tree() {
    local key dir lock t0 inc
    key=$(dwsd_key)
    dir=$DWSD_CACHE/systemd-$key
    dwsd_lower=$dir/root
    [[ -f $dir/complete ]] && return 0
    command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
    mkdir -p "$DWSD_CACHE"
    lock=$DWSD_CACHE/systemd-$key.lock
    exec {_dwsd_lockfd}>>"$lock"
    flock -w 1800 "$_dwsd_lockfd" || die "could not take $lock"
    if [[ ! -f $dir/complete ]]; then
        t0=$SECONDS
        note "building the systemd test tree $dir (debootstrap $DWSD_SUITE from $(dwsd_mirror)); a few minutes, once"
        rm -rf --one-file-system "$dir.tmp" "$dir"
        mkdir -p "$dir.tmp"
        inc=$(IFS=,; echo "${DWSD_PACKAGES[*]}")
        if ! timeout 1800 debootstrap --variant=minbase --include="$inc" "$DWSD_SUITE" \
            "$dir.tmp/root" "$(dwsd_mirror)" >"$dir.tmp/debootstrap.log" 2>&1; then
            tail -n 20 "$dir.tmp/debootstrap.log" >&2
            exec {_dwsd_lockfd}>&-
            die "debootstrap failed (log: $dir.tmp/debootstrap.log)"
        fi
        # Trim what a test boot does not need; keep the boot fast and quiet.
        chroot "$dir.tmp/root" apt-get clean
        rm -rf "$dir.tmp/root"/var/lib/apt/lists/*
        local u
        for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
            fstrim.timer systemd-tmpfiles-clean.timer getty@tty1.service console-getty.service \
            systemd-timesyncd.service; do
            ln -sf /dev/null "$dir.tmp/root/etc/systemd/system/$u"
        done
        : >"$dir.tmp/root/etc/machine-id"   # nspawn hands each boot its own id
        echo "$DWSD_TREE_VERSION $(date -u +%FT%TZ) $((SECONDS - t0))s" >"$dir.tmp/complete"
        mv "$dir.tmp" "$dir"
        note "systemd test tree ready in $((SECONDS - t0)) s"
    fi
    exec {_dwsd_lockfd}>&-
}

dwsd_exec() {
    nsenter -t "$dwsd_leader" -m -u -i -n -p -C -r -w \
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        TERM=dumb SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
dwsd_sh() { dwsd_exec bash -c "$1"; }
dwsd_prop() { dwsd_exec systemctl show --value -p "$2" "$1"; }
_dwsd_state_is() { [[ $(dwsd_prop "$1" ActiveState) == "$2" ]]; }
dwsd_wait_state() { dw_wait "$3" _dwsd_state_is "$1" "$2"; }
dwsd_journal() { dwsd_exec journalctl -b --no-pager -o short-precise -u "$1"; }

# The container's PID 1: the child of nspawn whose PID in its own namespace is 1.
_dwsd_find_leader() {
    local c
    for c in $(cat /proc/"$dwsd_pid"/task/*/children 2>/dev/null); do
        if [[ $(awk '/^NSpid:/ { print $NF }' "/proc/$c/status" 2>/dev/null) == 1 ]]; then
            dwsd_leader=$c
            return 0
        fi
    done
    return 1
}
_dwsd_booted() {
    local s
    s=$(timeout 5 nsenter -t "$dwsd_leader" -m -p -r -w systemctl is-system-running 2>/dev/null)
    [[ $s == running || $s == degraded ]]
}

dwsd_boot() {
    # shellcheck disable=SC2054  # the commas are nspawn's
    local name=$1 d h t0 o net=(--private-network --capability=CAP_AUDIT_READ,CAP_NET_ADMIN)
    local env=()
    shift
    for o in "$@"; do
        case $o in
        --host-network) net=(--capability=CAP_AUDIT_READ) ;;
        --no-seccomp) env=(SYSTEMD_SECCOMP=0) ;;
        *) die "dwsd_boot: unknown option $o" ;;
        esac
    done
    command -v systemd-nspawn >/dev/null || die "systemd-nspawn not found (apt-get install systemd-container)"
    [[ -n ${dwsd_lower:-} ]] || dwsd_tree
    dwsd_name=$name
    d=$tmp/$name
    dwsd_root=$d/root
    mkdir -p "$d/upper" "$d/work" "$dwsd_root"
    mount -t overlay overlay -o "lowerdir=$dwsd_lower,upperdir=$d/upper,workdir=$d/work" \
        "$dwsd_root" || die "overlay over $dwsd_lower"
    dw_at_exit _dwsd_cleanup "$name"
    # debootstrap copied the host's /etc/hostname; the container is NAME (the sensor's node).
    echo "$name" >"$dwsd_root/etc/hostname"
    t0=$(_dw_now_us)
    (
        # Cgroups of our own in the hierarchies nspawn uses (hybrid here: name=systemd +
        # unified; pure v2 elsewhere): nspawn --keep-unit nests the container's in them.
        for h in $(_dwsd_cgroups "$name"); do
            mkdir -p "$h" && echo "$BASHPID" >"$h/cgroup.procs"
        done
        # No inherited descriptors (a caller's lock, say) stay open in the container.
        for f in /proc/$BASHPID/fd/*; do
            f=${f##*/}
            ((f > 2)) && eval "exec $f>&-" 2>/dev/null
        done
        exec env "${env[@]}" systemd-nspawn --quiet --boot --directory="$dwsd_root" \
            --machine="$name" --register=no --keep-unit --console=pipe "${net[@]}" \
            --system-call-filter="fanotify_init fanotify_mark open_by_handle_at"
    ) </dev/null >>"$tmp/nspawn.log" 2>&1 &
    dwsd_pid=$!
    dw_wait --while "$dwsd_pid" 10 _dwsd_find_leader || die "nspawn started no container (see nspawn.log)"
    dw_wait --while "$dwsd_pid" 60 _dwsd_booted || {
        dwsd_exec systemctl list-jobs --no-pager >>"$tmp/nspawn.log" 2>&1
        die "the container's systemd did not finish booting in 60 s"
    }
    dwsd_boot_ms=$((($(_dw_now_us) - t0) / 1000))
    dwsd_exec systemctl --failed --no-legend --no-pager >"$tmp/boot-failed.txt" 2>&1 || true
}

# The cgroups a container NAME's nspawn runs in (they need not exist yet).
_dwsd_cgroups() {
    local h
    if [[ -f /sys/fs/cgroup/cgroup.procs ]]; then
        echo "/sys/fs/cgroup/dwsd-$1"  # pure v2
        return
    fi
    for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
        [[ -f $h/cgroup.procs ]] && echo "$h/dwsd-$1"
    done
}

dwsd_halt() {
    local limit=${1:-30}
    [[ -n ${dwsd_pid:-} ]] || return 0
    if dw_alive "$dwsd_pid"; then
        kill -TERM "$dwsd_pid" 2>/dev/null  # nspawn: SIGRTMIN+3 to systemd, a clean poweroff
        dw_wait --while "$dwsd_pid" "$limit" false || true
        if dw_alive "$dwsd_pid"; then
            echo "the container did not halt in $limit s: SIGKILL to its PID 1 ($dwsd_leader) and nspawn"
            [[ -z ${dwsd_leader:-} ]] || kill -KILL "$dwsd_leader" 2>/dev/null || true
            sleep 0.5
            kill -KILL "$dwsd_pid" 2>/dev/null || true
        fi
    fi
    wait "$dwsd_pid" 2>/dev/null || true
    dwsd_pid=
}

_dwsd_cleanup() {
    local name=$1 m c p i
    dwsd_halt 30
    # Leftovers in our cgroups (only processes this container started): SIGKILL by PID.
    for c in $(_dwsd_cgroups "$name"); do
        while read -r p; do
            [[ -n $p ]] || continue
            echo "leftover process $p in $c: killing it"
            kill -KILL "$p" 2>/dev/null
        done < <(find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null)
    done
    for ((i = 0; i < 3; i++)); do
        while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done < <(
            dw_mounts_under "$tmp/$name" | awk '{ print length($5), $5 }' | sort -rn | cut -d' ' -f2-)
        [[ -z $(dw_mounts_under "$tmp/$name") ]] && break
        sleep 0.5
    done
    for c in $(_dwsd_cgroups "$name"); do
        [[ -d $c ]] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
        [[ -d $c ]] && echo "could not remove cgroup $c"
    done
    # nspawn leaves its propagation directory when /run is not a tmpfs (as here).
    rm -rf --one-file-system "/run/systemd/nspawn/propagate/$name"
    true
}
