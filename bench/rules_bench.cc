// Events per second through the shipped rules (rules/driftwatch_*.yaml), one thread.
// Prints Google Benchmark's table; items_per_second is events/s. No thresholds: a number to
// watch, not a test.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>

#include "lib/rule_engine.h"

namespace driftwatch {
namespace {

const RuleSet& Shipped() {
  static const RuleSet* set = [] {
    auto r = RuleSet::Load({std::string(DW_SOURCE_DIR) + "/rules/driftwatch_macros.yaml",
                            std::string(DW_SOURCE_DIR) + "/rules/driftwatch_rules.yaml"});
    if (!r) {
      for (const auto& d : r.error()) std::fprintf(stderr, "%s\n", d.ToString().c_str());
      std::abort();
    }
    return r->release();
  }();
  return *set;
}

v1::Event Exec(const char* comm, const char* exe, std::vector<const char*> args) {
  v1::Event ev;
  ev.set_time_ns(1700000000000000000);
  ev.set_container_id("4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f");
  auto* e = ev.mutable_exec();
  e->set_syscall("execve");
  e->set_success(true);
  e->set_pid(4242);
  e->set_ppid(4200);
  e->set_comm(comm);
  e->set_exe(exe);
  e->set_path(exe);
  e->set_tty("(none)");
  e->set_auid(4294967295u);
  e->set_parent_name("python3");
  for (const char* a : args) e->add_args(a);
  return ev;
}

v1::ContainerInfo Info() {
  v1::ContainerInfo c;
  c.set_id("4f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f");
  c.set_name("api");
  c.set_image_repository("docker.io/library/nginx");
  c.set_image_tag("1.25");
  return c;
}

// Evaluate (conditions, then the output of each match) on one exec in a container, over and
// over; `matches` is how many rules it must match for the figure to count.
void EvaluateExec(benchmark::State& state, const v1::Event& ev, size_t matches) {
  const RuleSet& set = Shipped();
  v1::ContainerInfo c = Info();
  RuleContext ctx;
  ctx.event = &ev;
  ctx.container = &c;
  std::vector<RuleMatch> out;
  for (auto _ : state) {
    out.clear();
    set.Evaluate(ctx, &out);
    benchmark::DoNotOptimize(out.data());
  }
  if (out.size() != matches) state.SkipWithError("unexpected number of matches");
  state.SetItemsProcessed(state.iterations());
}

// An ordinary exec no rule matches: the common case, conditions only.
void BM_ExecNoMatch(benchmark::State& state) {
  EvaluateExec(state, Exec("ls", "/bin/ls", {"ls", "-l", "/app"}), 0);
}
BENCHMARK(BM_ExecNoMatch);

// A shell in a container: matches "Container Shell Spawned", output formatted.
void BM_ExecShellMatch(benchmark::State& state) {
  EvaluateExec(state, Exec("sh", "/bin/sh", {"sh", "-c", "id"}), 1);
}
BENCHMARK(BM_ExecShellMatch);

// Conditions only (Match), as a collector that formats later would use it.
void BM_ExecMatchOnly(benchmark::State& state) {
  const RuleSet& set = Shipped();
  v1::Event ev = Exec("sh", "/bin/sh", {"sh", "-c", "id"});
  v1::ContainerInfo c = Info();
  RuleContext ctx;
  ctx.event = &ev;
  ctx.container = &c;
  std::vector<const Rule*> out;
  for (auto _ : state) {
    out.clear();
    set.Match(ctx, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ExecMatchOnly);

}  // namespace
}  // namespace driftwatch

BENCHMARK_MAIN();
