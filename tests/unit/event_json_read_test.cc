// Event JSON read back (lib/event/event_json_read.h): every golden event reads and writes
// back byte for byte, every field of the table is exercised by a round trip, refused input
// names its field (and file:line), hostile lines cost no recursion and no crash.
#include "lib/event/event_json_read.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lib/event/event_fields.h"
#include "lib/event/event_json.h"
#include "lib/event/event_view.h"
#include "unit/json_check.h"

namespace driftwatch {
namespace {

std::string Write(const EventRead& r) {
  std::string out;
  EXPECT_TRUE(AppendEventJson(r.event, r.container ? &*r.container : nullptr, &out));
  return out;
}

// Reads `line`, writes it again: the same bytes, or the test fails naming the line.
void ExpectRoundTrip(const std::string& line, std::set<std::string>* keys = nullptr) {
  auto read = ParseEventJson(line);
  ASSERT_TRUE(read) << read.error() << "\n  in " << line;
  EXPECT_EQ(Write(*read), line);
  if (keys == nullptr) return;
  testing::JsonValue v;
  ASSERT_EQ(testing::JsonReader::Parse(line, &v), "");
  for (const auto& [k, _] : v.members) keys->insert(k);
}

std::vector<std::string> GoldenLines() {
  std::vector<std::string> lines;
  const auto dir = std::filesystem::path(DW_SOURCE_DIR) / "tests/golden/event_json";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string line;
    std::getline(in, line);
    lines.push_back(line);
  }
  return lines;
}

// Events of fields no golden prints, so that every field's setter is round-tripped.
const char* const kMoreLines[] = {
    R"j({"evt.time":"1970-01-01T00:00:00.000000000Z","evt.num":0,"evt.type":"bind","evt.res":"SUCCESS","evt.rawres":0,"fd.name":"10.0.0.5:8080","fd.typechar":"4","fd.type":"ipv4","fd.num":3,"fd.sip":"10.0.0.5","fd.sport":8080,"proc.pid":1,"proc.ppid":0,"proc.name":"srv","proc.exepath":"/srv","proc.cwd":"/","proc.tty":"(none)","user.uid":0,"user.loginuid":-1,"container.id":"host","container.full_id":"host"})j",
    R"j({"evt.time":"1970-01-01T00:00:00.000000000Z","evt.num":0,"evt.type":"connect","evt.res":"SUCCESS","evt.rawres":0,"fd.name":"/run/x\udcff.sock","fd.typechar":"u","fd.type":"unix","proc.pid":1,"proc.ppid":0,"proc.name":"c","proc.exepath":"/c","proc.cwd":"/","proc.tty":"(none)","user.uid":0,"user.loginuid":-1,"container.id":"host","container.full_id":"host"})j",
};

TEST(EventJsonRead, GoldenEventsRoundTrip) {
  std::set<std::string> keys;
  const std::vector<std::string> lines = GoldenLines();
  ASSERT_GE(lines.size(), 10u);
  for (const std::string& line : lines) ExpectRoundTrip(line, &keys);
  for (const char* line : kMoreLines) ExpectRoundTrip(line, &keys);
  // A field no line prints would not be tested by the round trip: add a line for it.
  for (const EventField& f : EventFields()) {
    if (f.kinds.empty()) continue;
    EXPECT_TRUE(keys.contains(std::string(f.name))) << f.name << " never read";
  }
}

TEST(EventJsonRead, NonUtf8BytesRoundTrip) {
  auto r = ParseEventJson(
      R"({"evt.type":"openat","fd.name":"/tmp/a\udcc3(\udcff","fd.write_kind":"close_write"})");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->event.write().path(), "/tmp/a\xc3(\xff");
  EXPECT_NE(Write(*r).find(R"("fd.name":"/tmp/a\udcc3(\udcff")"), std::string::npos);
  // Escapes of valid text and pairs are decoded as UTF-8.
  auto u = ParseEventJson(R"({"evt.type":"openat","fd.name":"\u00e9\ud83d\ude00\n\"\\\/"})");
  ASSERT_TRUE(u) << u.error();
  EXPECT_EQ(u->event.write().path(), "\xc3\xa9\xf0\x9f\x98\x80\n\"\\/");
}

TEST(EventJsonRead, HandWrittenExecInAContainer) {
  auto r = ParseEventJson(
      R"({"evt.type":"execve","evt.res":"SUCCESS","proc.name":"bash","proc.args":["-c","id"],)"
      R"("container.id":"web1","container.name":"web","k8s.ns.name":"shop"})");
  ASSERT_TRUE(r) << r.error();
  const v1::Event& ev = r->event;
  ASSERT_EQ(KindOf(ev), Kind::kExec);
  EXPECT_TRUE(ev.exec().success());
  EXPECT_EQ(ev.exec().comm(), "bash");
  ASSERT_EQ(ev.exec().args_size(), 3);
  EXPECT_EQ(ev.exec().args(0), "bash");      // argv[0]: the process name when proc.exe is not given
  EXPECT_EQ(ev.exec().auid(), 4294967295u);  // unset, not root
  EXPECT_EQ(ev.container_id(), "web1");
  ASSERT_TRUE(r->container);
  EXPECT_EQ(r->container->id(), "web1");
  EXPECT_EQ(r->container->name(), "web");
  EXPECT_EQ(r->container->pod_namespace(), "shop");
  // Without container.* descriptions there is no container info, only the id.
  auto bare = ParseEventJson(R"({"evt.type":"execve","container.id":"web1"})");
  ASSERT_TRUE(bare);
  EXPECT_FALSE(bare->container);
}

TEST(EventJsonRead, KindFromEventType) {
  struct Case {
    const char* line;
    Kind kind;
  } cases[] = {
      {R"({"evt.type":"execveat"})", Kind::kExec},
      {R"({"evt.type":"fchmodat"})", Kind::kChmod},
      {R"({"evt.type":"openat"})", Kind::kWrite},
      {R"({"evt.type":"openat","sensitive.entry":"/etc/shadow"})", Kind::kRead},
      {R"({"evt.type":"renameat2"})", Kind::kWrite},
      {R"({"evt.type":"container"})", Kind::kContainer},
      {R"({"evt.type":"sensor_status"})", Kind::kStatus},
      {R"({"evt.type":"exec_prevented"})", Kind::kPrevented},
      {R"({"evt.type":"accept4"})", Kind::kNetwork},
  };
  for (const Case& c : cases) {
    auto r = ParseEventJson(c.line);
    ASSERT_TRUE(r) << c.line << ": " << r.error();
    EXPECT_EQ(KindOf(r->event), c.kind) << c.line;
  }
  auto rn = ParseEventJson(R"({"evt.type":"renameat2","fd.name":"/b"})");
  ASSERT_TRUE(rn);
  EXPECT_EQ(rn->event.write().kind(), "rename");
}

// Refused lines, each with the words its error must contain.
TEST(EventJsonRead, RefusedLinesNameTheField) {
  struct Case {
    std::string line;
    std::string error;
  } cases[] = {
      {"", "expected a JSON object"},
      {"[]", "expected a JSON object"},
      {R"({"evt.type":"execve")", "expected ',' or '}'"},
      {R"({"evt.type":"execve"} x)", "text after the object"},
      {R"({"proc.name":"sh"})", "no evt.type"},
      {R"({"evt.type":"read"})", "field 'evt.type': \"read\" is not an event type"},
      {R"({"evt.type":"execve","proc.nmae":"sh"})", "unknown field \"proc.nmae\""},
      {R"({"evt.type":"execve","proc.pid":"42"})",
       "field 'proc.pid': column 33: expected an integer, not a string"},
      {R"({"evt.type":"execve","proc.name":42})",
       "field 'proc.name': column 34: expected a string, not a number"},
      {R"({"evt.type":"execve","proc.args":"-c"})",
       "field 'proc.args': column 34: expected a list of strings"},
      {R"({"evt.type":"execve","proc.args":["-c",1]})",
       "field 'proc.args': column 40: expected a list of strings: an element"},
      {R"({"evt.type":"execve","proc.args":[["x"]]})", "expected a list of strings: an element"},
      {R"({"evt.type":"execve","proc.name":{"a":1}})", "expected a string, not an object"},
      {R"({"evt.type":"execve","proc.name":null})", "not null"},
      {R"({"evt.type":"execve","proc.pid":1.5})", "not an integer"},
      {R"({"evt.type":"execve","proc.pid":99999999999999999999})", "out of range"},
      {R"({"evt.type":"execve","proc.pid":-1})", "field 'proc.pid': -1: out of range"},
      {R"({"evt.type":"execve","proc.pid":1,"proc.pid":2})", "field 'proc.pid' given twice"},
      {R"({"evt.type":"execve","fd.name":"/x"})", "field 'fd.name': not printed for exec events"},
      {R"({"evt.type":"fchmod","evt.arg.mode":"755"})",
       "field 'evt.arg.mode': \"755\": not octal text"},
      {R"({"evt.type":"execve","proc.name":"sh","proc.cmdline":"bash -c id"})",
       "field 'proc.cmdline': reads back as \"sh\", not \"bash -c id\": it is computed from other "
       "fields"},
      {R"({"evt.type":"execve","container.id":"abc","container.full_id":"def"})",
       "field 'container.id': reads back as \"def\""},
      {R"({"evt.type":"execve","proc.argc":4})", "field 'proc.argc': the event leaves it out"},
      {R"({"evt.type":"execve","evt.time":"2025-12-03T10:40:00Z"})",
       "reads back as \"2025-12-03T10:40:00.000000000Z\""},
      {R"({"evt.type":"openat","fd.name":"\x"})", "bad escape"},
      {R"({"evt.type":"openat","fd.name":"\ud800"})", "unpaired surrogate"},
      {R"({"evt.type":"openat","fd.name":"\udc41"})", "unpaired surrogate"},
      {"{\"evt.type\":\"openat\",\"fd.name\":\"\xff\"}", "not UTF-8"},
      {"{\"evt.type\":\"openat\",\"fd.name\":\"a\x01\"}", "control character"},
      {R"({"evt.type":"openat","fd.name":"abc)", "unterminated string"},
      {R"({"evt.type":"connect","fd.sip":"example.com"})",
       "field 'fd.sip': \"example.com\": not an IP address"},
      {R"({"evt.type":"connect","fd.name":"1.2.3.4:5->6.7.8.9:10"})", "audit gives one side"},
  };
  for (const Case& c : cases) {
    auto r = ParseEventJson(c.line);
    ASSERT_FALSE(r) << "accepted: " << c.line;
    EXPECT_NE(r.error().message().find(c.error), std::string::npos)
        << c.line << "\n  error: " << r.error() << "\n  wanted: " << c.error;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  }
}

TEST(EventJsonRead, HostileLinesCostNoRecursion) {
  // Deep nesting: refused at the first level below what event JSON has.
  for (const char* open : {"[", "{\"a\":"}) {
    std::string deep = R"({"evt.type":"execve","proc.args":)";
    for (int i = 0; i < 1000000; ++i) deep += open;
    auto r = ParseEventJson(deep);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("field 'proc.args'"), std::string::npos) << r.error();
  }
  // A huge string is just bytes.
  std::string big(8 << 20, 'a');
  auto r = ParseEventJson(R"({"evt.type":"execve","proc.argv":[")" + big + R"("]})");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->event.exec().args(0).size(), big.size());
  // Every byte value, escaped as the writer escapes it, reads back as itself.
  std::string all;
  for (int b = 1; b < 256; ++b) all.push_back(static_cast<char>(b));
  v1::Event ev;
  ev.mutable_write()->set_kind("close_write");
  ev.mutable_write()->set_path(all);
  std::string line;
  ASSERT_TRUE(AppendEventJson(ev, &line));
  auto back = ParseEventJson(line);
  ASSERT_TRUE(back) << back.error();
  EXPECT_EQ(back->event.write().path(), all);
  EXPECT_EQ(Write(*back), line);
}

