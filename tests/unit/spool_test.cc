// The spool against real files in a temp dir: round trips, restarts, crashes (a forked
// child killed with SIGKILL), torn and corrupt segments, rolling, the size bound, locking;
// write failures (a forked child under RLIMIT_FSIZE gets EFBIG and short writes, as a full
// disk gives ENOSPC: tests/privileged/spool_enospc_test.cc has the real full disk), the ack
// file's slots, and the sensor's loss file beside the spool (sensor/loss_file.h).
#include "sensor/spool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "sensor/loss_file.h"

namespace driftwatch::sensor {
namespace {

namespace fs = std::filesystem;

class SpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dw_spool_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/spool";
  }
  void TearDown() override { fs::remove_all(root_); }

  SpoolOptions Opts(uint64_t segment_bytes = 8ull << 20, uint64_t max_bytes = 256ull << 20) {
    SpoolOptions o;
    o.dir = dir_;
    o.segment_bytes = segment_bytes;
    o.max_bytes = max_bytes;
    o.fsync = FsyncPolicy::kNever;
    return o;
  }
  std::unique_ptr<Spool> MustOpen(const SpoolOptions& o) {
    auto s = Spool::Open(o);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error());
    return s ? std::move(*s) : nullptr;
  }
  std::vector<std::string> SegmentFiles() {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().extension() == ".seg") out.push_back(e.path().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string root_, dir_;
};

v1::Event MakeEvent(uint64_t seq, size_t pad = 100) {
  v1::Event ev;
  ev.mutable_id()->set_node("node-a");
  ev.mutable_id()->set_seq(seq);
  ev.set_time_ns(1700000000000000000 + static_cast<int64_t>(seq));
  ev.set_container_id("c0ffee" + std::to_string(seq));
  auto* exec = ev.mutable_exec();
  exec->set_syscall("execve");
  exec->set_pid(static_cast<uint32_t>(seq));
  exec->add_args(std::string(pad, 'x'));
  return ev;
}

uint64_t SeqOf(const std::string& payload) {
  v1::Event ev;
  if (!ev.ParseFromString(payload)) return UINT64_MAX;
  return ev.id().seq();
}

// All events from `from` on, read in batches as the sender does.
std::vector<uint64_t> ReadAllSeqs(Spool* s, uint64_t from = 0, uint64_t* next_out = nullptr) {
  std::vector<uint64_t> seqs;
  uint64_t pos = from;
  for (;;) {
    std::vector<std::string> evs;
    uint64_t next = 0;
    auto r = s->Read(pos, 37, 1 << 20, &evs, &next);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error());
    for (const auto& e : evs) seqs.push_back(SeqOf(e));
    if (evs.empty()) {
      if (next_out) *next_out = next;
      return seqs;
    }
    EXPECT_GT(next, pos);
    pos = next;
  }
}

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v;
  for (uint64_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

TEST_F(SpoolTest, AppendReadAckRoundTrip) {
  auto s = MustOpen(Opts());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->end(), 0u);
  for (uint64_t i = 0; i < 100; ++i) {
    auto pos = s->Append(MakeEvent(i));
    ASSERT_TRUE(pos.has_value()) << pos.error();
    EXPECT_EQ(*pos, i);
  }
  EXPECT_EQ(s->end(), 100u);
  EXPECT_EQ(s->depth(), 100u);
  EXPECT_GT(s->bytes(), 100u * 100);

  std::vector<std::string> evs;
  uint64_t next = 0;
  ASSERT_TRUE(s->Read(10, 5, 1 << 20, &evs, &next));
  ASSERT_EQ(evs.size(), 5u);
  EXPECT_EQ(next, 15u);
  v1::Event got;
  ASSERT_TRUE(got.ParseFromString(evs[0]));
  EXPECT_EQ(got.SerializeAsString(), MakeEvent(10).SerializeAsString());
  EXPECT_EQ(SeqOf(evs[4]), 14u);

  // max_bytes: at least one event, then only what fits.
  evs.clear();
  ASSERT_TRUE(s->Read(0, 100, 1, &evs, &next));
  EXPECT_EQ(evs.size(), 1u);
  EXPECT_EQ(next, 1u);
  evs.clear();
  size_t three = MakeEvent(0).ByteSizeLong() + MakeEvent(1).ByteSizeLong() +
                 MakeEvent(2).ByteSizeLong();
  ASSERT_TRUE(s->Read(0, 100, three + 1, &evs, &next));
  EXPECT_EQ(evs.size(), 3u);
  EXPECT_EQ(next, 3u);

  EXPECT_EQ(ReadAllSeqs(s.get()), Range(0, 100));

  ASSERT_TRUE(s->Ack(50));
  EXPECT_EQ(s->acked(), 50u);
  EXPECT_EQ(s->depth(), 50u);
  ASSERT_TRUE(s->Ack(20));  // going back is a no-op
  EXPECT_EQ(s->acked(), 50u);
  uint64_t end_next = 0;
  EXPECT_EQ(ReadAllSeqs(s.get(), 0, &end_next), Range(50, 100));  // clamped to acked()
  EXPECT_EQ(end_next, 100u);
  ASSERT_TRUE(s->Ack(1000));  // clamped to end()
  EXPECT_EQ(s->acked(), 100u);
  EXPECT_EQ(s->depth(), 0u);

  evs.clear();
  ASSERT_TRUE(s->Read(100, 10, 1 << 20, &evs, &next));
  EXPECT_TRUE(evs.empty());
  EXPECT_EQ(next, 100u);
}

TEST_F(SpoolTest, ReopenAfterCleanClose) {
  {
    auto s = MustOpen(Opts());
    ASSERT_TRUE(s);
    for (uint64_t i = 0; i < 30; ++i) ASSERT_TRUE(s->Append(MakeEvent(i)));
    ASSERT_TRUE(s->Ack(10));
  }
  auto s = MustOpen(Opts());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->acked(), 10u);
  EXPECT_EQ(s->end(), 30u);
  EXPECT_EQ(s->recovered_corrupt(), 0u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(10, 30));
  auto pos = s->Append(MakeEvent(30));
  ASSERT_TRUE(pos);
  EXPECT_EQ(*pos, 30u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(10, 31));
}

