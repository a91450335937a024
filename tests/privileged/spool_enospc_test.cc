// The spool and the loss file on a really full filesystem: a 4 MiB tmpfs, mounted in a private
// mount namespace (it goes with this process, whatever happens) and unmounted in TearDown,
// filled up with a filler file. Needs root (mount); labelled privileged.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sensor/loss_file.h"
#include "sensor/spool.h"

namespace driftwatch::sensor {
namespace {

namespace fs = std::filesystem;

class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (mount)";
    // Our own mount namespace, with propagation to the host's cut: the tmpfs is never seen
    // outside this process and vanishes with it even if it dies before TearDown.
    if (unshare(CLONE_NEWNS) == 0) {
      ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << strerror(errno);
    }
    char tmpl[] = "/tmp/dw-spool-enospc.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    mnt_ = tmpl;
    ASSERT_EQ(mount("tmpfs", mnt_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "size=4m,mode=0700"),
              0)
        << strerror(errno);
    mounted_ = true;
    dir_ = mnt_ + "/spool";
  }
  void TearDown() override {
    if (mounted_) {
      EXPECT_EQ(umount2(mnt_.c_str(), MNT_DETACH), 0) << strerror(errno);
    }
    if (!mnt_.empty()) rmdir(mnt_.c_str());
  }

  // Writes `path` (appending) until the filesystem has no block left: big chunks, then
  // single bytes for the last page. Returns the bytes written.
  uint64_t FillUp(const std::string& path) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << strerror(errno);
    if (fd < 0) return 0;
    std::string chunk(64 << 10, 'f');
    uint64_t total = 0;
    for (size_t size : {size_t{64 << 10}, size_t{4096}, size_t{1}}) {
      for (;;) {
        ssize_t n = write(fd, chunk.data(), size);
        if (n <= 0) {
          EXPECT_EQ(errno, ENOSPC);
          break;
        }
        total += static_cast<uint64_t>(n);
      }
    }
    close(fd);
    return total;
  }
  uint64_t FreeBytes() {
    struct statvfs v;
    EXPECT_EQ(statvfs(mnt_.c_str(), &v), 0);
    return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
  }
  size_t SegmentFiles() {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().extension() == ".seg") ++n;
    return n;
  }
  uint64_t SegmentBytes() {
    uint64_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().extension() == ".seg") n += fs::file_size(e.path());
    return n;
  }

  std::string mnt_, dir_;
  bool mounted_ = false;
};

v1::Event MakeEvent(uint64_t seq, size_t pad) {
  v1::Event ev;
  ev.mutable_id()->set_node("node-full");
  ev.mutable_id()->set_seq(seq);
  ev.set_time_ns(1700000000000000000 + static_cast<int64_t>(seq));
  ev.set_container_id("c0ffee" + std::to_string(seq));
  auto* exec = ev.mutable_exec();
  exec->set_syscall("execve");
  exec->add_args(std::string(pad, static_cast<char>('a' + seq % 26)));
  return ev;
}

// Reads every event from `from` on; positions have no gaps here (failed appends take none).
std::vector<std::string> ReadAll(Spool* s, uint64_t from) {
  std::vector<std::string> out;
  for (uint64_t pos = from;;) {
    std::vector<std::string> evs;
    uint64_t next = 0;
    auto r = s->Read(pos, 100, 1 << 20, &evs, &next);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error());
    if (!r || evs.empty()) return out;
    out.insert(out.end(), evs.begin(), evs.end());
    pos = next;
  }
}

