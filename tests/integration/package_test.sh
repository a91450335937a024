#!/bin/bash
# Installation and the Debian package, checked from the outside:
# - `DESTDIR=D cmake --install BUILD --prefix /usr` gives the three binaries, the shipped rules,
#   the units (ExecStart naming binaries that exist in the install), the example configs in
#   /etc/driftwatch and the docs; the installed `driftwatch rules check` loads the installed
#   rules (not the source tree's), with no environment variable; another prefix (/opt/dw)
#   gets units that name its own bin/;
# - `cpack -G DEB` makes a package dpkg-deb accepts: Depends from dpkg-shlibdeps (the gRPC,
#   protobuf, audit and mnl libraries), conffiles = the two configs, maintainer scripts that
#   never enable or start a unit, the same files as the install.
# - scripts/build-bundle.sh makes the self-contained tarball for older userlands: unpacked in
#   an empty root (a static busybox for the launchers' sh and /proc, nothing else), its binaries run,
#   load the shipped rules and accept the example configs: no library of the host is used.
# Installing it under a real systemd (and removing it) is systemd_test.sh's part.
# Usage: package_test.sh BUILD_DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
source "$src/tests/integration/harness.sh"
dw_build "$(realpath "${1:?usage: package_test.sh BUILD_DIR}")" collector sensor dw
dw_harness dw_package_test
quiet() { "$@" >"$tmp/quiet.out" 2>&1 || { cat "$tmp/quiet.out"; return 1; }; }

step "cmake --install --prefix /usr"
root=$tmp/root
DESTDIR=$root cmake --install "$build" --prefix /usr >"$tmp/install.log"
for f in usr/bin/driftwatch usr/bin/driftwatch-sensor usr/bin/driftwatch-collector \
         usr/share/driftwatch/rules/driftwatch_macros.yaml usr/share/driftwatch/rules/driftwatch_rules.yaml \
         usr/lib/systemd/system/driftwatch-sensor.service usr/lib/systemd/system/driftwatch-collector.service \
         etc/driftwatch/sensor.yaml etc/driftwatch/collector.yaml usr/share/doc/driftwatch/README.md \
         usr/share/driftwatch/make-certs.sh; do
  check "installed: /$f" test -s "$root/$f"
done
for u in "$root"/usr/lib/systemd/system/*.service; do
  exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$u")
  unit=${u##*/}
  expect "$unit: ExecStart names the installed binary" "$exe" "/usr/bin/${unit%.service}"
  expect "${u##*/}: ExecStart exists in the install" "$(test -x "$root$exe" && echo yes)" yes
  ! grep -q /usr/local "$u" || fail "${u##*/} still names /usr/local"
done
(cd / && env -u DRIFTWATCH_RULES_DIR "$root/usr/bin/driftwatch" rules check) >"$tmp/check.out" 2>&1 ||
  fail "installed driftwatch rules check failed: $(tail -3 "$tmp/check.out")"
check "installed rules check loads the installed rules" \
  grep -q "($root/usr/share/driftwatch/rules/driftwatch_rules.yaml:" "$tmp/check.out"
! grep -q "$src/rules" "$tmp/check.out" || fail "installed binary read the source tree's rules"
expect "installed --version" "$("$root/usr/bin/driftwatch-sensor" --version)" \
  "$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")"
for d in sensor collector; do
  check "installed $d accepts its installed example config" \
    quiet "$root/usr/bin/driftwatch-$d" --config "$root/etc/driftwatch/$d.yaml" --check-config
done

step "cmake --install --prefix /opt/dw"
DESTDIR=$tmp/opt cmake --install "$build" --prefix /opt/dw >/dev/null
expect "prefix /opt/dw: the unit names its bin/" \
  "$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$tmp/opt/opt/dw/lib/systemd/system/driftwatch-sensor.service")" \
  /opt/dw/bin/driftwatch-sensor
check "prefix /opt/dw: configs still in /etc/driftwatch" test -s "$tmp/opt/etc/driftwatch/sensor.yaml"
(cd / && "$tmp/opt/opt/dw/bin/driftwatch" rules check) >"$tmp/check2.out" 2>&1 || true
check "prefix /opt/dw: rules found beside the binary" \
  grep -q "($tmp/opt/opt/dw/share/driftwatch/rules/" "$tmp/check2.out"