TEST_F(SpoolTest, ChildKilledWithSigkillLosesNothingAppended) {
  // The child appends and kills itself without any cleanup; every Append that returned
  // must be there, whole.
  constexpr uint64_t kN = 3000;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto s = Spool::Open(Opts(64 << 10, 64 << 20));
    if (!s) _exit(2);
    for (uint64_t i = 0; i < kN; ++i) {
      if (!(*s)->Append(MakeEvent(i))) _exit(3);
    }
    kill(getpid(), SIGKILL);
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;

  auto s = MustOpen(Opts(64 << 10, 64 << 20));  // the dead child's lock is gone
  ASSERT_TRUE(s);
  EXPECT_EQ(s->recovered_corrupt(), 0u);
  EXPECT_EQ(s->end(), kN);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(0, kN));
  EXPECT_GT(SegmentFiles().size(), 1u);
}

TEST_F(SpoolTest, ChildKilledMidStreamKeepsEveryReturnedAppend) {
  // The parent kills the child at an arbitrary moment while it appends; the child reports
  // each returned position through a pipe.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    auto s = Spool::Open(Opts(32 << 10, 64 << 20));
    if (!s) _exit(2);
    for (uint64_t i = 0;; ++i) {
      auto pos = (*s)->Append(MakeEvent(i, i % 7 == 0 ? 5000 : 50));
      if (!pos || write(fds[1], &*pos, sizeof *pos) != sizeof *pos) _exit(3);
    }
  }
  close(fds[1]);
  uint64_t last = 0, got = 0;
  for (int n = 0; n < 2000; ++n) {
    ASSERT_EQ(read(fds[0], &last, sizeof last), static_cast<ssize_t>(sizeof last));
    ++got;
  }
  kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  // Drain what the child reported before it died.
  while (read(fds[0], &last, sizeof last) == static_cast<ssize_t>(sizeof last)) ++got;
  close(fds[0]);

  auto s = MustOpen(Opts(32 << 10, 64 << 20));
  ASSERT_TRUE(s);
  // A kill inside a pwrite that spans pages can leave that one record partial (the kernel
  // stops copying between pages once SIGKILL is pending); its Append never returned, so
  // recovery cuts it off as a torn tail and every returned position is still there.
  EXPECT_LE(s->recovered_corrupt(), 1u);
  std::vector<uint64_t> seqs = ReadAllSeqs(s.get());
  ASSERT_GE(seqs.size(), got);
  EXPECT_EQ(seqs, Range(0, seqs.size()));
  EXPECT_EQ(s->end(), seqs.size());  // the torn record took no position
  EXPECT_EQ(last, got - 1);
}

TEST_F(SpoolTest, TornTailAtRandomOffsets) {
  // One segment of known records, then cut at random offsets as a power loss might.
  std::vector<uint64_t> ends = {0, 16};  // boundaries: empty file, header only, each record
  {
    auto s = MustOpen(Opts());
    ASSERT_TRUE(s);
    for (uint64_t i = 0; i < 200; ++i) {
      v1::Event ev = MakeEvent(i, 10 + (i * 37) % 300);
      ASSERT_TRUE(s->Append(ev));
      ends.push_back(ends.back() + 8 + ev.ByteSizeLong());
    }
  }
  auto files = SegmentFiles();
  ASSERT_EQ(files.size(), 1u);
  std::string seg = files[0];
  std::string copy = root_ + "/seg.copy";
  fs::copy_file(seg, copy);
  ASSERT_EQ(fs::file_size(seg), ends.back());

  std::mt19937_64 rng(12345);
  std::vector<uint64_t> cuts = {0, 1, 15, 16, 17, 23, 24, ends[2], ends[2] + 1, ends.back() - 1,
                                ends.back()};
  for (int i = 0; i < 40; ++i) cuts.push_back(rng() % (ends.back() + 1));
  for (uint64_t cut : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy_file(copy, seg);
    ASSERT_EQ(truncate(seg.c_str(), static_cast<off_t>(cut)), 0);
    uint64_t whole = 0;  // records that end at or before the cut
    for (size_t k = 2; k < ends.size(); ++k)
      if (ends[k] <= cut) whole = k - 1;
    bool boundary = std::find(ends.begin(), ends.end(), cut) != ends.end();

    testing::internal::CaptureStderr();
    auto s = MustOpen(Opts());
    std::string log = testing::internal::GetCapturedStderr();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->recovered_corrupt(), boundary ? 0u : 1u);
    if (!boundary) {
      EXPECT_NE(log.find(seg), std::string::npos) << log;
    }
    EXPECT_EQ(ReadAllSeqs(s.get()), Range(0, whole));
    EXPECT_EQ(s->end(), whole);
    auto pos = s->Append(MakeEvent(whole));
    ASSERT_TRUE(pos);
    EXPECT_EQ(*pos, whole);
    s.reset();

    // Cut once: a second Open finds nothing to repair, and the new event follows.
    s = MustOpen(Opts());
    ASSERT_TRUE(s);
    EXPECT_EQ(s->recovered_corrupt(), 0u);
    EXPECT_EQ(ReadAllSeqs(s.get()), Range(0, whole + 1));
  }
}

