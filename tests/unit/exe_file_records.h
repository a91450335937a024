// Audit records of execs that run another file than exe= names, written by auditd (RAW
// format) on this machine (Linux 6.18) while tests/integration/fd_exec.c, the host's dash
// and its glibc loader ran in /tmp/exe-exp: one exec per serial, PROCTITLE and BPRM_FCAPS
// left out.
//   234663  fd_exec memfd payload /bin/busybox echo memfd-ran   (execveat on a memfd)
//   234665  fd_exec fd /tmp/exe-exp/dropped echo fd-ran          (execveat on a file's fd)
//   234667  fd_exec fd-unlinked d2 echo unl-ran                  (the same, unlinked first)
//   234669  fd_exec proc-fd /bin/busybox echo procfd-ran         (execve /proc/self/fd/4)
//   234670  /lib64/ld-linux-x86-64.so.2 /tmp/exe-exp/truecopy
//   234671  /lib64/ld-linux-x86-64.so.2 --library-path /nonexist ./truecopy a b
//   234672  ./s.sh                                               (#!/bin/sh)
//   234673  ./s2.sh                                              (#!/tmp/exe-exp/s.sh)
//   234685  /usr/bin/true                                        (a dynamic ELF)
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "unit/test_util.h"

namespace driftwatch::testing {

inline constexpr char kExeFileRecords[] = R"log(
type=SYSCALL msg=audit(1796341154.692:234663): arch=c000003e syscall=322 success=yes exit=0 a0=5 a1=49083d a2=7ffd2bd33eb8 a3=7ffd2bd33ed0 items=1 ppid=14218 pid=14275 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="memfd:payload" exe=2F6D656D66643A7061796C6F6164202864656C6574656429 key="dwexp"
type=EXECVE msg=audit(1796341154.692:234663): argc=2 a0="echo" a1="memfd-ran"
type=CWD msg=audit(1796341154.692:234663): cwd="/tmp/exe-exp"
type=PATH msg=audit(1796341154.692:234663): item=0 name="" inode=1055 dev=00:01 mode=0100777 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=SYSCALL msg=audit(1796341154.712:234665): arch=c000003e syscall=322 success=yes exit=0 a0=4 a1=49083d a2=7ffc3a127f50 a3=7ffc3a127f68 items=1 ppid=14218 pid=14276 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="dropped" exe="/tmp/exe-exp/dropped" key="dwexp"
type=EXECVE msg=audit(1796341154.712:234665): argc=2 a0="echo" a1="fd-ran"
type=CWD msg=audit(1796341154.712:234665): cwd="/tmp/exe-exp"
type=PATH msg=audit(1796341154.712:234665): item=0 name="" inode=11010087 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=SYSCALL msg=audit(1796341154.728:234667): arch=c000003e syscall=322 success=yes exit=0 a0=4 a1=49083d a2=7ffe7a49bc40 a3=7ffe7a49bc58 items=1 ppid=14218 pid=14277 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="d2" exe=2F746D702F6578652D6578702F6432202864656C6574656429 key="dwexp"
type=EXECVE msg=audit(1796341154.728:234667): argc=2 a0="echo" a1="unl-ran"
type=CWD msg=audit(1796341154.728:234667): cwd="/tmp/exe-exp"
type=PATH msg=audit(1796341154.728:234667): item=0 name="" inode=11010106 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=SYSCALL msg=audit(1796341154.740:234669): arch=c000003e syscall=59 success=yes exit=0 a0=7ffe1a515290 a1=7ffe1a5254a0 a2=7ffe1a5254b8 a3=0 items=1 ppid=14218 pid=14278 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="4" exe="/usr/bin/busybox" key="dwexp"
type=EXECVE msg=audit(1796341154.740:234669): argc=2 a0="echo" a1="procfd-ran"
type=CWD msg=audit(1796341154.740:234669): cwd="/tmp/exe-exp"
type=PATH msg=audit(1796341154.740:234669): item=0 name="/proc/self/fd/4" inode=10977326 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=SYSCALL msg=audit(1796341154.748:234670): arch=c000003e syscall=59 success=yes exit=0 a0=557fa1297840 a1=557fa1295000 a2=557fa12894b0 a3=1205696522bc32d1 items=1 ppid=14218 pid=14279 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="ld-linux-x86-64" exe="/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" key="dwexp"
type=EXECVE msg=audit(1796341154.748:234670): argc=2 a0="/lib64/ld-linux-x86-64.so.2" a1="/tmp/exe-exp/truecopy"
type=CWD msg=audit(1796341154.748:234670): cwd="/tmp/exe-exp"
type=PATH msg=audit(1796341154.748:234670): item=0 name="/lib64/ld-linux-x86-64.so.2" inode=332383 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=SYSCALL msg=audit(1796341154.756:234671): arch=c000003e syscall=59 success=yes exit=0 a0=557fa128add0 a1=557fa127bac0 a2=557fa12894b0 a3=1205696522bc32d1 items=1 ppid=14218 pid=14280 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="ld-linux-x86-64" exe="/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" key="dwexp"
type=EXECVE msg=audit(1796341154.756:234671): argc=6 a0="/lib64/ld-linux-x86-64.so.2" a1="--library-path" a2="/nonexist" a3="./truecopy" a4="a" a5="b"
type=CWD msg=audit(1796341154.756:234671): cwd="/tmp/exe-exp"
type=PATH msg=audit(1796341154.756:234671): item=0 name="/lib64/ld-linux-x86-64.so.2" inode=332383 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=SYSCALL msg=audit(1796341154.772:234672): arch=c000003e syscall=59 success=yes exit=0 a0=557fa1293ee0 a1=557fa1293b90 a2=557fa12894b0 a3=1205696522bc32d1 items=3 ppid=14218 pid=14281 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="s.sh" exe="/usr/bin/dash" key="dwexp"
type=EXECVE msg=audit(1796341154.772:234672): argc=2 a0="/bin/sh" a1="./s.sh"
type=CWD msg=audit(1796341154.772:234672): cwd="/tmp/exe-exp"
type=PATH msg=audit(1796341154.772:234672): item=0 name="./s.sh" inode=11010101 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PATH msg=audit(1796341154.772:234672): item=1 name="/bin/sh" inode=247230 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PATH msg=audit(1796341154.772:234672): item=2 name="/lib64/ld-linux-x86-64.so.2" inode=332383 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=SYSCALL msg=audit(1796341154.788:234673): arch=c000003e syscall=59 success=yes exit=0 a0=557fa12940b0 a1=557fa1294a70 a2=557fa12894b0 a3=1205696522bc32d1 items=4 ppid=14218 pid=14282 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="s2.sh" exe="/usr/bin/dash" key="dwexp"
type=EXECVE msg=audit(1796341154.788:234673): argc=3 a0="/bin/sh" a1="/tmp/exe-exp/s.sh" a2="./s2.sh"
type=CWD msg=audit(1796341154.788:234673): cwd="/tmp/exe-exp"
type=PATH msg=audit(1796341154.788:234673): item=0 name="./s2.sh" inode=11010102 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PATH msg=audit(1796341154.788:234673): item=1 name="/tmp/exe-exp/s.sh" inode=11010101 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PATH msg=audit(1796341154.788:234673): item=2 name="/bin/sh" inode=247230 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PATH msg=audit(1796341154.788:234673): item=3 name="/lib64/ld-linux-x86-64.so.2" inode=332383 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=SYSCALL msg=audit(1796341154.820:234685): arch=c000003e syscall=59 success=yes exit=0 a0=557fa12726b0 a1=557fa12940d0 a2=557fa12894b0 a3=1205696522bc32d1 items=2 ppid=14218 pid=14284 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="true" exe="/usr/bin/true" key="dwexp"
type=EXECVE msg=audit(1796341154.820:234685): argc=1 a0="/usr/bin/true"
type=CWD msg=audit(1796341154.820:234685): cwd="/tmp/exe-exp"
type=PATH msg=audit(1796341154.820:234685): item=0 name="/usr/bin/true" inode=248139 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PATH msg=audit(1796341154.820:234685): item=1 name="/lib64/ld-linux-x86-64.so.2" inode=332383 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
)log";

// The events the parser makes of them, by audit serial.
inline std::map<uint64_t, v1::Event> CapturedExecs() {
  std::vector<std::string> lines;
  std::istringstream in(kExeFileRecords);
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(l);
  PipelineResult res = RunLines(lines);
  EXPECT_EQ(res.errors, 0u);
  std::map<uint64_t, v1::Event> out;
  for (v1::Event& e : res.events) out[e.audit().serial()] = std::move(e);
  return out;
}

}  // namespace driftwatch::testing
