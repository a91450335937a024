// spool: the sensor's durable queue of events waiting for the collector, a small write-ahead
// log on disk. Every event the sensor produces is appended; the sender reads events from it,
// streams them, and acknowledges them once the collector has stored them. An event leaves the
// spool only when it was acknowledged, or when the spool is full (oldest dropped, counted).
//
// Thread-safety: every method may be called from any thread; one internal mutex guards the
// state. Append's pwritev runs under it; fsync (except the one when a segment rolls under
// kInterval/kAlways), Read's pread, the ack file and unlink do not. In the sensor, Append runs
// on the source threads and Read/Ack/WaitFor on the sender thread. The dir lock is an flock:
// a child fork()ed without exec shares it (the fd is O_CLOEXEC).
//
// Positions: each event gets a position, a global record index that keeps growing across
// restarts; [acked(), end()) are the events waiting. Positions may have gaps (segments lost
// to corruption or dropped when full): Read skips them and reports the position it stopped at.
//
// On disk, in SpoolOptions::dir (0700; files 0600):
//   LOCK                      flock'ed while a Spool is open; holds the owner's pid (written
//                             in place, best effort: only the message naming a holder uses it).
//   ack                       Two 20-byte slots, each "DWACK001", acked position (u64 LE),
//                             masked crc32 of both (u32 LE). Open takes the larger valid one
//                             (a file of one slot, as earlier versions wrote, reads too) and
//                             writes the whole file when it is not 40 bytes long; Ack then
//                             overwrites the slot with the smaller value in place (pwrite, no
//                             ack.tmp + rename): that needs no free block, so acks and the
//                             release of acked segments go on when the filesystem is full, and
//                             a write torn by a power cut spoils only the older slot.
//   losses                    Not the Spool's: the sensor's lifetime loss totals
//                             (sensor/loss_file.h: two 128-byte slots, generation + counters +
//                             crc, overwritten in place), guarded by the same LOCK.
//   <first position>.seg      20 decimal digits. Header "DWSPOOL1" + first position (u64 LE),
//                             then records. Written only at its end by one Spool; older
//                             segments are read-only and deleted when fully acknowledged.
// Record: masked crc32 (u32 LE) | payload length (u32 LE) | payload (a serialized v1::Event).
// The crc covers the record's position (u64 LE), the length field and the payload, so a
// record read at the wrong position or from a stale file fails the check. A length read from
// disk is trusted only up to kMaxRecordBytes and the bytes left in the file.
//
// Crash recovery (Open): each segment is scanned up to its first record that is short, too
// long or fails its crc; the rest of that segment is cut off (truncated), logged with file
// name and offset, and counted in recovered_corrupt(): the number of positions lost when the
// next segment tells (a cut in the middle of the spool), else 1 (a torn tail). A record is
// written with one pwrite(), so a kill -9 loses nothing whose Append returned; a kill inside
// that pwrite can leave its record partial (the kernel stops a page-cache write between pages
// once SIGKILL is pending), and that record, never returned, is the torn tail. A new Open
// always appends to a new segment; old ones are never written again.
//
// Durability (FsyncPolicy), what survives what:
//   kNever     Appended events survive a crash or kill -9 of the sensor (they are in the page
//              cache) but not a power loss or kernel crash: the kernel writes them back on
//              its own schedule (vm.dirty_expire_centisecs, 30 s by default). Cheapest: an
//              Append is one pwrite().
//   kInterval  As kNever, plus a background flusher thread fdatasync()s the segment being
//              written (and the directory after a new segment) every fsync_interval when
//              something was appended: a power loss loses at most about fsync_interval of
//              events. Appends never wait for the disk (except a roll, which syncs the
//              segment it closes); an idle spool has nothing unsynced.
//   kAlways    fdatasync() after every Append before it returns: nothing whose Append
//              returned is lost to a power loss (if the disk honours flushes). Costs one
//              disk flush per event (0.1 ms to 10 ms each): only for low event rates.
// The ack file is fdatasync'ed after each write under kInterval and kAlways (and its
// directory when it was written whole, as it may be new). A lost ack (kNever, power loss, a
// torn slot) only means events already stored get sent again; the collector de-duplicates
// them by EventId.
//
// A full filesystem (ENOSPC), a file size limit (EFBIG), an I/O error: an Append that fails
// stores nothing, returns the error and is counted in append_failures(); append_error() holds
// the error until an Append succeeds again. A record written in part (a short write) is cut
// off again at once (ftruncate to the last whole record, which frees what it took); when
// that fails too, the next Append starts a new segment instead of writing after it (the next
// Open cuts the part off as a torn tail, counted in recovered_corrupt()). A failed Append
// takes no position. Nothing
// whose Append returned a position is lost or changed by a failing one, and nothing needs a
// restart: each Append simply tries again, and succeeds once there is room. Meanwhile Ack
// and the deletion of acknowledged segments (unlink) need no free space and go on, which is
// what frees it when the collector is reachable. An ack that cannot be written at all (an I/O
// error, a copy-on-write filesystem that needs a block for an overwrite) is counted in
// ack_failures() and returned as an error, but the acknowledgement still holds in memory and
// fully acknowledged segments are still deleted, except the newest, whose name carries end()
// across a restart: after one the stale ack file only means events sent again, which the
// collector de-duplicates. Open also works on a full filesystem: it only reads, shrinks and
// deletes, and overwrites the LOCK and ack files in place (an ack file it would have to
// create or make whole is logged and left to the next Ack).
//
// Size bound: when the segments' total size exceeds max_bytes after an Append, the oldest
// segments (never the one being written) are deleted, acknowledged or not; the unacked events
// in them are counted in dropped(). Disk use can therefore exceed max_bytes only while the
// segment being written alone does (max_bytes < segment_bytes + one event). An event larger
// than segment_bytes still goes in, in a segment of its own; one larger than kMaxRecordBytes
// or max_bytes is refused with an error.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/mutex.h"