TEST_F(FullDiskTest, NothingReturnedIsLostAppendsFailCountedAndRecover) {
  SpoolOptions o;
  o.dir = dir_;
  o.segment_bytes = 64 << 10;
  o.max_bytes = 64 << 20;  // far over the filesystem: only the disk limits here
  o.fsync = FsyncPolicy::kInterval;
  o.fsync_interval = std::chrono::milliseconds(20);
  auto opened = Spool::Open(o);
  ASSERT_TRUE(opened) << opened.error();
  std::unique_ptr<Spool> s = std::move(*opened);
  auto lf_opened = LossFile::Open(dir_ + "/losses", true);
  ASSERT_TRUE(lf_opened) << lf_opened.error();
  std::unique_ptr<LossFile> lf = std::move(*lf_opened);

  std::map<uint64_t, std::string> stored;  // position -> payload, for every Append returned
  uint64_t seq = 0, failed = 0, short_writes = 0, enospc = 0;
  std::string last_error;
  auto append = [&](size_t pad) {
    v1::Event ev = MakeEvent(seq++, pad);
    auto r = s->Append(ev);
    if (r) {
      stored[*r] = ev.SerializeAsString();
    } else {
      ++failed;
      last_error = r.error();
      if (last_error.find("short write") != std::string::npos) ++short_writes;
      if (last_error.find(std::strerror(ENOSPC)) != std::string::npos) ++enospc;
    }
    return r.has_value();
  };
  // Varied sizes, so that records end anywhere within pages.
  auto pad = [&] { return static_cast<size_t>(200 + (seq * 379) % 1500); };
  // Append until `n` failures in a row; returns the appends that went in meanwhile.
  auto append_until_failing = [&](int n) {
    int in_a_row = 0, went_in = 0;
    for (int i = 0; i < 2000 && in_a_row < n; ++i) {
      if (append(pad())) {
        in_a_row = 0;
        ++went_in;
      } else {
        ++in_a_row;
      }
    }
    EXPECT_EQ(in_a_row, n) << "the spool never failed on a full disk";
    return went_in;
  };

  // 1. About 1 MiB of events on the empty filesystem, then the rest filled up.
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(append(pad())) << last_error;
  uint64_t filled = FillUp(mnt_ + "/filler");
  EXPECT_GT(filled, 1u << 20);
  EXPECT_EQ(FreeBytes(), 0u);
  size_t segs_full = s->segments();
  EXPECT_EQ(SegmentFiles(), segs_full);

  // 2. Appends fail, visibly and counted (the tail of a page may still take a record or two).
  append_until_failing(30);
  EXPECT_EQ(s->append_failures(), failed);
  EXPECT_NE(s->append_error(), "");
  EXPECT_TRUE(last_error.find(std::strerror(ENOSPC)) != std::string::npos ||
              last_error.find("short write") != std::string::npos)
      << last_error;
  EXPECT_EQ(short_writes + enospc, failed);
  // The part of a record a short write got in (into the last page's tail) went again.
  EXPECT_EQ(SegmentBytes(), s->bytes());
  // An event that needs a new segment: the new file cannot get its header and goes again.
  uint64_t before = failed;
  EXPECT_FALSE(append(70 << 10));
  EXPECT_EQ(failed, before + 1);
  EXPECT_EQ(s->append_failures(), failed);
  EXPECT_EQ(SegmentFiles(), s->segments()) << "a segment left behind by a failed roll";

  // 3. The loss file takes a store on the full disk (in place, in its own block).
  LossCounts run;
  run.spool_append_failures = s->append_failures();
  run.spool_dropped = 7;
  ASSERT_TRUE(lf->Store(run));

  // 4. Acks still work on the full disk and free space: the first 600 positions.
  uint64_t ack = stored.begin()->first + 600;
  auto acked = s->Ack(ack);
  ASSERT_TRUE(acked) << acked.error();
  EXPECT_EQ(s->ack_failures(), 0u);
  EXPECT_LT(s->segments(), segs_full);
  EXPECT_EQ(SegmentFiles(), s->segments());
  EXPECT_GT(FreeBytes(), 64u << 10);

  // 5. Appends go in again at once, into the room the acked segments left; no reopen.
  ASSERT_TRUE(append(pad())) << last_error;
  EXPECT_EQ(s->append_error(), "");

  // 6. Full again; then the filler goes: appends succeed again.
  FillUp(mnt_ + "/filler2");
  append_until_failing(10);
  EXPECT_NE(s->append_error(), "");
  EXPECT_EQ(SegmentBytes(), s->bytes());
  ASSERT_EQ(unlink((mnt_ + "/filler").c_str()), 0);
  ASSERT_EQ(unlink((mnt_ + "/filler2").c_str()), 0);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(append(pad())) << last_error;
  ASSERT_TRUE(append(70 << 10)) << last_error;  // a new segment now
  EXPECT_EQ(s->append_error(), "");
  EXPECT_EQ(s->append_failures(), failed);
  EXPECT_GT(failed, 40u);
  std::printf("[ info ] %llu appends failed: %llu short writes, %llu ENOSPC\n",
              (unsigned long long)failed, (unsigned long long)short_writes,
              (unsigned long long)enospc);

  // 7. Every event whose Append returned, byte for byte, in order, no position skipped.
  ASSERT_EQ(s->acked(), ack);
  std::vector<std::string> want;
  for (auto it = stored.lower_bound(ack); it != stored.end(); ++it) want.push_back(it->second);
  ASSERT_EQ(stored.rbegin()->first - stored.begin()->first + 1, stored.size());
  EXPECT_EQ(s->end(), stored.rbegin()->first + 1);
  std::vector<std::string> got = ReadAll(s.get(), ack);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "events read back differ from those appended";
  EXPECT_EQ(s->read_corrupt(), 0u);

  // 8. Reopened: no record cut off (no partial record was left in a segment), the ack
  // written on the full disk holds, the same events; the loss totals survived too.
  s.reset();
  lf.reset();
  opened = Spool::Open(o);
  ASSERT_TRUE(opened) << opened.error();
  s = std::move(*opened);
  EXPECT_EQ(s->recovered_corrupt(), 0u);
  EXPECT_EQ(s->acked(), ack);
  EXPECT_TRUE(ReadAll(s.get(), 0) == want);
  lf_opened = LossFile::Open(dir_ + "/losses", true);
  ASSERT_TRUE(lf_opened) << lf_opened.error();
  EXPECT_EQ((*lf_opened)->base(), run);
}

