// sensor/hash_worker: order per container, the queue's bounds and what they count. A gated
// hasher stands in for HashFile, so that a test decides when a hash is done; one test uses
// the real HashFile on a real file.
#include "sensor/hash_worker.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace driftwatch::sensor {
namespace {

// Hashes block until released; each hash gives "sha:<n>" for the n-th file hashed.
class Gate {
 public:
  HashWorker::Hasher Hasher() {
    return [this](int, uint64_t, FileFacts* f) {
      std::unique_lock<std::mutex> lock(mu_);
      ++entered_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return released_ > 0; });
      --released_;
      f->hashed = true;
      f->sha256 = "sha:" + std::to_string(++done_);
    };
  }
  void Release(int n = 1) {
    std::lock_guard<std::mutex> lock(mu_);
    released_ += n;
    cv_.notify_all();
  }
  // Waits until the worker is inside the n-th hash.
  bool WaitEntered(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return entered_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int entered_ = 0, released_ = 0, done_ = 0;
};

class Sink {
 public:
  HashWorker::Sink Fn() {
    return [this](v1::Event& ev) {
      std::lock_guard<std::mutex> lock(mu_);
      out_.push_back(ev.write().path() + (ev.write().sha256().empty() ? "" : "=" + ev.write().sha256()));
      cv_.notify_all();
    };
  }
  std::vector<std::string> Out() {
    std::lock_guard<std::mutex> lock(mu_);
    return out_;
  }
  bool WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return out_.size() >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> out_;
};

v1::Event Ev(const std::string& container, const std::string& path) {
  v1::Event ev;
  ev.set_container_id(container);
  ev.mutable_write()->set_path(path);
  return ev;
}

int Fd() { return open("/dev/null", O_RDONLY | O_CLOEXEC); }  // the worker closes it

using Strings = std::vector<std::string>;

TEST(HashWorkerTest, OrderPerContainerOthersPass) {
  Gate gate;
  Sink sink;
  HashCounters counters;
  HashWorker w({}, 1 << 20, &counters, sink.Fn(), gate.Hasher());
  w.Start();
  w.Pass(Ev("a", "a0"));  // nothing waits: leaves at once, on this thread
  EXPECT_EQ(sink.Out(), Strings({"a0"}));
  w.Hash(Ev("a", "a1"), Fd(), 100);
  w.Pass(Ev("a", "a2-delete"));  // must not overtake the write it follows
  w.Pass(Ev("b", "b1"));
  w.Hash(Ev("b", "b2"), Fd(), 100);
  w.Pass(Ev("b", "b3"));
  ASSERT_TRUE(gate.WaitEntered(1));
  EXPECT_EQ(sink.Out(), Strings({"a0", "b1"}));
  EXPECT_EQ(w.waiting(), 4u);
  gate.Release();
  ASSERT_TRUE(sink.WaitFor(4));
  EXPECT_EQ(sink.Out(), Strings({"a0", "b1", "a1=sha:1", "a2-delete"}));
  gate.Release();
  ASSERT_TRUE(sink.WaitFor(6));
  EXPECT_EQ(sink.Out(), Strings({"a0", "b1", "a1=sha:1", "a2-delete", "b2=sha:2", "b3"}));
  EXPECT_EQ(w.files(), 0u);
  EXPECT_EQ(w.waiting(), 0u);
  EXPECT_EQ(counters.hash_queue_full.load(), 0u);
  w.Stop();
}

// Files: at most max_files, a container at most half. What does not fit leaves without its
// hash, counted, still in order.
TEST(HashWorkerTest, FullQueueCountsAndKeepsOrder) {
  Gate gate;
  Sink sink;
  HashCounters counters;
  HashQueueLimits limits;
  limits.max_files = 4;
  HashWorker w(limits, 1 << 20, &counters, sink.Fn(), gate.Hasher());
  w.Start();
  w.Hash(Ev("a", "a1"), Fd(), 1);
  w.Hash(Ev("a", "a2"), Fd(), 1);
  w.Hash(Ev("a", "a3"), Fd(), 1);  // a holds half already
  EXPECT_EQ(counters.hash_queue_full.load(), 1u);
  w.Hash(Ev("b", "b1"), Fd(), 1);  // room left for b
  w.Hash(Ev("b", "b2"), Fd(), 1);
  w.Hash(Ev("c", "c1"), Fd(), 1);  // the queue is full: c's first file leaves at once
  EXPECT_EQ(counters.hash_queue_full.load(), 2u);
  EXPECT_EQ(w.files(), 4u);
  ASSERT_TRUE(gate.WaitEntered(1));
  EXPECT_EQ(sink.Out(), Strings({"c1"}));
  gate.Release(4);
  ASSERT_TRUE(sink.WaitFor(6));
  w.Stop();
  EXPECT_EQ(sink.Out(), Strings({"c1", "a1=sha:1", "a2=sha:2", "a3", "b1=sha:3", "b2=sha:4"}));
  EXPECT_EQ(counters.hash_queue_full.load(), 2u);
}

