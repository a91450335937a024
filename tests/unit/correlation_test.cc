// Correlation by container: hand-built events through lib/correlation.
#include "lib/detect/correlation.h"

#include <gtest/gtest.h>

#include <cstdio>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace driftwatch {
namespace {

constexpr int64_t kSec = 1'000'000'000;
const std::string kNode = "node-a";
const std::string kCid = std::string(64, 'a');
const std::string kOther = std::string(64, 'b');

uint64_t next_seq = 1;

v1::Event Base(const std::string& cid, int64_t t) {
  v1::Event ev;
  ev.mutable_id()->set_node(kNode);
  ev.mutable_id()->set_boot_id("boot");
  ev.mutable_id()->set_seq(next_seq++);
  ev.set_time_ns(t);
  ev.set_container_id(cid);
  return ev;
}

v1::Event Exec(const std::string& cid, int64_t t, uint32_t pid, uint32_t ppid,
               const std::string& exe, std::vector<std::string> args = {},
               uint64_t inode = 0) {
  v1::Event ev = Base(cid, t);
  v1::ProcessExec* e = ev.mutable_exec();
  e->set_syscall("execve");
  e->set_success(true);
  e->set_pid(pid);
  e->set_ppid(ppid);
  e->set_exe(exe);
  e->set_path(exe);
  e->set_cwd("/");
  size_t slash = exe.rfind('/');
  e->set_comm(exe.substr(slash + 1).substr(0, 15));
  if (args.empty()) args.push_back(exe);
  for (auto& a : args) e->add_args(a);
  e->set_argc(static_cast<uint32_t>(args.size()));
  e->set_exe_inode(inode);
  return ev;
}

v1::Event Write(const std::string& cid, int64_t t, uint32_t pid, const std::string& path,
                uint64_t inode = 0, const std::string& kind = "close_write") {
  v1::Event ev = Base(cid, t);
  v1::FileWrite* w = ev.mutable_write();
  w->set_kind(kind);
  w->set_pid(pid);
  w->set_comm("exe");
  w->set_exe("/bin/busybox");
  w->set_path(path);
  w->set_inode(inode);
  w->set_executable(true);
  w->set_mode(0100755);
  w->set_sha256(std::string(32, '\xab'));
  return ev;
}

v1::Event Chmod(const std::string& cid, int64_t t, uint32_t pid, uint32_t ppid,
                const std::string& path, const std::string& cwd) {
  v1::Event ev = Base(cid, t);
  v1::Chmod* c = ev.mutable_chmod();
  c->set_syscall("fchmodat");
  c->set_success(true);
  c->set_pid(pid);
  c->set_ppid(ppid);
  c->set_comm("chmod");
  c->set_path(path);
  c->set_cwd(cwd);
  c->set_new_mode(0755);
  c->set_old_mode(0100644);
  c->set_adds_exec(true);
  return ev;
}

v1::Event ContainerEv(const std::string& cid, int64_t t) {
  v1::Event ev = Base(cid, t);
  v1::ContainerInfo* c = ev.mutable_container();
  c->set_id(cid);
  c->set_name("api");
  c->set_pod_name("api-5d8b7c9f4-x2kqp");
  c->set_pod_namespace("default");
  c->set_image("docker.io/library/busybox:1.36");
  c->set_image_ref("sha256:" + std::string(64, '1'));
  c->set_start_time_ns(t);
  c->set_init_pid(100);
  c->set_state("running");
  c->set_source("cri");
  return ev;
}

// A busybox applet as the kernel shows it: exec of /proc/self/exe, comm "exe".
v1::Event Applet(const std::string& cid, int64_t t, uint32_t pid, uint32_t ppid,
                 const std::string& applet) {
  v1::Event ev = Exec(cid, t, pid, ppid, "/bin/busybox", {applet, "arg"});
  ev.mutable_exec()->set_path("/proc/self/exe");
  ev.mutable_exec()->set_comm("exe");
  return ev;
}

TEST(Correlation, DropThenExec) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Applet(kCid, 1 * kSec, 50, 1, "wget"), &re);
  v1::Event w = Write(kCid, 2 * kSec, 50, "/tmp/x");
  RuleContext wc = c.Observe(kNode, w, &re);
  EXPECT_TRUE(wc.file.written_at_runtime);
  EXPECT_EQ(wc.file.writer_name, "wget");
  v1::Event ex = Exec(kCid, 3 * kSec, 51, 1, "/tmp/x");
  RuleContext ctx = c.Observe(kNode, ex, &re);
  EXPECT_TRUE(re.empty());
  EXPECT_EQ(ctx.event, &ex);
  EXPECT_TRUE(ctx.file.written_at_runtime);
  EXPECT_EQ(ctx.file.writer_name, "wget");
  EXPECT_EQ(ctx.file.writer_pid, 50u);
  EXPECT_EQ(ctx.file.writer_exepath, "/bin/busybox");
  EXPECT_EQ(ctx.file.written_ns, 2 * kSec);
  std::string hex;
  for (int i = 0; i < 32; ++i) hex += "ab";
  EXPECT_EQ(ctx.file.sha256, hex);
}

