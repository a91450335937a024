#include "lib/audit/log_input.h"

#include <fcntl.h>
#include <lzma.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "lib/audit/audit_record.h"

namespace driftwatch {
namespace {

constexpr size_t kBlock = 4 << 20;

class FdSource : public ByteSource {
 public:
  FdSource(int fd, bool owned) : fd_(fd), owned_(owned) {}
  ~FdSource() override {
    if (owned_) close(fd_);
  }
  long Read(char* buf, size_t n) override {
    for (;;) {
      ssize_t r = read(fd_, buf, n);
      if (r >= 0) return r;
      if (errno == EINTR) continue;
      error_ = std::strerror(errno);
      return -1;
    }
  }

 private:
  int fd_;
  bool owned_;
};

// Decompresses from an inner source that has already delivered `head` (the magic bytes
// read for detection).
class GzipSource : public ByteSource {
 public:
  GzipSource(std::unique_ptr<ByteSource> inner, std::string head)
      : inner_(std::move(inner)), in_(std::move(head)) {
    std::memset(&z_, 0, sizeof z_);
    inflateInit2(&z_, 15 + 32);  // gzip or zlib header, detected
    z_.next_in = reinterpret_cast<Bytef*>(in_.data());
    z_.avail_in = static_cast<uInt>(in_.size());
  }
  ~GzipSource() override { inflateEnd(&z_); }
  long Read(char* buf, size_t n) override {
    z_.next_out = reinterpret_cast<Bytef*>(buf);
    z_.avail_out = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    while (z_.avail_out == n && !done_) {
      if (z_.avail_in == 0) {
        in_.resize(kBlock);
        long r = inner_->Read(in_.data(), in_.size());
        if (r < 0) {
          error_ = inner_->error();
          return -1;
        }
        if (r == 0) {
          error_ = "truncated gzip stream";
          return -1;
        }
        z_.next_in = reinterpret_cast<Bytef*>(in_.data());
        z_.avail_in = static_cast<uInt>(r);
      }
      int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        // Concatenated gzip members (as `cat a.gz b.gz` makes) continue the stream.
        if (z_.avail_in > 0 || PeekMore()) {
          inflateReset(&z_);
        } else {
          done_ = true;
        }
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        error_ = std::string("gzip: ") + (z_.msg ? z_.msg : "corrupt data");
        return -1;
      }
    }
    return static_cast<long>(n - z_.avail_out);
  }

