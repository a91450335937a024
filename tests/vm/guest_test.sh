#!/bin/sh
# Runs as PID 1 in the 6.1 guest kernel_vm.sh boots (busybox sh; the root is the ext4 image
# with busybox, the build's binaries and their libraries). Each check prints
#   DW-CHECK NAME PASS|FAIL [detail]
# on the console, the modes auto-detection picked print as DW-MODE lines, and the sensors'
# captures and logs go to /out, which the host reads back (check_guest.py) after poweroff.
# The last line is DW-GUEST-END rc=<failed checks>.
#
# The "container": an overlay (lower = a busybox image, upper, work) on the guest's ext4
# root under /var/lib/dwc, a cgroup as kubelet's cgroupfs driver names one
# (/kubepods/besteffort/pod<uid>/<64 hex>), and a process in new mount, UTS, IPC and PID
# namespaces, pivot_root()ed into the overlay as runc does. Processes "in" it join its cgroup and nsenter its
# namespaces and root, as `kubectl exec` / `runc exec` do.
export PATH=/bin:/sbin
fails=0
t0=$(cut -d' ' -f1 /proc/uptime)
say() { echo "DW-INFO [$(awk -v a="$(cut -d' ' -f1 /proc/uptime)" -v b="$t0" 'BEGIN { printf "%6.1f", a - b }')s] $*"; }
pass() { echo "DW-CHECK $1 PASS${2:+ $2}"; }
failc() { echo "DW-CHECK $1 FAIL${2:+ $2}"; fails=$((fails + 1)); }
check() { # NAME CMD...
    n=$1
    shift
    if "$@"; then pass "$n"; else failc "$n"; fi
}
# wait_for SECONDS CMD...: CMD every 0.2 s until it succeeds
wait_for() {
    end=$(($(cut -d. -f1 /proc/uptime) + $1))
    shift
    while ! "$@"; do
        [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ] || return 1
        usleep 200000
    done
}
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
finish() {
    say "done"
    sync
    echo "DW-GUEST-END rc=$fails"
    poweroff -f
    sleep 100
}

mount -t tmpfs -o mode=755 tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=1777 tmpfs /dev/shm 2>/dev/null || true
ip link set lo up
hostname k61
mkdir -p /out /run/driftwatch
check boot [ "$(uname -r)" != "" ]
echo "DW-INFO kernel $(uname -r)"
uname -r >/out/uname
# Before 6.5 overlayfs opens its layers' files with FMODE_NONOTIFY: filesystem marks on the
# upper dirs' filesystem see a container's creates, chmods, deletes and renames, not its
# writes. The sensor says so when such a mode is forced (and auto takes fd-mount).
old_ovl=0
case $(uname -r) in [1-5].*|6.[0-4].*|6.[0-4]) old_ovl=1 ;; esac

# --- sensors ---------------------------------------------------------------------------
# sensor_start NAME PORT ARGS...: the sensor in the background, log /out/NAME.log, capture
# /out/NAME.cap, /status on 127.0.0.1:PORT; waits for its banner (SPID: its pid).
sensor_start() {
    name=$1 port=$2
    shift 2
    /dw/driftwatch-sensor --node k61 --status-interval 2 --metrics-address "127.0.0.1:$port" \
        --capture "/out/$name.cap" "$@" </dev/null >"/out/$name.log" 2>&1 &
    SPID=$!
    if wait_for 60 grep -q '^driftwatch-sensor [0-9.]*: ' "/out/$name.log"; then
        say "$name: $(grep '^driftwatch-sensor [0-9.]*: ' "/out/$name.log" | head -1)"
        return 0
    fi
    say "$name did not start:"
    tail -n 20 "/out/$name.log"
    return 1
}
# sensor_stop PID NAME: SIGTERM, at most 30 s, then SIGKILL; 0 if it exited 0 by itself.
sensor_stop() {
    kill -TERM "$1" 2>/dev/null
    if wait_for 30 eval '! alive '"$1"; then
        wait "$1"
        rc=$?
        [ $rc = 0 ] || { say "$2 exited $rc"; tail -n 10 "/out/$2.log"; }
        return $rc
    fi
    kill -KILL "$1"
    wait "$1"
    say "$2 needed SIGKILL"
    return 1
}
banner() { grep -m1 '^driftwatch-sensor [0-9.]*: ' "/out/$1.log"; }
status_has() { wget -q -O - "http://127.0.0.1:$1/status" 2>/dev/null | grep -q "$2"; }
audit_clean() { # enabled 0, no audit daemon, no rule: as the guest booted
    s=$(auditctl -s)
    echo "$s" | grep -qx 'enabled 0' && echo "$s" | grep -qx 'pid 0' &&
        auditctl -l 2>&1 | grep -qx 'No rules'
}