// The sensor says a short-lived container is removed (its cgroup went) before the audit
// reader's records of its last execs reach the collector: those execs still meet the writes
// (Falco #2013, CronJobs losing events). A window past the removal its file state is gone.
TEST(Correlation, RemovalOvertakingTheLastExecs) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, ContainerEv(kCid, 1 * kSec), &re);
  c.Observe(kNode, Write(kCid, 2 * kSec, 50, "/tmp/x", 7), &re);
  v1::Event removed = ContainerEv(kCid, 3 * kSec);
  removed.mutable_container()->set_state("removed");
  c.Observe(kNode, removed, &re);
  v1::Event ex = Exec(kCid, 2 * kSec + 1000, 51, 1, "/tmp/x", {}, 7);  // ran before removal
  RuleContext ctx = c.Observe(kNode, ex, &re);
  EXPECT_TRUE(ctx.file.written_at_runtime);
  ASSERT_NE(ctx.container, nullptr);
  EXPECT_EQ(ctx.container->name(), "api");
  // Its exec first, its write after, both behind the removal: joined on the write.
  v1::Event ex2 = Exec(kCid, 2 * kSec + 2000, 52, 1, "/tmp/y", {}, 8);
  EXPECT_FALSE(c.Observe(kNode, ex2, &re).file.written_at_runtime);
  c.Observe(kNode, Write(kCid, 2 * kSec + 1500, 50, "/tmp/y", 8), &re);
  ASSERT_EQ(re.size(), 1u);
  EXPECT_TRUE(re[0].file.written_at_runtime);
  // Long after the removal (beyond the window): nothing is kept or joined.
  re.clear();
  v1::Event late = Exec(kCid, 30 * kSec, 53, 1, "/tmp/x", {}, 7);
  EXPECT_FALSE(c.Observe(kNode, late, &re).file.written_at_runtime);
}

TEST(Correlation, ExecThenDropIsReevaluatedOnce) {
  Correlator c;
  std::vector<RuleContext> re;
  v1::Event ex = Exec(kCid, 3 * kSec, 51, 1, "/dev/shm/busybox");
  const uint64_t exec_seq = ex.id().seq();
  RuleContext ctx = c.Observe(kNode, ex, &re);
  EXPECT_FALSE(ctx.file.written_at_runtime);
  EXPECT_TRUE(re.empty());
  // The write arrives late (fanotify and audit are separate streams) but happened first.
  RuleContext wc = c.Observe(kNode, Write(kCid, 2 * kSec, 50, "/dev/shm/busybox"), &re);
  EXPECT_TRUE(wc.file.written_at_runtime);
  ASSERT_EQ(re.size(), 1u);
  EXPECT_EQ(re[0].event->id().seq(), exec_seq);
  EXPECT_TRUE(re[0].event->has_exec());
  EXPECT_TRUE(re[0].file.written_at_runtime);
  EXPECT_EQ(re[0].file.writer_name, "busybox");  // comm "exe": the writer's exe basename
  EXPECT_EQ(c.stats().late_matches, 1u);
  // The re-evaluation context owns its event: later events do not invalidate it.
  std::vector<RuleContext> re2;
  for (int i = 0; i < 100; ++i) c.Observe(kNode, Exec(kCid, 4 * kSec, 60 + i, 1, "/bin/true"), &re2);
  EXPECT_EQ(re[0].event->exec().exe(), "/dev/shm/busybox");
  // Another write of the same file: the exec was already re-evaluated.
  c.Observe(kNode, Write(kCid, 5 * kSec, 50, "/dev/shm/busybox", 0, "modify"), &re2);
  EXPECT_TRUE(re2.empty());
}

