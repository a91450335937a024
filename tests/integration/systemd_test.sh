#!/bin/bash
# systemd_test.sh BUILD: the shipped units under a real systemd, and the Debian package's
# life cycle. A Debian 12 container booted by systemd (systemd-nspawn --boot over an overlay on
# a cached debootstrap tree: tests/integration/systemd_env.sh) gets driftwatch installed: the
# .deb (dpkg -i) when scripts/package.sh makes one, else `cmake --install` (DESTDIR), else the
# raw files. Then:
#   - `driftwatch --version` and `driftwatch rules check` as installed;
#   - the collector unit as shipped: notify (READY=1 and its status text), a dynamic user (not
#     root), the credentials loaded, its state directory, listening (mTLS handshake,
#     /healthz); reload (SIGHUP) keeps the same process, active, and it logs the reload; the
#     watchdog: WatchdogUSec as shipped, then a 3 s drop-in under which it stays up for 10 s,
#     and a stopped (SIGSTOP) collector is killed by the watchdog and restarted;
#   - the sensor unit as shipped (audit-mode auto) exits at start here (no audit, below); with
#     audit-mode off and the collector configured: active (notify), root with the unit's
#     capabilities, a fanotify group marking the container's root filesystem (an overlay:
#     fd-filesystem mode, overlayfs refuses FID), its status events stored by the collector,
#     reload keeps the process;
#   - dpkg -r: units stopped cleanly, no process left, files gone, conffiles kept; dpkg -P:
#     conffiles and state gone, the operator's TLS keys kept (and said so);
#   - observer phase, as far as the kernel lets audit into a container: a second container with
#     the host's network namespace and no nspawn seccomp filter, a private auditd on the host
#     owning the feed, the sensor unit in audit-mode observer: an exec in the container goes
#     from audit through the sensor unit to the collector;
#   - the host's audit settings and rules unchanged.
#
# What this container cannot test, and why:
#   - audit in an ordinary container. systemd-nspawn's seccomp filter makes socket(AF_NETLINK,
#     NETLINK_AUDIT) fail with EAFNOSUPPORT (no nspawn option lifts it; SYSTEMD_SECCOMP=0 drops
#     the whole filter). Below that, the kernel (kernel/audit.c, audit_netlink_ok) refuses
#     audit control messages (AUDIT_GET, AUDIT_SET, rule changes) from any PID namespace but the
#     initial one with EPERM, whatever the capabilities (checked here with the host's auditctl
#     in the container's PID namespace), so owner mode, and auto mode's AUDIT_GET, cannot work
#     in a PID-namespaced container; and kauditd multicasts records (observer mode) only in the
#     initial network namespace, which a --private-network container does not share. So owner
#     and auto modes cannot be tested in any container (live_owner tests owner mode on the
#     host); observer mode only in the observer phase's container (host network, no seccomp
#     filter). The host's audit state is saved and restored, and checked unchanged at the end.
#   - events of containers: no container runtime runs inside, so the observer phase's exec is
#     a host exec (container.id host), and writes by the container's processes are no
#     container's: the fanotify watcher drops them (uncounted in the metrics).
#
# `systemd_test.sh --tree` only makes the cached tree (a CI warm-up step).
# Env: DW_DEB=FILE uses that package; DW_INSTALL=deb|destdir|raw forces a way (default: deb
# when scripts/package.sh exists); DW_OBSERVER=0 leaves out the observer phase (it starts a
# private auditd and adds an execve rule on the host, both undone); KEEP=1 keeps $tmp.
# Needs root, systemd-nspawn (systemd-container), debootstrap and, the first time, the Debian
# mirror (about 4-5 min). Holds /tmp/dw-kernel.lock throughout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
source "$here/harness.sh"
source "$here/systemd_env.sh"

[[ $EUID -eq 0 ]] || skip "needs root"
for c in systemd-nspawn debootstrap nsenter flock auditctl; do
    command -v "$c" >/dev/null || skip "$c not found (apt-get install systemd-container debootstrap auditd)"
