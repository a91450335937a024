// correlation_memory [CONTAINERS] [EXECS_PER_CONTAINER]: the collector's memory per tracked
// container. Feeds the detection stage (correlator + shipped rules, as the collector runs
// it) a container report, a lineage of execs and written files for each of CONTAINERS
// containers, and prints the growth of the resident set divided by the containers.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "lib/detect/detect.h"
#include "lib/rules/rule_loader.h"

namespace {

long RssBytes() {
  std::ifstream f("/proc/self/statm");
  long pages = 0, rss = 0;
  f >> pages >> rss;
  return rss * sysconf(_SC_PAGESIZE);
}

std::string Hex64(unsigned n) {
  char b[65];
  std::snprintf(b, sizeof b, "%064x", n);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace driftwatch;
  unsigned containers = argc > 1 ? std::atoi(argv[1]) : 10000;
  unsigned execs = argc > 2 ? std::atoi(argv[2]) : 20;
  auto rules = RuleSet::Load(ShippedRuleFiles());
  if (!rules) return 1;
  Detector d(std::shared_ptr<const RuleSet>(std::move(*rules)));
  uint64_t alerts = 0;
  auto sink = [&alerts](Alert&&) { ++alerts; };
  long before = RssBytes();
  uint64_t seq = 0;
  int64_t t = 1700000000000000000;
  for (unsigned c = 0; c < containers; ++c) {
    std::string id = Hex64(c + 1);
    v1::Event ci;
    ci.mutable_id()->set_seq(++seq);
    ci.set_time_ns(t += 1000);
    ci.set_container_id(id);
    auto* info = ci.mutable_container();
    info->set_id(id);
    info->set_name("app");
    info->set_pod_name("web-" + std::to_string(c));
    info->set_pod_namespace("shop");
    info->set_image("registry.example.com/shop/web:1.4.2");
    info->set_state("running");
    info->set_upperdir("/var/lib/containerd/snapshots/" + std::to_string(c) + "/fs");
    info->set_init_pid(100000 + c * 100);
    d.OnEvent("node-1", ci, sink);
    for (unsigned i = 0; i < execs; ++i) {
      v1::Event w;
      w.mutable_id()->set_seq(++seq);
      w.set_time_ns(t += 1000);
      w.set_container_id(id);
      auto* f = w.mutable_write();
      f->set_kind("close_write");
      f->set_path("/tmp/file-" + std::to_string(i));
      f->set_inode(1000 + i);
      f->set_pid(100000 + c * 100 + i);
      d.OnEvent("node-1", w, sink);
      v1::Event x;
      x.mutable_id()->set_seq(++seq);
      x.set_time_ns(t += 1000);
      x.set_container_id(id);
      auto* e = x.mutable_exec();
      e->set_syscall("execve");
      e->set_success(true);
      e->set_pid(100000 + c * 100 + i + 1);
      e->set_ppid(100000 + c * 100 + i);
      e->set_comm("worker");
      e->set_exe("/usr/bin/worker");
      e->set_path("/usr/bin/worker");
      e->add_args("worker");
      e->add_args("--job=" + std::to_string(i));
      d.OnEvent("node-1", x, sink);
    }
  }
  long after = RssBytes();
  std::printf("correlation_memory: %u containers x %u execs and writes: RSS +%.1f MiB, %.1f KiB per "
              "container (%llu alerts)\n",
              containers, execs, (after - before) / 1048576.0,
              (after - before) / 1024.0 / containers, (unsigned long long)alerts);
  return 0;
}
