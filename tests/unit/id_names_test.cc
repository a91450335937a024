#include "lib/node/id_names.h"

#include <gtest/gtest.h>

#include <string>

#include "lib/event/capabilities.h"

namespace driftwatch {
namespace {

using namespace std::string_literals;

TEST(IdNamesTest, ParsesPasswdAndGroup) {
  IdNames p = ParseIdNames(
      "root:x:0:0:root:/root:/bin/sh\n"
      "# a comment\n"
      "\n"
      "daemon:x:1:1::/:/usr/sbin/nologin\r\n"
      "app:x:1000:1000:App,,,:/home/app:/bin/sh");  // no final newline
  EXPECT_EQ(p.Find(0), "root");
  EXPECT_EQ(p.Find(1), "daemon");
  EXPECT_EQ(p.Find(1000), "app");
  EXPECT_EQ(p.Find(2), "");
  EXPECT_EQ(p.bad_lines, 0u);
  IdNames g = ParseIdNames("root:x:0:\nwheel:x:10:root,app\n");
  EXPECT_EQ(g.Find(10), "wheel");
}

// A container writes its own /etc/passwd: every malformed line is skipped and counted,
// the first entry of an id wins, names are bytes, sizes are bounded.
TEST(IdNamesTest, HostileInput) {
  std::string text =
      "evil\n"                              // no fields
      ":x:5:5::/:\n"                        // empty name
      "+nis::0:0:::\n"                      // NIS compat line
      "-nis:x:6:6:::\n"
      "neg:x:-1:0:::\n"                     // not a number
      "big:x:4294967296:0:::\n"             // beyond 32 bits
      "unset:x:4294967295:0:::\n"           // (uid_t)-1 names no one
      "hex:x:0x10:0:::\n"
      "sp:x: 7:0:::\n"
      "nul\0x:x:8:0:::\n"s                  // NUL in the name
      "\xff\xfe" "bytes:x:9:0:::\n"         // not UTF-8: kept as bytes
      "root:x:0:0:::\n"
      "impostor:x:0:0:::\n"                 // a second uid 0: the first wins
      "twofields:x\n" +
      std::string(kMaxIdNameBytes + 1, 'n') + ":x:11:0:::\n";
  IdNames p = ParseIdNames(text);
  EXPECT_EQ(p.Find(0), "root");
  EXPECT_EQ(p.Find(9), "\xff\xfe" "bytes");
  for (uint32_t id : {5u, 6u, 7u, 8u, 11u, 16u, 4294967295u}) EXPECT_EQ(p.Find(id), "") << id;
  EXPECT_EQ(p.bad_lines, 12u);
  EXPECT_EQ(p.by_id.size(), 2u);

  std::string many;
  for (int i = 0; i < 100; ++i) {
    const std::string n = std::to_string(i);
    many.append("u").append(n).append(":x:").append(n).append(":0:::\n");
  }
  IdNames capped = ParseIdNames(many, 10);
  EXPECT_EQ(capped.by_id.size(), 10u);
  EXPECT_TRUE(capped.capped);
  EXPECT_EQ(capped.Find(9), "u9");
  EXPECT_EQ(capped.Find(10), "");
}

TEST(CapabilitiesTest, RendersNamesAsFalco) {
  std::string s;
  AppendCapabilities(0, &s);
  EXPECT_EQ(s, "");
  AppendCapabilities((1ull << 0) | (1ull << 21), &s);
  EXPECT_EQ(s, "CAP_CHOWN CAP_SYS_ADMIN");
  // Docker's default set (00000000a80425fb).
  s.clear();
  AppendCapabilities(0xa80425fb, &s);
  EXPECT_EQ(s,
            "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_KILL CAP_SETGID CAP_SETUID "
            "CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_SYS_CHROOT CAP_MKNOD "
            "CAP_AUDIT_WRITE CAP_SETFCAP");
  // Every bit: 41 names, and bits no kernel names yet left out.
  s.clear();
  AppendCapabilities(~0ull, &s);
  EXPECT_TRUE(s.starts_with("CAP_CHOWN CAP_DAC_OVERRIDE"));
  EXPECT_TRUE(s.ends_with("CAP_PERFMON CAP_BPF CAP_CHECKPOINT_RESTORE"));
  EXPECT_EQ(CapabilityName(41), "");
  EXPECT_EQ(CapabilityName(16), "CAP_SYS_MODULE");
}

}  // namespace
}  // namespace driftwatch