// Bytes: the sizes of the files queued, at most max_bytes (at least twice the hash cap), a
// container at most half.
TEST(HashWorkerTest, BytesBound) {
  Gate gate;
  Sink sink;
  HashCounters counters;
  HashQueueLimits limits;
  limits.max_bytes = 1;  // raised to 2 x 1000
  HashWorker w(limits, 1000, &counters, sink.Fn(), gate.Hasher());
  w.Start();
  w.Hash(Ev("a", "a1"), Fd(), 1000);  // the largest file hashed fits a container's half
  w.Hash(Ev("a", "a2"), Fd(), 1);     // over a's half
  w.Hash(Ev("b", "b1"), Fd(), 999);
  w.Hash(Ev("b", "b2"), Fd(), 1);
  w.Hash(Ev("c", "c1"), Fd(), 1);  // the queue's bytes are all taken
  EXPECT_EQ(counters.hash_queue_full.load(), 2u);
  gate.Release(3);
  ASSERT_TRUE(sink.WaitFor(5));
  w.Stop();
  EXPECT_EQ(sink.Out(), Strings({"c1", "a1=sha:1", "a2", "b1=sha:2", "b2=sha:3"}));
}

// At max_waiting, the container with the most events waiting gives up its hashes (counted)
// and its events leave at once, in order; a hash given up while being computed is dropped
// when it is done.
TEST(HashWorkerTest, WaitingBoundGivesUpTheLargest) {
  Gate gate;
  Sink sink;
  HashCounters counters;
  HashQueueLimits limits;
  limits.max_waiting = 5;
  HashWorker w(limits, 1 << 20, &counters, sink.Fn(), gate.Hasher());
  w.Start();
  w.Hash(Ev("a", "a1"), Fd(), 1);
  ASSERT_TRUE(gate.WaitEntered(1));  // a1 is being hashed
  w.Hash(Ev("a", "a2"), Fd(), 1);    // queued
  w.Pass(Ev("a", "a3"));
  w.Hash(Ev("b", "b1"), Fd(), 1);
  w.Pass(Ev("b", "b2"));
  EXPECT_EQ(w.waiting(), 5u);
  EXPECT_TRUE(sink.Out().empty());
  w.Pass(Ev("b", "b3"));  // over the bound: a (3 waiting) gives up
  EXPECT_EQ(sink.Out(), Strings({"a1", "a2", "a3"}));
  EXPECT_EQ(counters.hash_queue_full.load(), 2u);
  EXPECT_EQ(w.waiting(), 3u);
  EXPECT_EQ(w.files(), 2u);  // a1 (still being hashed) and b1; a2 left the queue
  w.Pass(Ev("a", "a4"));     // a waits for nothing any more
  EXPECT_EQ(sink.Out().back(), "a4");
  gate.Release(2);  // a1's hash, then b1's
  ASSERT_TRUE(sink.WaitFor(7));
  w.Stop();
  EXPECT_EQ(sink.Out(), Strings({"a1", "a2", "a3", "a4", "b1=sha:2", "b2", "b3"}));
  EXPECT_EQ(w.files(), 0u);
  EXPECT_EQ(counters.hash_queue_full.load(), 2u);
}

// Stop hashes what is queued and emits everything.
TEST(HashWorkerTest, StopFinishesTheQueue) {
  Gate gate;
  Sink sink;
  HashCounters counters;
  HashWorker w({}, 1 << 20, &counters, sink.Fn(), gate.Hasher());
  w.Start();
  w.Hash(Ev("a", "a1"), Fd(), 1);
  w.Hash(Ev("a", "a2"), Fd(), 1);
  w.Pass(Ev("a", "a3"));
  gate.Release(2);
  w.Stop();
  EXPECT_EQ(sink.Out(), Strings({"a1=sha:1", "a2=sha:2", "a3"}));
  EXPECT_EQ(counters.hash_queue_full.load(), 0u);
}

// Without a worker thread nothing is hashed, but nothing is lost either.
TEST(HashWorkerTest, NeverStartedLeavesUnhashedCounted) {
  Sink sink;
  HashCounters counters;
  HashWorker w({}, 1 << 20, &counters, sink.Fn(), [](int, uint64_t, FileFacts*) {});
  w.Hash(Ev("a", "a1"), Fd(), 1);
  w.Pass(Ev("a", "a2"));
  w.Stop();
  EXPECT_EQ(sink.Out(), Strings({"a1", "a2"}));
  EXPECT_EQ(counters.hash_queue_full.load(), 1u);
}

// The real HashFile on a real file; a file that grew past the cap and a read error counted.
TEST(HashWorkerTest, RealHash) {
  char path[] = "/tmp/dw-hash-worker-test.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  const std::string data = "#!/bin/sh\necho hi\n";
  ASSERT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  close(fd);
  Sink sink;
  HashCounters counters;
  HashWorker w({}, 10, &counters, sink.Fn());
  w.Start();
  w.Hash(Ev("a", "big"), open(path, O_RDONLY | O_CLOEXEC), 5);  // grew to 18 bytes > 10
  HashWorker exact({}, 1 << 20, &counters, sink.Fn());
  exact.Start();
  exact.Hash(Ev("b", "ok"), open(path, O_RDONLY | O_CLOEXEC), data.size());
  exact.Hash(Ev("b", "dir"), open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC), 1);  // EISDIR
  w.Stop();
  exact.Stop();
  unlink(path);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  Strings out = sink.Out();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_NE(std::find(out.begin(), out.end(), "big"), out.end());
  EXPECT_NE(std::find(out.begin(), out.end(), "ok=" + std::string(reinterpret_cast<char*>(md), len)),
            out.end());
  EXPECT_NE(std::find(out.begin(), out.end(), "dir"), out.end());
  EXPECT_EQ(counters.hash_skipped.load(), 1u);
  EXPECT_EQ(counters.errors.load(), 1u);
}

}  // namespace
}  // namespace driftwatch::sensor