TEST(Correlation, LateWriteAfterWindowDoesNotMatch) {
  CorrelationOptions opt;
  opt.window = std::chrono::seconds(10);
  Correlator c(opt);
  std::vector<RuleContext> re;
  c.Observe(kNode, Exec(kCid, 3 * kSec, 51, 1, "/tmp/y"), &re);
  // Written 60 s after the exec: not what that exec ran.
  c.Observe(kNode, Write(kCid, 63 * kSec, 50, "/tmp/y"), &re);
  EXPECT_TRUE(re.empty());
}

TEST(Correlation, QuietContainersPendingExecsAreSwept) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Exec(kCid, 1 * kSec, 51, 1, "/tmp/late"), &re);
  // The node moves on (other containers) far past the window.
  for (uint32_t i = 0; i < 5000; ++i) {
    c.Observe(kNode, Exec(kOther, 100 * kSec, 1000 + i, 1, "/bin/true"), &re);
  }
  c.Observe(kNode, Write(kCid, 1 * kSec, 50, "/tmp/late"), &re);
  EXPECT_TRUE(re.empty());
  // Without the sweep's reach (fewer events), the same late write still matches.
  Correlator d;
  d.Observe(kNode, Exec(kCid, 1 * kSec, 51, 1, "/tmp/late"), &re);
  d.Observe(kNode, Exec(kOther, 100 * kSec, 1000, 1, "/bin/true"), &re);
  d.Observe(kNode, Write(kCid, 1 * kSec, 50, "/tmp/late"), &re);
  EXPECT_EQ(re.size(), 1u);
}

TEST(Correlation, MatchByInode) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Write(kCid, 1 * kSec, 50, "/tmp/a", 777), &re);
  RuleContext ctx = c.Observe(kNode, Exec(kCid, 2 * kSec, 51, 1, "/tmp/hardlink", {}, 777), &re);
  EXPECT_TRUE(ctx.file.written_at_runtime);
  // Exec first, then the write: the inode joins them too.
  c.Observe(kNode, Exec(kCid, 3 * kSec, 52, 1, "/opt/other", {}, 888), &re);
  c.Observe(kNode, Write(kCid, 3 * kSec, 50, "/upper/view/differs", 888), &re);
  ASSERT_EQ(re.size(), 1u);
  EXPECT_EQ(re[0].event->exec().exe(), "/opt/other");
}

// A file written on a volume shares its inode number with an image binary: the binary's exec
// (the sensor saw it run a lower-layer file) is not joined to that write.
TEST(Correlation, InodeJoinOnlyForUpperLayerExecs) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Write(kCid, 1 * kSec, 50, "/data/cache.bin", 4242), &re);
  v1::Event image = Exec(kCid, 2 * kSec, 51, 1, "/usr/bin/python3", {}, 4242);
  image.mutable_exec()->set_is_exe_upper_layer(false);
  EXPECT_FALSE(c.Observe(kNode, image, &re).file.written_at_runtime);
  v1::Event dropped = Exec(kCid, 3 * kSec, 52, 1, "/proc/self/fd/3", {}, 4242);
  dropped.mutable_exec()->set_is_exe_upper_layer(true);
  EXPECT_TRUE(c.Observe(kNode, dropped, &re).file.written_at_runtime);
}