# --- the container ---------------------------------------------------------------------
C=/var/lib/dwc/c1
mkdir -p $C/lower/bin $C/lower/tmp $C/lower/etc $C/lower/proc $C/upper $C/work $C/merged
cp /bin/busybox $C/lower/bin/busybox
for a in sh cat cp chmod echo sleep true ls mv ln rm; do ln -s busybox "$C/lower/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >$C/lower/etc/passwd
mount -t overlay overlay -o "lowerdir=$C/lower,upperdir=$C/upper,workdir=$C/work" $C/merged ||
    { failc container "overlay mount"; finish; }
CID=$(echo "driftwatch k61 container" | sha256sum | cut -c1-64)
POD=$(cat /proc/sys/kernel/random/uuid)
CG=/sys/fs/cgroup/kubepods/besteffort/pod$POD/$CID
mkdir -p "$CG"
# As runc: its own mount namespace, pivot_root into the overlay, the old root detached.
unshare -m -u -i -p -f sh -c "echo 0 >$CG/cgroup.procs && hostname ctr && mount --make-rprivate / &&
    cd $C/merged && pivot_root . . && umount -l . && cd / && exec /bin/sleep 100000" \
    </dev/null >/out/container.log 2>&1 &
ctr_init() { CPID=$(head -n 1 "$CG/cgroup.procs") && [ -n "$CPID" ] && [ "$(cat "/proc/$CPID/comm")" = sleep ]; }
if wait_for 20 ctr_init; then
    pass container "init pid $CPID, cgroup ${CG#/sys/fs/cgroup}"
else
    failc container "no container init"
    finish
fi
echo "$CID $POD $CPID" >/out/container.ids
# in_ctr CMD...: CMD in the container (its cgroup, namespaces and root)
in_ctr() { (echo 0 >"$CG/cgroup.procs" && exec nsenter -t "$CPID" -m -u -i -p -r -w "$@"); }
check container_exec [ "$(in_ctr /bin/sh -c 'hostname; echo hi')" = "$(printf 'ctr\nhi')" ]

# --- audit: owner, then observer beside it -----------------------------------------------
check audit_clean_at_boot audit_clean
say "audit: owner"
if sensor_start owner 9501 --audit-only --audit-mode auto; then
    o=$SPID
    b=$(banner owner)
    echo "DW-MODE audit (nothing else holds the audit pid): $(echo "$b" | sed 's/.*: audit \([a-z]*\) mode.*/\1/')"
    case $b in *"audit owner mode"*) pass audit_auto_owner ;; *) failc audit_auto_owner "$b" ;; esac
    check audit_owner_registered eval "auditctl -s | grep -qx 'pid $o'"
    /bin/busybox echo dw-owner-host-marker >/dev/null
    in_ctr /bin/echo dw-owner-ctr-marker >/dev/null
    say "audit: observer beside the owner"
    if sensor_start observer 9502 --audit-only --audit-mode auto; then
        ob=$SPID
        b=$(banner observer)
        echo "DW-MODE audit (another daemon holds the audit pid): $(echo "$b" | sed 's/.*: audit \([a-z]*\) mode.*/\1/')"
        case $b in *"audit observer mode"*) pass audit_auto_observer ;; *) failc audit_auto_observer "$b" ;; esac
        usleep 500000
        /bin/busybox echo dw-observer-host-marker >/dev/null
        in_ctr /bin/echo dw-observer-ctr-marker >/dev/null
        sleep 1
        check observer_exits_clean sensor_stop "$ob" observer
    else
        failc audit_auto_observer "did not start"
    fi
    sleep 1
    check owner_exits_clean sensor_stop "$o" owner
    check audit_restored_after_owner audit_clean
else
    failc audit_auto_owner "did not start"
fi

