#include "lib/base/terminal_text.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "lib/base/log.h"

namespace driftwatch {
namespace {

using namespace std::string_literals;

struct Row {
  std::string in;
  std::string out;  // what TerminalEscape prints; == in: accepted as is
};

std::vector<Row> Rows() {
  return {
      // Accepted as they are.
      {"", ""},
      {"/usr/bin/curl -o /tmp/x https://x.org/?a", "/usr/bin/curl -o /tmp/x https://x.org/?a"},
      {"payments/payments-api-7d9f8c6b5-x2x7q", "payments/payments-api-7d9f8c6b5-x2x7q"},
      {"caf\xc3\xa9", "caf\xc3\xa9"},                       // U+00E9
      {"\xc2\xa0", "\xc2\xa0"},                             // U+00A0, first after C1
      {"\xc2\xbf", "\xc2\xbf"},                             // U+00BF
      {"\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac"},  // 日本
      {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},             // U+1F600, four bytes
      {"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"},             // U+10FFFF, the last
      {"\xef\xbf\xbd", "\xef\xbf\xbd"},                     // U+FFFD
      // Backslash: escaped, so that escapes can be told from text.
      {"a\\b", "a\\\\b"},
      {"\\x1b", "\\\\x1b"},
      // C0 controls.
      {"\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"},
      {"\x1b]0;owned\x07", "\\x1b]0;owned\\x07"},  // OSC: window title
      {"\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"},        // clear screen
      {"line1\nline2", "line1\\nline2"},
      {"a\tb\rc", "a\\tb\\rc"},
      {"nul\0here"s, "nul\\x00here"},
      {"\x01\x08\x0b\x0c\x1f", "\\x01\\x08\\x0b\\x0c\\x1f"},
      {"\x7f", "\\x7f"},  // DEL
      // C1 controls in UTF-8: every byte shown.
      {"\xc2\x80", "\\xc2\\x80"},
      {"\xc2\x9b" "31m", "\\xc2\\x9b31m"},  // CSI
      {"\xc2\x9d" "0;t\xc2\x9c", "\\xc2\\x9d0;t\\xc2\\x9c"},  // OSC ... ST
      {"\xc2\x9f", "\\xc2\\x9f"},
      {"caf\xc3\xa9\xc2\x9b", "caf\xc3\xa9\\xc2\\x9b"},
      // C1 controls as raw bytes (not UTF-8) and other invalid UTF-8.
      {"\x9b" "2J", "\\x9b2J"},
      {"\x80", "\\x80"},
      {"a\x9f" "b", "a\\x9fb"},
      {"\xc3\xa9\x9b", "\xc3\xa9\\x9b"},            // valid, then a stray continuation byte
      {"\xc3", "\\xc3"},                            // truncated at the end
      {"\xe6\x97", "\\xe6\\x97"},
      {"\xe6\x97x", "\\xe6\\x97x"},                 // truncated before ASCII
      {"\xc3\xc3\xa9", "\\xc3\xc3\xa9"},            // bad lead, then a valid sequence
      {"\xc0\xaf", "\\xc0\\xaf"},                   // overlong '/'
      {"\xc1\xbf", "\\xc1\\xbf"},
      {"\xe0\x80\xaf", "\\xe0\\x80\\xaf"},          // overlong, three bytes
      {"\xf0\x80\x80\xaf", "\\xf0\\x80\\x80\\xaf"},  // overlong, four bytes
      {"\xed\xa0\x80", "\\xed\\xa0\\x80"},          // surrogate U+D800
      {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"},  // U+110000
      {"\xf5\x80\x80\x80", "\\xf5\\x80\\x80\\x80"},
      {"\xff\xfe", "\\xff\\xfe"},
      {"\xe2\x80\x8b", "\xe2\x80\x8b"},  // U+200B: not a control, kept (see header)
  };
}

TEST(TerminalTextTest, Table) {
  for (const Row& r : Rows()) {
    std::string got = TerminalEscape(r.in);
    EXPECT_EQ(got, r.out) << "input: " << TerminalEscape(r.in);
    EXPECT_EQ(IsTerminalClean(r.in), r.in == r.out) << r.out;
    std::string appended = "x";
    AppendTerminalEscaped(r.in, &appended);
    EXPECT_EQ(appended, "x" + r.out);
  }
}

// Undoes TerminalEscape: \\, \t, \n, \r, \xHH; everything else is itself.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out.push_back(s[i]);
      continue;
    }
    char c = s.at(++i);
    if (c == '\\') out.push_back('\\');
    else if (c == 't') out.push_back('\t');
    else if (c == 'n') out.push_back('\n');
    else if (c == 'r') out.push_back('\r');
    else if (c == 'x') {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      ADD_FAILURE() << "unknown escape \\" << c;
    }
  }
  return out;
}

