// Events per second through the shipped rules (rules/driftwatch_*.yaml), one thread.
// Prints Google Benchmark's table; items_per_second is events/s. No thresholds: a number to
// watch, not a test.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>

#include "lib/rules/rule_engine.h"
#include "lib/rules/rule_loader.h"
#include "unit/rule_test_util.h"

namespace driftwatch {
namespace {

const RuleSet& Shipped() {
  static const RuleSet* set = [] {
    auto r = RuleSet::Load(ShippedRuleFiles());
    if (!r) {
      for (const auto& d : r.error()) std::fprintf(stderr, "%s\n", d.ToString().c_str());
      std::abort();
    }
    return r->release();
  }();
  return *set;
}

// An exec in a container whose parent is python3.
v1::Event Exec(const std::string& comm, const std::string& exe, std::vector<std::string> args) {
  v1::Event ev = testing::ExecEvent(comm, exe, std::move(args));
  ev.mutable_exec()->set_parent_name("python3");
  return ev;
}

// Evaluate (conditions, then the output of each match) on one exec in a container, over and
// over; `matches` is how many rules it must match for the figure to count.
void EvaluateExec(benchmark::State& state, const v1::Event& ev, size_t matches) {
  const RuleSet& set = Shipped();
  v1::ContainerInfo c = testing::Container();
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
  v1::ContainerInfo c = testing::Container();
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
