#include "lib/audit/audit_record.h"

#include <gtest/gtest.h>

namespace driftwatch {
namespace {

TEST(ParseLogLine, RawRecord) {
  AuditRecord r;
  ASSERT_EQ(ParseLogLine("type=SYSCALL msg=audit(1795855198.688:75178): arch=c000003e pid=1", &r),
            nullptr);
  EXPECT_EQ(r.type, kAuditSyscall);
  EXPECT_EQ(r.type_name, "SYSCALL");
  EXPECT_EQ(r.sec, 1795855198u);
  EXPECT_EQ(r.msec, 688u);
  EXPECT_EQ(r.serial, 75178u);
  EXPECT_EQ(r.body, "arch=c000003e pid=1");
  EXPECT_TRUE(r.enriched.empty());
  EXPECT_TRUE(r.node.empty());
}

TEST(ParseLogLine, NodePrefixAndEnrichedTail) {
  AuditRecord r;
  ASSERT_EQ(ParseLogLine("node=web-1 type=EXECVE msg=audit(1.002:3): argc=1 a0=\"ls\"\x1d"
                         "ARCH=x86_64 UID=\"root\"",
                         &r),
            nullptr);
  EXPECT_EQ(r.node, "web-1");
  EXPECT_EQ(r.type, kAuditExecve);
  EXPECT_EQ(r.body, "argc=1 a0=\"ls\"");
  EXPECT_EQ(r.enriched, "ARCH=x86_64 UID=\"root\"");
}

TEST(ParseLogLine, UnknownAndNamedTypes) {
  AuditRecord r;
  ASSERT_EQ(ParseLogLine("type=UNKNOWN[1334] msg=audit(1.000:1): x=1", &r), nullptr);
  EXPECT_EQ(r.type, 1334u);
  ASSERT_EQ(ParseLogLine("type=USER_START msg=audit(1.000:2): pid=1", &r), nullptr);
  EXPECT_EQ(r.type, 1105u);
  ASSERT_EQ(ParseLogLine("type=NOT_A_TYPE msg=audit(1.000:2): pid=1", &r), nullptr);
  EXPECT_EQ(r.type, 0u);
}

// Lines that must be refused, each with a reason.
TEST(ParseLogLine, RefusesMalformedLines) {
  const char* bad[] = {
      "",
      "garbage",
      "type=SYSCALL",
      "type=SYSCALL msg=audit(1795855198.688:75178",
      "type=SYSCALL msg=audit(1795855198:75178): x=1",
      "type=SYSCALL msg=audit(abc.688:75178): x=1",
      "type=SYSCALL msg=audit(1.1000:5): x=1",
      "type=SYSCALL msg=audit(1.100:): x=1",
      "node=onlynode",
      "type=SYSCALL msg=audit(1.100:5) x=1",
      "type=SYSCALL msg=audit(1.100.5:6): x=1",
      "type=SYSCALL msg=audit(1.100:5:6): x=1",
      "type=SYSCALL msg=audit(99999999999999999999.100:5): x=1",
      "type=SYSCALL msg=audit(1.100:5x): x=1",
      "type=SYSCALL msg=audit(.100:5): x=1",
      "\x01\x02\xff\xfe binary",
  };
  for (const char* line : bad) {
    AuditRecord r;
    EXPECT_NE(ParseLogLine(line, &r), nullptr) << line;
  }
}

TEST(ParseNetlinkRecord, Payload) {
  AuditRecord r;
  ASSERT_EQ(ParseNetlinkRecord(1320, "audit(1700000000.123:456): ", &r), nullptr);
  EXPECT_EQ(r.type, kAuditEoe);
  EXPECT_EQ(r.serial, 456u);
  EXPECT_TRUE(r.body.empty());
  EXPECT_NE(ParseNetlinkRecord(1300, "no stamp", &r), nullptr);
  // The kernel's records have no ENRICHED part: a \x1d in one (a user message's text) is
  // the body's, not a separator.
  ASSERT_EQ(ParseNetlinkRecord(1107, "audit(1.002:3): msg='a\x1dUID=\"root\"'\n", &r), nullptr);
  EXPECT_EQ(r.sec, 1u);
  EXPECT_EQ(r.msec, 2u);
  EXPECT_EQ(r.serial, 3u);
  EXPECT_EQ(r.body, "msg='a\x1dUID=\"root\"'");
  EXPECT_TRUE(r.enriched.empty());
}

TEST(FieldCursor, QuotedBareAndSingleQuoted) {
  FieldCursor c("a=1 b=\"x y\" msg='op=x res=1' c=(null)");
  std::string_view k, v;
  ASSERT_TRUE(c.Next(&k, &v));
  EXPECT_EQ(k, "a");
  EXPECT_EQ(v, "1");
  ASSERT_TRUE(c.Next(&k, &v));
  EXPECT_EQ(v, "\"x y\"");
  ASSERT_TRUE(c.Next(&k, &v));
  EXPECT_EQ(k, "msg");
  EXPECT_EQ(v, "'op=x res=1'");
  ASSERT_TRUE(c.Next(&k, &v));
  EXPECT_EQ(v, "(null)");
  EXPECT_FALSE(c.Next(&k, &v));
  EXPECT_EQ(c.error(), nullptr);
}

TEST(FieldCursor, ReportsBrokenFields) {
  std::string_view k, v;
  FieldCursor a("a=\"unterminated");
  EXPECT_FALSE(a.Next(&k, &v));
  EXPECT_NE(a.error(), nullptr);
  FieldCursor b("noequals here=1");
  EXPECT_FALSE(b.Next(&k, &v));
  EXPECT_NE(b.error(), nullptr);
}

TEST(DecodeAuditString, QuotedHexNull) {
  std::string s;
  ASSERT_TRUE(DecodeAuditString("\"abc\"", &s));
  EXPECT_EQ(s, "abc");
  ASSERT_TRUE(DecodeAuditString("2F62696E00783D", &s));
  EXPECT_EQ(s, std::string("/bin\0x=", 7));
  ASSERT_TRUE(DecodeAuditString("(null)", &s));
  EXPECT_EQ(s, "");
  EXPECT_FALSE(DecodeAuditString("2F6", &s));   // odd length
  EXPECT_FALSE(DecodeAuditString("2G", &s));    // not hex
}

TEST(Numbers, UnsetIdsAndBases) {
  uint64_t v;
  ASSERT_TRUE(ParseU64("-1", &v));
  EXPECT_EQ(v, 4294967295u);
  EXPECT_FALSE(ParseU64("12x", &v));
  ASSERT_TRUE(ParseHexU64("c000003e", &v));
  EXPECT_EQ(v, 0xc000003eu);
  uint32_t m;
  ASSERT_TRUE(ParseOctalU32("0100755", &m));
  EXPECT_EQ(m, 0100755u);
}

}  // namespace
}  // namespace driftwatch
