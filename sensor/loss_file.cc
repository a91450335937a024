#include "sensor/loss_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "lib/base/log.h"
#include "sensor/disk_format.h"

namespace driftwatch::sensor {
namespace {

using namespace disk;  // NOLINT: the shared byte helpers

constexpr char kMagic[8] = {'D', 'W', 'L', 'O', 'S', 'S', '0', '1'};
constexpr size_t kSlotBytes = LossFile::kFileBytes / 2;
constexpr size_t kSlotCounters = 12;
constexpr size_t kCrcOffset = 24 + 8 * kSlotCounters;  // 120
static_assert(kCrcOffset + 8 == kSlotBytes);
static_assert(kLossFields.size() <= kSlotCounters);


// Masked as the spool masks its record crcs (a crc'ed file inside a crc'ed file).
uint32_t SlotCrc(const char* slot) { return Mask(Crc(0, slot, kCrcOffset)); }

void EncodeSlot(const LossCounts& c, uint64_t generation, char* slot) {
  std::memset(slot, 0, kSlotBytes);
  std::memcpy(slot, kMagic, 8);
  PutU64(slot + 8, generation);
  PutU32(slot + 16, static_cast<uint32_t>(kLossFields.size()));
  for (size_t i = 0; i < kLossFields.size(); ++i)
    PutU64(slot + 24 + 8 * i, c.*kLossFields[i].member);
  PutU32(slot + kCrcOffset, SlotCrc(slot));
}

// The slot's generation and counters, or false when it is not a valid slot.
bool DecodeSlot(const char* slot, uint64_t* generation, LossCounts* c) {
  if (std::memcmp(slot, kMagic, 8) != 0 || GetU32(slot + kCrcOffset) != SlotCrc(slot)) return false;
  uint32_t n = GetU32(slot + 16);
  if (n > kSlotCounters) return false;
  *generation = GetU64(slot + 8);
  *c = LossCounts{};
  for (size_t i = 0; i < kLossFields.size() && i < n; ++i)
    c->*kLossFields[i].member = GetU64(slot + 24 + 8 * i);
  return true;
}

bool PwriteFull(int fd, const char* buf, size_t n, off_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = pwrite(fd, buf + done, n - done, off + static_cast<off_t>(done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      return false;
    }
    done += static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

LossCounts& LossCounts::operator+=(const LossCounts& o) {
  for (const LossField& f : kLossFields) this->*f.member += o.*f.member;
  return *this;
}

LossCounts operator+(LossCounts a, const LossCounts& b) { return a += b; }

void LossCounts::ToProto(v1::LossCounters* p) const {
  p->set_kernel_lost(kernel_lost);
  p->set_socket_enobufs(socket_enobufs);
  p->set_queue_drops(queue_drops);
  p->set_reassembly_evictions(reassembly_evictions);
  p->set_fanotify_overflows(fanotify_overflows);
  p->set_hash_skipped(hash_skipped);
  p->set_spool_dropped(spool_dropped);
  p->set_spool_append_failures(spool_append_failures);
  p->set_encode_failures(encode_failures);
  p->set_hash_queue_full(hash_queue_full);
}

std::expected<std::unique_ptr<LossFile>, std::string> LossFile::Open(const std::string& path,
                                                                     bool sync) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected("open " + path + ": " + std::strerror(errno));
  std::unique_ptr<LossFile> f(new LossFile(path, fd, sync));
  MutexLock lk(f->mu_);  // not shared yet: uncontended, taken for the analysis' sake

  char buf[kFileBytes] = {};
  ssize_t n;
  do {
    n = pread(fd, buf, sizeof buf, 0);
  } while (n < 0 && errno == EINTR);
  struct stat st;
  if (n < 0 || fstat(fd, &st) != 0)
    return std::unexpected("read " + path + ": " + std::strerror(errno));

  bool found = false;
  for (size_t s = 0; s < 2; ++s) {
    if (static_cast<size_t>(n) < (s + 1) * kSlotBytes) break;
    uint64_t gen;
    LossCounts c;
    if (DecodeSlot(buf + s * kSlotBytes, &gen, &c) && (!found || gen > f->generation_)) {
      found = true;
      f->generation_ = gen;
      f->base_ = c;
    }
  }
  if (!found && st.st_size == 0) {
    LogInfo("%s: new loss file, lifetime loss totals start at 0\n", path.c_str());
  } else if (!found) {
    // The collector sees the totals go down and can tell the sensor lost its history.
    LogWarn("%s: corrupt (%lld bytes, no valid slot), lifetime loss totals start again at 0\n",
            path.c_str(), static_cast<long long>(st.st_size));
  }
  if (static_cast<uint64_t>(st.st_size) != kFileBytes) {
    // Allocate the file's block now, while there is room: later stores only overwrite it.
    f->whole_file_ = true;
    if (auto r = f->StoreLocked(LossCounts{}); !r)
      LogWarn("%s (retried at the next store)\n", r.error().c_str());
  }
  return f;
}

LossFile::~LossFile() { close(fd_); }

std::expected<void, std::string> LossFile::Store(const LossCounts& run) {
  MutexLock lk(mu_);
  last_attempt_ = std::chrono::steady_clock::now();
  return StoreLocked(run);
}

std::expected<bool, std::string> LossFile::StoreIfChanged(
    const LossCounts& run, std::chrono::steady_clock::duration min_gap) {
  MutexLock lk(mu_);
  if (!whole_file_ && run == stored_run_) return false;
  auto now = std::chrono::steady_clock::now();
  if (now - last_attempt_ < min_gap) return false;
  last_attempt_ = now;
  if (auto r = StoreLocked(run); !r) return std::unexpected(r.error());
  return true;
}

std::expected<void, std::string> LossFile::StoreLocked(const LossCounts& run) {
  char buf[kFileBytes] = {};
  uint64_t gen = generation_ + 1;
  size_t slot = static_cast<size_t>(gen % 2);
  EncodeSlot(base_ + run, gen, buf + slot * kSlotBytes);
  // Whole file: the other slot stays zero (invalid); Open takes the valid one.
  bool ok = whole_file_ ? PwriteFull(fd_, buf, kFileBytes, 0) && ftruncate(fd_, kFileBytes) == 0
                        : PwriteFull(fd_, buf + slot * kSlotBytes, kSlotBytes,
                                     static_cast<off_t>(slot * kSlotBytes));
  if (ok && sync_ && fdatasync(fd_) != 0) ok = false;
  if (!ok) {
    int err = errno;
    ++store_failures_;
    return std::unexpected("write " + path_ + ": " + std::strerror(err));
  }
  generation_ = gen;
  whole_file_ = false;
  stored_run_ = run;
  ++stores_;
  return {};
}

uint64_t LossFile::stores() const {
  MutexLock lk(mu_);
  return stores_;
}

uint64_t LossFile::store_failures() const {
  MutexLock lk(mu_);
  return store_failures_;
}

}  // namespace driftwatch::sensor