// A binary written as /tmp/orig, hard-linked as /tmp/linked and run through the link: the
// exec joins the write in every order the three events can arrive in, whether the exec
// names the inode the write reported or (overlayfs with other inode numbers) another one.
TEST(Correlation, HardLinkJoinsInEveryArrivalOrder) {
  constexpr uint64_t kIno = 4242;
  for (uint64_t exec_ino : {kIno, uint64_t{0}, uint64_t{99}}) {
    std::vector<int> order = {0, 1, 2};  // write, link's create, exec
    do {
      Correlator c;
      std::vector<RuleContext> re;
      bool joined = false;
      for (int step : order) {
        v1::Event ev;
        if (step == 0) ev = Write(kCid, 1 * kSec, 50, "/tmp/orig", kIno);
        if (step == 1) ev = Write(kCid, 2 * kSec, 51, "/tmp/linked", kIno, "create");
        if (step == 2) {
          ev = Exec(kCid, 3 * kSec, 52, 1, "/tmp/linked", {}, exec_ino);
          ev.mutable_exec()->set_is_exe_upper_layer(true);
        }
        RuleContext ctx = c.Observe(kNode, ev, &re);
        if (step == 2 && ctx.file.written_at_runtime) joined = true;
      }
      for (const RuleContext& r : re)
        if (r.event->has_exec() && r.file.written_at_runtime) joined = true;
      // Only an exec naming another inode, before both writes, has nothing to go by
      // until the link's own event names its path.
      EXPECT_TRUE(joined) << "order " << order[0] << order[1] << order[2] << " exec inode "
                          << exec_ino;
    } while (std::next_permutation(order.begin(), order.end()));
  }
}

// More hard links of one file than a history is shared by: every one still joins.
TEST(Correlation, ManyHardLinksAllJoin) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Write(kCid, 1 * kSec, 50, "/tmp/orig", 77), &re);
  for (int i = 0; i < 200; ++i)
    c.Observe(kNode, Write(kCid, 2 * kSec, 50, "/tmp/l" + std::to_string(i), 77, "create"), &re);
  for (int i : {0, 63, 64, 199}) {
    v1::Event ex = Exec(kCid, 3 * kSec, 60 + i, 1, "/tmp/l" + std::to_string(i), {}, 77);
    EXPECT_TRUE(c.Observe(kNode, ex, &re).file.written_at_runtime) << i;
  }
}

// A rename keeps the written file's history under its new name; the old name forgets it,
// and deleting one of two hard links keeps the other's.
TEST(Correlation, RenameAndUnlinkKeepTheJoin) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Write(kCid, 1 * kSec, 50, "/tmp/a", 7), &re);
  v1::Event mv = Write(kCid, 2 * kSec, 50, "/tmp/b", 7, "rename");
  mv.mutable_write()->set_old_path("/tmp/a");
  c.Observe(kNode, mv, &re);
  c.Observe(kNode, Write(kCid, 2 * kSec, 50, "/tmp/c", 7, "create"), &re);  // ln /tmp/b /tmp/c
  c.Observe(kNode, Write(kCid, 2 * kSec, 50, "/tmp/b", 0, "delete"), &re);
  EXPECT_TRUE(c.Observe(kNode, Exec(kCid, 3 * kSec, 51, 1, "/tmp/c"), &re).file.written_at_runtime);
  EXPECT_FALSE(c.Observe(kNode, Exec(kCid, 3 * kSec, 52, 1, "/tmp/a"), &re).file.written_at_runtime);
  EXPECT_TRUE(re.empty());
}

// Written, opened, unlinked, then run by its fd (execveat, exe "... (deleted)"): the delete
// came first, but the file is still what ran.
TEST(Correlation, UnlinkedFileRunByFd) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Write(kCid, 1 * kSec, 50, "/tmp/fdgone", 31), &re);
  c.Observe(kNode, Write(kCid, 2 * kSec, 50, "/tmp/fdgone", 0, "delete"), &re);
  v1::Event ex = Exec(kCid, 3 * kSec, 50, 1, "/tmp/fdgone (deleted)", {}, 31);
  ex.mutable_exec()->set_syscall("execveat");
  ex.mutable_exec()->set_path("");
  EXPECT_TRUE(c.Observe(kNode, ex, &re).file.written_at_runtime);
  // An image binary that happens to have that inode number is not it.
  v1::Event img = Exec(kCid, 3 * kSec, 51, 1, "/bin/ls", {}, 31);
  img.mutable_exec()->set_is_exe_upper_layer(false);
  EXPECT_FALSE(c.Observe(kNode, img, &re).file.written_at_runtime);
}