done
if [[ ${1:-} == --tree ]]; then  # only make (or check) the cached tree: a CI warm-up step
    dw_harness dwsystemd
    dwsd_tree
    echo "$dwsd_lower: $(cat "${dwsd_lower%/root}/complete")"
    exit 0
fi
dw_build "${1:-$src/build}" collector sensor dw
build=$(cd "$build" && pwd)

dw_harness dwsystemd
# The tree first: a cold one takes minutes, which need not hold the kernel lock.
t0=$SECONDS
dwsd_tree
tree_s=$((SECONDS - t0))
# Serialized with every other user of audit and fanotify (benches take the same lock).
exec 9>>/tmp/dw-kernel.lock
if ! flock -n 9; then
    note "waiting up to ${LOCK_WAIT:-900} s for /tmp/dw-kernel.lock (another test uses audit or fanotify)"
    flock -w "${LOCK_WAIT:-900}" 9 || die "could not take /tmp/dw-kernel.lock"
fi
step "kernel lock taken"
dw_audit_guard
name=dwsd-$$
version=$("$dw" --version)

# --- the package, or what stands in for it --------------------------------------------------
how=${DW_INSTALL:-}
deb=${DW_DEB:-}
if [[ -z $how ]]; then
    if [[ -n $deb || -x $src/scripts/package.sh ]]; then how=deb
    elif grep -q packaging "$build/cmake_install.cmake" 2>/dev/null; then how=destdir
    else how=raw
    fi