step "cpack -G DEB"
(cd "$tmp" && cpack -G DEB -B "$tmp/pkg" --config "$build/CPackConfig.cmake") >"$tmp/cpack.log" 2>&1 ||
  die "cpack failed: $(tail -5 "$tmp/cpack.log")"
deb=$(ls "$tmp"/pkg/driftwatch_*.deb)
dpkg-deb --info "$deb" >"$tmp/info" || die "dpkg-deb refuses $deb"
depends=$(sed -n 's/^ Depends: //p' "$tmp/info")
for lib in libgrpc++1.51 libprotobuf32 libaudit1 libmnl0 libyaml-cpp0.7 libsqlite3-0 libpq5 libc6; do
  [[ ,$depends, == *", $lib "* || ,$depends, == *",$lib "* ]] && ok "Depends: $lib" ||
    fail "Depends lacks $lib: $depends"
done
mkdir "$tmp/ctl"
dpkg-deb --control "$deb" "$tmp/ctl"
expect "conffiles" "$(sort "$tmp/ctl/conffiles" | tr '\n' ' ')" \
  "/etc/driftwatch/collector.yaml /etc/driftwatch/sensor.yaml "
for s in postinst prerm postrm; do
  check "$s is executable" test -x "$tmp/ctl/$s"
  check "$s passes sh -n" sh -n "$tmp/ctl/$s"
done
! grep -v '^ *#' "$tmp/ctl/postinst" | grep -Eq 'systemctl (start|enable|restart)|deb-systemd-invoke start' ||
  fail "postinst starts or enables a unit"
check "prerm stops the units on remove" grep -q 'systemctl stop driftwatch-sensor.service' "$tmp/ctl/prerm"
dpkg-deb --contents "$deb" | awk '$NF !~ /\/$/ { sub(/^\./, "", $NF); print $NF }' | sort >"$tmp/deb.files"
(cd "$root" && find . -type f | sed 's/^\.//' | sort) >"$tmp/install.files"
check "the package holds the install's files" diff "$tmp/install.files" "$tmp/deb.files"
note "$(basename "$deb"): $(stat -c %s "$deb") bytes; Depends: $depends"

step "self-contained bundle in an empty root"
"$src/scripts/build-bundle.sh" "$build" "$tmp/bundle.tar.gz" >"$tmp/bundle.log" 2>&1 ||
  die "build-bundle.sh: $(tail -3 "$tmp/bundle.log")"
if [[ $EUID -eq 0 && -x /bin/busybox ]]; then
  jail=$tmp/jail
  mkdir -p "$jail/bin" "$jail/opt" "$jail/tmp" "$jail/proc"
  cp /bin/busybox "$jail/bin/busybox"
  # /proc as on any host (the sanitizer build's runtime reads it; no library is there).
  mount -t proc proc "$jail/proc" || die "mount proc in the empty root"
  dw_at_exit umount "$jail/proc"
  for t in sh readlink dirname; do ln -s busybox "$jail/bin/$t"; done
  tar -C "$jail/opt" -xzf "$tmp/bundle.tar.gz"
  b=$(cd "$jail/opt" && echo driftwatch-*)
  check "no host library in the empty root" test ! -e "$jail/lib" -a ! -e "$jail/usr"
  expect "bundle: driftwatch-sensor --version" "$(chroot "$jail" "/opt/$b/bin/driftwatch-sensor" --version 2>&1)" \
    "$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")"
  chroot "$jail" "/opt/$b/bin/driftwatch" rules check >"$tmp/bundle-check.out" 2>&1 ||
    fail "bundle: rules check: $(tail -3 "$tmp/bundle-check.out")"
  check "bundle: rules check loads the bundle's rules" \
    grep -q "(/opt/$b/usr/share/driftwatch/rules/driftwatch_rules.yaml:" "$tmp/bundle-check.out"
  for d in sensor collector; do
    check "bundle: driftwatch-$d accepts its example config" \
      quiet chroot "$jail" "/opt/$b/bin/driftwatch-$d" --config "/opt/$b/etc/driftwatch/$d.yaml" --check-config
  done
else
  note "not root or no /bin/busybox: the bundle is built, not run in an empty root"
fi
dw_finish "package: install layout and Debian package ok"