// Nothing a terminal acts on is left: no C0 control, DEL, C1 (raw or UTF-8), invalid UTF-8.
// Backslashes are fine here (escapes are made of them).
bool Harmless(const std::string& s) {
  std::string no_backslash;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) < 0xa0)
      return false;
    if (c != '\\') no_backslash.push_back(s[i]);
  }
  return IsTerminalClean(no_backslash);  // and valid UTF-8
}

TEST(TerminalTextTest, RandomBytesRoundTripAndAreHarmless) {
  std::mt19937 rng(20261128);
  // Bytes weighted towards the interesting ranges: controls, C1, lead and continuation bytes.
  const std::string alphabet =
      "ab\\\x1b\x07\n\t\r\x7f\x80\x9b\x9f\xa0\xbf\xc2\xc3\xe0\xed\xef\xf0\xf4\xff"s + '\0';
  for (int n = 0; n < 20000; ++n) {
    std::string in;
    size_t len = rng() % 12;
    for (size_t i = 0; i < len; ++i) {
      in.push_back(rng() % 4 == 0 ? static_cast<char>(rng() % 256)
                                  : alphabet[rng() % alphabet.size()]);
    }
    std::string out = TerminalEscape(in);
    ASSERT_EQ(Unescape(out), in) << out;
    ASSERT_TRUE(Harmless(out)) << out;
    ASSERT_EQ(IsTerminalClean(in), out == in) << out;
  }
}

TEST(TerminalTextTest, LinesKeepTheirNewlines) {
  EXPECT_EQ(TerminalEscapeLines("ambiguous:\n  a\x1b[2J\n  b\r"),
            "ambiguous:\n  a\\x1b[2J\n  b\\r");
  EXPECT_EQ(TerminalEscapeLines("\n"), "\n");
  EXPECT_EQ(TerminalEscapeLines(""), "");
  EXPECT_EQ(TerminalEscapeLines("a\\b"), "a\\\\b");
}

// Logf writes to fd 2: catch it in a temp file.
class StderrCapture {
 public:
  StderrCapture() {
    char path[] = "/tmp/dw_log_test_XXXXXX";
    fd_ = mkstemp(path);
    unlink(path);
    saved_ = dup(STDERR_FILENO);
    dup2(fd_, STDERR_FILENO);
  }
  ~StderrCapture() { Restore(); }
  std::string Take() {
    Restore();
    std::string s;
    char buf[4096];
    lseek(fd_, 0, SEEK_SET);
    for (ssize_t n; (n = read(fd_, buf, sizeof buf)) > 0;) s.append(buf, static_cast<size_t>(n));
    return s;
  }

 private:
  void Restore() {
    if (saved_ < 0) return;
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
  }
  int fd_ = -1;
  int saved_ = -1;
};

TEST(LogTest, TextFormatEscapes) {
  ASSERT_TRUE(SetLogFormat("dw-test", "text"));
  StderrCapture cap;
  LogInfo("node %s connected from %s", "evil\x1b]0;pwned\x07\xc2\x9b" "2J", "a\nb\\\x9b\n");
  EXPECT_EQ(cap.Take(),
            "dw-test: node evil\\x1b]0;pwned\\x07\\xc2\\x9b2J connected from a\\nb\\\\\\x9b\n");
}

TEST(LogTest, JsonFormatIsValidJsonWithoutControls) {
  ASSERT_TRUE(SetLogFormat("dw-test", "json"));
  const std::string msg = "evil\x1b[31m\x7f\xc2\x9b\xc2\x85 caf\xc3\xa9\t\"q\" \\";
  StderrCapture cap;
  LogWarn("%s", msg.c_str());
  std::string line = cap.Take();
  ASSERT_TRUE(SetLogFormat("dw-test", "text"));
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  line.pop_back();
  EXPECT_TRUE(Harmless(line)) << TerminalEscape(line);
  EXPECT_NE(line.find("\\u001b[31m\\u007f\\u009b\\u0085 caf\xc3\xa9\\t\\\"q\\\" \\\\"),
            std::string::npos)
      << line;
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["msg"], msg);
  EXPECT_EQ(j["level"], "warning");
  EXPECT_EQ(j["program"], "dw-test");
}

}  // namespace
}  // namespace driftwatch