// A sensor restarting on a disk that is already full: Open works (it only reads, cuts and
// deletes, and overwrites its small files in place), acks free space, appends resume.
TEST_F(FullDiskTest, OpensOnAFullDisk) {
  SpoolOptions o;
  o.dir = dir_;
  o.segment_bytes = 64 << 10;
  o.fsync = FsyncPolicy::kAlways;
  uint64_t end = 0;
  {
    auto s = Spool::Open(o);
    ASSERT_TRUE(s) << s.error();
    for (uint64_t i = 0; i < 300; ++i) ASSERT_TRUE((*s)->Append(MakeEvent(i, 1000)));
    end = (*s)->end();
    auto lf = LossFile::Open(dir_ + "/losses", true);
    ASSERT_TRUE(lf) << lf.error();
    LossCounts run;
    run.kernel_lost = 3;
    ASSERT_TRUE((*lf)->Store(run));
  }
  FillUp(mnt_ + "/filler");
  ASSERT_EQ(FreeBytes(), 0u);

  auto s = Spool::Open(o);
  ASSERT_TRUE(s) << s.error();
  auto lf = LossFile::Open(dir_ + "/losses", true);
  ASSERT_TRUE(lf) << lf.error();
  LossCounts base;
  base.kernel_lost = 3;
  EXPECT_EQ((*lf)->base(), base);
  LossCounts run;
  run.spool_append_failures = 1;
  EXPECT_FALSE((*s)->Append(MakeEvent(300, 1000)));  // a new segment: no room
  EXPECT_TRUE((*lf)->Store(run));
  ASSERT_TRUE((*s)->Ack(end - 10));
  EXPECT_GT(FreeBytes(), 0u);
  auto pos = (*s)->Append(MakeEvent(301, 1000));
  ASSERT_TRUE(pos) << (*s)->append_error();
  EXPECT_EQ(*pos, end);
  EXPECT_EQ(ReadAll(s->get(), 0).size(), 11u);
  s->reset();
  lf->reset();
  auto again = LossFile::Open(dir_ + "/losses", true);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)->base(), base + run);
}

}  // namespace
}  // namespace driftwatch::sensor
