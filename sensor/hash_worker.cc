#include "sensor/hash_worker.h"

#include <pthread.h>

#include <unistd.h>

#include <algorithm>

namespace driftwatch::sensor {
namespace {

HashQueueLimits Effective(HashQueueLimits l, uint64_t hash_max_bytes) {
  // A container's half must hold the largest file hashed, or no such file ever would be.
  l.max_bytes = std::max(l.max_bytes, 2 * hash_max_bytes);
  l.max_files = std::max<size_t>(l.max_files, 2);
  l.max_waiting = std::max<size_t>(l.max_waiting, 1);
  return l;
}

}  // namespace

HashWorker::HashWorker(HashQueueLimits limits, uint64_t hash_max_bytes, HashCounters* counters,
                       Sink sink, Hasher hasher)
    : limits_(Effective(limits, hash_max_bytes)), hash_max_bytes_(hash_max_bytes),
      counters_(counters), sink_(std::move(sink)), hasher_(std::move(hasher)) {}

HashWorker::~HashWorker() { Stop(); }

void HashWorker::Start() {
  MutexLock lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "dw-hash");
    Run();
  });
}

void HashWorker::Stop() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
  }
  wake_.NotifyAll();
  if (thread_.joinable()) thread_.join();
  // The worker hashed everything queued, and each lane starts with a queued file: none is
  // left. Without a worker (never started), what waits leaves unhashed, counted.
  MutexLock lock(mu_);
  while (!lanes_.empty()) GiveUp(lanes_.begin()->first);
}

size_t HashWorker::files() const {
  MutexLock lock(mu_);
  return files_;
}

size_t HashWorker::waiting() const {
  MutexLock lock(mu_);
  return waiting_;
}

HashWorker::Lane* HashWorker::FindLane(const std::string& container_id) {
  if (lanes_.empty()) return nullptr;  // the usual case: nothing being hashed
  auto it = lanes_.find(container_id);
  return it == lanes_.end() ? nullptr : &it->second;
}

void HashWorker::EmitLocked(Item& item) {
  item.emitted = true;
  sink_(item.ev);
}

void HashWorker::Append(Lane& lane, ItemPtr item) {
  lane.items.push_back(std::move(item));
  ++waiting_;
}

void HashWorker::Pass(v1::Event ev) {
  MutexLock lock(mu_);
  if (waiting_ >= limits_.max_waiting) GiveUpLargest();
  Lane* lane = FindLane(ev.container_id());
  if (lane == nullptr) {
    sink_(ev);
    return;
  }
  auto item = std::make_shared<Item>();
  item->ev = std::move(ev);
  Append(*lane, std::move(item));
}

void HashWorker::Hash(v1::Event ev, int fd, uint64_t size) {
  MutexLock lock(mu_);
  if (waiting_ >= limits_.max_waiting) GiveUpLargest();
  Lane* lane = FindLane(ev.container_id());
  const size_t lane_files = lane ? lane->files : 0;
  const uint64_t lane_bytes = lane ? lane->bytes : 0;
  const bool fits = files_ < limits_.max_files && lane_files < limits_.max_files / 2 &&
                    size <= limits_.max_bytes - bytes_ &&
                    lane_bytes + size <= limits_.max_bytes / 2;
  if (!fits) {
    close(fd);
    counters_->hash_queue_full.fetch_add(1, std::memory_order_relaxed);
    if (lane == nullptr) {
      sink_(ev);
      return;
    }
    auto item = std::make_shared<Item>();
    item->ev = std::move(ev);
    Append(*lane, std::move(item));
    return;
  }
  if (lane == nullptr) lane = &lanes_[ev.container_id()];
  auto item = std::make_shared<Item>();
  item->ev = std::move(ev);
  item->fd = fd;
  item->bytes = size;
  item->done = false;
  ++lane->files;
  lane->bytes += size;
  ++files_;
  bytes_ += size;
  queue_.push_back(item);
  Append(*lane, std::move(item));
  wake_.NotifyOne();
}

void HashWorker::Flush(const std::string& container_id) {
  auto it = lanes_.find(container_id);
  if (it == lanes_.end()) return;
  std::deque<ItemPtr>& items = it->second.items;
  while (!items.empty() && items.front()->done) {
    EmitLocked(*items.front());
    items.pop_front();
    --waiting_;
  }
  if (items.empty()) lanes_.erase(it);
}

void HashWorker::GiveUpLargest() {
  auto largest = lanes_.end();
  for (auto it = lanes_.begin(); it != lanes_.end(); ++it)
    if (largest == lanes_.end() || it->second.items.size() > largest->second.items.size())
      largest = it;
  if (largest != lanes_.end()) GiveUp(largest->first);
}

void HashWorker::GiveUp(const std::string& container_id) {
  auto it = lanes_.find(container_id);
  if (it == lanes_.end()) return;
  Lane& lane = it->second;
  for (ItemPtr& item : lane.items) {
    if (!item->done) {
      counters_->hash_queue_full.fetch_add(1, std::memory_order_relaxed);
      item->done = true;
      if (item->fd >= 0) {  // still queued: never hashed (one being hashed is the worker's)
        close(item->fd);
        item->fd = -1;
        queue_.erase(std::find(queue_.begin(), queue_.end(), item));
        --files_;
        bytes_ -= item->bytes;
      }
    }
    EmitLocked(*item);
    --waiting_;
  }
  lanes_.erase(it);
}

void HashWorker::Run() {
  MutexLock lock(mu_);
  for (;;) {
    wake_.Wait(lock, [this]() DW_REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything queued was hashed
    ItemPtr item = queue_.front();
    queue_.pop_front();
    const int fd = item->fd;
    item->fd = -1;
    lock.Unlock();
    FileFacts facts;
    hasher_(fd, hash_max_bytes_, &facts);
    close(fd);
    lock.Lock();
    --files_;
    bytes_ -= item->bytes;
    if (item->emitted) continue;  // given up while hashed: left without it, counted then
    v1::FileWrite* w = item->ev.mutable_write();
    if (facts.hashed) {
      w->set_sha256(facts.sha256);
    } else if (facts.over_cap) {  // it grew past the cap since the drain thread saw it
      counters_->hash_skipped.fetch_add(1, std::memory_order_relaxed);
    } else {
      counters_->errors.fetch_add(1, std::memory_order_relaxed);
    }
    item->done = true;
    const std::string& id = item->ev.container_id();
    auto lane = lanes_.find(id);
    if (lane != lanes_.end()) {
      --lane->second.files;
      lane->second.bytes -= item->bytes;
    }
    Flush(std::string(id));
  }
}

}  // namespace driftwatch::sensor
