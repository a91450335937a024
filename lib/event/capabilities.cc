#include "lib/event/capabilities.h"

#include <array>

namespace driftwatch {
namespace {

// include/uapi/linux/capability.h, in bit order (as falcosecurity/libs' sinsp_utils table).
constexpr std::array<std::string_view, 41> kNames = {
    "CAP_CHOWN",          "CAP_DAC_OVERRIDE",   "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID",         "CAP_KILL",           "CAP_SETGID",          "CAP_SETUID",
    "CAP_SETPCAP",        "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",      "CAP_NET_RAW",        "CAP_IPC_LOCK",        "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",     "CAP_SYS_RAWIO",      "CAP_SYS_CHROOT",      "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",      "CAP_SYS_ADMIN",      "CAP_SYS_BOOT",        "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",   "CAP_SYS_TIME",       "CAP_SYS_TTY_CONFIG",  "CAP_MKNOD",
    "CAP_LEASE",          "CAP_AUDIT_WRITE",    "CAP_AUDIT_CONTROL",   "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",   "CAP_MAC_ADMIN",      "CAP_SYSLOG",          "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",  "CAP_AUDIT_READ",     "CAP_PERFMON",         "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

}  // namespace

std::string_view CapabilityName(unsigned bit) { return bit < kNames.size() ? kNames[bit] : ""; }

void AppendCapabilities(uint64_t caps, std::string* out) {
  bool first = true;
  for (unsigned bit = 0; bit < kNames.size(); ++bit) {
    if ((caps & (uint64_t{1} << bit)) == 0) continue;
    if (!first) out->push_back(' ');
    first = false;
    out->append(kNames[bit]);
  }
}

}  // namespace driftwatch