TEST_F(SpoolTest, CorruptRecordMidSpoolLosesRestOfItsSegmentOnly) {
  std::vector<uint64_t> offsets;
  {
    auto s = MustOpen(Opts(4096));
    ASSERT_TRUE(s);
    uint64_t off = 16;
    for (uint64_t i = 0; i < 120; ++i) {
      v1::Event ev = MakeEvent(i);
      ASSERT_TRUE(s->Append(ev));
      uint64_t rec = 8 + ev.ByteSizeLong();
      if (off > 16 && off + rec > 4096) off = 16;  // the spool rolled here
      offsets.push_back(off);
      off += rec;
    }
  }
  auto files = SegmentFiles();
  ASSERT_GE(files.size(), 4u);
  // The second segment: flip a payload byte of its 6th record.
  uint64_t first = std::stoull(fs::path(files[1]).stem().string());
  uint64_t second = std::stoull(fs::path(files[2]).stem().string());
  uint64_t victim = first + 5;
  {
    int fd = open(files[1].c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    char b;
    ASSERT_EQ(pread(fd, &b, 1, static_cast<off_t>(offsets[victim] + 8 + 3)), 1);
    b ^= 0x40;
    ASSERT_EQ(pwrite(fd, &b, 1, static_cast<off_t>(offsets[victim] + 8 + 3)), 1);
    close(fd);
  }
  testing::internal::CaptureStderr();
  auto s = MustOpen(Opts(4096));
  std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(s);
  EXPECT_NE(log.find(files[1] + ": offset " + std::to_string(offsets[victim])), std::string::npos)
      << log;
  EXPECT_EQ(s->recovered_corrupt(), second - victim);
  std::vector<uint64_t> want = Range(0, victim);
  for (uint64_t i = second; i < 120; ++i) want.push_back(i);
  EXPECT_EQ(ReadAllSeqs(s.get()), want);
  // Reading from inside the gap skips to the next segment.
  std::vector<std::string> evs;
  uint64_t next = 0;
  ASSERT_TRUE(s->Read(victim, 1, 1 << 20, &evs, &next));
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(SeqOf(evs[0]), second);
  EXPECT_EQ(next, second + 1);
  EXPECT_EQ(s->end(), 120u);
}

TEST_F(SpoolTest, CorruptSegmentHeaderMidSpoolCountsItsPositions) {
  {
    auto s = MustOpen(Opts(2048));
    ASSERT_TRUE(s);
    for (uint64_t i = 0; i < 60; ++i) ASSERT_TRUE(s->Append(MakeEvent(i)));
  }
  auto files = SegmentFiles();
  ASSERT_GE(files.size(), 3u);
  uint64_t first = std::stoull(fs::path(files[1]).stem().string());
  uint64_t second = std::stoull(fs::path(files[2]).stem().string());
  {
    int fd = open(files[1].c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "X", 1, 0), 1);
    close(fd);
  }
  testing::internal::CaptureStderr();
  auto s = MustOpen(Opts(2048));
  std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(s);
  EXPECT_NE(log.find(files[1] + ": offset 0: bad segment magic"), std::string::npos) << log;
  EXPECT_EQ(s->recovered_corrupt(), second - first);
  EXPECT_FALSE(fs::exists(files[1]));
  std::vector<uint64_t> want = Range(0, first);
  for (uint64_t i = second; i < 60; ++i) want.push_back(i);
  EXPECT_EQ(ReadAllSeqs(s.get()), want);
}

TEST_F(SpoolTest, HostileLengthAndGarbageTail) {
  {
    auto s = MustOpen(Opts());
    ASSERT_TRUE(s);
    for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(s->Append(MakeEvent(i)));
  }
  std::string seg = SegmentFiles().at(0);
  {
    // A header claiming 4 GiB, then garbage.
    std::ofstream f(seg, std::ios::app | std::ios::binary);
    const char hdr[8] = {1, 2, 3, 4, '\xf0', '\xff', '\xff', '\xff'};
    f.write(hdr, 8);
    f << std::string(1000, 'z');
  }
  testing::internal::CaptureStderr();
  auto s = MustOpen(Opts());
  std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(s);
  EXPECT_NE(log.find("over the bound"), std::string::npos) << log;
  EXPECT_EQ(s->recovered_corrupt(), 1u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(0, 10));

  // A segment that is not one: wrong magic.
  s.reset();
  {
    std::ofstream f(dir_ + "/00000000000000000010.seg", std::ios::binary);
    f << "NOTASPOOLFILE...and more";
  }
  testing::internal::CaptureStderr();
  s = MustOpen(Opts());
  log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(s);
  EXPECT_NE(log.find("bad segment magic"), std::string::npos) << log;
  EXPECT_EQ(s->recovered_corrupt(), 1u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(0, 10));
  EXPECT_EQ(s->end(), 10u);
}

TEST_F(SpoolTest, ReadSkipsRecordChangedOnDiskAfterOpen) {
  auto s = MustOpen(Opts());
  ASSERT_TRUE(s);
  uint64_t off = 16;
  for (uint64_t i = 0; i < 5; ++i) {
    v1::Event ev = MakeEvent(i);
    ASSERT_TRUE(s->Append(ev));
    if (i < 2) off += 8 + ev.ByteSizeLong();
  }
  int fd = open(SegmentFiles().at(0).c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "Q", 1, static_cast<off_t>(off + 10)), 1);  // record 2's payload
  close(fd);
  testing::internal::CaptureStderr();
  std::vector<uint64_t> seqs = ReadAllSeqs(s.get());
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(seqs, (std::vector<uint64_t>{0, 1, 3, 4}));
  EXPECT_EQ(s->read_corrupt(), 1u);
  // A batch of nothing but that record still moves on: no events means nothing more.
  std::vector<std::string> evs;
  uint64_t next = 0;
  testing::internal::CaptureStderr();
  ASSERT_TRUE(s->Read(2, 1, 1 << 20, &evs, &next));
  testing::internal::GetCapturedStderr();
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(SeqOf(evs[0]), 3u);
  EXPECT_EQ(next, 4u);
}

