// driftwatch-sensor: the node daemon. main() wires the audit source to its outputs and
// turns start-up errors into a message and an exit status.
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "lib/capture.h"
#include "lib/process_tree.h"
#include "lib/version.h"
#include "sensor/audit_netlink.h"
#include "sensor/audit_rules.h"
#include "sensor/audit_source.h"

namespace driftwatch::sensor {
namespace {

struct Flags {
  bool audit_only = false;
  std::string audit_mode = "auto";
  std::string capture;
  uint32_t backlog_limit = 8192;
  int rcvbuf = 32 << 20;
  size_t queue_records = 1 << 16;
  double status_interval = 10;
  double duration = 0;
  std::string node;
};

std::string ReadFirstLine(const char* path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Another audit daemon (auditd) holds the unicast feed when the kernel names a live pid.
bool AuditPidHeld() {
  auto probe = AuditNetlink::Open(AuditMode::kOwner, 1 << 16);
  if (!probe) return false;
  auto st = (*probe)->GetStatus();
  if (!st || st->pid == 0) return false;
  return kill(static_cast<pid_t>(st->pid), 0) == 0 || errno == EPERM;
}

int Run(const Flags& flags) {
  AuditMode mode;
  if (flags.audit_mode == "owner") mode = AuditMode::kOwner;
  else if (flags.audit_mode == "observer") mode = AuditMode::kObserver;
  else mode = AuditPidHeld() ? AuditMode::kObserver : AuditMode::kOwner;

  // Signals are taken synchronously by this thread: block them before threads start.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  std::FILE* out = nullptr;
  if (flags.capture == "-") {
    out = stdout;
  } else if (!flags.capture.empty()) {
    out = std::fopen(flags.capture.c_str(), "wb");
    if (out == nullptr) {
      std::fprintf(stderr, "driftwatch-sensor: %s: %s\n", flags.capture.c_str(), strerror(errno));
      return 1;
    }
  }
  static char outbuf[1 << 20];
  if (out) setvbuf(out, outbuf, _IOFBF, sizeof outbuf);
  std::unique_ptr<CaptureWriter> capture = out ? std::make_unique<CaptureWriter>(out) : nullptr;

  auto nl = AuditNetlink::Open(mode, flags.rcvbuf);
  if (!nl) {
    std::fprintf(stderr, "driftwatch-sensor: %s\n", nl.error().c_str());
    return 1;
  }
  // Declared after the socket it uses, so that it is released first on every path.
  std::unique_ptr<AuditOwnership> ownership;
  if (mode == AuditMode::kOwner) {
    OwnerOptions opt;
    opt.backlog_limit = flags.backlog_limit;
    auto own = AuditOwnership::Acquire(nl->get(), opt);
    if (!own) {
      std::fprintf(stderr, "driftwatch-sensor: owner mode: %s\n", own.error().c_str());
      return 1;
    }
    ownership = std::move(*own);
  }

  utsname uts{};
  uname(&uts);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  v1::EventId id;
  id.set_node(flags.node.empty() ? host : flags.node);
  id.set_boot_id(ReadFirstLine("/proc/sys/kernel/random/boot_id"));
  id.set_sensor_start_ns(NowNs());
  uint64_t seq = 0;
  ProcessTree tree;
  bool write_failed = false;

  auto write = [&](v1::Event& ev) {
    *ev.mutable_id() = id;
    ev.mutable_id()->set_seq(++seq);
    if (capture && !capture->Write(ev) && !write_failed) {
      write_failed = true;
      std::fprintf(stderr, "driftwatch-sensor: capture write failed: %s\n", strerror(errno));
    }
  };

  std::unique_ptr<AuditSource> source;
  auto status = [&](bool final) {
    v1::Event ev;
    ev.set_time_ns(NowNs());
    ev.set_container_id("host");
    auto* s = ev.mutable_status();
    s->set_audit_mode(AuditModeName(mode));
    s->set_fanotify_mode("off");
    s->set_sensor_version(kVersion);
    s->set_kernel_version(uts.release);
    if (ownership) {
      s->set_backlog_limit(ownership->backlog_limit());
      s->set_backlog_wait_time(ownership->backlog_wait_time());
    }
    if (source) {
      const AuditCounters& c = source->counters();
      s->set_kernel_lost(c.KernelLostDelta());
      s->set_socket_enobufs(c.socket_enobufs);
      s->set_queue_drops(c.queue_drops);
      s->set_reassembly_evictions(c.evictions);
      s->set_records(c.records);
      s->set_events(c.events);
      s->set_parse_errors(c.parse_errors);
    }
    s->set_final(final);
    write(ev);
  };

  status(false);
  auto last_status = std::chrono::steady_clock::now();
  AuditSource::Options sopt;
  sopt.queue_records = flags.queue_records;
  source = std::make_unique<AuditSource>(
      nl->get(), sopt,
      [&](v1::Event& ev) {
        tree.Attribute(&ev);
        write(ev);
      },
      [&] {  // parser thread, every ~100 ms
        auto now = std::chrono::steady_clock::now();
        if (now - last_status >= std::chrono::duration<double>(flags.status_interval)) {
          status(false);
          last_status = now;
        }
        if (capture) capture->Flush();
      });
  source->Start();
  std::fprintf(stderr, "driftwatch-sensor %s: audit %s mode%s\n", kVersion, AuditModeName(mode),
               ownership ? (", backlog_limit " + std::to_string(ownership->backlog_limit()) +
                            ", backlog_wait_time " + std::to_string(ownership->backlog_wait_time()) +
                            ", " + std::to_string(ownership->rules_added()) + " rules added")
                               .c_str()
                         : "");

  auto started = std::chrono::steady_clock::now();
  for (;;) {
    timespec ts{0, 200 * 1000 * 1000};
    int sig = sigtimedwait(&sigs, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (flags.duration > 0 &&
        std::chrono::steady_clock::now() - started >= std::chrono::duration<double>(flags.duration)) {
      break;
    }
  }

  source->Stop();  // the parser completes what is in flight
  if (ownership) ownership->Release();
  status(true);
  if (capture) capture->Flush();
  const AuditCounters& c = source->counters();
  std::fprintf(stderr,
               "driftwatch-sensor: %llu records, %llu events; lost: kernel %llu, socket "
               "overruns %llu, queue drops %llu, evictions %llu; %llu parse errors\n",
               (unsigned long long)c.records.load(), (unsigned long long)c.events.load(),
               (unsigned long long)c.KernelLostDelta(), (unsigned long long)c.socket_enobufs.load(),
               (unsigned long long)c.queue_drops.load(), (unsigned long long)c.evictions.load(),
               (unsigned long long)c.parse_errors.load());
  if (out && out != stdout) std::fclose(out);
  return write_failed ? 1 : 0;
}

}  // namespace
}  // namespace driftwatch::sensor

int main(int argc, char** argv) {
  driftwatch::sensor::Flags f;
  CLI::App app{"driftwatch-sensor: per-node container drift sensor (kernel audit execve records)"};
  app.set_version_flag("--version", driftwatch::kVersion);
  app.add_flag("--audit-only", f.audit_only,
               "run the audit source only (no filesystem watcher)");
  app.add_option("--audit-mode", f.audit_mode,
                 "owner: register as the audit daemon and install rules; observer: read the "
                 "multicast feed beside a running auditd; auto: observer when another daemon "
                 "holds the audit pid, owner otherwise")
      ->check(CLI::IsMember({"auto", "owner", "observer"}))
      ->capture_default_str();
  app.add_option("--capture", f.capture,
                 "write the event stream (length-delimited driftwatch.v1.Event) to FILE, - for "
                 "stdout; read it back with `driftwatch analyze`");
  app.add_option("--backlog-limit", f.backlog_limit, "owner mode: kernel audit backlog limit")
      ->capture_default_str();
  app.add_option("--rcvbuf", f.rcvbuf, "netlink receive buffer, bytes")->capture_default_str();
  app.add_option("--queue", f.queue_records, "records queued between reader and parser")
      ->capture_default_str();
  app.add_option("--status-interval", f.status_interval, "seconds between status events")
      ->capture_default_str();
  app.add_option("--duration", f.duration, "stop after this many seconds (0: run until SIGTERM)")
      ->capture_default_str();
  app.add_option("--node", f.node, "node name in event ids (default: hostname)");
  CLI11_PARSE(app, argc, argv);
  return driftwatch::sensor::Run(f);
}