namespace driftwatch::sensor {

enum class FsyncPolicy { kNever, kInterval, kAlways };

struct SpoolOptions {
  std::string dir;                      // created 0700 (with missing parents) if missing
  uint64_t max_bytes = 256ull << 20;    // bound on all segments; oldest dropped beyond it
  uint64_t segment_bytes = 8ull << 20;  // roll to a new segment file past this size (<= 1 GiB)
  FsyncPolicy fsync = FsyncPolicy::kInterval;
  std::chrono::milliseconds fsync_interval{1000};
};

class Spool {
 public:
  // Largest serialized event the spool stores; also the bound on lengths read from disk.
  static constexpr uint32_t kMaxRecordBytes = 64u << 20;

  // Opens or creates the spool in options.dir and recovers its segments (see above: a torn
  // or corrupt record is cut off and counted, never an error). Refuses a dir another live
  // Spool holds (in this or another process), naming it and the holder's pid. Errors: bad
  // options, I/O errors, the dir held.
  static std::expected<std::unique_ptr<Spool>, std::string> Open(const SpoolOptions& options);

  // Syncs what is unsynced (unless kNever), stops the flusher, releases the lock.
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // Serializes and appends one event; returns its position. Errors: the event too large or
  // not serializable, a write error (e.g. ENOSPC, EFBIG: nothing of the event stays in the
  // file), all counted in append_failures(); a failed fsync under kAlways (the event is then
  // in the spool but maybe not on the disk; not counted).
  std::expected<uint64_t, std::string> Append(const v1::Event& ev);
  // Same for an already serialized event.
  std::expected<uint64_t, std::string> AppendSerialized(std::string_view payload);

  // Appends to `*events` up to max_events serialized events from position `from` on (from <
  // acked() is clamped to acked(); a position in a gap skips to the next stored one) and
  // sets `*next` to the position after the last one returned (or where reading stopped).
  // At most max_bytes of payload, but always at least one event if one is there. Returns no
  // events and *next = end() when `from` >= end(); no events always means nothing is stored
  // from `from` on now. A record that fails its crc on re-read (the disk changed under us)
  // is skipped, logged and counted in read_corrupt(). Errors: I/O errors only.
  std::expected<void, std::string> Read(uint64_t from, size_t max_events, size_t max_bytes,
                                        std::vector<std::string>* events, uint64_t* next);

  // Everything before `up_to` is acknowledged (up_to is clamped to end(); a smaller value
  // than acked() is a no-op): persisted in the ack file (in place, see above), then fully
  // acknowledged segments (except the one being written) are deleted. Errors: the ack file
  // could not be written (counted in ack_failures(); acked() moved on all the same and
  // acknowledged segments but the newest were deleted), or a segment could not be deleted.
  std::expected<void, std::string> Ack(uint64_t up_to);

  // Blocks until end() > pos, the timeout passes, or Interrupt() was called; returns
  // end() > pos.
  bool WaitFor(uint64_t pos, std::chrono::milliseconds timeout);
  // Wakes every WaitFor and makes later ones return at once (for shutdown): sticky.
  void Interrupt();