// The same when the sensor looked too late to learn the written file's inode (it was
// unlinked before the fanotify event was read: the write says inode 0): the exec's
// "<path> (deleted)" names the file deleted last under that path. Another path does not.
TEST(Correlation, UnlinkedFileWithoutInodeRunByFd) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Write(kCid, 1 * kSec, 50, "/tmp/fdgone", 0), &re);
  c.Observe(kNode, Write(kCid, 2 * kSec, 50, "/tmp/fdgone", 0, "delete"), &re);
  v1::Event ex = Exec(kCid, 3 * kSec, 50, 1, "/tmp/fdgone (deleted)", {}, 31);
  ex.mutable_exec()->set_syscall("execveat");
  ex.mutable_exec()->set_path("");
  EXPECT_TRUE(c.Observe(kNode, ex, &re).file.written_at_runtime);
  v1::Event other = Exec(kCid, 3 * kSec, 51, 1, "/tmp/other (deleted)", {}, 32);
  other.mutable_exec()->set_path("");
  EXPECT_FALSE(c.Observe(kNode, other, &re).file.written_at_runtime);
  v1::Event live = Exec(kCid, 3 * kSec, 52, 1, "/tmp/fdgone", {}, 33);  // not deleted
  EXPECT_FALSE(c.Observe(kNode, live, &re).file.written_at_runtime);
}

// The same, the exec read first (its audit batch before the watcher's read): the write
// without an inode (the file was gone when the watcher looked) still meets the waiting exec
// of "<path> (deleted)", and nothing else does.
TEST(Correlation, UnlinkedFileRunByFdBeforeItsWriteIsRead) {
  Correlator c;
  std::vector<RuleContext> re;
  v1::Event ex = Exec(kCid, 1 * kSec, 50, 1, "/tmp/fdgone (deleted)", {}, 31);
  ex.mutable_exec()->set_syscall("execveat");
  ex.mutable_exec()->set_path("");
  EXPECT_FALSE(c.Observe(kNode, ex, &re).file.written_at_runtime);
  v1::Event other = Exec(kCid, 1 * kSec, 51, 1, "/tmp/other (deleted)", {}, 32);
  other.mutable_exec()->set_path("");
  c.Observe(kNode, other, &re);
  c.Observe(kNode, Write(kCid, 1 * kSec, 49, "/tmp/fdgone", 0), &re);
  c.Observe(kNode, Write(kCid, 1 * kSec, 50, "/tmp/fdgone", 0, "delete"), &re);
  ASSERT_EQ(re.size(), 1u);
  EXPECT_EQ(re[0].event->exec().exe(), "/tmp/fdgone (deleted)");
  EXPECT_TRUE(re[0].file.written_at_runtime);
}

// A write on a volume (another filesystem, attributed by cgroup) never joins an exec by
// inode number: the numbers of two filesystems say nothing of each other.
TEST(Correlation, VolumeWriteDoesNotJoinByInode) {
  Correlator c;
  std::vector<RuleContext> re;
  v1::Event w = Write(kCid, 1 * kSec, 50, "/var/lib/kubelet/pods/x/volumes/data/f", 555);
  w.set_attribution(v1::ATTRIBUTION_CGROUP);
  c.Observe(kNode, w, &re);
  v1::Event ex = Exec(kCid, 2 * kSec, 51, 1, "/tmp/tool", {}, 555);
  ex.mutable_exec()->set_is_exe_upper_layer(true);
  EXPECT_FALSE(c.Observe(kNode, ex, &re).file.written_at_runtime);
  EXPECT_TRUE(re.empty());
}

TEST(Correlation, WriteInAnotherContainerDoesNotMatch) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Write(kOther, 1 * kSec, 50, "/tmp/x", 42), &re);
  RuleContext ctx = c.Observe(kNode, Exec(kCid, 2 * kSec, 51, 1, "/tmp/x", {}, 42), &re);
  EXPECT_FALSE(ctx.file.written_at_runtime);
  c.Observe(kNode, Exec(kCid, 3 * kSec, 52, 1, "/tmp/z"), &re);
  c.Observe(kNode, Write(kOther, 3 * kSec, 50, "/tmp/z"), &re);
  EXPECT_TRUE(re.empty());
  // Another node, same container id and path: no match either.
  c.Observe("node-b", Write(kCid, 3 * kSec, 50, "/tmp/z"), &re);
  EXPECT_TRUE(re.empty());
}