TEST_F(SpoolTest, SegmentsRollAndGoWhenAcked) {
  auto s = MustOpen(Opts(2048));
  ASSERT_TRUE(s);
  for (uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(s->Append(MakeEvent(i)));
  size_t n_segs = SegmentFiles().size();
  EXPECT_GE(n_segs, 5u);
  EXPECT_EQ(s->segments(), n_segs);
  for (const auto& f : SegmentFiles()) EXPECT_LE(fs::file_size(f), 2048u);
  uint64_t total = 0;
  for (const auto& f : SegmentFiles()) total += fs::file_size(f);
  EXPECT_EQ(s->bytes(), total);

  // Partial ack: only segments wholly before it go.
  ASSERT_TRUE(s->Ack(50));
  auto left = SegmentFiles();
  EXPECT_LT(left.size(), n_segs);
  EXPECT_LE(std::stoull(fs::path(left[0]).stem().string()), 50u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(50, 100));

  // Everything: the segment being written stays.
  ASSERT_TRUE(s->Ack(100));
  EXPECT_EQ(SegmentFiles().size(), 1u);
  EXPECT_EQ(s->segments(), 1u);
  total = fs::file_size(SegmentFiles()[0]);
  EXPECT_EQ(s->bytes(), total);
}

TEST_F(SpoolTest, PositionsKeepGrowingAfterAllSegmentsWentAway) {
  {
    auto s = MustOpen(Opts(2048));
    ASSERT_TRUE(s);
    for (uint64_t i = 0; i < 40; ++i) ASSERT_TRUE(s->Append(MakeEvent(i)));
    ASSERT_TRUE(s->Ack(40));
  }
  {
    auto s = MustOpen(Opts(2048));  // deletes the last, fully acked segment
    ASSERT_TRUE(s);
    EXPECT_EQ(s->segments(), 0u);
    EXPECT_TRUE(SegmentFiles().empty());
    EXPECT_EQ(s->end(), 40u);
    EXPECT_EQ(s->acked(), 40u);
  }
  auto s = MustOpen(Opts(2048));  // nothing but the ack file
  ASSERT_TRUE(s);
  EXPECT_EQ(s->end(), 40u);
  auto pos = s->Append(MakeEvent(40));
  ASSERT_TRUE(pos);
  EXPECT_EQ(*pos, 40u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(40, 41));
}

TEST_F(SpoolTest, FullSpoolDropsOldestAndCounts) {
  auto s = MustOpen(Opts(1024, 4096));
  ASSERT_TRUE(s);
  for (uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(s->Append(MakeEvent(i)));
  ASSERT_TRUE(s->Ack(5));
  for (uint64_t i = 20; i < 300; ++i) {
    ASSERT_TRUE(s->Append(MakeEvent(i)));
    EXPECT_LE(s->bytes(), 4096u);
  }
  uint64_t total = 0;
  for (const auto& f : SegmentFiles()) total += fs::file_size(f);
  EXPECT_EQ(total, s->bytes());
  EXPECT_GT(s->dropped(), 0u);
  // What is left is the newest, contiguous up to the end; what went unacked is counted.
  std::vector<uint64_t> seqs = ReadAllSeqs(s.get());
  ASSERT_FALSE(seqs.empty());
  EXPECT_EQ(seqs, Range(300 - seqs.size(), 300));
  EXPECT_EQ(s->dropped(), (300 - seqs.size()) - 5);
  EXPECT_EQ(s->acked(), 300 - seqs.size());
  EXPECT_EQ(s->depth(), seqs.size());

  // Reopen agrees.
  s.reset();
  s = MustOpen(Opts(1024, 4096));
  ASSERT_TRUE(s);
  EXPECT_EQ(ReadAllSeqs(s.get()), seqs);
  EXPECT_EQ(s->dropped(), 0u);  // counts this run only
}

TEST_F(SpoolTest, LargeEventsOwnSegmentOrRefused) {
  auto s = MustOpen(Opts(1024, 64 << 10));
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->Append(MakeEvent(0)));
  auto big = s->Append(MakeEvent(1, 5000));  // larger than a segment
  ASSERT_TRUE(big) << big.error();
  ASSERT_TRUE(s->Append(MakeEvent(2)));
  EXPECT_EQ(s->segments(), 3u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(0, 3));
  auto huge = s->Append(MakeEvent(3, 100 << 10));  // larger than max_bytes
  EXPECT_FALSE(huge);
  EXPECT_EQ(s->end(), 3u);
  ASSERT_TRUE(s->Append(MakeEvent(3)));
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(0, 4));
}

TEST_F(SpoolTest, AckPersistedAcrossReopen) {
  {
    auto s = MustOpen(Opts());
    ASSERT_TRUE(s);
    for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(s->Append(MakeEvent(i)));
    ASSERT_TRUE(s->Ack(7));
  }
  auto s = MustOpen(Opts());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->acked(), 7u);
  EXPECT_EQ(s->depth(), 3u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(7, 10));
  EXPECT_FALSE(fs::exists(dir_ + "/ack.tmp"));

  // A corrupt ack file: everything stored is sent again, nothing lost.
  s.reset();
  {
    std::ofstream f(dir_ + "/ack", std::ios::binary | std::ios::trunc);
    f << "garbage";
  }
  testing::internal::CaptureStderr();
  s = MustOpen(Opts());
  testing::internal::GetCapturedStderr();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->acked(), 0u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(0, 10));
}

TEST_F(SpoolTest, SecondOpenOfHeldDirRefused) {
  auto s = MustOpen(Opts());
  ASSERT_TRUE(s);
  auto again = Spool::Open(Opts());
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().find(dir_), std::string::npos) << again.error();
  EXPECT_NE(again.error().find("pid " + std::to_string(getpid())), std::string::npos)
      << again.error();
  s.reset();
  EXPECT_TRUE(Spool::Open(Opts()));
}

