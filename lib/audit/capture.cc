#include "lib/audit/capture.h"

#include <google/protobuf/io/coded_stream.h>

#include <algorithm>
#include <cstring>

namespace driftwatch {

namespace {
// Far above any event the sensor writes; a larger length means the file is corrupt.
constexpr uint64_t kMaxEventBytes = 64 << 20;
// Read at most this much of an event at a time (InputStream's own block is 4 MiB).
constexpr uint64_t kReadBlock = 1 << 20;
}  // namespace

CaptureWriter::CaptureWriter(std::FILE* out) : out_(out) {
  std::fwrite(kCaptureMagic.data(), 1, kCaptureMagic.size(), out_);
}

bool CaptureWriter::Write(const v1::Event& ev) {
  // Sizes computed once (AppendToString would compute them again).
  const size_t size = ev.ByteSizeLong();
  uint8_t head[10];
  uint8_t* end = google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(size, head);
  const size_t head_len = static_cast<size_t>(end - head);
  buf_.resize(head_len + size);
  std::memcpy(buf_.data(), head, head_len);
  auto* body = reinterpret_cast<uint8_t*>(buf_.data() + head_len);
  if (ev.SerializeWithCachedSizesToArray(body) != body + size) return false;
  return std::fwrite(buf_.data(), 1, buf_.size(), out_) == buf_.size();
}

bool CaptureWriter::WriteSerialized(std::string_view payload) {
  uint8_t head[10];
  uint8_t* end = google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(payload.size(), head);
  const size_t head_len = static_cast<size_t>(end - head);
  return std::fwrite(head, 1, head_len, out_) == head_len &&
         std::fwrite(payload.data(), 1, payload.size(), out_) == payload.size();
}

bool CaptureWriter::Flush() { return std::fflush(out_) == 0; }

bool IsCapture(InputStream* in) {
  if (in->Peek(kCaptureMagic.size()) != kCaptureMagic) return false;
  std::string skip;
  in->ReadExact(kCaptureMagic.size(), &skip);
  return true;
}

Result<bool> ReadCaptureEvent(InputStream* in, v1::Event* ev) {
  if (in->at_end()) return false;
  uint64_t len = 0;
  if (!in->ReadVarint(&len) || len > kMaxEventBytes) {
    return std::unexpected(Error::Corruption("corrupt event length"));
  }
  // In blocks: a corrupt length must not cost a buffer of that size (up to 64 MiB, zeroed)
  // before the input turns out to be shorter.
  std::string bytes, block;
  bool ok = in->ReadExact(std::min(len, kReadBlock), &bytes);
  while (ok && bytes.size() < len) {
    ok = in->ReadExact(std::min(len - bytes.size(), kReadBlock), &block);
    bytes += block;
  }
  if (!ok) return std::unexpected(Error::Corruption("truncated event"));
  if (!ev->ParseFromString(bytes)) {
    return std::unexpected(Error::Corruption("event does not parse as driftwatch.v1.Event"));
  }
  return true;
}

}  // namespace driftwatch