# --- fanotify: each mode forced ------------------------------------------------------------
port=9510
for m in fid-filesystem fd-filesystem fd-mount; do
    port=$((port + 1))
    say "fanotify $m"
    if ! sensor_start "fan-$m" $port --audit-mode off --no-cri --fanotify-mode "$m" \
        --watch-fs /var/lib/dwc --sensitive-reads off; then
        failc "fanotify_$m" "did not start"
        continue
    fi
    p=$SPID
    case $(banner "fan-$m") in *"fanotify $m"*) ;; *) failc "fanotify_$m" "banner: $(banner "fan-$m")" ;; esac
    wait_for 30 status_has "$port" "$CID" || failc "fanotify_$m" "the container is not in /status"
    usleep 300000
    # A new file, an executable dropped, then (a moment later) an existing file written again:
    # check_guest.py looks at which of these each mode reports.
    in_ctr /bin/sh -c "echo $m >/tmp/w-$m.txt && cp /bin/busybox /tmp/elf-$m && chmod 755 /tmp/elf-$m" ||
        failc "fanotify_$m" "writes in the container failed"
    usleep 300000
    in_ctr /bin/sh -c "echo again >>/tmp/w-$m.txt" || failc "fanotify_$m" "the rewrite failed"
    sleep 1
    sensor_stop "$p" "fan-$m" || failc "fanotify_${m}_exit" "exit status"
    # The path is in the capture as raw bytes; check_guest.py checks the events themselves.
    if [ $old_ovl = 1 ] && [ $m != fd-mount ]; then
        if grep -q "hides containers' file writes from filesystem marks" "/out/fan-$m.log"; then
            pass "fanotify_$m" "forced before 6.5: the sensor warns that container writes are hidden"
        else
            failc "fanotify_$m" "no warning that a filesystem mode misses container writes before 6.5"
        fi
    elif grep -q "/tmp/w-$m.txt" "/out/fan-$m.cap"; then
        pass "fanotify_$m" "$(grep 'fanotify [0-9]* events' "/out/fan-$m.log" | sed 's/.*\(fanotify [0-9]* events[^;]*\).*/\1/')"
    else
        failc "fanotify_$m" "no event for /tmp/w-$m.txt"
        tail -n 15 "/out/fan-$m.log"
    fi
done

# --- everything on auto: audit, fanotify, prevention; attribution ---------------------------
# Under TCG the guest runs many times slower than the host: a verdict past the default 50 ms
# deadline would be answered by the fail mode (allow) and the check would see the drift run.
DEADLINE=2000
say "auto: audit, fanotify, --prevent drift"
if sensor_start auto 9520 --no-cri --watch-fs /var/lib/dwc --sensitive-reads off --prevent drift --prevent-deadline-ms "$DEADLINE"; then
    a=$SPID
    b=$(banner auto)
    echo "DW-MODE full sensor: $(echo "$b" | sed 's/^driftwatch-sensor [0-9.]*: //')"
    echo "DW-MODE fanotify: $(echo "$b" | sed -n 's/.*; fanotify \([a-z-]*\).*/\1/p')"
    case $b in *"open permission events"*) echo "DW-MODE prevention: FAN_OPEN_PERM (open permission events)" ;;
    *"; prevent "*) echo "DW-MODE prevention: FAN_OPEN_EXEC_PERM (exec permission events)" ;; esac
    wait_for 30 status_has 9520 "$CID" || failc auto_registry "the container is not in /status"
    usleep 500000
    r=0
    # Alive for 5 s: under TCG the sensor may read the exec record more than a second late,
    # and a process already gone is attributed through its parent, not its cgroup.
    in_ctr /bin/busybox sh -c 'sleep 5' dw-attr-marker >/dev/null || r=$?
    [ $r = 0 ] && pass prevent_image_exec_runs || failc prevent_image_exec_runs "exit $r"
    out=$(in_ctr /bin/sh -c 'cp /bin/busybox /tmp/busybox-dropped && chmod 755 /tmp/busybox-dropped && /tmp/busybox-dropped echo dw-dropped-marker; echo rc=$?' 2>&1)
    case $out in *rc=126*) pass prevent_dropped_denied "exit 126" ;; *) failc prevent_dropped_denied "$out" ;; esac
    r=0
    $C/upper/tmp/busybox-dropped true || r=$?
    [ $r = 0 ] && pass prevent_host_exec_runs || failc prevent_host_exec_runs "exit $r"
    sleep 1
    check auto_exits_clean sensor_stop "$a" auto
    check audit_restored_after_auto audit_clean
    r=0
    in_ctr /tmp/busybox-dropped true || r=$?
    [ $r = 0 ] && pass prevent_released_after_stop || failc prevent_released_after_stop "exit $r"
else
    failc auto "did not start"
fi

# --- prevention with open permission events (forced) --------------------------------------
say "prevention, --prevent-events open"
if sensor_start prevent-open 9530 --audit-mode off --fanotify-mode off --no-cri \
    --watch-fs /var/lib/dwc --sensitive-reads off --prevent drift --prevent-deadline-ms "$DEADLINE" --prevent-events open; then
    po=$SPID
    wait_for 30 status_has 9530 "$CID" || failc prevent_open "the container is not in /status"
    usleep 500000
    r=0
    in_ctr /bin/busybox true || r=$?
    out=$(in_ctr /bin/sh -c '/tmp/busybox-dropped true; echo rc=$?; cat /tmp/w-fd-mount.txt' 2>&1)
    case "$r $out" in "0 "*rc=126*fd-mount*) pass prevent_open_events "image 0, dropped 126, reads allowed" ;;
    *) failc prevent_open_events "image $r; $out; status: $(wget -q -O - http://127.0.0.1:9530/status 2>/dev/null | grep -o '"prevent":{[^}]*')" ;; esac
    check prevent_open_exits_clean sensor_stop "$po" prevent-open