TEST_F(SpoolTest, RefusesBadOptions) {
  SpoolOptions o = Opts(1024, 512);
  EXPECT_FALSE(Spool::Open(o));
  o = Opts(8, 4096);
  EXPECT_FALSE(Spool::Open(o));
  o = Opts();
  o.dir = "";
  EXPECT_FALSE(Spool::Open(o));
  ASSERT_TRUE(std::ofstream(root_ + "/file").good());
  o = Opts();
  o.dir = root_ + "/file";
  EXPECT_FALSE(Spool::Open(o));
}

TEST_F(SpoolTest, FileModes) {
  mode_t old = umask(0);  // the modes must come from the code, not from the umask
  dir_ = root_ + "/a/b/spool";
  {
    auto s = MustOpen(Opts());
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->Append(MakeEvent(0)));
    ASSERT_TRUE(s->Ack(1));
    ASSERT_TRUE(s->Append(MakeEvent(1)));
    struct stat st;
    for (const std::string& d : {root_ + "/a", root_ + "/a/b", dir_}) {
      ASSERT_EQ(stat(d.c_str(), &st), 0) << d;
      EXPECT_EQ(st.st_mode & 07777, 0700u) << d;
    }
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir_)) {
      ASSERT_EQ(stat(e.path().c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 07777, 0600u) << e.path();
      ++files;
    }
    EXPECT_EQ(files, 3);  // LOCK, ack, one segment
  }
  umask(old);
}

TEST_F(SpoolTest, WaitForAndInterrupt) {
  auto s = MustOpen(Opts());
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->WaitFor(0, std::chrono::milliseconds(10)));  // times out

  std::atomic<int> woke{-1};
  std::thread waiter([&] { woke = s->WaitFor(0, std::chrono::hours(1)) ? 1 : 0; });
  ASSERT_TRUE(s->Append(MakeEvent(0)));
  waiter.join();
  EXPECT_EQ(woke, 1);
  EXPECT_TRUE(s->WaitFor(0, std::chrono::hours(1)));  // already there

  std::thread blocked([&] { woke = s->WaitFor(1, std::chrono::hours(1)) ? 1 : 0; });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let it block (not required)
  s->Interrupt();
  blocked.join();
  EXPECT_EQ(woke, 0);
  EXPECT_FALSE(s->WaitFor(1, std::chrono::hours(1)));  // sticky
}

TEST_F(SpoolTest, ConcurrentAppendersAndSender) {
  auto s = MustOpen(Opts(16 << 10, 64 << 20));
  ASSERT_TRUE(s);
  constexpr int kThreads = 4;
  constexpr uint64_t kPer = 2000;
  std::vector<std::thread> appenders;
  for (int t = 0; t < kThreads; ++t) {
    appenders.emplace_back([&, t] {
      for (uint64_t i = 0; i < kPer; ++i) {
        auto r = s->Append(MakeEvent(static_cast<uint64_t>(t) * kPer + i, 40));
        if (!r) ADD_FAILURE() << r.error();
      }
    });
  }
  std::set<uint64_t> seen;
  uint64_t pos = 0;
  while (seen.size() < kThreads * kPer) {
    if (!s->WaitFor(pos, std::chrono::seconds(30))) break;
    std::vector<std::string> evs;
    uint64_t next = 0;
    ASSERT_TRUE(s->Read(pos, 100, 64 << 10, &evs, &next));
    for (const auto& e : evs) EXPECT_TRUE(seen.insert(SeqOf(e)).second);
    pos = next;
    ASSERT_TRUE(s->Ack(pos));
  }
  for (auto& t : appenders) t.join();
  EXPECT_EQ(seen.size(), kThreads * kPer);
  EXPECT_EQ(s->depth(), 0u);
  EXPECT_EQ(s->segments(), 1u);
}

TEST_F(SpoolTest, AlwaysAndIntervalPolicies) {
  for (FsyncPolicy p : {FsyncPolicy::kAlways, FsyncPolicy::kInterval}) {
    SpoolOptions o = Opts(2048);
    o.fsync = p;
    o.fsync_interval = std::chrono::milliseconds(5);
    {
      auto s = MustOpen(o);
      ASSERT_TRUE(s);
      for (uint64_t i = 0; i < 30; ++i) ASSERT_TRUE(s->Append(MakeEvent(i)));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the flusher run
      ASSERT_TRUE(s->Ack(10));
      ASSERT_TRUE(s->Sync());
    }
    auto s = MustOpen(o);
    ASSERT_TRUE(s);
    EXPECT_EQ(ReadAllSeqs(s.get()), Range(10, 30));
    s.reset();
    fs::remove_all(dir_);
  }
}

// Cost of an Append (and of reading back) as the sensor sees it: printed, not asserted.
TEST_F(SpoolTest, AppendCostPrinted) {
  for (FsyncPolicy p : {FsyncPolicy::kNever, FsyncPolicy::kInterval}) {
    SpoolOptions o = Opts();
    o.fsync = p;
    auto s = MustOpen(o);
    ASSERT_TRUE(s);
    v1::Event ev = MakeEvent(1, 200);
    constexpr int kN = 100000;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kN; ++i) ASSERT_TRUE(s->Append(ev));
    auto t1 = std::chrono::steady_clock::now();
    uint64_t pos = 0, n = 0;
    for (;;) {
      std::vector<std::string> evs;
      ASSERT_TRUE(s->Read(pos, 500, 1 << 20, &evs, &pos));
      if (evs.empty()) break;
      n += evs.size();
    }
    auto t2 = std::chrono::steady_clock::now();
    EXPECT_EQ(n, static_cast<uint64_t>(kN));
    auto us = [](auto d) { return std::chrono::duration<double, std::micro>(d).count(); };
    std::printf("[ perf ] fsync=%s: Append %.2f us/event (%zu-byte events), Read %.2f us/event\n",
                p == FsyncPolicy::kNever ? "never" : "interval", us(t1 - t0) / kN,
                ev.ByteSizeLong(), us(t2 - t1) / kN);
    s.reset();
    fs::remove_all(dir_);
  }
}

// ---- Write failures ----------------------------------------------------------------------

