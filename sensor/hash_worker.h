// hash_worker: the sha256 of written executables, computed off the fanotify drain thread,
// with each container's events leaving in the order they were read.
//
// Why: a hash reads up to --hash-max (64 MiB) of a file. On the thread that drains the
// fanotify queue, a container looping large (sparse) ELF writes would hold that thread long
// enough for the kernel's queue (16384 events) to overflow, for every container on the
// node. The drain thread now only classifies a file (its first bytes, ClassifyFile) and hands
// it over with its open fd; one worker thread hashes. (Files of a few pages the drain thread
// hashes itself, FanotifyOptions::hash_inline_bytes: that costs no more than writing them.)
//
// Bounds: the queue holds at most `max_files` files and `max_bytes` of their sizes (bytes to
// read: a sparse file counts its apparent size), and no container more than half of either,
// so that one container's flood leaves room for the others' hashes. A file that does not fit
// is not hashed: its event leaves without sha256, counted in hash_queue_full. Events waiting
// behind a hash (below) are at most `max_waiting`; at that bound the container with the most
// waiting gives up its pending hashes (each counted in hash_queue_full) and its events leave
// at once, in order.
//
// Order: an event leaves after every earlier event of its container, so one that follows an
// event waiting for its hash waits too; other containers' events pass. Per container and not
// per file, because the collector's correlator (lib/detect/correlation.cc) keeps per-container file
// state in arrival order and names one file by several paths (a rename, a hard link): a
// close-write arriving after the delete or rename that followed it would leave a stale
// "written at runtime" record under a name, or miss the move. The exec of the file comes
// from audit, a separate stream, and may overtake its write anyway: the correlator keeps such
// an exec for its window (10 s of event time) and evaluates it again when the write arrives.
// The watcher stamps an event when it reads it from the kernel, not when its hash is done,
// so waiting for a hash never pushes a write past that window.
//
// Thread-safety: Pass and Hash from one producer thread (the drain thread); Start and Stop
// from the controlling thread. The sink runs with the internal mutex held, on the producer
// thread or the worker: never concurrently, and in order per container. Counters may be
// read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

#include "driftwatch/v1/event.pb.h"
#include "lib/base/mutex.h"
#include "lib/event/file_digest.h"

namespace driftwatch::sensor {

struct HashQueueLimits {
  size_t max_files = 64;           // files queued or being hashed (each holds an open fd)
  uint64_t max_bytes = 256 << 20;  // their sizes; raised to 2 x hash_max_bytes if below
  size_t max_waiting = 4096;       // events waiting behind a hash, all containers
};

// What the worker counts. The watcher's FanotifyCounters are these and more.
struct HashCounters {
  std::atomic<uint64_t> hash_skipped{0};     // executables over the hash size cap
  std::atomic<uint64_t> hash_queue_full{0};  // executables not hashed: no room in the queue
  std::atomic<uint64_t> errors{0};           // unreadable events or files
};

class HashWorker {
 public:
  using Sink = std::function<void(v1::Event&)>;
  // Hashes the file behind an fd into FileFacts (HashFile; a fake in tests).
  using Hasher = std::function<void(int fd, uint64_t hash_max_bytes, FileFacts* f)>;

  // REQUIRES: `counters` outlives the worker.
  HashWorker(HashQueueLimits limits, uint64_t hash_max_bytes, HashCounters* counters, Sink sink,
             Hasher hasher = HashFile);
  ~HashWorker();  // Stop()
  HashWorker(const HashWorker&) = delete;
  HashWorker& operator=(const HashWorker&) = delete;

  void Start();
  // Hashes what is queued (at most max_bytes: bounded), emits every event still waiting and
  // joins the worker. Pass and Hash must not be called during or after it.
  void Stop();

  // `ev` leaves now, or after the earlier events of its container that wait for a hash.
  void Pass(v1::Event ev);
  // `ev`, a write of an executable ClassifyFile wants hashed, leaves with the sha256 of the
  // file behind `fd` (owned from now on), in its container's order; without the sha256 when
  // the queue has no room (counted). `size`: the file's size as fstat said.
  void Hash(v1::Event ev, int fd, uint64_t size);

  // Files queued or being hashed, and events waiting, now (for tests and status).
  size_t files() const;
  size_t waiting() const;

 private:
  struct Item {
    v1::Event ev;
    int fd = -1;          // the file to hash while queued; the worker takes it
    uint64_t bytes = 0;   // counted against the queue until its hash is done
    bool done = true;     // may leave: hashed, given up, or never to be hashed
    bool emitted = false;
  };
  using ItemPtr = std::shared_ptr<Item>;
  struct Lane {  // one container's events, oldest first; the first one waits for a hash
    std::deque<ItemPtr> items;
    size_t files = 0;
    uint64_t bytes = 0;
  };

  void Run();
  // The lane of `container_id` if it has events waiting; null when its events may leave now.
  Lane* FindLane(const std::string& container_id) DW_REQUIRES(mu_);
  void Append(Lane& lane, ItemPtr item) DW_REQUIRES(mu_);
  // Emits the lane's events up to the first one still waiting for its hash; erases the lane
  // when none is left.
  void Flush(const std::string& container_id) DW_REQUIRES(mu_);
  // The lane with the most events waiting leaves at once, its pending hashes given up.
  void GiveUpLargest() DW_REQUIRES(mu_);
  void GiveUp(const std::string& container_id) DW_REQUIRES(mu_);
  void EmitLocked(Item& item) DW_REQUIRES(mu_);

  const HashQueueLimits limits_;
  const uint64_t hash_max_bytes_;
  HashCounters* const counters_;
  const Sink sink_;
  const Hasher hasher_;

  mutable Mutex mu_;
  CondVar wake_;
  std::unordered_map<std::string, Lane> lanes_ DW_GUARDED_BY(mu_);  // by container id
  std::deque<ItemPtr> queue_ DW_GUARDED_BY(mu_);                    // files to hash, FIFO
  size_t files_ DW_GUARDED_BY(mu_) = 0;                             // queued + being hashed
  uint64_t bytes_ DW_GUARDED_BY(mu_) = 0;
  size_t waiting_ DW_GUARDED_BY(mu_) = 0;  // items in lanes_
  bool stopping_ DW_GUARDED_BY(mu_) = false;

  std::thread thread_;
};

}  // namespace driftwatch::sensor