TEST(Correlation, ChmodThenExec) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Applet(kCid, 1 * kSec, 70, 1, "chmod"), &re);
  RuleContext cc = c.Observe(kNode, Chmod(kCid, 2 * kSec, 70, 1, "run.sh", "/app"), &re);
  EXPECT_TRUE(cc.file.chmod_exec);
  RuleContext ctx = c.Observe(kNode, Exec(kCid, 3 * kSec, 71, 1, "/app/run.sh"), &re);
  EXPECT_TRUE(ctx.file.chmod_exec);
  EXPECT_EQ(ctx.file.chmod_ns, 2 * kSec);
  EXPECT_EQ(ctx.file.chmod_by, "chmod");
  EXPECT_FALSE(ctx.file.written_at_runtime);
  // A relative exec path resolves against the cwd too.
  v1::Event rel = Exec(kCid, 4 * kSec, 72, 1, "/app/run.sh");
  rel.mutable_exec()->set_path("./sub/../run.sh");
  rel.mutable_exec()->set_cwd("/app");
  rel.mutable_exec()->set_success(false);
  rel.mutable_exec()->set_exe("/bin/sh");  // a failed exec: exe= is the caller's
  EXPECT_TRUE(c.Observe(kNode, rel, &re).file.chmod_exec);
}

TEST(Correlation, LineageAnameApid) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Exec("host", 1 * kSec, 10, 1, "/usr/bin/containerd-shim-runc-v2"), &re);
  c.Observe(kNode, Exec(kCid, 2 * kSec, 11, 10, "/bin/sh"), &re);
  c.Observe(kNode, Applet(kCid, 3 * kSec, 12, 11, "ash"), &re);
  RuleContext ctx = c.Observe(kNode, Exec(kCid, 4 * kSec, 13, 12, "/usr/bin/curl", {"curl", "-O", "x"}), &re);
  ASSERT_EQ(ctx.lineage.size(), 3u);
  EXPECT_EQ(ctx.lineage[0].pid, 12u);  // proc.pname, proc.apid[1]
  EXPECT_EQ(ctx.lineage[0].name, "ash");
  EXPECT_EQ(ctx.lineage[1].pid, 11u);  // proc.aname[2]
  EXPECT_EQ(ctx.lineage[1].name, "sh");
  EXPECT_EQ(ctx.lineage[2].pid, 10u);  // proc.aname[3]
  EXPECT_EQ(ctx.lineage[2].name, "containerd-shim");
  EXPECT_EQ(ctx.lineage[2].exepath, "/usr/bin/containerd-shim-runc-v2");
  // proc.pexe, proc.aexe[N]: each ancestor's argv[0].
  EXPECT_EQ(ctx.lineage[0].exe, "ash");
  EXPECT_EQ(ctx.lineage[1].exe, "/bin/sh");
  EXPECT_EQ(ctx.lineage[2].exe, "/usr/bin/containerd-shim-runc-v2");
  // A write by pid 13 gets the writer's ancestors.
  RuleContext wc = c.Observe(kNode, Write(kCid, 5 * kSec, 13, "/tmp/x"), &re);
  ASSERT_EQ(wc.lineage.size(), 3u);
  EXPECT_EQ(wc.lineage[0].name, "ash");
  EXPECT_EQ(wc.file.writer_name, "curl");
  // An unknown parent: the kernel's parent comm, when the event has it.
  v1::Event orphan = Exec(kCid, 6 * kSec, 99, 98, "/bin/ls");
  orphan.mutable_exec()->set_parent_name("bash");
  RuleContext oc = c.Observe(kNode, orphan, &re);
  ASSERT_EQ(oc.lineage.size(), 1u);
  EXPECT_EQ(oc.lineage[0].pid, 98u);
  EXPECT_EQ(oc.lineage[0].name, "bash");
}