// Runs `body` in a forked child (own rlimits, own signal dispositions) and returns the text
// it returned; *status gets the child's wait status. gtest assertions do not cross the fork:
// the child reports, the parent checks.
std::string InChild(const std::function<std::string()>& body, int* status) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    close(fds[0]);
    std::string out = body();
    for (size_t off = 0; off < out.size();) {
      ssize_t w = write(fds[1], out.data() + off, out.size() - off);
      if (w <= 0) _exit(5);
      off += static_cast<size_t>(w);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  waitpid(pid, status, 0);
  return out;
}

// "key value..." lines of a child's report: the rest of the line after `key `.
std::string Field(const std::string& report, const std::string& key) {
  std::istringstream in(report);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + " ", 0) == 0) return line.substr(key.size() + 1);
  return "<" + key + " missing>";
}

std::vector<uint64_t> Numbers(const std::string& s) {
  std::istringstream in(s);
  std::vector<uint64_t> v;
  for (uint64_t x; in >> x;) v.push_back(x);
  return v;
}

TEST_F(SpoolTest, FileSizeLimitFailsAppendsVisiblyAndTheyRecover) {
  // RLIMIT_FSIZE makes writes fail as a full disk does, without root: EFBIG for a write
  // that starts at the limit, a short write for one that crosses it.
  int status = 0;
  std::string report = InChild(
      [&]() -> std::string {
        signal(SIGXFSZ, SIG_IGN);  // else the kernel kills the writer instead of EFBIG
        auto s = Spool::Open(Opts(1 << 20, 64 << 20));  // one segment: the limit bites in it
        if (!s) return "open " + s.error();
        std::string ok = "ok", errors;
        uint64_t seq = 0;
        auto append = [&](size_t pad) {
          auto r = (*s)->Append(MakeEvent(seq, pad));
          if (r) {
            ok += " " + std::to_string(seq);
          } else {
            errors += r.error() + "|";
          }
          ++seq;
        };
        while (seq < 20) append(1000);
        struct stat st;
        if (stat((dir_ + "/00000000000000000000.seg").c_str(), &st) != 0) return "no segment";
        rlimit saved;
        getrlimit(RLIMIT_FSIZE, &saved);
        rlimit lim = saved;
        lim.rlim_cur = static_cast<rlim_t>(st.st_size);  // the next write starts at it: EFBIG
        setrlimit(RLIMIT_FSIZE, &lim);
        for (int i = 0; i < 3; ++i) append(1000);
        // Part of a large record: short writes. What follows is smaller than the part
        // written, so a part left behind would show after the last record.
        lim.rlim_cur = static_cast<rlim_t>(st.st_size + 3000);
        setrlimit(RLIMIT_FSIZE, &lim);
        for (int i = 0; i < 3; ++i) append(5000);
        std::string failing = (*s)->append_error();
        uint64_t failures = (*s)->append_failures();
        setrlimit(RLIMIT_FSIZE, &saved);  // room again: the same spool goes on, no reopen
        for (int i = 0; i < 10; ++i) append(10);
        stat((dir_ + "/00000000000000000000.seg").c_str(), &st);
        return ok + "\nfailures " + std::to_string(failures) + "\nfailing " + failing +
               "\ncleared " + ((*s)->append_error().empty() ? "1" : "0") + "\nafter " +
               std::to_string((*s)->append_failures()) + "\nerrors " + errors + "\nend " +
               std::to_string((*s)->end()) + "\nsize " + std::to_string(st.st_size) + "\nbytes " +
               std::to_string((*s)->bytes()) + "\n";
      },
      &status);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << " " << report;
  std::vector<uint64_t> ok = Range(0, 20);
  for (uint64_t i = 26; i < 36; ++i) ok.push_back(i);
  EXPECT_EQ(Numbers(report.substr(3, report.find('\n') - 3)), ok) << report;
  EXPECT_EQ(Field(report, "failures"), "6") << report;
  EXPECT_NE(Field(report, "failing"), "") << report;
  EXPECT_EQ(Field(report, "cleared"), "1") << report;
  EXPECT_EQ(Field(report, "after"), "6") << report;
  std::string errors = Field(report, "errors");
  EXPECT_NE(errors.find(std::strerror(EFBIG)), std::string::npos) << errors;
  EXPECT_NE(errors.find("short write"), std::string::npos) << errors;
  EXPECT_EQ(Field(report, "end"), "30") << "failed appends take no position";
  // The cut-short records left nothing behind: the file holds exactly the stored records.
  EXPECT_EQ(Field(report, "size"), Field(report, "bytes")) << report;

  auto s = MustOpen(Opts(1 << 20, 64 << 20));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->recovered_corrupt(), 0u);
  EXPECT_EQ(ReadAllSeqs(s.get()), ok);
  EXPECT_EQ(s->append_failures(), 0u);  // per run
}

TEST_F(SpoolTest, RefusedEventCountsAsAppendFailure) {
  auto s = MustOpen(Opts(2048, 4096));
  ASSERT_TRUE(s);
  auto huge = s->Append(MakeEvent(0, 100 << 10));
  ASSERT_FALSE(huge);
  EXPECT_EQ(s->append_failures(), 1u);
  EXPECT_EQ(s->append_error(), huge.error());
  ASSERT_TRUE(s->Append(MakeEvent(1)));
  EXPECT_EQ(s->append_failures(), 1u);
  EXPECT_EQ(s->append_error(), "");
}

