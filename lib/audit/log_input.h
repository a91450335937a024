// Offline input: audit.log files (plain, .gz, .xz: recognized by their magic bytes, so
// compressed stdin works too) and sensor capture files, read in large blocks and split
// into lines without copying. Thread-compatible.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/result.h"

namespace driftwatch {

// A stream of bytes: a file, stdin, or a decompressor over one.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to n bytes; 0 at the end; -1 on error (error() says why).
  virtual long Read(char* buf, size_t n) = 0;
  const std::string& error() const { return error_; }

 protected:
  std::string error_;
};

class InputStream {
 public:
  // "-" is stdin. Error: the file cannot be opened or read (the message names it).
  static Result<std::unique_ptr<InputStream>> Open(const std::string& path);

  const std::string& name() const { return name_; }

  // The next bytes, without consuming them (fewer at the end of input).
  std::string_view Peek(size_t n);

  // Next line without its newline. A line over kMaxLine is skipped whole and returned
  // empty with *too_long set.
  // False at the end of input or on a read error (see error()).
  bool NextLine(std::string_view* line, bool* too_long);
  uint64_t line_number() const { return line_number_; }

  // Exactly n bytes into *out; false at a short read.
  bool ReadExact(size_t n, std::string* out);
  // A protobuf varint; false at the end of input or on a malformed varint.
  bool ReadVarint(uint64_t* v);
  bool at_end();

  const std::string& error() const { return source_->error(); }
  static constexpr size_t kMaxLine = 1 << 20;

 private:
  InputStream(std::string name, std::unique_ptr<ByteSource> source);
  // Makes at least `want` bytes available from pos_ if the input has them.
  bool Fill(size_t want);

  std::string name_;
  std::unique_ptr<ByteSource> source_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  uint64_t line_number_ = 0;
};

// Time (ms) of the first audit record in a file, for ordering rotated logs; 0 if none
// is found near the start (or for stdin and captures).
uint64_t FirstRecordTimeMs(const std::string& path);

// Orders input files oldest first by their first record (audit.log.2, audit.log.1,
// audit.log), keeping the given order where times are equal or unknown.
std::vector<std::string> OrderInputs(const std::vector<std::string>& paths);

}  // namespace driftwatch
