// Builders of events and contexts for the rules tests.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lib/rules/rule_context.h"

namespace driftwatch::testing {

// The whole file ("" when it cannot be read).
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The shipped rule files of this source tree (not an installed copy): macros, then rules.
inline std::vector<std::string> SourceRuleFiles() {
  const std::string dir = std::string(DW_SOURCE_DIR) + "/rules";
  return {dir + "/driftwatch_macros.yaml", dir + "/driftwatch_rules.yaml"};
}

inline constexpr char kCid[] = "4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f";

inline v1::Event ExecEvent(const std::string& comm, const std::string& exe,
                           std::vector<std::string> args, const std::string& container_id = kCid) {
  v1::Event ev;
  ev.set_time_ns(1700000000123456789);
  ev.mutable_id()->set_node("node-1");
  ev.mutable_id()->set_seq(7);
  ev.set_container_id(container_id);
  v1::ProcessExec* e = ev.mutable_exec();
  e->set_syscall("execve");
  e->set_success(true);
  e->set_pid(4242);
  e->set_ppid(4200);
  e->set_uid(0);
  e->set_auid(4294967295u);
  e->set_session(4294967295u);
  e->set_tty("(none)");
  e->set_comm(comm);
  e->set_exe(exe);
  e->set_path(exe);
  for (auto& a : args) e->add_args(a);
  e->set_cwd("/");
  return ev;
}

inline v1::ContainerInfo Container(const std::string& name = "api") {
  v1::ContainerInfo c;
  c.set_id(kCid);
  c.set_name(name);
  c.set_image("docker.io/library/nginx:1.25");
  c.set_image_repository("docker.io/library/nginx");
  c.set_image_tag("1.25");
  c.set_pod_name("api-5d8b7c9f4-x2kqp");
  c.set_pod_namespace("default");
  c.set_state("running");
  return c;
}

inline v1::Event WriteEvent(const std::string& path, const std::string& kind = "close_write") {
  v1::Event ev;
  ev.set_time_ns(1700000000000000000);
  ev.set_container_id(kCid);
  v1::FileWrite* w = ev.mutable_write();
  w->set_kind(kind);
  w->set_pid(77);
  w->set_comm("cp");
  w->set_path(path);
  return ev;
}

inline RuleContext Ctx(const v1::Event& ev, const v1::ContainerInfo* c = nullptr,
                       std::vector<std::string> ancestors = {}) {
  RuleContext ctx;
  ctx.event = &ev;
  ctx.container = c;
  uint32_t pid = 4200;
  for (auto& a : ancestors) ctx.lineage.push_back(ProcessInfo{pid--, a, "/bin/" + a, a, ProcessInfo::Origin::kUnknown, "/bin/" + a});
  return ctx;
}

}  // namespace driftwatch::testing