TEST_F(SpoolTest, AckFileUnwritableStillReleasesAllButTheNewestSegment) {
  {
    auto s = MustOpen(Opts(2048));
    ASSERT_TRUE(s);
    for (uint64_t i = 0; i < 100; ++i) ASSERT_TRUE(s->Append(MakeEvent(i)));
    ASSERT_TRUE(s->Ack(10));
  }
  size_t segs_before = SegmentFiles().size();
  ASSERT_GE(segs_before, 4u);
  // A child whose every write fails (RLIMIT_FSIZE 0 refuses even overwrites) acks it all,
  // without appending first: no segment is being written.
  int status = 0;
  std::string report = InChild(
      [&]() -> std::string {
        signal(SIGXFSZ, SIG_IGN);
        auto s = Spool::Open(Opts(2048));
        if (!s) return "open " + s.error();
        rlimit lim = {0, 0};
        getrlimit(RLIMIT_FSIZE, &lim);
        lim.rlim_cur = 0;
        setrlimit(RLIMIT_FSIZE, &lim);
        auto r = (*s)->Ack(100);
        return std::string("acked ") + std::to_string((*s)->acked()) + "\nack_ok " +
               (r ? "1" : "0 " + r.error()) + "\nack_failures " +
               std::to_string((*s)->ack_failures()) + "\nsegments " +
               std::to_string((*s)->segments()) + "\n";
      },
      &status);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << " " << report;
  EXPECT_EQ(Field(report, "acked"), "100") << report;
  EXPECT_EQ(Field(report, "ack_ok").substr(0, 1), "0") << report;
  EXPECT_EQ(Field(report, "ack_failures"), "1") << report;
  EXPECT_EQ(Field(report, "segments"), "1") << report;
  ASSERT_EQ(SegmentFiles().size(), 1u);
  uint64_t newest = std::stoull(fs::path(SegmentFiles()[0]).stem().string());

  // The ack file still says 10; the newest segment's events come again (the collector
  // drops them as duplicates), nothing before it, and positions go on after 100.
  auto s = MustOpen(Opts(2048));
  ASSERT_TRUE(s);
  EXPECT_EQ(s->acked(), newest);
  EXPECT_EQ(s->end(), 100u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(newest, 100));
  auto pos = s->Append(MakeEvent(100));
  ASSERT_TRUE(pos);
  EXPECT_EQ(*pos, 100u);
}

// ---- The ack file ------------------------------------------------------------------------

// One ack slot as sensor/spool.h describes it.
std::string AckSlot(uint64_t acked) {
  std::string b = "DWACK001";
  for (int i = 0; i < 8; ++i) b += static_cast<char>(acked >> (8 * i));
  uint32_t c = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(b.data()), 16));
  c = ((c >> 15) | (c << 17)) + 0xa282ead8u;
  for (int i = 0; i < 4; ++i) b += static_cast<char>(c >> (8 * i));
  return b;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

TEST_F(SpoolTest, AckFileIsTwoSlotsOverwrittenInPlace) {
  auto s = MustOpen(Opts());
  ASSERT_TRUE(s);
  std::string ack = dir_ + "/ack";
  // Written whole at Open, so that its block exists before a disk could fill up.
  ASSERT_TRUE(fs::exists(ack));
  EXPECT_EQ(fs::file_size(ack), 40u);
  struct stat before;
  ASSERT_EQ(stat(ack.c_str(), &before), 0);
  for (uint64_t i = 0; i < 30; ++i) ASSERT_TRUE(s->Append(MakeEvent(i)));
  for (uint64_t a : {5, 9, 20}) ASSERT_TRUE(s->Ack(a));
  struct stat after;
  ASSERT_EQ(stat(ack.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "rewritten in place, not renamed over";
  EXPECT_EQ(after.st_size, 40);
  EXPECT_FALSE(fs::exists(ack + ".tmp"));
  // The newest value in one slot, the one before in the other.
  std::string data = ReadFile(ack);
  std::set<std::string> slots = {data.substr(0, 20), data.substr(20, 20)};
  EXPECT_EQ(slots, (std::set<std::string>{AckSlot(9), AckSlot(20)}));
  s.reset();

  // A write torn by a power cut spoils the slot it wrote: the older value holds, and the
  // events after it come again. Nothing is lost.
  size_t newest = data.substr(0, 20) == AckSlot(20) ? 0 : 20;
  data[newest + 10] ^= 0x5a;
  WriteFile(ack, data);
  s = MustOpen(Opts());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->acked(), 9u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(9, 30));
  ASSERT_TRUE(s->Ack(25));  // goes into the spoiled slot
  s.reset();
  s = MustOpen(Opts());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->acked(), 25u);
}

TEST_F(SpoolTest, OneSlotAckFileOfEarlierVersionsReads) {
  {
    auto s = MustOpen(Opts());
    ASSERT_TRUE(s);
    for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(s->Append(MakeEvent(i)));
  }
  WriteFile(dir_ + "/ack", AckSlot(6));  // 20 bytes, as written before two slots
  auto s = MustOpen(Opts());
  ASSERT_TRUE(s);
  EXPECT_EQ(s->acked(), 6u);
  EXPECT_EQ(ReadAllSeqs(s.get()), Range(6, 10));
  EXPECT_EQ(fs::file_size(dir_ + "/ack"), 40u);  // made whole at Open
  EXPECT_EQ(ReadFile(dir_ + "/ack"), AckSlot(6) + AckSlot(6));
}

// ---- The loss file -----------------------------------------------------------------------

// Each counter a different multiple of k.
LossCounts Counts(uint64_t k) {
  LossCounts c;
  for (size_t i = 0; i < kLossFields.size(); ++i) c.*kLossFields[i].member = k * (i + 1);
  return c;
}

std::unique_ptr<LossFile> MustOpenLosses(const std::string& path) {
  auto f = LossFile::Open(path, true);
  EXPECT_TRUE(f.has_value()) << (f ? "" : f.error());
  return f ? std::move(*f) : nullptr;
}

uint64_t U64At(const std::string& d, size_t off) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(d[off + static_cast<size_t>(i)]);
  return v;
}

// Offset of the valid-looking slot with the highest generation.
size_t NewestLossSlot(const std::string& d) {
  size_t best = 0;
  uint64_t best_gen = 0;
  for (size_t off : {size_t{0}, size_t{128}}) {
    if (d.compare(off, 8, "DWLOSS01") == 0 && U64At(d, off + 8) >= best_gen) {
      best = off;
      best_gen = U64At(d, off + 8);
    }
  }
  return best;
}

