#!/bin/bash
# The sensor's kernel-facing checks on a second real kernel: Debian 12's own 6.1 cloud kernel
# (linux-image-6.1.0-*-cloud-amd64-unsigned, what most Debian 12 nodes run), booted under
# qemu without KVM (TCG). Nothing of the host's kernel state is touched: audit and fanotify
# in the guest are the guest kernel's own.
#
#   - the kernel package comes from Debian's package registry (apt-get download, nothing
#     else); vmlinuz and the few modules the guest needs (virtio_pci, virtio_blk, overlay:
#     the cloud kernel has no 9p) are cached in /var/cache/driftwatch-test/kernel-<version>/
#     and fetched again only when missing;
#   - the guest's root is an ext4 image made here with mkfs.ext4 -d: busybox (static), the
#     build's driftwatch-sensor and privileged_tests, auditctl, and the shared libraries ldd
#     lists for them, at their host paths. It is also the filesystem the guest's "container"
#     lives on (ext4, as containerd's snapshots on the host), so fanotify filesystem marks
#     and FID reporting apply as on a node;
#   - a small initramfs (busybox, the modules, tests/vm/guest_init.sh) loads the modules,
#     mounts the image and switches to it, running tests/vm/guest_test.sh as PID 1;
#   - tests/vm/fan_probe.c (gcc -static, when gcc is there) says which fanotify marks see a
#     container's exec on that kernel: DW-FACT lines, information for fixes, not checks;
#   - the guest prints DW-CHECK lines on the serial console and writes the sensors' captures
#     and logs to /out in the image, read back here with debugfs after qemu has exited;
#     tests/vm/check_guest.py reads the captures (driftwatch analyze --events);
#   - qemu runs under `timeout`, is stopped by its PID at exit, and fails the test on any
#     failed check, a missing result or a guest that did not finish.
#
# Usage: kernel_vm.sh BUILD_DIR
# Environment: DW_KERNEL_PKG (a linux-image-...-unsigned package name; default the newest
# 6.1 cloud kernel apt knows), DW_VM_TIMEOUT (seconds for the whole guest run, 300),
# DW_VM_SMP (2), DW_VM_MEM (1024 MiB), DW_VM_PRIVILEGED_TESTS (0: skip the gtest binary
# in the guest), KEEP=1 (keep the work directory).
# Exit: 0 pass (or SKIP: when the kernel package cannot be fetched and none is cached),
# 1 a check failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../integration/harness.sh source-path=SCRIPTDIR
source "$here/../integration/harness.sh"
[[ $# -ge 1 ]] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
sensor=$build/sensor/driftwatch-sensor
dw=$build/cli/driftwatch
ptests=$build/tests/privileged_tests
[[ -x $sensor ]] || { echo "FAIL: $sensor not built"; exit 1; }
[[ -x $dw ]] || { echo "FAIL: $dw not built"; exit 1; }
[[ $(id -u) == 0 ]] || { echo "FAIL: needs root (apt-get, debugfs on root-owned files)"; exit 1; }
dw_harness dw-kvm61
cache_root=/var/cache/driftwatch-test
vm_timeout=${DW_VM_TIMEOUT:-300}

# --- tools -----------------------------------------------------------------------------
need_pkgs=()
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
[[ -x /bin/busybox ]] || need_pkgs+=(busybox-static)
command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null || need_pkgs+=(e2fsprogs)
command -v cpio >/dev/null || need_pkgs+=(cpio)
command -v auditctl >/dev/null || need_pkgs+=(auditd)
if ((${#need_pkgs[@]})); then
    step "installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}" \
        >"$tmp/apt-install.log" 2>&1 || die "apt-get install ${need_pkgs[*]} failed"
fi
file /bin/busybox 2>/dev/null | grep -q 'statically linked' ||
    ldd /bin/busybox 2>&1 | grep -q 'not a dynamic' || die "/bin/busybox is not static (busybox-static)"

# --- the kernel ------------------------------------------------------------------------
newest_pkg() {
    apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$' 2>/dev/null |
        awk '{print $1}' | sort -V | tail -1
}
kmods=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk overlay)
kernel_cached() { # DIR
    [[ -s $1/vmlinuz ]] || return 1
    local m
    for m in "${kmods[@]}"; do [[ -s $1/modules/$m.ko ]] || return 1; done
}
fetch_kernel() { # PKG DIR: apt-get download PKG, keep vmlinuz and the modules in DIR
    local pkg=$1 dir=$2 dl=$tmp/kernel-dl mdir m f deps
    mkdir -p "$dl"
    (cd "$dl" && apt-get download "$pkg") >"$tmp/apt-download.log" 2>&1 || return 1
    dpkg-deb -x "$dl"/*.deb "$dl/x" || return 1
    mkdir -p "$dir.new/modules"
    cp "$dl"/x/boot/vmlinuz-* "$dir.new/vmlinuz"
    cp "$dl"/x/boot/config-* "$dir.new/config"
    mdir=$(echo "$dl"/x/lib/modules/*)
    for m in "${kmods[@]}"; do
        f=$(find "$mdir" -name "$m.ko" -o -name "$m.ko.xz" | head -1)
        [[ -n $f ]] || { note "$pkg has no module $m"; return 1; }
        case $f in *.xz) xz -dc "$f" >"$dir.new/modules/$m.ko" ;; *) cp "$f" "$dir.new/modules/$m.ko" ;; esac
        deps=$(tr '\0' '\n' <"$dir.new/modules/$m.ko" | sed -n 's/^depends=//p')
        echo "$m ${deps//,/ }" >>"$dir.new/modules/deps"
    done
    rm -rf "$dir" && mv "$dir.new" "$dir"
    rm -rf "$dl"
}

pkg=${DW_KERNEL_PKG:-}
if [[ -z $pkg ]]; then
    pkg=$(newest_pkg)
    if [[ -z $pkg ]]; then
        apt-get update >"$tmp/apt-update.log" 2>&1 || true
        pkg=$(newest_pkg)
    fi
fi
kdir=
if [[ -n $pkg ]]; then
    kver=${pkg#linux-image-}
    kver=${kver%-unsigned}
    kdir=$cache_root/kernel-$kver
    if ! kernel_cached "$kdir"; then
        step "fetching $pkg (apt-get download) into $kdir"
        mkdir -p "$cache_root"
        fetch_kernel "$pkg" "$kdir" || { cat "$tmp/apt-download.log" >&2; kdir=; }
    fi
fi
if [[ -z $kdir ]] || ! kernel_cached "$kdir"; then
    # No package to fetch (no network, no bookworm sources): a kernel cached earlier will do.
    kdir=
    for d in $(find "$cache_root" -mindepth 1 -maxdepth 1 -name 'kernel-6.1.*' 2>/dev/null | sort -V); do
        kernel_cached "$d" && kdir=$d
    done
    [[ -n $kdir ]] || skip "the Debian 12 6.1 cloud kernel package cannot be fetched (${pkg:-apt knows none}) and none is cached in $cache_root"
    note "using the cached kernel $kdir"
fi
kver=${kdir##*/kernel-}
step "kernel $kver from $kdir"

# --- initramfs: busybox, the modules, the init -----------------------------------------
ird=$tmp/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,modules}
cp /bin/busybox "$ird/bin/busybox"
ln -s busybox "$ird/bin/sh"
cp "$here/guest_init.sh" "$ird/init"
chmod 755 "$ird/init"
# Load order: each module after its dependencies.
declare -A placed=()
order=()
place() {
    local m=$1 d
    [[ -z ${placed[$m]:-} ]] || return 0
    placed[$m]=1
    for d in $(awk -v m="$m" '$1 == m { $1 = ""; print }' "$kdir/modules/deps"); do place "$d"; done
    order+=("$m")
}
for m in "${kmods[@]}"; do place "$m"; done
for m in "${order[@]}"; do cp "$kdir/modules/$m.ko" "$ird/modules/"; done
printf '%s\n' "${order[@]}" >"$ird/modules/order"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/initrd.img"

# --- the guest's root image ------------------------------------------------------------
root=$tmp/root
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,var/tmp,var/lib/dwc,out,etc,guest,dw,sbin}
chmod 1777 "$root/tmp" "$root/var/tmp"
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -sf busybox "$root/bin/$a"; done
cp "$here/guest_test.sh" "$root/guest/test.sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
echo k61 >"$root/etc/hostname"
bins=("$sensor")
cp "$sensor" "$root/dw/driftwatch-sensor"
if [[ ${DW_VM_PRIVILEGED_TESTS:-1} != 0 && -x $ptests ]]; then
    cp "$ptests" "$root/dw/privileged_tests"
    bins+=("$ptests")
else
    note "privileged_tests not copied (${ptests} missing or DW_VM_PRIVILEGED_TESTS=0)"
fi
# fan_probe: which mark kinds see a container's exec on this kernel (facts, not checks).
if command -v gcc >/dev/null && gcc -static -O2 -Wall -o "$root/dw/fan_probe" "$here/fan_probe.c" 2>"$tmp/gcc.err"; then
    :
else
    note "fan_probe not built (gcc -static: $(head -c 300 "$tmp/gcc.err" 2>/dev/null)): no DW-FACT lines"
fi
auditctl_bin=$(command -v auditctl)
cp "$auditctl_bin" "$root/sbin/auditctl"
bins+=("$auditctl_bin")
# The shared libraries, at the paths ldd resolves them to (the loader included).
for b in "${bins[@]}"; do
    ldd "$b" | awk '/=> \// { print $3 } /^\t\/[^ ]* \(/ { print $1 }'
done | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
# mkfs.ext4 -d copies the tree into a fresh image (sparse): no loop device, no mount.
size_mb=$(( $(du -sm "$root" | cut -f1) + 768 ))
mkfs.ext4 -q -F -L dwroot -d "$root" "$tmp/root.img" "${size_mb}M" || die "mkfs.ext4 -d failed"
rm -rf "$root"

# --- boot ------------------------------------------------------------------------------
step "booting $kver under qemu (TCG, ${DW_VM_SMP:-2} CPUs, ${DW_VM_MEM:-1024} MiB; at most ${vm_timeout} s)"
t_boot=$(date +%s.%N)
dw_start qemu timeout -k 5 "$vm_timeout" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu max -smp "${DW_VM_SMP:-2}" -m "${DW_VM_MEM:-1024}" \
    -nographic -no-reboot -nic none \
    -kernel "$kdir/vmlinuz" -initrd "$tmp/initrd.img" \
    -append "console=ttyS0 panic=-1 loglevel=4 dw.ptests=${DW_VM_PRIVILEGED_TESTS:-1}" \
    -drive "file=$tmp/root.img,format=raw,if=virtio,cache=unsafe"
qpid=$(dw_pid qemu)
# Follow the console while the guest runs.
tail -n +1 --pid="$qpid" -f "$tmp/qemu.log" 2>/dev/null | sed -u -n 's/\r$//; /^DW-/p; /Kernel panic/p' &
tailpid=$!
while dw_alive "$qpid"; do sleep 0.5; done
wait "$qpid" 2>/dev/null && qrc=0 || qrc=$?
wait "$tailpid" 2>/dev/null || true
rm -f "$tmp/qemu.pid"
step "qemu exited ($qrc) after $(awk -v a="$(date +%s.%N)" -v b="$t_boot" 'BEGIN { printf "%.1f", a - b }') s"
tr -d '\r' <"$tmp/qemu.log" >"$tmp/console.log"
rm -f "$tmp/qemu.log"
((qrc != 124 && qrc != 137)) || fail "the guest did not finish within ${vm_timeout} s"
grep -q '^DW-GUEST-END' "$tmp/console.log" || { tail -n 60 "$tmp/console.log"; die "the guest test did not end"; }

# --- results ---------------------------------------------------------------------------
debugfs -R "rdump /out $tmp" "$tmp/root.img" >/dev/null 2>"$tmp/debugfs.err" || die "debugfs rdump /out failed"
rm -f "$tmp/root.img"
while read -r _ name verdict rest; do
    case $verdict in
    PASS) ok "6.1 guest: $name${rest:+ ($rest)}" ;;
    *) fail "6.1 guest: $name${rest:+ ($rest)}" ;;
    esac
done < <(grep '^DW-CHECK ' "$tmp/console.log")
grep '^DW-MODE ' "$tmp/console.log" | sed 's/^DW-MODE /auto-detection on 6.1: /' || true
grep '^DW-FACT ' "$tmp/console.log" | sed 's/^DW-FACT /kernel fact on 6.1: /' || true
python3 "$here/check_guest.py" "$dw" "$tmp/out" || fail "captures (check_guest.py)"
grep -q '^DW-CHECK ' "$tmp/console.log" || fail "no check reported by the guest"
dw_finish "kernel $kver: all checks passed"
