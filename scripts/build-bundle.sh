#!/bin/bash
# build-bundle.sh BUILD_DIR OUT.tar.gz: driftwatch for hosts whose userland is older than
# Debian 12 (glibc < 2.36, no gRPC 1.51 or protobuf 3.21 packages) and that run no container
# runtime: the image's root filesystem (scripts/build-image.sh: the binaries, the shipped
# rules, exactly the libraries they link and glibc's loader) in one directory, with launchers
# in bin/ that run each binary through the bundle's own loader and libraries, so nothing of
# the host's userland is used. Unpack anywhere (e.g. /opt), then run
# /opt/driftwatch-VERSION/bin/driftwatch-sensor. glibc 2.36 needs Linux 3.2+; what the sensor
# needs of the kernel is in the README ("Run it on your nodes").
set -euo pipefail
die() { echo "build-bundle: $*" >&2; exit 1; }
[[ $# == 2 ]] || die "usage: build-bundle.sh BUILD_DIR OUT.tar.gz"
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd) || die "no build directory $1"
out=$2
case $out in /*) ;; *) out=$PWD/$out ;; esac
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
[[ -n $version ]] || die "$build is not a configured build directory"
stage=$(mktemp -d "${TMPDIR:-/tmp}/dw-build-bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
rootfs=$stage/rootfs
DW_ROOTFS_OUT=$rootfs "$root/scripts/build-image.sh" "$build" /dev/null >/dev/null
name=driftwatch-$version
dir=$stage/$name
mkdir -p "$dir/bin"
mv "$rootfs/usr" "$dir/usr"
mkdir -p "$dir/etc"
mv "$rootfs/etc/driftwatch" "$dir/etc/driftwatch"
loader=$(cd "$dir" && ls usr/lib/*/ld-linux*.so.* 2>/dev/null | head -1)
[[ -n $loader ]] || die "no dynamic loader in the image's root filesystem"
libdir=${loader%/*}
for b in driftwatch driftwatch-sensor driftwatch-collector; do
    [[ -x $dir/usr/bin/$b ]] || die "no usr/bin/$b"
    # The binary run by the bundle's loader (/proc/self/exe is then the loader: the rules are
    # named by DRIFTWATCH_RULES_DIR, unless the caller set it).
    cat >"$dir/bin/$b" <<LAUNCHER
#!/bin/sh
here=\$(readlink -f "\$(dirname "\$(readlink -f "\$0")")/..")
export DRIFTWATCH_RULES_DIR="\${DRIFTWATCH_RULES_DIR:-\$here/usr/share/driftwatch/rules}"
exec "\$here/$loader" --library-path "\$here/$libdir" "\$here/usr/bin/$b" "\$@"
LAUNCHER
    chmod 0755 "$dir/bin/$b"
done
tar --sort=name --owner=0 --group=0 --numeric-owner -C "$stage" -czf "$out" "$name"
echo "bundle=$out"
echo "size=$(stat -c %s "$out")"
