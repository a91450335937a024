#include "lib/audit/log_input.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "lib/audit/capture.h"

namespace driftwatch {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/dw-unit-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  std::string Write(const std::string& name, const std::string& content) {
    std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<std::string> Lines(const std::string& path) {
  auto opened = InputStream::Open(path);
  EXPECT_TRUE(opened.has_value()) << (opened ? "" : opened.error().message());
  std::unique_ptr<InputStream> in = std::move(opened).value_or(nullptr);
  std::vector<std::string> out;
  std::string_view line;
  bool too_long;
  while (in && in->NextLine(&line, &too_long)) out.emplace_back(line);
  return out;
}

TEST(InputStream, PlainGzipAndXzReadAlike) {
  TempDir d;
  std::string text = "type=EOE msg=audit(1.000:1): \nsecond\nlast-without-newline";
  d.Write("a.log", text);
  ASSERT_EQ(std::system(("cd " + d.path() + " && gzip -kc a.log > a.gz && xz -kc a.log > a.xz && "
                         "cat a.gz a.gz > twice.gz").c_str()),
            0);
  std::vector<std::string> want = {"type=EOE msg=audit(1.000:1): ", "second", "last-without-newline"};
  EXPECT_EQ(Lines(d.path() + "/a.log"), want);
  EXPECT_EQ(Lines(d.path() + "/a.gz"), want);
  EXPECT_EQ(Lines(d.path() + "/a.xz"), want);
  // Concatenated members continue one stream (the unterminated last line joins the next).
  EXPECT_EQ(Lines(d.path() + "/twice.gz").size(), 5u);
}

TEST(InputStream, TruncatedCompressedInputIsAnError) {
  TempDir d;
  d.Write("a.log", std::string(100000, 'x') + "\n");
  ASSERT_EQ(std::system(("cd " + d.path() + " && xz -c a.log | head -c 100 > cut.xz").c_str()), 0);
  auto in = InputStream::Open(d.path() + "/cut.xz").value_or(nullptr);
  ASSERT_NE(in, nullptr);
  std::string_view line;
  bool too_long;
  while (in->NextLine(&line, &too_long)) {
  }
  EXPECT_FALSE(in->error().empty());
}

TEST(InputStream, OverlongLineIsSkippedWhole) {
  TempDir d;
  std::string p = d.Write("long", std::string(InputStream::kMaxLine + 10, 'y') + "\nnext\n");
  auto in = InputStream::Open(p).value_or(nullptr);
  std::string_view line;
  bool too_long;
  ASSERT_TRUE(in->NextLine(&line, &too_long));
  EXPECT_TRUE(too_long);
  ASSERT_TRUE(in->NextLine(&line, &too_long));
  EXPECT_FALSE(too_long);
  EXPECT_EQ(line, "next");
  EXPECT_EQ(in->line_number(), 2u);
}

TEST(InputStream, MissingFileNamesIt) {
  auto missing = InputStream::Open("/nonexistent/audit.log");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.error().message().find("/nonexistent/audit.log"), std::string::npos);
}

TEST(OrderInputs, RotatedLogsOldestFirst) {
  TempDir d;
  std::string cur = d.Write("audit.log", "type=EOE msg=audit(300.000:3): \n");
  std::string r1 = d.Write("audit.log.1", "type=EOE msg=audit(200.000:2): \n");
  std::string r2 = d.Write("audit.log.2", "type=EOE msg=audit(100.000:1): \n");
  EXPECT_EQ(OrderInputs({cur, r1, r2}), (std::vector<std::string>{r2, r1, cur}));
  std::string junk = d.Write("junk", "nothing here\n");
  EXPECT_EQ(OrderInputs({cur, junk, r1}), (std::vector<std::string>{cur, junk, r1}));
}

TEST(Capture, RoundTrip) {
  TempDir d;
  std::string p = d.path() + "/c.dwcap";
  std::FILE* f = std::fopen(p.c_str(), "wb");
  {
    CaptureWriter w(f);
    for (int i = 1; i <= 3; ++i) {
      v1::Event ev;
      ev.mutable_id()->set_seq(i);
      ev.mutable_exec()->add_args(std::string("\0\xff", 2));
      ASSERT_TRUE(w.Write(ev));
    }
  }
  std::fclose(f);
  auto in = InputStream::Open(p).value_or(nullptr);
  ASSERT_TRUE(IsCapture(in.get()));
  v1::Event ev;
  for (int i = 1; i <= 3; ++i) {
    ASSERT_EQ(ReadCaptureEvent(in.get(), &ev).value_or(false), true);
    EXPECT_EQ(ev.id().seq(), static_cast<uint64_t>(i));
    EXPECT_EQ(ev.exec().args(0), std::string("\0\xff", 2));
  }
  EXPECT_EQ(ReadCaptureEvent(in.get(), &ev).value_or(true), false);
  // A truncated capture is an error, not a silent end.
  ASSERT_EQ(std::system(("head -c -3 " + p + " > " + p + ".cut").c_str()), 0);
  in = InputStream::Open(p + ".cut").value_or(nullptr);
  ASSERT_TRUE(IsCapture(in.get()));
  ASSERT_EQ(ReadCaptureEvent(in.get(), &ev).value_or(false), true);
  ASSERT_EQ(ReadCaptureEvent(in.get(), &ev).value_or(false), true);
  auto cut = ReadCaptureEvent(in.get(), &ev);
  ASSERT_FALSE(cut.has_value());
  EXPECT_EQ(cut.error().code(), ErrorCode::kCorruption);
}

}  // namespace
}  // namespace driftwatch
