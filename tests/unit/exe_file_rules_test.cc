// Issue 11 without a kernel: execs that run another file than exe= names (a loader's
// program, a script, a memfd), as the parser makes them from real records and as the sensor
// completes them, through the detector (correlation and the shipped rules), in both arrival
// orders of the write and the exec. The alert names the file that ran.
#include <gtest/gtest.h>

#include "lib/detect/detect.h"
#include "lib/rules/rule_engine.h"
#include "unit/exe_file_records.h"
#include "unit/rule_test_util.h"

namespace driftwatch {
namespace {

constexpr int64_t kSec = 1'000'000'000;
constexpr char kDrop[] = "Drop and execute new binary in container";
constexpr char kMemfd[] = "Fileless execution via memfd_create";
constexpr char kShm[] = "Execution from /dev/shm";

class ExeFileRules : public ::testing::Test {
 protected:
  void SetUp() override {
    auto rules = RuleSet::Load(testing::SourceRuleFiles());
    ASSERT_TRUE(rules.has_value());
    set_ = std::shared_ptr<const RuleSet>(std::move(*rules));
  }

  v1::Event Stamp(v1::Event ev, int64_t t) {
    ev.mutable_id()->set_node("node-1");
    ev.mutable_id()->set_boot_id("b");
    ev.mutable_id()->set_seq(++seq_);
    ev.set_time_ns(t);
    ev.set_container_id(testing::kCid);
    return ev;
  }
  v1::Event Write(const std::string& path, uint64_t inode, int64_t t) {
    v1::Event ev;
    v1::FileWrite* w = ev.mutable_write();
    w->set_kind("close_write");
    w->set_pid(300);
    w->set_comm("cp");
    w->set_path(path);
    w->set_inode(inode);
    w->set_mode(0100644);
    w->set_executable(true);
    return Stamp(ev, t);
  }
  // Alerts for: the container, then the write and the exec in the order given.
  std::vector<Alert> Run(const v1::Event& write, const v1::Event& exec, bool write_first) {
    Detector d(set_);
    std::vector<Alert> alerts;
    auto sink = [&](Alert&& a) { alerts.push_back(std::move(a)); };
    v1::Event c;
    *c.mutable_container() = testing::Container("app");
    c.mutable_container()->set_start_time_ns(t0_);
    d.OnEvent("node-1", Stamp(c, t0_), sink);
    d.OnEvent("node-1", write_first ? write : exec, sink);
    d.OnEvent("node-1", write_first ? exec : write, sink);
    return alerts;
  }
  static std::string Field(const Alert& a, const std::string& name) {
    for (const auto& [k, v] : a.output_fields)
      if (k == name) return v.str;
    return "<missing>";
  }
  static const Alert* Find(const std::vector<Alert>& alerts, const std::string& rule) {
    for (const Alert& a : alerts)
      if (a.rule == rule) return &a;
    return nullptr;
  }

