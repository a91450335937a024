#!/bin/bash
# Builds the Debian package from a build directory (default build/, built first):
#   scripts/package.sh [BUILD]    -> BUILD/driftwatch_<version>_<arch>.deb (path printed)
# The package is `cmake --install` under /usr plus the maintainer scripts of packaging/debian/;
# its Depends come from the binaries (dpkg-shlibdeps).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${1:-$root/build}")
"$root/scripts/build.sh" "$build" >/dev/null
(cd "$build" && cpack -G DEB >cpack.log 2>&1) || { cat "$build/cpack.log" >&2; exit 1; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
deb="$build/driftwatch_${version}_$(dpkg --print-architecture).deb"
[[ -f $deb ]] || { echo "package.sh: cpack made no $deb (see $build/cpack.log)" >&2; exit 1; }
echo "$deb"