  // fdatasync()s the segment being written and fsync()s the directory now, any policy.
  std::expected<void, std::string> Sync();

  uint64_t acked() const;     // first unacknowledged position
  uint64_t end() const;       // position after the last appended event
  uint64_t depth() const;     // end() - acked(): events waiting (gaps included)
  uint64_t bytes() const;     // bytes of all segments on disk
  uint64_t dropped() const;   // unacked events discarded because the spool was full (this run)
  uint64_t recovered_corrupt() const;  // positions cut off at Open (see above)
  uint64_t read_corrupt() const;       // records skipped by Read for a failed crc (this run)
  uint64_t segments() const;           // segment files on disk
  uint64_t append_failures() const;    // Appends that stored nothing (this run)
  std::string append_error() const;    // the last Append's error; empty once one succeeds
  uint64_t ack_failures() const;       // Acks whose ack file write failed (this run)

 private:
  struct File;  // an fd closed when the last reference goes (Read keeps one across pread)
  struct Segment {
    uint64_t first = 0;              // position of its first record
    std::string path;
    std::shared_ptr<File> file;
    uint64_t size = 0;               // valid bytes: header + whole records
    std::vector<uint32_t> offsets;   // of each record's header, in file order
    uint64_t end() const { return first + offsets.size(); }
  };

  explicit Spool(const SpoolOptions& options);
  std::expected<void, std::string> Recover() DW_EXCLUDES(ack_mu_, mu_);
  // One pass of Read; *found: some records were there (maybe all failing their crc).
  std::expected<void, std::string> ReadOnce(uint64_t from, size_t max_events, size_t max_bytes,
                                            std::vector<std::string>* events, uint64_t* next,
                                            bool* found);
  std::expected<void, std::string> StartSegment() DW_REQUIRES(mu_);
  void DropOldestIfFull(std::vector<Segment>* doomed) DW_REQUIRES(mu_);
  // The slot holding the older value, or the whole file when whole_ack_file_.
  std::expected<void, std::string> WriteAckFile(uint64_t acked) DW_REQUIRES(ack_mu_);
  // Counts a failed Append and keeps its error.
  std::unexpected<std::string> AppendFailed(std::string err) DW_REQUIRES(mu_);
  std::expected<void, std::string> SyncDir();
  void FlusherLoop();

  const SpoolOptions options_;
  int lock_fd_ = -1;

  Mutex ack_mu_;  // serializes Ack's file I/O; taken before mu_, never after
  int ack_fd_ DW_GUARDED_BY(ack_mu_) = -1;              // after Open; kept open for in-place writes
  int ack_slot_ DW_GUARDED_BY(ack_mu_) = 0;             // the slot the next write goes to
  bool whole_ack_file_ DW_GUARDED_BY(ack_mu_) = false;  // the next write writes both slots

  mutable Mutex mu_;
  CondVar appended_;                                 // end_ grew, or interrupted_
  CondVar flush_cv_;                                 // wakes the flusher: stopping_
  std::deque<Segment> segments_ DW_GUARDED_BY(mu_);  // by first position; back() active
  bool active_ DW_GUARDED_BY(mu_) = false;           // segments_.back() is being written
  uint64_t acked_ DW_GUARDED_BY(mu_) = 0;
  uint64_t end_ DW_GUARDED_BY(mu_) = 0;
  uint64_t bytes_ DW_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ DW_GUARDED_BY(mu_) = 0;
  uint64_t recovered_corrupt_ DW_GUARDED_BY(mu_) = 0;
  uint64_t read_corrupt_ DW_GUARDED_BY(mu_) = 0;
  uint64_t append_failures_ DW_GUARDED_BY(mu_) = 0;
  std::string append_error_ DW_GUARDED_BY(mu_);
  uint64_t ack_failures_ DW_GUARDED_BY(mu_) = 0;
  bool roll_ DW_GUARDED_BY(mu_) = false;          // the active segment's tail is unsure
  bool unsynced_ DW_GUARDED_BY(mu_) = false;      // appended since the last data sync
  bool dir_unsynced_ DW_GUARDED_BY(mu_) = false;  // a segment created since dir sync
  bool interrupted_ DW_GUARDED_BY(mu_) = false;
  bool stopping_ DW_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_drop_log_ DW_GUARDED_BY(mu_) =
      std::chrono::steady_clock::now() - std::chrono::hours(1);

  std::thread flusher_;  // kInterval only; last member: started after the rest exists
};

}  // namespace driftwatch::sensor