fi
# A package already in BUILD is used when it is newer than everything it is made of (the
# binaries, the units, configs, rules, make-certs.sh, packaging/); else scripts/package.sh
# makes it (which builds BUILD first).
_deb_fresh() {
    local f
    [[ -f $1 ]] || return 1
    for f in "$dw" "$collector" "$sensor" "$src"/systemd/* "$src"/rules/*.yaml \
        "$src/scripts/make-certs.sh" $(find "$src/packaging" -type f); do
        [[ $f -nt $1 ]] && return 1
    done
    return 0
}
if [[ $how == deb && -z $deb ]]; then
    deb=$(ls -t "$build"/driftwatch_*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -1) || true
    if ! _deb_fresh "$deb"; then
        step "scripts/package.sh $build"
        deb=$("$src/scripts/package.sh" "$build" 2>"$tmp/package.log") || die "scripts/package.sh failed"
    fi
fi
if [[ $how == deb ]]; then
    [[ -f $deb ]] || die "no package: $deb"
    cp "$deb" "$tmp/${deb##*/}"  # a copy: BUILD may be repackaged meanwhile
    deb=$tmp/${deb##*/}
fi
note "installing by: $how ${deb:+($deb)}"

step "tree ready ($tree_s s): $dwsd_lower"
dwsd_boot "$name"
step "booted in $dwsd_boot_ms ms ($(dwsd_exec systemctl is-system-running || true))"
[[ ! -s $tmp/boot-failed.txt ]] && ok "boot: no failed units" || fail "boot: failed units: $(tr '\n' ' ' <"$tmp/boot-failed.txt")"
expect "PID 1 of the container is systemd" "$(dwsd_exec cat /proc/1/comm)" systemd
expect "the container's hostname" "$(dwsd_exec hostname)" "$name"

# install_dw TAG: driftwatch into the booted container, the way $how says.
install_dw() {
    local r=$dwsd_root u
    case $how in
    deb)
        cp "$deb" "$r/root/driftwatch.deb"
        if dwsd_exec dpkg -i /root/driftwatch.deb >"$tmp/dpkg-i$1.log" 2>&1; then ok "dpkg -i ${deb##*/}$1"
        else fail "dpkg -i ${deb##*/}$1: $(tail -5 "$tmp/dpkg-i$1.log")"
        fi
        expect "dpkg status after install$1" "$(dwsd_exec dpkg-query -W -f='${Status}' driftwatch)" "install ok installed"
        ;;
    destdir)
        DESTDIR=$r cmake --install "$build" --prefix /usr >"$tmp/install$1.log" 2>&1 || die "cmake --install"
        dwsd_exec systemctl daemon-reload
        ;;
    raw)
        install -D -m 0755 -t "$r/usr/bin" "$dw" "$collector" "$sensor"
        install -D -m 0644 -t "$r/usr/share/driftwatch/rules" "$src"/rules/driftwatch_macros.yaml \
            "$src"/rules/driftwatch_rules.yaml
        install -D -m 0755 -t "$r/usr/share/driftwatch" "$src/scripts/make-certs.sh"
        install -D -m 0644 -t "$r/etc/driftwatch" "$src"/systemd/{sensor,collector}.yaml
        mkdir -p "$r/usr/lib/systemd/system"
        for u in driftwatch-collector driftwatch-sensor; do
            sed 's|/usr/local/bin/|/usr/bin/|g' "$src/systemd/$u.service" >"$r/usr/lib/systemd/system/$u.service"
        done
        dwsd_exec systemctl daemon-reload
        ;;
    *) die "DW_INSTALL=$how: deb, destdir or raw" ;;
    esac
}
# make_certs NODE: TLS material as an operator makes it, in /etc/driftwatch/tls.
make_certs() {
    local certs=/usr/share/driftwatch/make-certs.sh
    if [[ ! -x $dwsd_root$certs ]]; then
        cp "$src/scripts/make-certs.sh" "$dwsd_root/root/make-certs.sh"
        certs=/root/make-certs.sh
    fi
    dwsd_exec "$certs" /etc/driftwatch/tls "$1" >>"$tmp/make-certs.log" 2>&1 || die "make-certs.sh: $(cat "$tmp/make-certs.log")"
    check "TLS files in /etc/driftwatch/tls ($certs)" test -s "$dwsd_root/etc/driftwatch/tls/collector.key" -a -s "$dwsd_root/etc/driftwatch/tls/$1.crt"
}
r=$dwsd_root
install_dw ""
for u in driftwatch-collector driftwatch-sensor; do
    expect "$u: loaded" "$(dwsd_prop $u.service LoadState)" loaded
    expect "$u: not started by the install" "$(dwsd_prop $u.service ActiveState)" inactive
    expect "$u: ExecStart is /usr/bin/$u" \
        "$(dwsd_prop $u.service ExecStart | sed -n 's/.*path=\([^ ;]*\).*/\1/p')" "/usr/bin/$u"
    dwsd_exec systemd-analyze verify --man=no "/usr/lib/systemd/system/$u.service" >"$tmp/verify-$u.log" 2>&1 &&
        ok "$u: systemd-analyze verify" || fail "$u: systemd-analyze verify: $(head -3 "$tmp/verify-$u.log")"
done
[[ $how != deb ]] || expect "sensor: not enabled by the install" \
    "$(dwsd_exec systemctl is-enabled driftwatch-sensor.service || true)" disabled

expect "driftwatch --version in the container" "$(dwsd_exec driftwatch --version)" "$version"
if dwsd_exec driftwatch rules check >"$tmp/rules-check.log" 2>&1; then
    ok "driftwatch rules check (the installed rules): $(tail -1 "$tmp/rules-check.log")"
else
    fail "driftwatch rules check: $(tail -3 "$tmp/rules-check.log")"
fi

make_certs "$name"

# --- the collector, as shipped -----------------------------------------------------------------
C=driftwatch-collector.service
step "systemctl start $C"
if ! dwsd_exec timeout 60 systemctl start "$C"; then
    dwsd_journal "$C" | tail -30
    die "systemctl start $C"
