#include "lib/event/parent_names.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace driftwatch {
namespace {

v1::Event Exec(uint32_t pid, uint32_t ppid, const std::string& comm, bool success = true) {
  v1::Event ev;
  auto* e = ev.mutable_exec();
  e->set_pid(pid);
  e->set_ppid(ppid);
  e->set_success(success);
  e->set_comm(comm);
  return ev;
}

std::string Named(ParentNames* names, v1::Event ev) {
  names->Name(&ev);
  switch (ev.body_case()) {
    case v1::Event::kExec: return ev.exec().parent_name();
    case v1::Event::kChmod: return ev.chmod().parent_name();
    case v1::Event::kNetwork: return ev.network().parent_name();
    default: return "<none>";
  }
}

TEST(ParentNames, TheParentsLastExecNamesIt) {
  ParentNames names;
  EXPECT_EQ(Named(&names, Exec(10, 1, "bash")), "");  // pid 1's exec was not seen
  EXPECT_EQ(Named(&names, Exec(11, 10, "sh")), "bash");
  EXPECT_EQ(Named(&names, Exec(10, 1, "nginx")), "");  // 10 exec'd again: a new name
  EXPECT_EQ(Named(&names, Exec(12, 10, "cat")), "nginx");
  // A failed exec changes nothing.
  EXPECT_EQ(Named(&names, Exec(10, 1, "evil", false)), "");
  EXPECT_EQ(Named(&names, Exec(13, 10, "ls")), "nginx");
}

TEST(ParentNames, ChmodAndNetworkEventsAreNamedToo) {
  ParentNames names;
  Named(&names, Exec(20, 1, "python3"));
  v1::Event chmod;
  chmod.mutable_chmod()->set_pid(21);
  chmod.mutable_chmod()->set_ppid(20);
  EXPECT_EQ(Named(&names, chmod), "python3");
  v1::Event net;
  net.mutable_network()->set_pid(22);
  net.mutable_network()->set_ppid(20);
  EXPECT_EQ(Named(&names, net), "python3");
  // They change no name: 21 was never exec'd.
  EXPECT_EQ(Named(&names, Exec(23, 21, "x")), "");
}

TEST(ParentNames, ALongCommIsCutAtTheKernelsLimit) {
  ParentNames names;
  Named(&names, Exec(30, 1, std::string("a-name-longer-than-fifteen\xff", 27)));
  EXPECT_EQ(Named(&names, Exec(31, 30, "x")), "a-name-longer-t");
  Named(&names, Exec(32, 1, std::string("n\0ul", 4)));  // bytes kept as they are
  EXPECT_EQ(Named(&names, Exec(33, 32, "x")), std::string("n\0ul", 4));
}

TEST(ParentNames, BoundedAndAnActiveParentKeepsItsName) {
  ParentNames names({}, 4);  // at most 8 held
  Named(&names, Exec(100, 1, "shell"));
  for (uint32_t pid = 200; pid < 1200; ++pid) {
    // The shell's children keep it young; everything else comes and goes.
    ASSERT_EQ(Named(&names, Exec(pid, 100, "child")), "shell") << pid;
    ASSERT_LE(names.size(), 8u);
  }
  // A parent quiet for more than a generation of execs is forgotten.
  Named(&names, Exec(2000, 1, "quiet"));
  for (uint32_t pid = 3000; pid < 3010; ++pid) Named(&names, Exec(pid, 1, "other"));
  EXPECT_EQ(Named(&names, Exec(4000, 2000, "x")), "");
}

TEST(ParentNames, AnUnknownParentIsAskedOfTheFallbackOnce) {
  std::vector<std::pair<uint32_t, int64_t>> asked;
  ParentNames names([&](uint32_t pid, int64_t time_ns) -> std::optional<std::string> {
    asked.emplace_back(pid, time_ns);
    if (pid == 40) return std::string("containerd-shim-runc-v2");  // comm is cut at 15
    return std::nullopt;                                            // gone, or reused since
  });
  v1::Event ev = Exec(41, 40, "sh");
  ev.set_time_ns(123);
  EXPECT_EQ(Named(&names, ev), "containerd-shim");
  EXPECT_EQ(Named(&names, Exec(42, 40, "sh")), "containerd-shim");  // remembered
  EXPECT_EQ(Named(&names, Exec(43, 99, "sh")), "");
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_EQ(asked[0], std::make_pair(40u, int64_t{123}));
  EXPECT_EQ(asked[1].first, 99u);
  // A parent whose exec was seen is not asked.
  EXPECT_EQ(Named(&names, Exec(44, 41, "x")), "sh");
  EXPECT_EQ(asked.size(), 2u);
}

}  // namespace
}  // namespace driftwatch
