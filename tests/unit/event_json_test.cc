#include "lib/event_json.h"

#include <gtest/gtest.h>

namespace driftwatch {
namespace {

std::string J(std::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

TEST(JsonString, EscapesControlQuotesAndInvalidUtf8) {
  EXPECT_EQ(J("plain"), "\"plain\"");
  EXPECT_EQ(J("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(J("\n\t\x01"), "\"\\n\\t\\u0001\"");
  EXPECT_EQ(J("h\xC3\xA9llo \xE2\x82\xAC"), "\"h\xC3\xA9llo \xE2\x82\xAC\"");  // valid UTF-8
  EXPECT_EQ(J("\xFF\xC3"), "\"\\udcff\\udcc3\"");  // invalid bytes, surrogate-escaped
  EXPECT_EQ(J("\xC0\xAF"), "\"\\udcc0\\udcaf\"");  // overlong form is invalid
  EXPECT_EQ(J(std::string("a\0b", 3)), "\"a\\u0000b\"");
}

TEST(IsoTime, Nanoseconds) {
  EXPECT_EQ(FormatIsoTime(1700000000123000000), "2023-11-14T22:13:20.123000000Z");
}

TEST(ContainerId, ShortFormOnlyForHexIds) {
  std::string hex(64, 'a');
  EXPECT_EQ(ShortContainerId(hex), std::string(12, 'a'));
  EXPECT_EQ(ShortContainerId("api-5d8b7c9f4-x2kqp"), "api-5d8b7c9f4-x2kqp");
  EXPECT_EQ(ShortContainerId("host"), "host");
}

TEST(EventJson, ExecFieldsUseFalcoNames) {
  v1::Event ev;
  ev.set_time_ns(1700000000123000000);
  ev.set_container_id("host");
  auto* e = ev.mutable_exec();
  e->set_syscall("execve");
  e->set_success(true);
  e->set_pid(7);
  e->set_comm("exe");
  e->set_path("/proc/self/exe");
  e->add_args("/bin/cat");
  e->add_args("a b");
  e->set_exe("/bin/busybox");
  e->set_auid(4294967295u);
  std::string out;
  ASSERT_TRUE(AppendEventJson(ev, &out));
  EXPECT_NE(out.find("\"evt.type\":\"execve\""), std::string::npos);
  EXPECT_NE(out.find("\"evt.res\":\"SUCCESS\""), std::string::npos);
  EXPECT_NE(out.find("\"proc.name\":\"cat\""), std::string::npos);  // not busybox's "exe"
  EXPECT_NE(out.find("\"proc.args\":[\"a b\"]"), std::string::npos);
  EXPECT_NE(out.find("\"proc.cmdline\":\"cat a b\""), std::string::npos);
  EXPECT_NE(out.find("\"user.loginuid\":-1"), std::string::npos);
  EXPECT_NE(out.find("\"container.id\":\"host\""), std::string::npos);
}

TEST(EventJson, FailedExecNamesErrno) {
  v1::Event ev;
  auto* e = ev.mutable_exec();
  e->set_syscall("execve");
  e->set_success(false);
  e->set_exit(-13);
  e->set_errno_name("EACCES");
  std::string out;
  ASSERT_TRUE(AppendEventJson(ev, &out));
  EXPECT_NE(out.find("\"evt.res\":\"EACCES\""), std::string::npos);
}

}  // namespace
}  // namespace driftwatch