TEST_F(SpoolTest, LossFileRoundTripInTheDocumentedFormat) {
  std::string path = root_ + "/losses";
  testing::internal::CaptureStderr();
  {
    auto f = MustOpenLosses(path);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->base(), LossCounts{});
    EXPECT_EQ(fs::file_size(path), 256u);  // written whole at once: its block allocated
    ASSERT_TRUE(f->Store(Counts(1)));
    EXPECT_EQ(fs::file_size(path), 256u);
  }
  EXPECT_NE(testing::internal::GetCapturedStderr().find("new loss file"), std::string::npos);
  auto f = MustOpenLosses(path);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->base(), Counts(1));

  // As sensor/loss_file.h says: magic, generation, n, counters in kLossFields order, crc.
  std::string d = ReadFile(path);
  ASSERT_EQ(d.size(), 256u);
  size_t slot = NewestLossSlot(d);
  EXPECT_EQ(d.substr(slot, 8), "DWLOSS01");
  EXPECT_EQ(U64At(d, slot + 16) & 0xffffffffu, kLossFields.size());
  for (size_t i = 0; i < kLossFields.size(); ++i)
    EXPECT_EQ(U64At(d, slot + 24 + 8 * i), i + 1) << kLossFields[i].name;
  uint32_t c =
      static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(d.data() + slot), 120));
  c = ((c >> 15) | (c << 17)) + 0xa282ead8u;
  EXPECT_EQ(U64At(d, slot + 120) & 0xffffffffu, c);

  // The table, the struct and the proto agree: names and field numbers.
  v1::LossCounters p;
  Counts(3).ToProto(&p);
  const auto* desc = p.GetDescriptor();
  ASSERT_EQ(static_cast<size_t>(desc->field_count()), kLossFields.size());
  for (size_t i = 0; i < kLossFields.size(); ++i) {
    const auto* field = desc->FindFieldByName(kLossFields[i].name);
    ASSERT_NE(field, nullptr) << kLossFields[i].name;
    EXPECT_EQ(field->number(), static_cast<int>(i + 1)) << kLossFields[i].name;
    EXPECT_EQ(p.GetReflection()->GetUInt64(p, field), 3 * (i + 1)) << kLossFields[i].name;
  }
}

TEST_F(SpoolTest, LossFileRestartAddsBaseOnce) {
  std::string path = root_ + "/losses";
  {
    auto f = MustOpenLosses(path);  // run 1: its counters grow to 2
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->Store(Counts(1)));
    ASSERT_TRUE(f->Store(Counts(2)));
  }
  {
    auto f = MustOpenLosses(path);  // run 2: 5 of its own, stored again and again
    ASSERT_TRUE(f);
    EXPECT_EQ(f->base(), Counts(2));
    EXPECT_EQ(f->Lifetime(Counts(5)), Counts(7));
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(f->Store(Counts(5)));
  }
  {
    auto f = MustOpenLosses(path);  // run 3 loses nothing and stores
    ASSERT_TRUE(f);
    EXPECT_EQ(f->base(), Counts(7));
    ASSERT_TRUE(f->Store(LossCounts{}));
  }
  auto f = MustOpenLosses(path);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->base(), Counts(7));
}

TEST_F(SpoolTest, LossFileCorruptOrShortStartsAtZero) {
  std::string path = root_ + "/losses";
  WriteFile(path, std::string(256, 'x'));
  testing::internal::CaptureStderr();
  auto f = MustOpenLosses(path);
  std::string log = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(f);
  EXPECT_NE(log.find("corrupt"), std::string::npos) << log;
  EXPECT_EQ(f->base(), LossCounts{});
  ASSERT_TRUE(f->Store(Counts(4)));
  f = MustOpenLosses(path);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->base(), Counts(4));

  f.reset();
  WriteFile(path, ReadFile(path).substr(0, 100));  // cut short: no whole slot left
  testing::internal::CaptureStderr();
  f = MustOpenLosses(path);
  testing::internal::GetCapturedStderr();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->base(), LossCounts{});
  EXPECT_EQ(fs::file_size(path), 256u);  // made whole again at Open
}

TEST_F(SpoolTest, LossFileTornNewestSlotFallsBackToTheOlder) {
  std::string path = root_ + "/losses";
  {
    auto f = MustOpenLosses(path);
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->Store(Counts(1)));
    ASSERT_TRUE(f->Store(Counts(2)));
  }
  std::string d = ReadFile(path);
  d[NewestLossSlot(d) + 30] ^= 0x01;
  WriteFile(path, d);
  auto f = MustOpenLosses(path);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->base(), Counts(1));
}

TEST_F(SpoolTest, LossFileStoreIfChanged) {
  std::string path = root_ + "/losses";
  auto f = MustOpenLosses(path);
  ASSERT_TRUE(f);
  using std::chrono::hours;
  using std::chrono::seconds;
  uint64_t stores = f->stores();
  EXPECT_EQ(f->StoreIfChanged(LossCounts{}, seconds(0)), false);  // the file has it already
  EXPECT_EQ(f->StoreIfChanged(Counts(1), seconds(0)), true);
  EXPECT_EQ(f->StoreIfChanged(Counts(1), seconds(0)), false);  // nothing new
  EXPECT_EQ(f->StoreIfChanged(Counts(2), hours(1)), false);    // too soon
  EXPECT_EQ(f->StoreIfChanged(Counts(2), seconds(0)), true);
  EXPECT_EQ(f->stores(), stores + 2);
  f = MustOpenLosses(path);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->base(), Counts(2));
  EXPECT_FALSE(LossFile::Open(root_ + "/no/such/dir/losses", false));
}

}  // namespace
}  // namespace driftwatch::sensor