fi
expect "collector: active after start (Type=notify: READY=1 came)" "$(dwsd_prop $C ActiveState)/$(dwsd_prop $C SubState)" active/running
st=$(dwsd_prop $C StatusText)
[[ $st == "listening on "* ]] && ok "collector: status text from sd_notify: $st" || fail "collector: status text '$st'"
cpid=$(dwsd_prop $C MainPID)
[[ $cpid =~ ^[1-9][0-9]*$ ]] || die "collector: MainPID '$cpid'"
uids=$(dwsd_exec awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$cpid/status")
read -r ruid euid _ _ <<<"$uids"
if [[ $ruid != 0 && $euid != 0 && $ruid -ge 61184 && $ruid -le 65519 ]]; then
    ok "collector: runs as a dynamic user (Uid: $uids)"
else
    fail "collector: Uid: $uids (want a dynamic user, 61184-65519)"
fi
user=$(dwsd_exec getent passwd "$ruid" | cut -d: -f1) || user=
expect "collector: the uid is the dynamic user driftwatch-collector" "$user" driftwatch-collector
expect "collector: CapEff empty" "$(dwsd_exec awk '/^CapEff:/ { print $2 }' "/proc/$cpid/status")" 0000000000000000
expect "collector: NoNewPrivs" "$(dwsd_exec awk '/^NoNewPrivs:/ { print $2 }' "/proc/$cpid/status")" 1
cred=/run/credentials/$C
cenv=$(dwsd_exec cat "/proc/$cpid/environ" | tr '\0' '\n') || true
grep -qx "CREDENTIALS_DIRECTORY=$cred" <<<"$cenv" && ok "collector: CREDENTIALS_DIRECTORY=$cred" || fail "collector: no CREDENTIALS_DIRECTORY in its environment"
for f in collector.crt collector.key ca.crt; do
    dwsd_exec cmp -s "$cred/$f" "/etc/driftwatch/tls/$f" && ok "collector: credential $f loaded" || fail "collector: credential $f missing or differs"
done
expect "collector: credential key owned by the dynamic user" "$(dwsd_exec stat -c %u "$cred/collector.key")" "$ruid"
expect "collector: state dir /var/lib/private/driftwatch-collector (mode, owner)" \
    "$(dwsd_exec stat -c '%a %u' /var/lib/private/driftwatch-collector 2>&1)" "700 $ruid"
expect "collector: /var/lib/driftwatch-collector -> private/driftwatch-collector" \
    "$(dwsd_exec readlink /var/lib/driftwatch-collector)" private/driftwatch-collector
check "collector: its database in the state dir" dwsd_exec test -s /var/lib/private/driftwatch-collector/collector.db
listen=$(dwsd_exec ss -Hltnp 'sport = :7443')
[[ $listen == *"pid=$cpid,"* ]] && ok "collector: listens on :7443" || fail "collector: not listening on :7443: $listen"
tls=$(dwsd_exec timeout 10 openssl s_client -connect 127.0.0.1:7443 -CAfile /etc/driftwatch/tls/ca.crt \
    -cert "/etc/driftwatch/tls/$name.crt" -key "/etc/driftwatch/tls/$name.key" -verify_return_error \
    -alpn h2 </dev/null 2>&1 | tr -d '\0') || true
grep -q "Verify return code: 0 (ok)" <<<"$tls" && ok "collector: mTLS handshake with its credentials" || fail "collector: TLS handshake: $(grep -m3 -i 'error\|verify' <<<"$tls")"
check "collector: /healthz on 127.0.0.1:9465" dwsd_exec curl -sf -m 5 -o /dev/null http://127.0.0.1:9465/healthz

# Reload: SIGHUP through ExecReload; RELOADING=1 then READY=1; the same process.
step "systemctl reload $C"
check "collector: systemctl reload" dwsd_exec timeout 30 systemctl reload "$C"
dwsd_wait_state "$C" active 10 || true
expect "collector: active after reload" "$(dwsd_prop $C ActiveState)" active
expect "collector: the same process after reload" "$(dwsd_prop $C MainPID)" "$cpid"
dw_wait 10 eval 'dwsd_journal "$C" | grep -q "SIGHUP: rules reloaded"' &&
    ok "collector: logged the reload ($(dwsd_journal "$C" | grep -m1 -o 'SIGHUP: rules reloaded.*'))" ||
    fail "collector: no 'SIGHUP: rules reloaded' in its journal"
expect "collector: status text after reload" "$(dwsd_prop $C StatusText)" reloaded

# Watchdog: as shipped, then live under a short one.
expect "collector: WatchdogUSec as shipped" "$(dwsd_prop $C WatchdogUSec)" 30s
dd=$r/etc/systemd/system/$C.d
mkdir -p "$dd"
printf '[Service]\nWatchdogSec=3s\nTimeoutAbortSec=5s\n' >"$dd/dw-test-watchdog.conf"
dwsd_exec systemctl daemon-reload
dwsd_exec timeout 60 systemctl restart "$C" || fail "collector: restart with WatchdogSec=3s"
expect "collector: WatchdogUSec with the drop-in" "$(dwsd_prop $C WatchdogUSec)" 3s
cpid=$(dwsd_prop $C MainPID)
n0=$(dwsd_prop $C NRestarts)
step "watchdog 3 s: 10 s of pings"
sleep 10
expect "collector: up 10 s under WatchdogSec=3s (same process, active)" \
    "$(dwsd_prop $C MainPID) $(dwsd_prop $C ActiveState) $(dwsd_prop $C NRestarts)" "$cpid active $n0"
if dwsd_journal "$C" | grep -qi "watchdog timeout"; then fail "collector: a watchdog timeout while it ran"; fi
step "watchdog 3 s: the collector stopped (SIGSTOP)"
dwsd_exec kill -STOP "$cpid"
_new_main() { local p; p=$(dwsd_prop $C MainPID); [[ $p != 0 && $p != "$cpid" && $(dwsd_prop $C ActiveState) == active ]]; }
if dw_wait 30 _new_main; then
    ok "collector: a stopped collector is killed by the watchdog and restarted (PID $cpid -> $(dwsd_prop $C MainPID), NRestarts $n0 -> $(dwsd_prop $C NRestarts))"
else
    fail "collector: not restarted after SIGSTOP ($(dwsd_prop $C ActiveState)/$(dwsd_prop $C SubState))"
    dwsd_exec kill -CONT "$cpid" 2>/dev/null || true
fi
dw_wait 10 eval 'dwsd_journal "$C" | grep -qi "watchdog timeout"' && ok "collector: the journal says: $(dwsd_journal "$C" | grep -io 'watchdog timeout.*' | head -1)" ||
    fail "collector: no 'Watchdog timeout' in the journal"
rm -f "$dd/dw-test-watchdog.conf"
rmdir "$dd"
dwsd_exec systemctl daemon-reload

# --- the sensor ------------------------------------------------------------------------------
S=driftwatch-sensor.service
# Audit in this container: the kernel refuses audit control (AUDIT_GET here) from a PID
# namespace other than the initial one, whatever the capabilities (the host's auditctl, root
# with every capability, only entering the container's PID namespace):
a=$(timeout 10 nsenter -t "$dwsd_leader" -p auditctl -s 2>&1) && fail "audit control works in the container's PID namespace: $a" ||
    ok "audit control refused in the container's PID namespace ($(echo "$a" | head -1))"
# The sensor as shipped (audit-mode auto) therefore cannot start in the container; its reason:
step "systemctl start $S as shipped (audit-mode auto)"
if dwsd_exec timeout 60 systemctl start "$S" 2>/dev/null; then
    fail "sensor: started with audit-mode auto in the container (audit is not expected to work here): $(dwsd_prop $S StatusText)"
else
    why=$(dwsd_journal "$S" | grep -m1 'driftwatch-sensor\[[0-9]*\]: .*audit' | sed 's/.*driftwatch-sensor: //' || true)
    ok "sensor: as shipped (audit-mode auto) it exits at start here: ${why:-see the journal}"
fi
dwsd_exec timeout 30 systemctl stop "$S" || true
dwsd_exec systemctl reset-failed "$S" 2>/dev/null || true
cfg=$r/etc/driftwatch/sensor.yaml
# The operator's edits: the collector, this node's certificate, no audit (see the header).
sed -i -E '/^(audit-mode|collector|tls-ca|tls-cert|tls-key|status-interval):/d' "$cfg"
cat >>"$cfg" <<EOF
audit-mode: "off"
collector: 127.0.0.1:7443
tls-ca: /etc/driftwatch/tls/ca.crt
tls-cert: /etc/driftwatch/tls/$name.crt
tls-key: /etc/driftwatch/tls/$name.key
status-interval: 1
EOF
step "systemctl start $S (audit-mode off)"
if dwsd_exec timeout 60 systemctl start "$S"; then
    expect "sensor: active (READY=1)" "$(dwsd_prop $S ActiveState)/$(dwsd_prop $S SubState)" active/running
    spid=$(dwsd_prop $S MainPID)
    ok "sensor: status text: $(dwsd_prop $S StatusText)"
    expect "sensor: runs as root" "$(dwsd_exec awk '/^Uid:/ { print $2 }' "/proc/$spid/status")" 0
    # The capabilities it has here: the unit's set within nspawn's bounding set.
    capeff=$(dwsd_exec awk '/^CapEff:/ { print $2 }' "/proc/$spid/status")
    note "sensor CapEff $capeff: $(capsh --decode="$capeff" 2>/dev/null | cut -d= -f2)"
    # A fanotify group with marks (fdinfo lists one "fanotify ino:/sdev:/mnt_id:" line a mark).
    _marked() { dwsd_exec sh -c "grep -hE '^fanotify (ino|sdev|mnt_id):' /proc/$spid/fdinfo/* 2>/dev/null" | grep -q .; }
    if dw_wait 10 _marked; then
        ok "sensor: fanotify group with marks ($(dwsd_prop $S StatusText | grep -o 'fanotify [a-z-]*'))"
    else
        fail "sensor: no fanotify mark"
    fi
    # Events: the writes here are the container host's own (no container runtime in here), which
    # the watcher drops uncounted (dropped_host is not exported); the collector gets status events.
    _stored() { dwsd_exec driftwatch events --db /var/lib/private/driftwatch-collector/collector.db \
        --node "$name" --kind status --limit 1 2>/dev/null | grep -q .; }
    dw_wait 20 _stored && ok "sensor -> collector: status events of node $name stored" ||
        fail "sensor -> collector: no events of node $name stored"
    hello=$(dwsd_journal "$C" | grep -m1 -o "says Hello.node=.*" || true)
    expect "collector: the sensor's node name matches its certificate" "$hello" ""
    dwsd_exec driftwatch status --collector 127.0.0.1:9465 >"$tmp/status-collector.log" 2>&1 || true
    grep -q "$name" "$tmp/status-collector.log" && ok "driftwatch status --collector lists $name" ||
        fail "driftwatch status --collector: $(head -5 "$tmp/status-collector.log")"
    dwsd_exec timeout 30 systemctl reload "$S" && dwsd_wait_state "$S" active 10 &&
        expect "sensor: the same process after reload" "$(dwsd_prop $S MainPID)" "$spid" || fail "sensor: reload"
else
    fail "sensor: systemctl start $S"
    dwsd_journal "$S" | tail -20
fi
dwsd_journal "$S" >"$tmp/sensor-journal.log" 2>&1 || true

# --- removal --------------------------------------------------------------------------------
if [[ $how == deb ]]; then
    step "dpkg -r driftwatch"
    if dwsd_exec timeout 120 dpkg -r driftwatch >"$tmp/dpkg-r.log" 2>&1; then ok "dpkg -r driftwatch"
    else fail "dpkg -r driftwatch: $(tail -5 "$tmp/dpkg-r.log")"
    fi
    for u in "$C" "$S"; do
        expect "$u: stopped and gone after dpkg -r" "$(dwsd_prop "$u" ActiveState)/$(dwsd_prop "$u" LoadState)" inactive/not-found
    done
    for u in "$C" "$S"; do
        j=$(dwsd_journal "$u" | tail -n 4)
        grep -q "$u: Deactivated successfully" <<<"$j" && ! grep -qi "timed out\|SIGKILL" <<<"$j" &&
            ok "$u: stopped cleanly by the prerm (SIGTERM, exit 0)" || fail "$u: stop: $j"
    done
    left=$(dwsd_sh 'for p in /proc/[0-9]*; do e=$(readlink $p/exe 2>/dev/null) && [[ $e == /usr/bin/driftwatch* ]] && echo "${p#/proc/} $e"; done' || true)
    expect "no driftwatch process left after dpkg -r" "$left" ""
    gone=$(dwsd_sh 'ls -d /usr/bin/driftwatch* /usr/share/driftwatch /usr/lib/systemd/system/driftwatch-* /run/credentials/driftwatch-collector.service 2>/dev/null' || true)
    expect "files gone after dpkg -r" "$gone" ""
    check "conffiles kept after dpkg -r" test -f "$r/etc/driftwatch/sensor.yaml" -a -f "$r/etc/driftwatch/collector.yaml"
    expect "dpkg status after -r" "$(dwsd_exec dpkg-query -W -f='${Status}' driftwatch)" "deinstall ok config-files"
    if dwsd_exec timeout 60 dpkg -P driftwatch >"$tmp/dpkg-p.log" 2>&1; then ok "dpkg -P driftwatch"
    else fail "dpkg -P driftwatch: $(tail -5 "$tmp/dpkg-p.log")"
    fi
    gone=$(dwsd_sh 'ls -d /etc/driftwatch/*.yaml /var/lib/driftwatch /var/lib/private/driftwatch-collector /var/lib/driftwatch-collector 2>/dev/null' || true)
    expect "conffiles and state gone after dpkg -P" "$gone" ""
    check "the operator's TLS keys kept after dpkg -P" test -f "$r/etc/driftwatch/tls/ca.key"
    check "dpkg -P says what it kept" grep -q "/etc/driftwatch kept" "$tmp/dpkg-p.log"
    dwsd_exec dpkg-query -W driftwatch >/dev/null 2>&1 && fail "dpkg still knows driftwatch after -P" || ok "dpkg forgot driftwatch after -P"
else
    note "no package ($how install): dpkg -r/-P not tested"
    dwsd_exec timeout 60 systemctl stop "$S" "$C" || fail "systemctl stop"
fi

dwsd_exec journalctl -b --no-pager -o short-precise >"$tmp/journal.log" 2>&1 || true
step "halt"
dwsd_halt 30
step "halted"

# --- the sensor in audit observer mode: as far as the kernel lets audit into a container -------
# Audit records reach a container only with the host's network namespace (kauditd multicasts
# in the initial one only) and without nspawn's seccomp filter (NETLINK_AUDIT sockets); the
# feed needs an owner on the host (a private auditd here, as live_observer runs it) and the
# sensor audit-mode observer (auto asks AUDIT_GET first, refused in a PID namespace). The
# collector and sensor then listen on free loopback ports of the host.
if [[ ${DW_OBSERVER:-1} != 1 ]]; then
    note "DW_OBSERVER=0: the observer phase skipped"
elif [[ $(dw_audit_pid) != 0 ]] || pgrep -x auditd >/dev/null; then
    note "an audit daemon runs on the host (pid $(dw_audit_pid)): the observer phase skipped"
else
    source "$here/auditd_env.sh"
    step "observer: a private auditd on the host, an execve rule"
    dw_auditd_start "$tmp/auditd" RAW || die "auditd did not start"
    key=dwsd$$
    auditctl -a always,exit -F arch=b64 -S execve,execveat -k "$key" >/dev/null
    # (dw_audit_guard's restore at exit deletes the rule too, also on failure.)
    name2=$name-obs
    dwsd_boot "$name2" --host-network --no-seccomp
    step "observer: booted in $dwsd_boot_ms ms (host network, no seccomp filter)"
    install_dw " (observer container)"
    make_certs "$name2"
    read -r p1 p2 p3 < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
    ccfg=$dwsd_root/etc/driftwatch/collector.yaml
    sed -i -E '/^(listen|metrics-address):/d' "$ccfg"
    printf 'listen: 127.0.0.1:%s\nmetrics-address: 127.0.0.1:%s\n' "$p1" "$p2" >>"$ccfg"
    cfg=$dwsd_root/etc/driftwatch/sensor.yaml
    sed -i -E '/^(audit-mode|collector|tls-ca|tls-cert|tls-key|status-interval|metrics-address|fanotify-mode):/d' "$cfg"
    cat >>"$cfg" <<EOF
audit-mode: observer
fanotify-mode: "off"
collector: 127.0.0.1:$p1
tls-ca: /etc/driftwatch/tls/ca.crt
tls-cert: /etc/driftwatch/tls/$name2.crt
tls-key: /etc/driftwatch/tls/$name2.key
metrics-address: 127.0.0.1:$p3
EOF
    dwsd_exec timeout 60 systemctl start "$C" || fail "observer: collector start"
    if dwsd_exec timeout 60 systemctl start "$S"; then
        st=$(dwsd_prop $S StatusText)
        [[ $st == *"audit observer"* ]] && ok "observer: sensor unit active in audit observer mode ($st)" ||
            fail "observer: sensor status '$st'"
        marker=dwsd-exec-$$-$RANDOM
        _exec_stored() {
            dwsd_exec /bin/true "$marker"
            dwsd_exec driftwatch events --db /var/lib/private/driftwatch-collector/collector.db \
                --node "$name2" --kind exec 2>/dev/null | grep -- "$marker" |
                python3 -c 'import json, sys
# The exec of true itself (nsenter on the host and env carry the marker in their argv too).
for l in sys.stdin:
    j = json.loads(l)
    if j.get("proc.exepath", "").endswith("/true"):
        print(l, end=""); sys.exit(0)
sys.exit(1)' >"$tmp/observer-exec.json"
        }
        dw_wait 20 _exec_stored && ok "observer: an exec in the container, from audit through the sensor unit to the collector ($(
            json "$tmp/observer-exec.json" 'j.get("proc.exepath"), j.get("proc.cmdline"), "pname=" + str(j.get("proc.pname")), "container.id=" + str(j.get("container.id"))'))" ||
            fail "observer: no exec event with $marker stored"
        dw_audit_held_by "$(cat "$tmp/auditd/auditd.pid")" && ok "observer: auditd still holds the audit pid" ||
            fail "observer: auditd lost the audit pid"
    else
        fail "observer: sensor start: $(dwsd_journal "$S" | grep -v CRI | tail -3)"
    fi
    dwsd_journal "$S" >"$tmp/sensor-observer-journal.log" 2>&1 || true
    dwsd_exec timeout 60 systemctl stop "$S" "$C" || fail "observer: stop"
    dwsd_halt 30
    dw_auditd_stop "$tmp/auditd"
    auditctl -d always,exit -F arch=b64 -S execve,execveat -k "$key" >/dev/null 2>&1 || true
    dw_audit_restore "$tmp"
    step "observer: done"
fi
check "host audit settings and rules unchanged" dw_audit_same "$tmp"
dw_finish "systemd: all checks passed ($how install)"