else
    failc prevent_open_events "did not start"
fi

# --- SIGKILL during an exec storm releases every exec -----------------------------------------
say "prevention: SIGKILL during an exec storm"
if sensor_start prevent-kill 9540 --audit-mode off --fanotify-mode off --no-cri \
    --watch-fs /var/lib/dwc --sensitive-reads off --prevent drift --prevent-deadline-ms "$DEADLINE"; then
    pk=$SPID
    wait_for 30 status_has 9540 "$CID" || failc prevent_sigkill "the container is not in /status"
    usleep 500000
    r=0
    in_ctr /tmp/busybox-dropped true || r=$?
    [ $r = 126 ] && pass prevent_sigkill_denied_before || failc prevent_sigkill_denied_before "the dropped binary ran (exit $r)"
    in_ctr /bin/sh -c 'n=0 f=0; while [ $n -lt 200 ]; do /bin/busybox true || f=$((f + 1)); n=$((n + 1)); done; echo storm n=$n failed=$f' \
        >/out/storm.log 2>&1 &
    st=$!
    (n=0 f=0; while [ $n -lt 100 ]; do /bin/busybox true || f=$((f + 1)); n=$((n + 1)); done; echo host n=$n failed=$f) \
        >/out/storm-host.log 2>&1 &
    sh=$!
    sleep 1
    kill -KILL "$pk"
    wait "$pk"
    if wait_for 90 eval '! alive '"$st"' && ! alive '"$sh"; then
        wait "$st" "$sh"
        if grep -qx 'storm n=200 failed=0' /out/storm.log && grep -qx 'host n=100 failed=0' /out/storm-host.log; then
            pass prevent_sigkill "every exec of both storms ran"
        else
            failc prevent_sigkill "$(cat /out/storm.log /out/storm-host.log | tr '\n' ' ')"
        fi
    else
        failc prevent_sigkill "the exec storms did not finish within 90 s of the SIGKILL"
    fi
    r=0
    in_ctr /tmp/busybox-dropped true || r=$?
    [ $r = 0 ] && pass prevent_released_after_sigkill || failc prevent_released_after_sigkill "exit $r"
else
    failc prevent_sigkill "did not start"
fi

# --- facts: which fanotify marks see the container's exec on this kernel ------------------------
# Not checks: what a fix would build on. fan_probe denies execs of "*-dropped*" files.
if [ -x /dw/fan_probe ]; then
    for probe in "mount|/proc/$CPID/root/|the container's root mount" \
        "filesystem|/proc/$CPID/root/|the container's overlay superblock" \
        "filesystem|/var/lib/dwc|the upper layer's filesystem (what the sensor marks)"; do
        kind=${probe%%|*} rest=${probe#*|}
        path=${rest%%|*} what=${rest#*|}
        /dw/fan_probe "$kind" "$path" 30 >/out/probe.log 2>&1 &
        pp=$!
        wait_for 10 grep -q 'ready\|fanotify_' /out/probe.log
        r=0
        in_ctr /tmp/busybox-dropped true || r=$?
        kill -TERM $pp 2>/dev/null
        wait $pp
        echo "DW-FACT FAN_OPEN_EXEC_PERM, FAN_MARK_$(echo "$kind" | tr '[:lower:]' '[:upper:]') on $what ($path): a dropped binary's exec in the container exits $r; events: $(grep -v '^ready' /out/probe.log | tr '\n' ';')"
    done
fi

# --- the privileged gtests (FanotifyWatcher in each mode on a real overlay) -----------------
if [ -x /dw/privileged_tests ] && ! grep -q 'dw.ptests=0' /proc/cmdline; then
    say "privileged_tests"
    r=0
    # Not the load test (20,000 small files and 200 sparse ELFs as fast as they can be
    # written): a throughput test, meaningless under TCG (over a minute a mode there).
    timeout 120 /dw/privileged_tests --gtest_brief=1 --gtest_filter='-*FanotifyWatcherLoad*' \
        >/out/privileged_tests.log 2>&1 || r=$?
    if [ $r = 0 ]; then
        pass privileged_tests "$(grep -E '^\[  PASSED  \]' /out/privileged_tests.log)"
    else
        failc privileged_tests "exit $r: $(sed -n 's/^\[  FAILED  \] \([^ ,]*\).*/\1/p' /out/privileged_tests.log | sort -u | tr '\n' ' ')"
        grep -E '^\[  FAILED|^no |^Expected|Which is' /out/privileged_tests.log | head -n 30
    fi
fi
kill -KILL "$CPID" 2>/dev/null
finish
