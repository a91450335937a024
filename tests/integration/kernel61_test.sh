#!/bin/bash
# Issue 16: the sensor's kernel-facing checks on Debian 12's own kernel (6.1 cloud), booted
# under qemu (TCG) with the build on the guest's root image: audit owner and observer
# modes, each fanotify mode forced, a container's processes attributed by cgroup and
# overlay, --prevent drift (denial, image execs, SIGKILL releasing execs), the privileged
# gtests, and the modes auto-detection picks (printed). See tests/vm/kernel_vm.sh.
# Prints SKIP: and exits 0 only when the kernel package cannot be fetched (nor is cached).
# Usage: kernel61_test.sh BUILD_DIR
exec "$(cd "$(dirname "$0")/../vm" && pwd)/kernel_vm.sh" "$@"