class EventJsonFile : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = (std::filesystem::temp_directory_path() /
             ("dw_event_json_read_" + std::to_string(::getpid()) + ".jsonl"))
                .string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void WriteFile(const std::string& text) {
    std::ofstream out(path_, std::ios::binary);
    out << text;
  }
  std::string path_;
};

TEST_F(EventJsonFile, ErrorsNameFileAndLine) {
  WriteFile(
      "# a "
      "note\n\n{\"evt.type\":\"execve\",\"proc.name\":\"sh\"}\r\n{\"evt.type\":\"execve\",\"proc."
      "pid\":true}\n");
  auto r = ReadEventJsonFile(path_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message().rfind(path_ + ":4: field 'proc.pid'", 0), 0u) << r.error();
}

TEST_F(EventJsonFile, ReadsEveryEventInOrder) {
  WriteFile(
      "{\"evt.type\":\"execve\",\"proc.name\":\"a\"}\n  # indented "
      "note\n{\"evt.type\":\"execve\",\"proc.name\":\"b\"}");
  auto r = ReadEventJsonFile(path_);
  ASSERT_TRUE(r) << r.error();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].event.exec().comm(), "a");
  EXPECT_EQ((*r)[1].event.exec().comm(), "b");
}

TEST_F(EventJsonFile, OverlongLineRefused) {
  WriteFile("{\"evt.type\":\"execve\"}\n" + std::string(kMaxEventJsonLine + 10, ' ') + "\n");
  auto r = ReadEventJsonFile(path_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find(path_ + ":2: line longer than 16 MiB"), std::string::npos)
      << r.error();
}

TEST_F(EventJsonFile, MissingFile) {
  auto r = ReadEventJsonFile(path_ + ".none");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace driftwatch
