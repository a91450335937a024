#include "sensor/spool.h"

#include "lib/base/log.h"
#include "sensor/disk_format.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

namespace driftwatch::sensor {
namespace {

using namespace disk;  // NOLINT: the shared byte helpers

constexpr char kSegMagic[8] = {'D', 'W', 'S', 'P', 'O', 'O', 'L', '1'};
constexpr char kAckMagic[8] = {'D', 'W', 'A', 'C', 'K', '0', '0', '1'};
constexpr uint64_t kSegHeader = 16;  // magic + first position
constexpr uint64_t kRecHeader = 8;   // masked crc + length
constexpr uint64_t kAckSize = 20;    // one slot: magic + acked + crc
constexpr uint64_t kAckFileSize = 2 * kAckSize;
constexpr size_t kScanWindow = 1 << 20;

std::string Errno(std::string_view what, const std::string& path, int err = errno) {
  return std::string(what) + " " + path + ": " + std::strerror(err);
}

void Log(const std::string& msg) {
  LogWarn("spool: %s\n", msg.c_str());
}



// The record crc: payload first (computed outside the lock), then length and position.
uint32_t RecordCrc(uint32_t payload_crc, uint32_t len, uint64_t pos) {
  char tail[12];
  PutU32(tail, len);
  PutU64(tail + 4, pos);
  return Mask(Crc(payload_crc, tail, sizeof tail));
}

std::string SegmentName(uint64_t first) {
  char name[32];
  std::snprintf(name, sizeof name, "%020llu.seg", static_cast<unsigned long long>(first));
  return name;
}

// "<20 digits>.seg" -> its first position.
std::optional<uint64_t> ParseSegmentName(std::string_view name) {
  if (name.size() != 24 || name.substr(20) != ".seg") return std::nullopt;
  uint64_t v = 0;
  for (char c : name.substr(0, 20)) {
    if (c < '0' || c > '9') return std::nullopt;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

ssize_t PreadFull(int fd, char* buf, size_t n, uint64_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, buf + done, n - done, static_cast<off_t>(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

std::expected<void, std::string> MakeDirs(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return std::unexpected(dir + ": not a directory");
    return {};
  }
  if (errno != ENOENT) return std::unexpected(Errno("stat", dir));
  auto slash = dir.find_last_of('/');
  if (slash != std::string::npos && slash > 0) {
    auto parent = MakeDirs(dir.substr(0, slash));
    if (!parent) return parent;
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return std::unexpected(Errno("mkdir", dir));
  return {};
}

// Windowed sequential reads of one segment file at Open: one pread per MiB, not per record.
class ScanReader {
 public:
  ScanReader(int fd, uint64_t size) : fd_(fd), size_(size) {}
  // The `n` bytes at `off`, or nullptr when the file is shorter or unreadable (*io_error).
  const char* At(uint64_t off, uint64_t n, bool* io_error) {
    if (off + n > size_) return nullptr;
    if (off < win_off_ || off + n > win_off_ + win_.size()) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(n, kScanWindow),
                                                           size_ - off));
      win_.resize(want);
      ssize_t r = PreadFull(fd_, win_.data(), want, off);
      if (r < 0) {
        *io_error = true;
        return nullptr;
      }
      win_.resize(static_cast<size_t>(r));
      win_off_ = off;
      if (win_.size() < n) return nullptr;
    }
    return win_.data() + (off - win_off_);
  }

 private:
  int fd_;
  uint64_t size_;
  std::string win_;
  uint64_t win_off_ = 0;
};

}  // namespace

struct Spool::File {
  explicit File(int f) : fd(f) {}
  ~File() {
    if (fd >= 0) close(fd);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  int fd;
};

Spool::Spool(const SpoolOptions& options) : options_(options) {}

std::expected<std::unique_ptr<Spool>, std::string> Spool::Open(const SpoolOptions& options) {
  if (options.dir.empty()) return std::unexpected("spool: no directory given");
  if (options.segment_bytes < 64 || options.segment_bytes > (1ull << 30))
    return std::unexpected("spool: segment_bytes must be within [64, 1 GiB]");
  if (options.max_bytes < options.segment_bytes)
    return std::unexpected("spool: max_bytes must be at least segment_bytes");
  if (options.fsync == FsyncPolicy::kInterval && options.fsync_interval.count() <= 0)
    return std::unexpected("spool: fsync_interval must be positive");
  if (auto made = MakeDirs(options.dir); !made) return std::unexpected("spool: " + made.error());

  std::unique_ptr<Spool> spool(new Spool(options));
  std::string lock_path = options.dir + "/LOCK";
  spool->lock_fd_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (spool->lock_fd_ < 0) return std::unexpected("spool: " + Errno("open", lock_path));
  if (flock(spool->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    if (err != EWOULDBLOCK) return std::unexpected("spool: " + Errno("flock", lock_path, err));
    char pid[32] = {};
    ssize_t n = PreadFull(spool->lock_fd_, pid, sizeof pid - 1, 0);
    std::string holder = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return std::unexpected("spool: " + options.dir + " is in use by another sensor (" +
                           lock_path + " locked" + (holder.empty() ? "" : " by pid " + holder) +
                           ")");
  }
  // Overwritten in place and then cut to length, never truncated first: that would free the
  // file's block and need it again, and a full filesystem must not keep the sensor from
  // starting. Best effort: the pid only names the holder in the message above.
  std::string pid = std::to_string(getpid()) + "\n";
  if (pwrite(spool->lock_fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size()) ||
      ftruncate(spool->lock_fd_, static_cast<off_t>(pid.size())) != 0)
    Log(Errno("write", lock_path));

  if (auto r = spool->Recover(); !r) return std::unexpected("spool: " + r.error());
  if (options.fsync == FsyncPolicy::kInterval)
    spool->flusher_ = std::thread([s = spool.get()] {
      pthread_setname_np(pthread_self(), "dw-spool");
      s->FlusherLoop();
    });
  return spool;
}

Spool::~Spool() {
  {
    MutexLock lk(mu_);
    stopping_ = true;
    interrupted_ = true;
  }
  flush_cv_.NotifyAll();
  appended_.NotifyAll();
  if (flusher_.joinable()) flusher_.join();
  if (options_.fsync != FsyncPolicy::kNever) {
    if (auto r = Sync(); !r) Log(r.error());
  }
  segments_.clear();
  if (ack_fd_ >= 0) close(ack_fd_);
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the flock
}

std::expected<void, std::string> Spool::Recover() {
  // No other thread runs yet: the locks are uncontended, taken so that the analysis checks
  // this like the rest (ack_mu_ first, the lock order).
  MutexLock ack_lk(ack_mu_);
  MutexLock lk(mu_);
  // The ack file. Unreadable or corrupt: everything stored is sent again (duplicates are
  // harmless, losses are not).
  uint64_t acked = 0;
  bool ack_file_ok = false;  // holds two slots, of which one at least is valid
  std::string ack_path = options_.dir + "/ack";
  unlink((ack_path + ".tmp").c_str());  // left by versions that renamed it over
  ack_fd_ = open(ack_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (ack_fd_ >= 0) {
    char buf[kAckFileSize + 1];
    ssize_t n = PreadFull(ack_fd_, buf, sizeof buf, 0);
    if (n < 0) return std::unexpected(Errno("read", ack_path));
    bool valid[2] = {false, false};
    uint64_t value[2] = {0, 0};
    for (int i = 0; i < 2; ++i) {
      const char* slot = buf + i * kAckSize;
      if (static_cast<uint64_t>(n) >= (i + 1) * kAckSize && std::memcmp(slot, kAckMagic, 8) == 0 &&
          GetU32(slot + 16) == Mask(Crc(0, slot, 16))) {
        valid[i] = true;
        value[i] = GetU64(slot + 8);
      }
    }
    if (valid[0] || valid[1]) {
      acked = std::max(value[0], value[1]);
    } else if (n > 0) {
      Log(ack_path + ": corrupt, resending all stored events");
    }
    // The next write goes to the slot not holding the newest value.
    ack_slot_ = !valid[0] ? 0 : !valid[1] ? 1 : value[0] <= value[1] ? 0 : 1;
    ack_file_ok = n == static_cast<ssize_t>(kAckFileSize) && (valid[0] || valid[1]);
  } else if (errno == ENOSPC || errno == EDQUOT) {
    // A new spool dir on a full filesystem: nothing acknowledged yet; created at the first
    // Ack that finds room.
    Log(Errno("create", ack_path));
  } else {
    return std::unexpected(Errno("open", ack_path));
  }

  std::vector<uint64_t> firsts;
  DIR* d = opendir(options_.dir.c_str());
  if (d == nullptr) return std::unexpected(Errno("opendir", options_.dir));
  while (dirent* e = readdir(d)) {
    if (auto first = ParseSegmentName(e->d_name)) firsts.push_back(*first);
  }
  closedir(d);
  std::sort(firsts.begin(), firsts.end());

  uint64_t end = acked;
  // Every segment found, kept or not, to count the positions a cut lost.
  struct Scanned {
    uint64_t first, end;
    bool cut;
  };
  std::vector<Scanned> scanned;
  for (uint64_t first : firsts) {
    end = std::max(end, first);  // a segment is named by end() when it was created
    Segment seg;
    seg.first = first;
    seg.path = options_.dir + "/" + SegmentName(first);
    int fd = open(seg.path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return std::unexpected(Errno("open", seg.path));
    seg.file = std::make_shared<File>(fd);
    struct stat st;
    if (fstat(fd, &st) != 0) return std::unexpected(Errno("stat", seg.path));
    uint64_t file_size = static_cast<uint64_t>(st.st_size);

    ScanReader in(fd, file_size);
    bool io_error = false;
    std::string why;
    const char* h = in.At(0, kSegHeader, &io_error);
    if (h == nullptr) {
      why = "segment header short";
    } else if (std::memcmp(h, kSegMagic, 8) != 0) {
      why = "bad segment magic";
    } else if (GetU64(h + 8) != first) {
      why = "segment header names position " + std::to_string(GetU64(h + 8));
    } else {
      seg.size = kSegHeader;
      while (seg.size < file_size) {
        if (seg.size + kRecHeader > UINT32_MAX) {  // offsets are kept as 32 bits
          why = "segment over 4 GiB";
          break;
        }
        const char* rh = in.At(seg.size, kRecHeader, &io_error);
        if (rh == nullptr) {
          why = "record header short";
          break;
        }
        uint32_t len = GetU32(rh + 4);
        uint32_t stored_crc = GetU32(rh);
        if (len > kMaxRecordBytes) {
          why = "record length " + std::to_string(len) + " over the bound";
          break;
        }
        const char* payload = in.At(seg.size + kRecHeader, len, &io_error);
        if (payload == nullptr) {
          why = "record short (length " + std::to_string(len) + ")";
          break;
        }
        if (seg.size + kRecHeader + len > UINT32_MAX) {
          why = "segment over 4 GiB";
          break;
        }
        if (RecordCrc(Crc(0, payload, len), len, seg.end()) != stored_crc) {
          why = "record crc mismatch";
          break;
        }
        seg.offsets.push_back(static_cast<uint32_t>(seg.size));
        seg.size += kRecHeader + len;
      }
    }
    if (io_error) return std::unexpected(Errno("read", seg.path));
    bool was_cut = seg.size < file_size;
    if (was_cut) {
      Log(seg.path + ": offset " + std::to_string(seg.size) + ": " + why + "; cutting off " +
          std::to_string(file_size - seg.size) + " bytes after " +
          std::to_string(seg.offsets.size()) + " good records");
    }
    scanned.push_back({seg.first, seg.end(), was_cut});
    if (seg.offsets.empty()) {
      // Nothing to keep; its name still moved `end` above.
      if (unlink(seg.path.c_str()) != 0) return std::unexpected(Errno("unlink", seg.path));
      continue;
    }
    if (was_cut && ftruncate(fd, static_cast<off_t>(seg.size)) != 0)
      return std::unexpected(Errno("truncate", seg.path));
    // Defensive: overlapping segments mean a file did not come from this code.
    if (!segments_.empty() && segments_.back().end() > seg.first) {
      Log(segments_.back().path + ": overlaps " + seg.path + "; keeping the later one's records");
      Segment& prev = segments_.back();
      size_t keep = static_cast<size_t>(seg.first - prev.first);
      prev.size = prev.offsets[keep];
      prev.offsets.resize(keep);
      if (ftruncate(prev.file->fd, static_cast<off_t>(prev.size)) != 0)
        return std::unexpected(Errno("truncate", prev.path));
      for (Scanned& sc : scanned)
        if (sc.first == prev.first) sc.end = prev.end();
    }
    end = std::max(end, seg.end());
    segments_.push_back(std::move(seg));
  }
  for (size_t i = 0; i < scanned.size(); ++i) {
    if (!scanned[i].cut) continue;
    uint64_t lost = 0;
    if (i + 1 < scanned.size() && scanned[i + 1].first > scanned[i].end)
      lost = scanned[i + 1].first - scanned[i].end;
    recovered_corrupt_ += std::max<uint64_t>(lost, 1);
  }

  acked_ = acked;
  if (!segments_.empty()) acked_ = std::max(acked_, segments_.front().first);
  end_ = std::max(end, acked_);
  // Fully acknowledged segments: the ack was persisted but the process died before they
  // were deleted.
  while (!segments_.empty() && segments_.front().end() <= acked_) {
    if (unlink(segments_.front().path.c_str()) != 0)
      return std::unexpected(Errno("unlink", segments_.front().path));
    segments_.pop_front();
  }
  if (!segments_.empty()) acked_ = std::max(acked_, segments_.front().first);
  for (const Segment& s : segments_) bytes_ += s.size;
  if (!ack_file_ok) {
    // New, of one slot (an earlier version's), or corrupt: written whole now, while there is
    // room, so that later acks only overwrite its block.
    whole_ack_file_ = true;
    if (auto r = WriteAckFile(acked_); !r) Log(r.error() + " (retried at the next ack)");
  }
  return {};
}

std::expected<void, std::string> Spool::StartSegment() {
  if (active_ && segments_.back().offsets.empty()) {
    // A roll forced (roll_) before the active segment got a record: it holds nothing and
    // bears the name the new one needs.
    if (unlink(segments_.back().path.c_str()) != 0 && errno != ENOENT)
      return std::unexpected(Errno("unlink", segments_.back().path));
    bytes_ -= segments_.back().size;
    segments_.pop_back();
    active_ = false;
  }
  if (active_ && options_.fsync != FsyncPolicy::kNever) {
    // The segment being closed: its data must be as durable as the policy promises before
    // nothing tracks it as unsynced any more.
    if (fdatasync(segments_.back().file->fd) != 0)
      return std::unexpected(Errno("fdatasync", segments_.back().path));
  }
  Segment seg;
  seg.first = end_;
  seg.path = options_.dir + "/" + SegmentName(end_);
  int fd = open(seg.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return std::unexpected(Errno("create", seg.path));
  seg.file = std::make_shared<File>(fd);
  char h[kSegHeader];
  std::memcpy(h, kSegMagic, 8);
  PutU64(h + 8, end_);
  ssize_t n = pwrite(fd, h, sizeof h, 0);
  if (n != static_cast<ssize_t>(sizeof h)) {
    // ENOSPC typically: the file goes again, the active segment (if any) stays active.
    std::string err = n < 0 ? Errno("write", seg.path) : "short write to " + seg.path;
    unlink(seg.path.c_str());
    return std::unexpected(err);
  }
  seg.size = kSegHeader;
  bytes_ += seg.size;
  segments_.push_back(std::move(seg));
  active_ = true;
  roll_ = false;
  if (options_.fsync == FsyncPolicy::kAlways) {
    if (auto r = SyncDir(); !r) return r;
  } else {
    dir_unsynced_ = true;
  }
  return {};
}

std::expected<uint64_t, std::string> Spool::Append(const v1::Event& ev) {
  // Serialized outside the lock, into a buffer each thread reuses.
  thread_local std::string payload;
  payload.clear();
  if (!ev.AppendToString(&payload)) {
    MutexLock lk(mu_);
    return AppendFailed("spool: event failed to serialize");
  }
  auto pos = AppendSerialized(payload);
  if (payload.capacity() > (1u << 20)) std::string().swap(payload);  // don't keep a huge one
  return pos;
}

std::expected<uint64_t, std::string> Spool::AppendSerialized(std::string_view payload) {
  if (payload.size() > kMaxRecordBytes || payload.size() + kRecHeader > options_.max_bytes) {
    MutexLock lk(mu_);
    return AppendFailed("spool: event of " + std::to_string(payload.size()) +
                        " bytes is too large to store");
  }
  uint32_t len = static_cast<uint32_t>(payload.size());
  uint32_t payload_crc = Crc(0, payload.data(), payload.size());
  uint64_t rec_size = kRecHeader + len;

  std::vector<Segment> doomed;
  std::shared_ptr<File> sync_file;
  std::string sync_path;
  uint64_t pos;
  {
    MutexLock lk(mu_);
    if (!active_ || roll_ ||
        (segments_.back().size > kSegHeader &&
         segments_.back().size + rec_size > options_.segment_bytes)) {
      if (auto r = StartSegment(); !r) return AppendFailed("spool: " + r.error());
    }
    Segment& seg = segments_.back();
    pos = end_;
    char h[kRecHeader];
    PutU32(h, RecordCrc(payload_crc, len, pos));
    PutU32(h + 4, len);
    iovec iov[2] = {{h, sizeof h}, {const_cast<char*>(payload.data()), payload.size()}};
    // One call per record: a kill -9 cannot split what it completed.
    ssize_t n;
    do {
      n = pwritev(seg.file->fd, iov, 2, static_cast<off_t>(seg.size));
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(rec_size)) {
      // ENOSPC, EFBIG, EIO; or a short write: the filesystem or the file size limit took
      // part of the record.
      std::string err = n < 0 ? Errno("write", seg.path)
                              : "short write to " + seg.path + " (" + std::to_string(n) + " of " +
                                    std::to_string(rec_size) + " bytes; disk full?)";
      // Leave no partial record behind for the next Append to follow (and give back the
      // blocks it took). Failing that, nothing more goes into this segment: its records stay
      // readable up to seg.size, and Open cuts the tail off as torn.
      if (ftruncate(seg.file->fd, static_cast<off_t>(seg.size)) != 0) {
        Log(Errno("truncate", seg.path) + "; continuing in a new segment");
        roll_ = true;
      }
      return AppendFailed("spool: " + err);
    }
    seg.offsets.push_back(static_cast<uint32_t>(seg.size));
    seg.size += rec_size;
    bytes_ += rec_size;
    ++end_;
    unsynced_ = true;
    append_error_.clear();
    if (options_.fsync == FsyncPolicy::kAlways) {
      sync_file = seg.file;
      sync_path = seg.path;
    }
    DropOldestIfFull(&doomed);
  }
  appended_.NotifyAll();
  for (const Segment& s : doomed) {
    if (unlink(s.path.c_str()) != 0) Log(Errno("unlink", s.path));
  }
  if (sync_file && fdatasync(sync_file->fd) != 0)
    return std::unexpected("spool: " + Errno("fdatasync", sync_path));
  return pos;
}

std::unexpected<std::string> Spool::AppendFailed(std::string err) {
  ++append_failures_;
  append_error_ = err;
  return std::unexpected(std::move(err));
}

void Spool::DropOldestIfFull(std::vector<Segment>* doomed) {
  while (bytes_ > options_.max_bytes && segments_.size() > 1) {
    Segment& s = segments_.front();
    uint64_t unacked_from = std::max(acked_, s.first);
    if (s.end() > unacked_from) dropped_ += s.end() - unacked_from;
    bytes_ -= s.size;
    // A full spool drops a segment every few seconds at high rates: say so once a minute.
    auto now = std::chrono::steady_clock::now();
    if (now - last_drop_log_ >= std::chrono::minutes(1)) {
      last_drop_log_ = now;
      Log(options_.dir + ": over " + std::to_string(options_.max_bytes) +
          " bytes, dropping the oldest segments, acknowledged or not (" +
          std::to_string(dropped_) + " unacked events dropped so far)");
    }
    doomed->push_back(std::move(s));
    segments_.pop_front();
    acked_ = std::max(acked_, segments_.front().first);
  }
}

std::expected<void, std::string> Spool::Read(uint64_t from, size_t max_events, size_t max_bytes,
                                             std::vector<std::string>* events, uint64_t* next) {
  size_t before = events->size();
  for (;;) {
    bool found = false;
    auto r = ReadOnce(from, max_events, max_bytes, events, next, &found);
    // No events but records found: all failed their crc. Go on past them, so that no events
    // keeps meaning "nothing more now" to the sender.
    if (!r || events->size() > before || !found) return r;
    from = *next;
  }
}

std::expected<void, std::string> Spool::ReadOnce(uint64_t from, size_t max_events,
                                                 size_t max_bytes,
                                                 std::vector<std::string>* events,
                                                 uint64_t* next, bool* found) {
  // A contiguous run of records in one segment, read with one pread outside the lock.
  struct Span {
    std::shared_ptr<File> file;
    std::string path;
    uint64_t first_pos;
    std::vector<uint64_t> offsets;  // record offsets, plus the end of the last one
  };
  std::vector<Span> spans;
  uint64_t pos;
  {
    MutexLock lk(mu_);
    pos = std::max(from, acked_);
    size_t n_events = 0, n_bytes = 0;
    bool full = false;
    auto it = std::upper_bound(segments_.begin(), segments_.end(), pos,
                               [](uint64_t p, const Segment& s) { return p < s.first; });
    if (it != segments_.begin()) --it;
    for (; it != segments_.end() && !full; ++it) {
      const Segment& s = *it;
      if (s.end() <= pos) continue;
      pos = std::max(pos, s.first);  // skip a gap
      Span span{s.file, s.path, pos, {}};
      for (uint64_t i = pos - s.first; i < s.offsets.size(); ++i) {
        uint64_t rec_end = i + 1 < s.offsets.size() ? s.offsets[i + 1] : s.size;
        size_t len = static_cast<size_t>(rec_end - s.offsets[i] - kRecHeader);
        if (n_events >= max_events || (n_events > 0 && n_bytes + len > max_bytes)) {
          full = true;
          break;
        }
        span.offsets.push_back(s.offsets[i]);
        ++n_events;
        n_bytes += len;
        ++pos;
      }
      if (span.offsets.empty()) break;
      uint64_t li = pos - 1 - s.first;  // the last record taken
      span.offsets.push_back(li + 1 < s.offsets.size() ? s.offsets[li + 1] : s.size);
      spans.push_back(std::move(span));
    }
    // Ran past the last segment: nothing is stored before end_ any more.
    if (!full && max_events > 0) pos = end_;
  }

  std::string buf;
  uint64_t corrupt = 0;
  for (const Span& span : spans) {
    uint64_t begin = span.offsets.front(), stop = span.offsets.back();
    buf.resize(static_cast<size_t>(stop - begin));
    ssize_t n = PreadFull(span.file->fd, buf.data(), buf.size(), begin);
    if (n != static_cast<ssize_t>(buf.size()))
      return std::unexpected("spool: " + Errno("read", span.path, n < 0 ? errno : EIO));
    for (size_t i = 0; i + 1 < span.offsets.size(); ++i) {
      const char* rec = buf.data() + (span.offsets[i] - begin);
      uint64_t rec_size = span.offsets[i + 1] - span.offsets[i];
      uint32_t len = GetU32(rec + 4);
      uint64_t rec_pos = span.first_pos + i;
      if (len + kRecHeader != rec_size ||
          RecordCrc(Crc(0, rec + kRecHeader, len), len, rec_pos) != GetU32(rec)) {
        Log(span.path + ": offset " + std::to_string(span.offsets[i]) +
            ": record changed on disk since it was written; skipped");
        ++corrupt;
        continue;
      }
      events->emplace_back(rec + kRecHeader, len);
    }
  }
  if (corrupt > 0) {
    MutexLock lk(mu_);
    read_corrupt_ += corrupt;
  }
  *found = !spans.empty();
  *next = pos;
  return {};
}

std::expected<void, std::string> Spool::Ack(uint64_t up_to) {
  MutexLock ack_lk(ack_mu_);
  {
    MutexLock lk(mu_);
    up_to = std::min(up_to, end_);
    if (up_to <= acked_) return {};
  }
  // Persisted before segments go: a crash in between leaves segments Open deletes.
  auto written = WriteAckFile(up_to);
  std::vector<Segment> doomed;
  {
    MutexLock lk(mu_);
    if (!written) ++ack_failures_;
    // The collector has these events whether or not the ack file says so: their segments
    // may go (that is what frees a full disk). Without the ack file the newest stays, as
    // its name is what tells the next Open where positions continue.
    acked_ = std::max(acked_, up_to);
    while (!segments_.empty() && segments_.front().end() <= acked_ &&
           !(active_ && segments_.size() == 1) && (written || segments_.size() > 1)) {
      bytes_ -= segments_.front().size;
      doomed.push_back(std::move(segments_.front()));
      segments_.pop_front();
    }
  }
  for (const Segment& s : doomed) {
    if (unlink(s.path.c_str()) != 0) return std::unexpected("spool: " + Errno("unlink", s.path));
  }
  if (!written) return std::unexpected("spool: " + written.error());
  return {};
}

std::expected<void, std::string> Spool::WriteAckFile(uint64_t acked) {
  std::string path = options_.dir + "/ack";
  if (ack_fd_ < 0) {
    ack_fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (ack_fd_ < 0) return std::unexpected(Errno("create", path));
    whole_ack_file_ = true;
  }
  char buf[kAckFileSize];
  std::memcpy(buf, kAckMagic, 8);
  PutU64(buf + 8, acked);
  PutU32(buf + 16, Mask(Crc(0, buf, 16)));
  std::memcpy(buf + kAckSize, buf, kAckSize);
  // In place: one slot (20 bytes, within one sector) over the older value; no block needed.
  bool whole = whole_ack_file_;
  size_t len = whole ? kAckFileSize : kAckSize;
  off_t off = whole ? 0 : static_cast<off_t>(ack_slot_ * kAckSize);
  ssize_t n;
  do {
    n = pwrite(ack_fd_, buf, len, off);
  } while (n < 0 && errno == EINTR);
  bool ok = n == static_cast<ssize_t>(len);
  int err = n < 0 ? errno : ENOSPC;  // a short write of 20 or 40 bytes: no room
  if (ok && whole && ftruncate(ack_fd_, kAckFileSize) != 0) {  // a longer foreign file
    ok = false;
    err = errno;
  }
  if (ok && options_.fsync != FsyncPolicy::kNever && fdatasync(ack_fd_) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) return std::unexpected(Errno("write", path, err));
  if (whole) {
    whole_ack_file_ = false;
    ack_slot_ = 0;
    // The file may be new: its directory entry must be as durable as its content.
    if (options_.fsync != FsyncPolicy::kNever) return SyncDir();
  } else {
    ack_slot_ ^= 1;
  }
  return {};
}

std::expected<void, std::string> Spool::SyncDir() {
  int fd = open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return std::unexpected(Errno("open", options_.dir));
  int r = fsync(fd);
  int err = errno;
  close(fd);
  if (r != 0) return std::unexpected(Errno("fsync", options_.dir, err));
  return {};
}

std::expected<void, std::string> Spool::Sync() {
  std::shared_ptr<File> file;
  std::string path;
  {
    MutexLock lk(mu_);
    if (active_) {
      file = segments_.back().file;
      path = segments_.back().path;
    }
    unsynced_ = false;
    dir_unsynced_ = false;
  }
  if (file && fdatasync(file->fd) != 0) return std::unexpected("spool: " + Errno("fdatasync", path));
  if (auto r = SyncDir(); !r) return std::unexpected("spool: " + r.error());
  return {};
}

void Spool::FlusherLoop() {
  MutexLock lk(mu_);
  while (!stopping_) {
    flush_cv_.WaitFor(lk, options_.fsync_interval, [this]() DW_REQUIRES(mu_) { return stopping_; });
    if (stopping_ || (!unsynced_ && !dir_unsynced_)) continue;
    std::shared_ptr<File> file = unsynced_ && active_ ? segments_.back().file : nullptr;
    std::string path = file ? segments_.back().path : "";
    bool dir = dir_unsynced_;
    unsynced_ = dir_unsynced_ = false;
    lk.Unlock();
    if (file && fdatasync(file->fd) != 0) Log(Errno("fdatasync", path));
    if (dir) {
      if (auto r = SyncDir(); !r) Log(r.error());
    }
    lk.Lock();
  }
}

bool Spool::WaitFor(uint64_t pos, std::chrono::milliseconds timeout) {
  MutexLock lk(mu_);
  appended_.WaitFor(lk, timeout, [&]() DW_REQUIRES(mu_) { return end_ > pos || interrupted_; });
  return end_ > pos;
}

void Spool::Interrupt() {
  {
    MutexLock lk(mu_);
    interrupted_ = true;
  }
  appended_.NotifyAll();
}

uint64_t Spool::acked() const {
  MutexLock lk(mu_);
  return acked_;
}
uint64_t Spool::end() const {
  MutexLock lk(mu_);
  return end_;
}
uint64_t Spool::depth() const {
  MutexLock lk(mu_);
  return end_ - acked_;
}
uint64_t Spool::bytes() const {
  MutexLock lk(mu_);
  return bytes_;
}
uint64_t Spool::dropped() const {
  MutexLock lk(mu_);
  return dropped_;
}
uint64_t Spool::recovered_corrupt() const {
  MutexLock lk(mu_);
  return recovered_corrupt_;
}
uint64_t Spool::read_corrupt() const {
  MutexLock lk(mu_);
  return read_corrupt_;
}
uint64_t Spool::segments() const {
  MutexLock lk(mu_);
  return segments_.size();
}
uint64_t Spool::append_failures() const {
  MutexLock lk(mu_);
  return append_failures_;
}
std::string Spool::append_error() const {
  MutexLock lk(mu_);
  return append_error_;
}
uint64_t Spool::ack_failures() const {
  MutexLock lk(mu_);
  return ack_failures_;
}

}  // namespace driftwatch::sensor
