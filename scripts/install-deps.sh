#!/bin/bash
# Installs the Debian 12 packages driftwatch builds, tests and runs with, if missing.
set -euo pipefail
pkgs=(
  # build
  g++ cmake make pkg-config
  libaudit-dev libmnl-dev libboost-dev libboost-system-dev
  protobuf-compiler libprotobuf-dev libgrpc++-dev protobuf-compiler-grpc
  zlib1g-dev liblzma-dev libcli11-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev libsqlite3-dev libsystemd-dev
  libre2-dev
  # the collector's certificates (scripts/make-certs.sh)
  openssl
  # the Debian package (cpack -G DEB: dpkg-shlibdeps, file)
  dpkg-dev file
  # tests
  googletest libgtest-dev libgmock-dev clang libclang-rt-14-dev python3 python3-yaml xz-utils gzip
  sqlite3 curl
  # a shared store for several collectors (issue 17): tests start a private server
  postgresql postgresql-client libpq-dev
  # the kernel-facing tests and the demo
  auditd containerd runc busybox-static
  # the units under a real systemd (systemd-nspawn on a debootstrap tree), Debian 12's kernel
  # under qemu (tests/vm: the guest's image made with mke2fs -d, read back with debugfs)
  systemd-container debootstrap qemu-system-x86 e2fsprogs
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
