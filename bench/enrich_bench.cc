// enrich_bench: the sensor's cost per exec event in its enrich stage (sensor/enrich.h), on
// one core: attribution by cgroup, and what it reads of the process at the exec. Two cases:
//   Live: the exec'd process still runs when the event is enriched (a shell, a server:
//         every read happens); its environment is 40 entries, about 2 KB;
//   Gone: it exited before (the most a short-lived process costs: the failed open).
// Host processes, no container registry (as --no-cri on a host process). Build both trees
// and compare: bench/run does not run it; report the two figures side by side.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "sensor/enrich.h"

namespace {

int64_t Now() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// A child running `sleep 600` with a 40-entry environment; its pid.
pid_t StartSleeper() {
  static std::vector<std::string> env;
  static std::vector<char*> envp;
  if (env.empty()) {
    for (int i = 0; i < 40; ++i) env.push_back("VAR_" + std::to_string(i) + "=" + std::string(40, 'x'));
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
  }
  pid_t pid = fork();
  if (pid == 0) {
    char sleep_path[] = "/bin/sleep", arg[] = "600";
    char* argv[] = {sleep_path, arg, nullptr};
    execve(sleep_path, argv, envp.data());
    _exit(127);
  }
  usleep(100000);
  return pid;
}

driftwatch::v1::Event ExecOf(pid_t pid) {
  driftwatch::v1::Event ev;
  ev.set_time_ns(Now());
  auto* x = ev.mutable_exec();
  x->set_syscall("execve");
  x->set_success(true);
  x->set_pid(static_cast<uint32_t>(pid));
  x->set_ppid(static_cast<uint32_t>(getpid()));
  x->set_comm("sleep");
  x->set_exe("/bin/sleep");
  x->add_args("/bin/sleep");
  x->add_args("600");
  struct stat st;
  if (stat("/bin/sleep", &st) == 0) x->set_exe_inode(st.st_ino);
  return ev;
}

void BM_EnrichLive(benchmark::State& state) {
  pid_t pid = StartSleeper();
  driftwatch::sensor::Enricher enricher(nullptr);
  const driftwatch::v1::Event proto = ExecOf(pid);
  for (auto _ : state) {
    driftwatch::v1::Event ev = proto;
    enricher.Enrich(&ev);
    benchmark::DoNotOptimize(ev);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}
BENCHMARK(BM_EnrichLive);

void BM_EnrichGone(benchmark::State& state) {
  pid_t pid = StartSleeper();
  const driftwatch::v1::Event proto = ExecOf(pid);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  driftwatch::sensor::Enricher enricher(nullptr);
  for (auto _ : state) {
    driftwatch::v1::Event ev = proto;
    enricher.Enrich(&ev);
    benchmark::DoNotOptimize(ev);
  }
}
BENCHMARK(BM_EnrichGone);

}  // namespace

BENCHMARK_MAIN();