TEST(Correlation, PidReuse) {
  Correlator c;
  std::vector<RuleContext> re;
  c.Observe(kNode, Exec(kCid, 1 * kSec, 20, 1, "/bin/bash"), &re);
  c.Observe(kNode, Exec(kCid, 2 * kSec, 21, 20, "/bin/sleep"), &re);
  // Pid 20 exits and is reused by another process (another parent).
  c.Observe(kNode, Exec(kCid, 3 * kSec, 20, 5, "/usr/sbin/nginx"), &re);
  RuleContext grandchild = c.Observe(kNode, Exec(kCid, 4 * kSec, 22, 21, "/bin/cat"), &re);
  ASSERT_EQ(grandchild.lineage.size(), 1u);  // sleep; its parent bash is gone, not nginx
  EXPECT_EQ(grandchild.lineage[0].name, "sleep");
  RuleContext child = c.Observe(kNode, Exec(kCid, 5 * kSec, 23, 20, "/bin/echo"), &re);
  ASSERT_GE(child.lineage.size(), 1u);
  EXPECT_EQ(child.lineage[0].name, "nginx");

  // The same process exec'ing again (same parent) keeps its start: children stay linked.
  c.Observe(kNode, Exec(kCid, 10 * kSec, 30, 1, "/bin/sh"), &re);
  c.Observe(kNode, Exec(kCid, 11 * kSec, 31, 30, "/bin/sleep"), &re);
  c.Observe(kNode, Exec(kCid, 12 * kSec, 30, 1, "/usr/bin/app"), &re);
  RuleContext gc = c.Observe(kNode, Exec(kCid, 13 * kSec, 32, 31, "/bin/true"), &re);
  ASSERT_EQ(gc.lineage.size(), 2u);
  EXPECT_EQ(gc.lineage[1].name, "app");
}

TEST(Correlation, MemoryBounds) {
  CorrelationOptions opt;
  opt.max_processes = 4;
  opt.max_files_per_container = 3;
  opt.max_pending_execs_per_container = 2;
  Correlator c(opt);
  std::vector<RuleContext> re;
  for (uint32_t pid = 100; pid < 110; ++pid) {
    c.Observe(kNode, Exec("host", kSec, pid, pid - 1, "/bin/p" + std::to_string(pid)), &re);
  }
  EXPECT_EQ(c.process_count(), 4u);
  EXPECT_EQ(c.stats().processes_evicted, 6u);
  RuleContext ctx = c.Observe(kNode, Exec("host", 2 * kSec, 200, 101, "/bin/x"), &re);
  EXPECT_TRUE(ctx.lineage.empty());  // 101 was evicted
  for (int i = 0; i < 5; ++i) {
    c.Observe(kNode, Write(kCid, kSec, 50, "/tmp/f" + std::to_string(i)), &re);
  }
  EXPECT_EQ(c.file_count(kNode, kCid), 3u);
  EXPECT_EQ(c.stats().files_evicted, 2u);
  const uint64_t pending_evicted = c.stats().pending_evicted;  // the host's execs above
  EXPECT_FALSE(c.Observe(kNode, Exec(kCid, 2 * kSec, 300, 1, "/tmp/f0"), &re).file.written_at_runtime);
  EXPECT_TRUE(c.Observe(kNode, Exec(kCid, 2 * kSec, 301, 1, "/tmp/f4"), &re).file.written_at_runtime);
  // Pending execs: bounded too (f0 above, then two more).
  c.Observe(kNode, Exec(kCid, 2 * kSec, 302, 1, "/tmp/p1"), &re);
  c.Observe(kNode, Exec(kCid, 2 * kSec, 303, 1, "/tmp/p2"), &re);
  EXPECT_EQ(c.stats().pending_evicted, pending_evicted + 1);
  c.Observe(kNode, Write(kCid, 2 * kSec, 50, "/tmp/f0"), &re);  // f0 left the buffer
  EXPECT_TRUE(re.empty());
}

