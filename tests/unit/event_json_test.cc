#include "lib/event/event_json.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <vector>

#include "unit/json_check.h"

#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/base/utf8.h"

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

// Lossless and deterministic: every byte string comes back exactly from its JSON string
// (read by a strict reader with the \udc80..\udcff convention), and the JSON is valid
// (escaped controls, valid UTF-8 only, no other lone surrogate).
TEST(JsonString, EveryByteStringRoundTrips) {
  auto round_trip = [](const std::string& bytes) {
    std::string json = JsonQuote(bytes);
    testing::JsonValue v;
    std::string err = testing::JsonReader::Parse(json, &v);
    EXPECT_EQ(err, "") << json;
    EXPECT_EQ(v.kind, testing::JsonValue::Kind::kString);
    EXPECT_EQ(v.text, bytes) << json;
    EXPECT_EQ(JsonQuote(bytes), json);  // deterministic
    EXPECT_TRUE(IsUtf8(json)) << json;
    for (char c : json) EXPECT_GE(static_cast<unsigned char>(c), 0x20u) << json;
  };
  for (int b = 0; b < 256; ++b) round_trip(std::string(1, static_cast<char>(b)));
  for (const char* s : {"\xED\xB2\x80",        // a surrogate (U+DC80) in UTF-8: invalid
                        "\xF4\x90\x80\x80",    // past U+10FFFF
                        "\xE0\x80\xAF",        // overlong
                        "\xC3", "\xE2\x82",    // truncated at the end
                        "\xC3(", "\xF0\x9F\x98\x80 \xF0\x9F\x98",  // truncated inside
                        "\\udcff"}) {           // the escape's own text, as plain text
    round_trip(s);
  }
  std::mt19937 rng(11);
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 24, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xFF);
    round_trip(s);
  }
  EXPECT_TRUE(IsUtf8("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsUtf8("/tmp/\xffx"));
  EXPECT_FALSE(IsUtf8("\xED\xB2\x80"));
}

// The issue-11 shapes: a dropped binary whose name is not UTF-8, run with such arguments,
// in a container whose names and labels are not UTF-8 either. Every event is valid JSON and
// gives its bytes back.
TEST(EventJson, BytesThatAreNotUtf8AreKeptInEveryEventKind) {
  const std::string path = "/tmp/\xffx";
  const std::string arg = "\x80\xfe \xC3\xA9 \x1b[31m";
  auto parse = [](const std::string& json) {
    testing::JsonValue v;
    std::string err = testing::JsonReader::Parse(json, &v);
    EXPECT_EQ(err, "") << json;
    return v;
  };
  auto str = [](const testing::JsonValue& o, const char* key) {
    const testing::JsonValue* v = o.Get(key);
    return v && v->kind == testing::JsonValue::Kind::kString ? v->text : std::string("<none>");
  };

  v1::ContainerInfo c;
  c.set_id(std::string(64, 'c'));
  c.set_name("app\xff");
  c.set_pod_name("web-\xfe");
  c.set_pod_namespace("shop");
  c.set_image("localhost/img\xff:1");
  c.set_upperdir("/var/lib/c\xff/fs");
  c.set_cgroup_path("/kubepods/\xff");
  v1::Label* l = c.add_labels();
  l->set_key("k\xfe");
  l->set_value("v\xff");

  v1::Event w;
  w.set_time_ns(1700000000000000000);
  w.set_container_id(c.id());
  w.mutable_write()->set_kind("close_write");
  w.mutable_write()->set_path(path);
  w.mutable_write()->set_upper_path("/var/lib/c\xff/fs" + path);
  w.mutable_write()->set_comm("cp\xff");
  w.mutable_write()->set_exe("/bin/\xff");
  std::string out;
  ASSERT_TRUE(AppendEventJson(w, &c, &out));
  testing::JsonValue j = parse(out);
  EXPECT_EQ(str(j, "fd.name"), path);
  EXPECT_EQ(str(j, "fd.directory"), "/tmp");
  EXPECT_EQ(str(j, "fd.filename"), "\xffx");
  EXPECT_EQ(str(j, "fd.upper_path"), "/var/lib/c\xff/fs" + path);
  EXPECT_EQ(str(j, "proc.name"), "cp\xff");
  EXPECT_EQ(str(j, "container.name"), "app\xff");
  EXPECT_EQ(str(j, "k8s.pod.name"), "web-\xfe");
  EXPECT_NE(out.find(R"("fd.name":"/tmp/\udcffx")"), std::string::npos) << out;

  v1::Event e;
  e.set_time_ns(1700000000000000001);
  e.set_container_id(c.id());
  auto* x = e.mutable_exec();
  x->set_syscall("execve");
  x->set_success(true);
  x->set_comm("\xffx");
  x->set_exe(path);
  x->set_path(path);
  x->set_cwd("/tmp/\xfe");
  x->add_args(path);
  x->add_args(arg);
  x->set_user_name("r\xfft");
  out.clear();
  ASSERT_TRUE(AppendEventJson(e, &c, &out));
  j = parse(out);
  EXPECT_EQ(str(j, "proc.exepath"), path);
  EXPECT_EQ(str(j, "evt.arg.filename"), path);
  EXPECT_EQ(str(j, "proc.name"), "\xffx");
  EXPECT_EQ(str(j, "proc.cwd"), "/tmp/\xfe");
  EXPECT_EQ(str(j, "proc.cmdline"), "\xffx " + arg);
  EXPECT_EQ(str(j, "user.name"), "r\xfft");
  const testing::JsonValue* argv = j.Get("proc.argv");
  ASSERT_TRUE(argv != nullptr);
  ASSERT_EQ(argv->items.size(), 2u);
  EXPECT_EQ(argv->items[0].text, path);
  EXPECT_EQ(argv->items[1].text, arg);
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << "control characters are escaped";

  v1::Event ch;
  ch.set_container_id(c.id());
  ch.mutable_chmod()->set_syscall("fchmodat");
  ch.mutable_chmod()->set_path(path);
  ch.mutable_chmod()->set_comm("chmod\xff");
  out.clear();
  ASSERT_TRUE(AppendEventJson(ch, &out));
  j = parse(out);
  EXPECT_EQ(str(j, "fd.name"), path);
  EXPECT_EQ(str(j, "proc.name"), "chmod\xff");

  v1::Event ci;
  ci.set_container_id(c.id());
  *ci.mutable_container() = c;
  out.clear();
  ASSERT_TRUE(AppendEventJson(ci, &out));
  j = parse(out);
  EXPECT_EQ(str(j, "container.name"), "app\xff");
  EXPECT_EQ(str(j, "container.upperdir"), "/var/lib/c\xff/fs");
  EXPECT_EQ(str(j, "container.cgroup"), "/kubepods/\xff");
  EXPECT_EQ(str(j, "container.image"), "localhost/img\xff:1");
}

// The wire contract of issue 11: a proto3 `string` that is not UTF-8 makes the whole event
// unparsable, so every field that carries text from outside the sensor is `bytes`. The
// string fields left, each with why no outside bytes reach it. A new string field fails
// this test until it is listed here (or made bytes).
TEST(EventModel, StringFieldsAreOnlyTheSensorsOwn) {
  const std::set<std::string> allowed = {
      // Numbered and named by the sensor; the node name is checked at start (UTF-8).
      "driftwatch.v1.EventId.node", "driftwatch.v1.EventId.boot_id",
      // Runtimes allow [A-Za-z0-9._-] in ids; from cgroup paths only in that form.
      "driftwatch.v1.Event.container_id", "driftwatch.v1.ContainerInfo.id",
      // The sensor's vocabulary: syscall, errno, architecture and kind names.
      "driftwatch.v1.ProcessExec.syscall", "driftwatch.v1.ProcessExec.errno_name",
      "driftwatch.v1.ProcessExec.arch", "driftwatch.v1.Chmod.syscall",
      "driftwatch.v1.Chmod.errno_name", "driftwatch.v1.Chmod.arch",
      "driftwatch.v1.NetworkActivity.syscall", "driftwatch.v1.NetworkActivity.errno_name",
      "driftwatch.v1.NetworkActivity.arch",
      "driftwatch.v1.FileWrite.kind", "driftwatch.v1.ContainerInfo.runtime",
      "driftwatch.v1.ExecPrevented.reason",
      "driftwatch.v1.ContainerInfo.state", "driftwatch.v1.ContainerInfo.source",
      // Named by the sensor from CRI's MountPropagation enum ("private", "rslave", ...).
      "driftwatch.v1.Mount.propagation",
      // Kernel-formatted tty names ("pts0", "(none)").
      "driftwatch.v1.ProcessExec.tty", "driftwatch.v1.Chmod.tty",
      "driftwatch.v1.NetworkActivity.tty",
      // The sensor's own status: modes, versions, the CRI socket given on its command line.
      "driftwatch.v1.SensorStatus.audit_mode", "driftwatch.v1.SensorStatus.fanotify_mode",
      "driftwatch.v1.SensorStatus.sensor_version", "driftwatch.v1.SensorStatus.kernel_version",
      "driftwatch.v1.SensorStatus.runtime_endpoint", "driftwatch.v1.SensorStatus.prevent_mode",
  };
  std::set<std::string> found;
  std::set<const google::protobuf::Descriptor*> seen;
  std::vector<const google::protobuf::Descriptor*> todo = {v1::Event::descriptor()};
  while (!todo.empty()) {
    const google::protobuf::Descriptor* d = todo.back();
    todo.pop_back();
    if (!seen.insert(d).second) continue;
    for (int i = 0; i < d->field_count(); ++i) {
      const google::protobuf::FieldDescriptor* f = d->field(i);
      if (f->type() == google::protobuf::FieldDescriptor::TYPE_STRING) found.insert(f->full_name());
      if (f->message_type()) todo.push_back(f->message_type());
    }
  }
  for (const std::string& f : found) EXPECT_TRUE(allowed.count(f)) << f << " is a string field";
  // A bytes field with bad UTF-8 survives the round trip; a string field would not.
  v1::Event ev;
  ev.mutable_write()->set_upper_path("/x\xff");
  ev.mutable_container()->set_name("\xfe");  // (the oneof keeps the last)
  v1::Event back;
  ASSERT_TRUE(back.ParseFromString(ev.SerializeAsString()));
  EXPECT_EQ(back.container().name(), "\xfe");
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