  std::shared_ptr<const RuleSet> set_;
  uint64_t seq_ = 0;
  const int64_t t0_ = 1796341150 * kSec;
};

// `/lib64/ld-linux-x86-64.so.2 /tmp/exe-exp/truecopy`, parsed from the record alone (an
// audit.log, no sensor): exe_file from argv joins the write by its path.
TEST_F(ExeFileRules, LoaderFromTheLogAlone) {
  v1::Event exec = Stamp(testing::CapturedExecs().at(234670), t0_ + 2 * kSec);
  ASSERT_EQ(exec.exec().exe_file(), "/tmp/exe-exp/truecopy");
  for (bool write_first : {true, false}) {
    auto alerts = Run(Write("/tmp/exe-exp/truecopy", 0, t0_ + kSec), exec, write_first);
    const Alert* a = Find(alerts, kDrop);
    ASSERT_NE(a, nullptr) << write_first;
    EXPECT_NE(a->message.find("proc.exe_file=/tmp/exe-exp/truecopy"), std::string::npos)
        << a->message;
    EXPECT_NE(a->message.find("proc.exepath=/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
              std::string::npos) << a->message;
  }
}

// The same as the sensor completes it in a container: the program found under the
// container's root, its inode, the upper layer. The write's path differs (a symlink the
// program was named through): the inode joins them.
TEST_F(ExeFileRules, LoaderAsTheSensorSeesIt) {
  v1::Event exec = Stamp(testing::CapturedExecs().at(234670), t0_ + 2 * kSec);
  v1::ProcessExec* x = exec.mutable_exec();
  x->set_exe_file("/tmp/exe-exp/truecopy");
  x->set_exe_file_inode(777);
  x->set_exe_file_stat(v1::EXE_FILE_STAT_OK);
  x->set_is_exe_upper_layer(true);
  for (bool write_first : {true, false}) {
    auto alerts = Run(Write("/srv/real-truecopy", 777, t0_ + kSec), exec, write_first);
    const Alert* a = Find(alerts, kDrop);
    ASSERT_NE(a, nullptr) << write_first;
    EXPECT_NE(a->message.find("proc.exe_file=/tmp/exe-exp/truecopy"), std::string::npos);
  }
  // An image program run by the loader: the inode of a write elsewhere does not join.
  x->set_is_exe_upper_layer(false);
  for (bool write_first : {true, false}) {
    EXPECT_EQ(Find(Run(Write("/data/x", 777, t0_ + kSec), exec, write_first), kDrop), nullptr);
  }
}

// `./s.sh` (#!/bin/sh): exe is dash; the alert names the script.
TEST_F(ExeFileRules, Script) {
  v1::Event exec = Stamp(testing::CapturedExecs().at(234672), t0_ + 2 * kSec);
  for (bool upper_known : {false, true}) {
    // The sensor: dash is from the image, the script from the upper layer.
    if (upper_known) exec.mutable_exec()->set_is_exe_upper_layer(true);
    for (bool write_first : {true, false}) {
      auto alerts = Run(Write("/tmp/exe-exp/s.sh", 11010101, t0_ + kSec), exec, write_first);
      const Alert* a = Find(alerts, kDrop);
      ASSERT_NE(a, nullptr) << upper_known << write_first;
      EXPECT_NE(a->message.find("proc.exe_file=/tmp/exe-exp/s.sh"), std::string::npos)
          << a->message;
      EXPECT_EQ(Field(*a, "proc.exe_file"), "/tmp/exe-exp/s.sh");
      EXPECT_EQ(Field(*a, "proc.exepath"), "/usr/bin/dash");
    }
  }
}

// execveat on a memfd: Falco's rule, naming /memfd:payload (deleted); not a /dev/shm exec.
TEST_F(ExeFileRules, Memfd) {
  v1::Event exec = Stamp(testing::CapturedExecs().at(234663), t0_ + 2 * kSec);
  auto alerts = Run(Write("/tmp/other", 5, t0_ + kSec), exec, true);
  const Alert* a = Find(alerts, kMemfd);
  ASSERT_NE(a, nullptr);
  EXPECT_NE(a->message.find("proc.exe_file=/memfd:payload (deleted)"), std::string::npos)
      << a->message;
  EXPECT_EQ(Find(alerts, kShm), nullptr);
  EXPECT_EQ(Find(alerts, kDrop), nullptr);
  // A file execveat'd by its fd is no memfd.
  v1::Event fd = Stamp(testing::CapturedExecs().at(234665), t0_ + 2 * kSec);
  EXPECT_EQ(Find(Run(Write("/tmp/other", 5, t0_ + kSec), fd, true), kMemfd), nullptr);
}

// The dynamic loader given a program in /dev/shm (noexec there does not stop it).
TEST_F(ExeFileRules, LoaderFromDevShm) {
  v1::Event exec = Stamp(testing::CapturedExecs().at(234670), t0_ + 2 * kSec);
  exec.mutable_exec()->set_args(1, "/dev/shm/evil");
  exec.mutable_exec()->set_exe_file("/dev/shm/evil");
  const auto alerts = Run(Write("/tmp/other", 5, t0_ + kSec), exec, true);
  const Alert* a = Find(alerts, kShm);
  ASSERT_NE(a, nullptr);
  EXPECT_NE(a->message.find("proc.exe_file=/dev/shm/evil"), std::string::npos) << a->message;
}

}  // namespace
}  // namespace driftwatch