// One node floods container and process state; another node's drop-and-execute, whose
// write and writer came before the flood, still correlates: the flood evicts only the
// flooder's own state, and is counted against it.
TEST(Correlation, OneNodeCannotEvictAnothersState) {
  CorrelationOptions opt;
  opt.max_containers = 1000;
  opt.max_containers_per_node = 100;
  opt.max_processes = 5000;
  opt.max_processes_per_node = 500;
  Correlator c(opt);
  std::vector<RuleContext> re;
  const std::string victim = "victim-node", flooder = "flooder-node";
  c.Observe(victim, ContainerEv(kCid, 1 * kSec), &re);
  c.Observe(victim, Applet(kCid, 1 * kSec, 50, 1, "wget"), &re);
  c.Observe(victim, Write(kCid, 2 * kSec, 50, "/tmp/x"), &re);
  for (int i = 0; i < 20000; ++i) {
    char id[65];
    std::snprintf(id, sizeof id, "%064x", i);
    c.Observe(flooder, ContainerEv(id, 3 * kSec), &re);
    c.Observe(flooder, Exec(id, 3 * kSec, static_cast<uint32_t>(1000 + i), 1, "/bin/sh"), &re);
  }
  RuleContext ctx = c.Observe(victim, Exec(kCid, 4 * kSec, 51, 50, "/tmp/x"), &re);
  EXPECT_TRUE(ctx.file.written_at_runtime);
  EXPECT_EQ(ctx.file.writer_name, "wget");
  ASSERT_FALSE(ctx.lineage.empty());
  EXPECT_EQ(ctx.lineage[0].name, "wget");
  ASSERT_NE(ctx.container, nullptr);
  EXPECT_EQ(ctx.container->pod_name(), "api-5d8b7c9f4-x2kqp");
  auto q = c.QuotaEvictions();
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0].first, flooder);
  EXPECT_GE(q[0].second, 2u * (20000 - 500));
  EXPECT_LE(c.process_count(), 500u + 2u);
}

TEST(Correlation, ContainerInfoEntrypointAndPolicy) {
  Correlator c;
  std::vector<RuleContext> re;
  auto policy = ImagePolicy::LoadText("sha256:" + std::string(64, '1') + "\n", "approved.txt");
  ASSERT_TRUE(policy) << policy.error();
  c.SetImagePolicy(std::make_shared<ImagePolicy>(std::move(*policy)));
  v1::Event cev = ContainerEv(kCid, 1 * kSec);
  RuleContext cc = c.Observe(kNode, cev, &re);
  ASSERT_NE(cc.container, nullptr);
  EXPECT_TRUE(cc.image.checked);
  EXPECT_TRUE(cc.image.approved);
  EXPECT_TRUE(cc.image.mutable_tag);
  EXPECT_TRUE(cc.image.writable_rootfs);
  c.Observe(kNode, Exec(kCid, 2 * kSec, 100, 90, "/bin/server"), &re);
  RuleContext ctx = c.Observe(kNode, Exec(kCid, 3 * kSec, 101, 100, "/bin/sh"), &re);
  ASSERT_NE(ctx.container, nullptr);
  EXPECT_EQ(ctx.container->pod_name(), "api-5d8b7c9f4-x2kqp");
  EXPECT_EQ(ctx.container_start_ns, 1 * kSec);
  EXPECT_EQ(ctx.container_entrypoint, "/bin/server");
  EXPECT_NE(c.Container(kNode, kCid), nullptr);
  EXPECT_EQ(c.Container("node-b", kCid), nullptr);
  // A container update replaces the info; the old context still owns the old one.
  v1::Event upd = ContainerEv(kCid, 1 * kSec);
  upd.mutable_container()->set_image_ref("sha256:" + std::string(64, '2'));
  RuleContext uc = c.Observe(kNode, upd, &re);
  EXPECT_FALSE(uc.image.approved);
  EXPECT_EQ(ctx.container->image_ref(), "sha256:" + std::string(64, '1'));
  // A policy change (here: none, posture only) applies to the containers already known.
  c.SetImagePolicy(nullptr);
  RuleContext after = c.Observe(kNode, Exec(kCid, 4 * kSec, 102, 100, "/bin/ls"), &re);
  EXPECT_FALSE(after.image.checked);
  EXPECT_FALSE(after.image.approved);
  EXPECT_TRUE(after.image.writable_rootfs);
}

}  // namespace
}  // namespace driftwatch