 private:
  bool PeekMore() {
    in_.resize(kBlock);
    long r = inner_->Read(in_.data(), in_.size());
    if (r <= 0) return false;
    z_.next_in = reinterpret_cast<Bytef*>(in_.data());
    z_.avail_in = static_cast<uInt>(r);
    return true;
  }
  std::unique_ptr<ByteSource> inner_;
  std::string in_;
  z_stream z_;
  bool done_ = false;
};

class XzSource : public ByteSource {
 public:
  XzSource(std::unique_ptr<ByteSource> inner, std::string head)
      : inner_(std::move(inner)), in_(std::move(head)) {
    if (lzma_stream_decoder(&s_, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
      error_ = "xz: cannot start the decoder";
      done_ = true;
    }
    s_.next_in = reinterpret_cast<const uint8_t*>(in_.data());
    s_.avail_in = in_.size();
  }
  ~XzSource() override { lzma_end(&s_); }
  long Read(char* buf, size_t n) override {
    if (!error_.empty()) return -1;
    s_.next_out = reinterpret_cast<uint8_t*>(buf);
    s_.avail_out = n;
    while (s_.avail_out == n && !done_) {
      lzma_action action = LZMA_RUN;
      if (s_.avail_in == 0 && !inner_eof_) {
        in_.resize(kBlock);
        long r = inner_->Read(in_.data(), in_.size());
        if (r < 0) {
          error_ = inner_->error();
          return -1;
        }
        inner_eof_ = r == 0;
        s_.next_in = reinterpret_cast<const uint8_t*>(in_.data());
        s_.avail_in = static_cast<size_t>(r);
      }
      if (inner_eof_) action = LZMA_FINISH;
      lzma_ret rc = lzma_code(&s_, action);
      if (rc == LZMA_STREAM_END) {
        done_ = true;
      } else if (rc != LZMA_OK) {
        error_ = rc == LZMA_BUF_ERROR ? "truncated xz stream" : "xz: corrupt data";
        return -1;
      }
    }
    return static_cast<long>(n - s_.avail_out);
  }

 private:
  std::unique_ptr<ByteSource> inner_;
  std::string in_;
  lzma_stream s_ = LZMA_STREAM_INIT;
  bool inner_eof_ = false;
  bool done_ = false;
};

}  // namespace

InputStream::InputStream(std::string name, std::unique_ptr<ByteSource> source)
    : name_(std::move(name)), source_(std::move(source)), buf_(kBlock) {}

Result<std::unique_ptr<InputStream>> InputStream::Open(const std::string& path) {
  std::unique_ptr<ByteSource> src;
  if (path == "-") {
    src = std::make_unique<FdSource>(STDIN_FILENO, false);
  } else {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::unexpected(Error::FromErrno(errno, path));
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    src = std::make_unique<FdSource>(fd, true);
  }
  // Sniff the magic: read up to 6 bytes and hand them to the decompressor if any.
  std::string head(6, '\0');
  size_t got = 0;
  while (got < head.size()) {
    long r = src->Read(head.data() + got, head.size() - got);
    if (r < 0) return std::unexpected(Error::Io(path + ": " + src->error()));
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  head.resize(got);
  std::string name = path == "-" ? "<stdin>" : path;
  std::unique_ptr<InputStream> in;
  if (got >= 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
      static_cast<unsigned char>(head[1]) == 0x8b) {
    in.reset(new InputStream(name, std::make_unique<GzipSource>(std::move(src), head)));
  } else if (got == 6 && std::memcmp(head.data(), "\xFD" "7zXZ\0", 6) == 0) {
    in.reset(new InputStream(name, std::make_unique<XzSource>(std::move(src), head)));
  } else {
    in.reset(new InputStream(name, std::move(src)));
    std::memcpy(in->buf_.data(), head.data(), got);  // the sniffed bytes are data
    in->end_ = got;
  }
  return in;
}

bool InputStream::Fill(size_t want) {
  if (end_ - pos_ >= want) return true;
  if (pos_ > 0) {
    std::memmove(buf_.data(), buf_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (buf_.size() < want) buf_.resize(want);
  while (end_ < want && !eof_) {
    size_t room = buf_.size() - end_;
    if (room < kBlock / 4 && buf_.size() < want + kBlock) {
      buf_.resize(buf_.size() + kBlock);
      room = buf_.size() - end_;
    }
    long r = source_->Read(buf_.data() + end_, room);
    if (r <= 0) {
      eof_ = true;  // a read error ends the input; error() says why
      break;
    }
    end_ += static_cast<size_t>(r);
  }
  return end_ - pos_ >= want;
}

std::string_view InputStream::Peek(size_t n) {
  Fill(n);
  return std::string_view(buf_.data() + pos_, std::min(n, end_ - pos_));
}

bool InputStream::at_end() { return !Fill(1); }

bool InputStream::NextLine(std::string_view* line, bool* too_long) {
  *too_long = false;
  size_t scanned = 0;
  for (;;) {
    const char* start = buf_.data() + pos_;
    const char* nl = static_cast<const char*>(
        std::memchr(start + scanned, '\n', end_ - pos_ - scanned));
    if (nl != nullptr) {
      size_t len = static_cast<size_t>(nl - start);
      *too_long = len > kMaxLine;
      *line = *too_long ? std::string_view() : std::string_view(start, len);
      pos_ += len + 1;
      ++line_number_;
      return true;
    }
    scanned = end_ - pos_;
    if (scanned >= kMaxLine) break;
    if (eof_ || !Fill(scanned + std::min(kBlock, kMaxLine - scanned + 1))) {
      if (end_ - pos_ > scanned) continue;  // Fill brought some bytes
      if (end_ == pos_) return false;
      *line = std::string_view(buf_.data() + pos_, end_ - pos_);  // last line, no '\n'
      pos_ = end_;
      ++line_number_;
      return true;
    }
  }
  // A line longer than any audit record: skip it whole; the caller reports it.
  *too_long = true;
  ++line_number_;
  for (;;) {
    const char* nl =
        static_cast<const char*>(std::memchr(buf_.data() + pos_, '\n', end_ - pos_));
    if (nl != nullptr) {
      pos_ = static_cast<size_t>(nl - buf_.data()) + 1;
      break;
    }
    pos_ = end_;
    if (!Fill(1)) break;
  }
  *line = std::string_view();
  return true;
}

bool InputStream::ReadExact(size_t n, std::string* out) {
  if (!Fill(n)) return false;
  out->assign(buf_.data() + pos_, n);
  pos_ += n;
  return true;
}

bool InputStream::ReadVarint(uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (!Fill(1)) return false;
    unsigned char b = static_cast<unsigned char>(buf_[pos_++]);
    *v |= uint64_t{b & 0x7Fu} << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

uint64_t FirstRecordTimeMs(const std::string& path) {
  if (path == "-") return 0;
  auto in = InputStream::Open(path);
  if (!in) return 0;
  std::string_view line;
  bool too_long;
  for (int i = 0; i < 64 && (*in)->NextLine(&line, &too_long); ++i) {
    AuditRecord r;
    if (!too_long && ParseLogLine(line, &r) == nullptr) return r.TimeMs();
  }
  return 0;
}

std::vector<std::string> OrderInputs(const std::vector<std::string>& paths) {
  if (paths.size() < 2) return paths;  // nothing to order: don't open and read it twice
  std::vector<std::pair<uint64_t, std::string>> keyed;
  for (const auto& p : paths) keyed.emplace_back(FirstRecordTimeMs(p), p);
  // Reorder only when every file's first record was found: stdin or a file without a
  // record near its start keeps the order the user gave.
  bool all_known = std::all_of(keyed.begin(), keyed.end(), [](const auto& k) { return k.first; });
  if (all_known) {
    std::stable_sort(keyed.begin(), keyed.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  std::vector<std::string> out;
  for (auto& k : keyed) out.push_back(std::move(k.second));
  return out;
}

}  // namespace driftwatch
