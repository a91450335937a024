#include "lib/event/process_tree.h"

#include <gtest/gtest.h>

#include <initializer_list>

namespace driftwatch {
namespace {

v1::Event Exec(uint32_t pid, uint32_t ppid, std::initializer_list<const char*> argv,
               const char* exe, bool plumbing = false, uint32_t dev_minor = 0) {
  v1::Event ev;
  auto* e = ev.mutable_exec();
  e->set_pid(pid);
  e->set_ppid(ppid);
  e->set_success(true);
  e->set_exe(exe);
  for (const char* a : argv) e->add_args(a);
  e->set_comm(argv.size() ? *argv.begin() : "");
  e->set_runtime_plumbing(plumbing);
  e->set_exe_dev_minor(dev_minor);
  return ev;
}

class ProcessTreeTest : public ::testing::Test {
 protected:
  std::string Run(v1::Event ev) {
    tree_.Attribute(&ev);
    last_ = ev;
    return ev.container_id();
  }
  // The runtime's trail for container `id` under shim pid 100 (as in the corpus).
  void StartContainer(const char* id) {
    Run(Exec(100, 1, {"/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", id,
                      "-address", "/run/containerd/containerd.sock"},
             "/usr/bin/containerd-shim-runc-v2"));
    Run(Exec(101, 100, {"runc", "--root", "/r", "create", "--bundle", "/b", id}, "/usr/sbin/runc"));
    EXPECT_EQ(Run(Exec(102, 101, {"runc", "init"}, "/usr/sbin/runc", true)), id);
    EXPECT_EQ(Run(Exec(102, 101, {"runc", "init"}, "/", true)), id);
    Run(Exec(103, 100, {"runc", "--root", "/r", "start", id}, "/usr/sbin/runc"));
  }
  ProcessTree tree_;
  v1::Event last_;
};

TEST_F(ProcessTreeTest, HostProcessesAreHost) {
  EXPECT_EQ(Run(Exec(50, 1, {"bash"}, "/bin/bash")), "host");
  EXPECT_EQ(Run(Exec(51, 50, {"/bin/true"}, "/bin/true")), "host");
  EXPECT_EQ(last_.attribution(), v1::ATTRIBUTION_PARENT);
  EXPECT_EQ(last_.exec().parent_name(), "bash");
}

TEST_F(ProcessTreeTest, WorkloadInitWhoseParentIsTheShim) {
  StartContainer("ctr-a");
  EXPECT_EQ(Run(Exec(104, 100, {"/bin/sleep", "100"}, "/bin/busybox", false, 0x32)), "ctr-a");
  EXPECT_EQ(tree_.RuntimeNamespace("ctr-a"), "k8s.io");
  // Its children follow it.
  EXPECT_EQ(Run(Exec(105, 104, {"sh"}, "/bin/busybox")), "ctr-a");
  EXPECT_EQ(last_.attribution(), v1::ATTRIBUTION_PARENT);
}

TEST_F(ProcessTreeTest, WorkloadInitWhoseParentIsRunc) {
  StartContainer("ctr-b");
  EXPECT_EQ(Run(Exec(104, 101, {"/bin/sleep", "100"}, "/bin/busybox")), "ctr-b");
}

TEST_F(ProcessTreeTest, ExecIntoContainerThroughRuncExec) {
  StartContainer("ctr-c");
  Run(Exec(110, 100, {"runc", "--root", "/r", "exec", "--process", "/tmp/p", "--detach", "ctr-c"},
           "/usr/sbin/runc"));
  EXPECT_EQ(Run(Exec(111, 110, {"runc", "init"}, "/usr/sbin/runc", true)), "ctr-c");
  EXPECT_EQ(Run(Exec(112, 110, {"/bin/sh", "-c", "id"}, "/bin/busybox")), "ctr-c");
  // A failed exec by the same process, after it was reparented to the shim.
  v1::Event failed = Exec(112, 100, {}, "/bin/busybox");
  failed.mutable_exec()->set_success(false);
  EXPECT_EQ(Run(failed), "ctr-c");
}

TEST_F(ProcessTreeTest, RuntimeProcessesThemselvesAreHost) {
  StartContainer("ctr-d");
  EXPECT_EQ(Run(Exec(120, 100, {"runc", "--root", "/r", "start", "ctr-d"}, "/usr/sbin/runc")),
            "host");
}

TEST_F(ProcessTreeTest, RuntimeHousekeepingIsHost) {
  StartContainer("ctr-f");
  EXPECT_EQ(Run(Exec(140, 100, {"runc", "--root", "/r", "state", "ctr-f"}, "/usr/sbin/runc")), "host");
  EXPECT_EQ(Run(Exec(141, 100, {"runc", "--root", "/r", "delete", "--force", "ctr-f"}, "/usr/sbin/runc")),
            "host");
  EXPECT_EQ(Run(Exec(142, 141, {"/bin/helper"}, "/bin/helper")), "host");
}

TEST_F(ProcessTreeTest, OverlayDeviceIsASecondSignal) {
  StartContainer("ctr-e");
  Run(Exec(104, 100, {"/bin/sleep", "1"}, "/bin/busybox", false, 0x40));
  // A process whose parent was never seen (rules added late) but whose executable lives on
  // the container's overlay.
  EXPECT_EQ(Run(Exec(300, 299, {"/bin/ls"}, "/bin/busybox", false, 0x40)), "ctr-e");
  EXPECT_EQ(last_.attribution(), v1::ATTRIBUTION_DEVICE);
}

TEST_F(ProcessTreeTest, TwoContainersOfOneShimFollowTheLastStarted) {
  StartContainer("pause-1");
  Run(Exec(104, 100, {"/pause"}, "/pause"));
  Run(Exec(130, 100, {"runc", "--root", "/r", "create", "--bundle", "/b2", "app-1"},
           "/usr/sbin/runc"));
  Run(Exec(131, 130, {"runc", "init"}, "/", true));
  Run(Exec(132, 100, {"runc", "--root", "/r", "start", "app-1"}, "/usr/sbin/runc"));
  EXPECT_EQ(Run(Exec(133, 100, {"/app"}, "/app")), "app-1");
  EXPECT_EQ(Run(Exec(134, 104, {"x"}, "/x")), "pause-1");
}

}  // namespace
}  // namespace driftwatch
