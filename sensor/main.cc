// driftwatch-sensor: the node daemon. main() wires the audit source to its outputs and
// turns start-up errors into a message and an exit status.
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <array>
#include <atomic>
#include <functional>
#include <optional>
#include <set>
#include <vector>
#include <string>

#include "lib/audit/capture.h"
#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/base/log.h"
#include "lib/base/mutex.h"
#include "lib/base/version.h"
#include "lib/daemon/daemon_config.h"
#include "lib/daemon/metrics.h"
#include "lib/daemon/node_name.h"
#include "lib/daemon/systemd_notify.h"
#include "lib/event/event_view.h"
#include "lib/event/parent_names.h"
#include "lib/event/process_tree.h"
#include "lib/node/drift_inventory.h"
#include "lib/node/mountinfo.h"
#include "lib/node/procfs.h"
#include "sensor/audit_netlink.h"
#include "sensor/audit_rules.h"
#include "sensor/audit_source.h"
#include "sensor/container_registry.h"
#include "sensor/docker_source.h"
#include "sensor/counters.h"
#include "sensor/enrich.h"
#include "sensor/enroll.h"
#include "sensor/fanotify_watcher.h"
#include "sensor/loss_file.h"
#include "sensor/output.h"
#include "sensor/prevent.h"
#include "sensor/respond.h"
#include "sensor/sensitive_reads.h"
#include "lib/base/terminal_text.h"
#include "sensor/spool.h"
#include "sensor/uplink.h"

namespace driftwatch::sensor {
namespace {

struct Flags {
  bool audit_only = false;
  std::string audit_mode = "auto";
  std::string capture;
  uint32_t backlog_limit = 8192;
  uint32_t backlog_wait_time = 0;
  std::string audit_network = "off";
  std::string audit_state_file = "/run/driftwatch/audit-state";
  int rcvbuf = 32 << 20;
  size_t queue_records = 1 << 16;
  int audit_batch_ms = AuditSource::Options{}.publish_ms;
  size_t argv_max_bytes = ArgvCaps{}.max_bytes;
  size_t argv_max_arg_bytes = ArgvCaps{}.max_arg_bytes;
  size_t environ_max_bytes = Enricher::kDefaultEnvironMaxBytes;
  double status_interval = 10;
  double duration = 0;
  std::string node;
  // Containers and files.
  std::string fanotify_mode = "auto";
  bool fanotify_modify = false;
  uint64_t hash_max = 64ull << 20;
  InventoryOptions inventory;  // caps of a drift inventory walk
  std::vector<std::string> watch_fs;
  std::string sensitive_reads = "on";
  std::vector<std::string> sensitive_paths;  // empty: DefaultSensitivePaths()
  double sensitive_rescan = 30;
  std::vector<std::string> cri_endpoints;
  bool no_cri = false;
  std::string docker_endpoint;  // "": DockerClient::kDefaultEndpoint where it exists
  bool no_docker = false;
  std::string cgroup_root;
  double resync = 5;
  // Prevention.
  std::string prevent = "off";
  bool prevent_dry_run = false;
  std::string prevent_fail = "open";
  std::string prevent_events = "auto";
  std::string prevent_marks = "auto";
  std::string prevent_priority = "realtime";
  int prevent_deadline_ms = 50;
  std::vector<std::string> prevent_allow;
  std::string prevent_policy;
  std::string respond = "off";
  int respond_max_per_minute = 6;
  int64_t respond_stop_timeout_s = 10;
  // Collector.
  std::string collector;
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
  std::string bootstrap_cert, bootstrap_key;
  std::string node_cert_dir = "/var/lib/driftwatch/identity";
  bool insecure = false;
  std::string spool_dir = "/var/lib/driftwatch/spool";
  uint64_t spool_max_bytes = 256ull << 20;
  std::string spool_fsync = "interval";
  std::string metrics_address = "127.0.0.1:9464";
  std::string log_format = "text";
};

// Another audit daemon (auditd) holds the unicast feed when the kernel names a live pid.
bool AuditPidHeld() {
  auto probe = AuditNetlink::Open(AuditMode::kOwner, 1 << 16);
  if (!probe) return false;
  auto st = (*probe)->GetStatus();
  if (!st || st->pid == 0) return false;
  return ProcessAlive(static_cast<pid_t>(st->pid));
}

// The event stream's one writer: numbers events and writes them, for every source thread.
// A container's drift against its image, for the collector (what `driftwatch diff` prints).
InventoryResult TakeInventory(const ContainerRegistry* registry, const std::string& query,
                              const InventoryOptions& opt) {
  InventoryResult r;
  r.container_id = query;
  if (!registry) {
    r.error = "this sensor runs without a container registry (--audit-only)";
    return r;
  }
  std::optional<v1::ContainerInfo> info = registry->Find(query);
  if (!info) {
    for (const auto& c : registry->List())
      if (query.size() >= 4 && c.id().starts_with(query)) info = c;
  }
  if (!info || info->upperdir().empty()) {
    r.error = "no running container " + query + " with a known overlay root on this node";
    return r;
  }
  r.container_id = info->id();
  OverlayRoot root;
  root.upperdir = info->upperdir();
  root.lowerdirs.assign(info->lowerdirs().begin(), info->lowerdirs().end());
  auto inv = DriftInventory(root, opt);
  if (!inv) {
    r.error = inv.error().message();
    return r;
  }
  if (info->init_pid())
    DropMountTargets(&inv->entries, MountPointsOfPid(static_cast<pid_t>(info->init_pid())));
  if (inv->truncation.truncated()) {
    LogWarn("inventory of container %s: %s\n", r.container_id.c_str(),
            TruncationText(inv->truncation).c_str());
  }
  r.inventory = std::move(*inv);
  return r;
}

std::string LossJson(const LossCounts& c) {
  std::string j = "{";
  for (const LossField& f : kLossFields) {
    if (j.size() > 1) j += ",";
    j += "\"" + std::string(f.name) + "\":" + std::to_string(c.*f.member);
  }
  return j + "}";
}

int Run(const Flags& flags) {
  const bool audit_on = flags.audit_mode != "off";
  const bool containers_on = !flags.audit_only;
  AuditMode mode = AuditMode::kOwner;
  if (flags.audit_mode == "owner") mode = AuditMode::kOwner;
  else if (flags.audit_mode == "observer") mode = AuditMode::kObserver;
  else if (audit_on) mode = AuditPidHeld() ? AuditMode::kObserver : AuditMode::kOwner;
  if (!audit_on && !containers_on) {
    LogError("--audit-mode off with --audit-only leaves nothing to do\n");
    return 2;
  }
  if (flags.audit_network != "off" && (!audit_on || mode != AuditMode::kOwner)) {
    // Observer mode reads what auditd's rules produce: network events appear where
    // those rules audit connect, bind, listen or accept.
    LogWarn("--audit-network %s ignored: the sensor adds audit rules only in owner mode "
            "(audit mode %s)\n",
            flags.audit_network.c_str(), audit_on ? AuditModeName(mode) : "off");
  }
  const PreventMode prevent = ParsePreventMode(flags.prevent).value_or(PreventMode::kOff);
  if (prevent != PreventMode::kOff && !containers_on) {
    LogError("--prevent %s needs the container registry: not with --audit-only\n",
             flags.prevent.c_str());
    return 2;
  }
  if (flags.respond == "stop" && !containers_on) {
    LogError("--respond stop stops containers through the CRI: not with --audit-only\n");
    return 2;
  }
  std::optional<FanotifyMode> fmode = ParseFanotifyMode(flags.fanotify_mode);
  if (!fmode) {
    LogError("--fanotify-mode %s: unknown mode\n",
                 flags.fanotify_mode.c_str());
    return 2;
  }

  // The event loop: signals, timers and the collector stream. Sources run threads of
  // their own and hand events to `output`.
  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  signal(SIGPIPE, SIG_IGN);
  // A file size limit (ulimit -f) makes spool writes fail with EFBIG, counted, instead of
  // killing the sensor.
  signal(SIGXFSZ, SIG_IGN);

  std::FILE* out = nullptr;
  if (flags.capture == "-") {
    out = stdout;
  } else if (!flags.capture.empty()) {
    out = std::fopen(flags.capture.c_str(), "wb");
    if (out == nullptr) {
      LogError("%s: %s\n", flags.capture.c_str(), strerror(errno));
      return 1;
    }
  }
  static char outbuf[1 << 20];
  if (out) setvbuf(out, outbuf, _IOFBF, sizeof outbuf);

  utsname uts{};
  uname(&uts);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  v1::EventId id;
  id.set_node(flags.node.empty() ? host : flags.node);
  // EventId.node is a proto `string` (one that is not UTF-8 would make every event
  // unreadable downstream), and the collector files events under it as under a certificate's
  // name: the same rules (lib/daemon/node_name.h). The node's name is the operator's: refuse it at
  // start.
  if (auto ok = CheckNodeNameFrom(flags.node.empty() ? "host name" : "--node", id.node()); !ok) {
    LogError("%s: give one with --node\n", ok.error().c_str());
    return 1;
  }
  // --collector A,B,...: the sensor streams to one at a time, the next when it fails.
  std::vector<std::string> collectors;
  for (size_t pos = 0; !flags.collector.empty() && pos <= flags.collector.size();) {
    size_t end = flags.collector.find(',', pos);
    if (end == std::string::npos) end = flags.collector.size();
    std::string t = flags.collector.substr(pos, end - pos);
    t.erase(0, t.find_first_not_of(" \t"));
    t.erase(t.find_last_not_of(" \t") + 1);
    if (t.empty()) {
      LogError("--collector %s: an empty address in the list (expected HOST:PORT[,HOST:PORT...])\n",
               TerminalEscape(flags.collector).c_str());
      return 2;
    }
    collectors.push_back(std::move(t));
    pos = end + 1;
  }
  std::string boot_id;
  if (ReadSmallFile("/proc/sys/kernel/random/boot_id", &boot_id) && boot_id.back() == '\n')
    boot_id.pop_back();
  id.set_boot_id(boot_id);
  id.set_sensor_start_ns(NowNs());
  Output output(id, out ? std::make_unique<CaptureWriter>(out) : nullptr);

  std::unique_ptr<Spool> spool;
  std::unique_ptr<LossFile> losses;  // with the spool: lifetime loss totals
  if (!flags.collector.empty()) {
    SpoolOptions so;
    so.dir = flags.spool_dir;
    so.max_bytes = flags.spool_max_bytes;
    so.fsync = flags.spool_fsync == "always"  ? FsyncPolicy::kAlways
               : flags.spool_fsync == "never" ? FsyncPolicy::kNever
                                              : FsyncPolicy::kInterval;
    auto sp = Spool::Open(so);
    if (!sp) {
      LogError("spool %s: %s\n", so.dir.c_str(), sp.error().c_str());
      return 1;
    }
    spool = std::move(*sp);
    output.SetSpool(spool.get());
    // Beside the spool, under its lock.
    auto lf = LossFile::Open(flags.spool_dir + "/losses", so.fsync != FsyncPolicy::kNever);
    if (lf) {
      losses = std::move(*lf);
    } else {
      LogWarn("loss totals: %s; lifetime totals are this run's alone\n", lf.error().c_str());
    }
  }

  // Containers first, so that the first audit events find them known. Member order below
  // is teardown order in reverse: watcher (uses the registry) stops before the registry.
  std::unique_ptr<DockerSource> docker;  // the registry asks it: outlives it
  std::unique_ptr<ContainerRegistry> registry;
  std::unique_ptr<FanotifyWatcher> watcher;
  std::unique_ptr<Responder> responder;  // before guard: the guard's reports call it
  std::unique_ptr<ExecGuard> guard;
  std::unique_ptr<SensitiveReads> reads;
  Mutex watcher_mu;  // the registry's listener may run before `watcher` or `guard` is set
  // The sources' events: a container's after its info (issue 19: the collector's alerts on a
  // container's very first events name its pod and image). Not the registry's own events.
  auto write_event = [&](v1::Event& ev) {
    if (registry) registry->Announce(ev.container_id());
    output.Write(ev);
  };
  if (containers_on) {
    ContainerRegistry::Options ropt;
    ropt.use_cri = !flags.no_cri;
    ropt.cri_endpoints = flags.cri_endpoints;
    ropt.cgroup_root = flags.cgroup_root;
    ropt.resync = std::chrono::milliseconds(static_cast<int64_t>(flags.resync * 1000));
    // Plain Docker hosts have no CRI socket: names, images and labels from the engine.
    std::string docker_ep = flags.docker_endpoint;
    if (docker_ep.empty() && access(DockerClient::kDefaultEndpoint, F_OK) == 0)
      docker_ep = DockerClient::kDefaultEndpoint;
    if (!flags.no_docker && !docker_ep.empty()) {
      DockerSource::Options dopt;
      dopt.endpoint = docker_ep;
      dopt.resync = ropt.resync;
      docker = DockerSource::Open(dopt);
      docker->Start();
      ropt.docker = docker.get();
    }
    registry = std::make_unique<ContainerRegistry>(ropt, [&](const v1::ContainerInfo& info,
                                                             bool report) {
      {
        MutexLock lock(watcher_mu);
        if (guard && info.state() == "removed") {
          guard->ForgetContainer(info.id());
        } else if (guard && info.init_pid() != 0) {
          if (auto r = guard->WatchContainerRoot(info.id(), static_cast<pid_t>(info.init_pid())); !r)
            LogWarn("%s\n", r.error().c_str());
        }
        if (reads) {
          if (info.state() == "removed") {
            reads->Forget(info.id());
          } else if (info.init_pid() != 0) {
            reads->Watch(info.id(), static_cast<pid_t>(info.init_pid()));
          }
        }
        if (watcher && info.state() != "removed" && info.init_pid() != 0) {
          if (auto r = watcher->WatchContainerRoot(info.id(), static_cast<pid_t>(info.init_pid())); !r)
            LogWarn("%s\n", r.error().c_str());
        }
        if (watcher) watcher->WatchVolumes(info);
      }
      if (!report) return;
      v1::Event ev;
      ev.set_time_ns(NowNs());
      ev.set_container_id(info.id());
      ev.set_attribution(info.source() == "cri" ? v1::ATTRIBUTION_UNSPECIFIED : v1::ATTRIBUTION_CGROUP);
      *ev.mutable_container() = info;
      output.Write(ev);
    });
    if (auto err = registry->Start()) {
      LogError("containers: %s\n", err->c_str());
      return 1;
    }
    if (*fmode != FanotifyMode::kOff) {
      FanotifyOptions fo;
      fo.mode = *fmode;
      fo.filesystems = flags.watch_fs;
      fo.modify = flags.fanotify_modify;
      fo.hash_max_bytes = flags.hash_max;
      auto w = FanotifyWatcher::Open(fo, registry.get(), write_event);
      if (!w) {
        LogError("fanotify: %s\n", w.error().c_str());
        return 1;
      }
      MutexLock lock(watcher_mu);
      watcher = std::move(*w);
      // Containers already running get their roots marked (fd-mount mode) now.
      for (const auto& c : registry->List()) {
        if (c.init_pid() != 0) (void)watcher->WatchContainerRoot(c.id(), static_cast<pid_t>(c.init_pid()));
        watcher->WatchVolumes(c);
      }
      watcher->Start();
    }
    if (flags.sensitive_reads == "on") {
      SensitiveReadOptions so;
      if (!flags.sensitive_paths.empty()) so.paths = flags.sensitive_paths;
      so.rescan = std::chrono::milliseconds(static_cast<int64_t>(flags.sensitive_rescan * 1000));
      auto r = SensitiveReads::Open(so, registry.get(), write_event);
      if (!r) {
        LogError("%s\n", r.error().c_str());
        return 1;
      }
      MutexLock lock(watcher_mu);
      reads = std::move(*r);
      for (const auto& c : registry->List())
        if (c.init_pid() != 0) reads->Watch(c.id(), static_cast<pid_t>(c.init_pid()));
      reads->Start();
    }
    if (flags.respond == "stop") {
      RespondOptions ro;
      ro.cri_endpoint = registry->endpoint();
      ro.max_per_minute = flags.respond_max_per_minute;
      ro.stop_timeout_s = flags.respond_stop_timeout_s;
      auto r = Responder::Start(ro);
      if (!r) {
        LogError("%s\n", r.error().c_str());
        return 1;
      }
      responder = std::move(*r);
    }
    if (prevent != PreventMode::kOff) {
      PreventOptions po;
      po.mode = prevent;
      po.dry_run = flags.prevent_dry_run;
      po.events = ParsePreventEvents(flags.prevent_events).value_or(PreventEvents::kAuto);
      po.marks = ParsePreventMarks(flags.prevent_marks).value_or(PreventMarks::kAuto);
      po.realtime = flags.prevent_priority == "realtime";
      po.fail_closed = flags.prevent_fail == "closed";
      po.deadline = std::chrono::milliseconds(flags.prevent_deadline_ms);
      po.filesystems = flags.watch_fs;
      po.allow_paths = flags.prevent_allow;
      po.policy_file = flags.prevent_policy;
      // The fleet's policy as the collector last pushed it, for a restart without it.
      if (!flags.collector.empty()) po.fleet_policy_file = flags.spool_dir + "/fleet-policy.yaml";
      po.hash_max_bytes = flags.hash_max;
      auto g = ExecGuard::Open(po, registry.get(), [&](v1::Event& ev) {
        write_event(ev);
        if (responder && ev.prevented().verdict() == v1::ExecPrevented::DENIED &&
            !ev.container_id().empty()) {
          responder->Request(ev.container_id(),
                             "drift prevented: " + TerminalEscape(ev.prevented().path()));
        }
      });
      if (!g) {
        LogError("%s\n", g.error().c_str());
        return 1;
      }
      MutexLock lock(watcher_mu);
      guard = std::move(*g);
      guard->Start();
      // Containers already running get their overlay mounts marked (mount marks) now.
      for (const auto& c : registry->List()) {
        if (c.init_pid() == 0) continue;
        if (auto r = guard->WatchContainerRoot(c.id(), static_cast<pid_t>(c.init_pid())); !r)
          LogWarn("%s\n", r.error().c_str());
      }
    }
  }

  std::unique_ptr<AuditNetlink> nl;
  // Declared after the socket it uses, so that it is released first on every path.
  std::unique_ptr<AuditOwnership> ownership;
  if (audit_on) {
    auto opened = AuditNetlink::Open(mode, flags.rcvbuf);
    if (!opened) {
      LogError("%s\n", opened.error().c_str());
      return 1;
    }
    nl = std::move(*opened);
    if (mode == AuditMode::kOwner) {
      OwnerOptions opt;
      opt.backlog_limit = flags.backlog_limit;
      opt.backlog_wait_time = flags.backlog_wait_time;
      opt.state_file = flags.audit_state_file;
      opt.network = flags.audit_network == "all"       ? AuditNetwork::kAll
                    : flags.audit_network == "connect" ? AuditNetwork::kConnect
                                                       : AuditNetwork::kOff;
      auto own = AuditOwnership::Acquire(nl.get(), opt);
      if (!own) {
        LogError("owner mode: %s\n", own.error().c_str());
        return 1;
      }
      ownership = std::move(*own);
    }
  }

  ProcessTree tree;
  Enricher enricher(registry.get());
  ParentNames parent_names([&enricher](uint32_t pid, int64_t wall_ns) {
    return enricher.CommOf(static_cast<pid_t>(pid), wall_ns);
  });
  EnrichCounters enrich_counters;
  enricher.set_environ_max_bytes(flags.environ_max_bytes);
  std::unique_ptr<AuditSource> source;
  // This run's losses, from the counters where they happen.
  auto run_losses = [&] {
    LossCounts l;
    if (source) {
      const AuditCounters& c = source->counters();
      l.kernel_lost = c.KernelLostDelta();
      l.socket_enobufs = c.socket_enobufs;
      l.queue_drops = c.queue_drops;
      l.reassembly_evictions = c.evictions;
    }
    if (watcher) {
      l.fanotify_overflows = watcher->counters().overflows;
      l.hash_skipped = watcher->counters().hash_skipped;
      l.hash_queue_full = watcher->counters().hash_queue_full;
    }
    if (reads) l.fanotify_overflows += reads->counters().overflows;
    if (spool) {
      l.spool_dropped = spool->dropped();
      l.spool_append_failures = spool->append_failures();
    }
    l.encode_failures = output.encode_failures();
    return l;
  };
  // Loss file writes: said when they start failing and when they work again. Loop thread
  // (and main's, after the loop ended).
  bool loss_store_failing = false;
  auto note_loss_store = [&](const std::string* error) {
    if (error && !loss_store_failing)
      LogWarn("loss totals: %s (lifetime totals may restart lower)\n", error->c_str());
    else if (!error && loss_store_failing)
      LogInfo("loss totals: written again\n");
    loss_store_failing = error != nullptr;
  };
  // Lifetime totals (earlier runs' + this run's). With `store`, persisted first: a total the
  // collector has seen must never come back lower after a restart.
  auto lifetime_losses = [&](bool store, LossCounts* run_out = nullptr) {
    LossCounts run = run_losses();
    if (run_out) *run_out = run;
    if (!losses) return run;
    if (store) {
      auto r = losses->Store(run);
      note_loss_store(r ? nullptr : &r.error());
    }
    return losses->Lifetime(run);
  };
  std::string prevent_desc = "off";
  if (guard) prevent_desc = guard->options().dry_run ? "drift (dry run)" : "drift";
  // The uplink (declared below) has no field in the status event.
  auto counters = [&](const Uplink* up) {
    return ReadCounters({source.get(), watcher.get(), registry.get(), spool.get(), &output, up,
                         registry ? &enrich_counters : nullptr, guard.get(), responder.get(),
                         reads.get()});
  };
  auto status = [&](bool final) {
    v1::Event ev;
    ev.set_time_ns(NowNs());
    ev.set_container_id("host");
    auto* s = ev.mutable_status();
    s->set_audit_mode(audit_on ? AuditModeName(mode) : "off");
    s->set_fanotify_mode(watcher ? std::string(FanotifyModeName(watcher->mode())) : "off");
    s->set_sensor_version(kVersion);
    s->set_kernel_version(uts.release);
    if (ownership) {
      s->set_backlog_limit(ownership->backlog_limit());
      s->set_backlog_wait_time(ownership->backlog_wait_time());
    }
    if (registry) s->set_runtime_endpoint(registry->endpoint());
    s->set_prevent_mode(prevent_desc);
    SetStatusFields(counters(nullptr), s);
    LossCounts run;
    lifetime_losses(true, &run).ToProto(s->mutable_lifetime());
    s->set_final(final);
    output.Write(ev);
  };

  status(false);
  if (audit_on) {
    AuditSource::Options sopt;
    sopt.queue_records = flags.queue_records;
    sopt.publish_ms = flags.audit_batch_ms;
    sopt.reassembly.argv = {flags.argv_max_bytes, flags.argv_max_arg_bytes};
    source = std::make_unique<AuditSource>(
        nl.get(), sopt,
        [&](v1::Event& ev) {
          if (registry) {
            parent_names.Name(&ev);
            enricher.Enrich(&ev);
            enrich_counters.Publish(enricher);
          } else {
            tree.Attribute(&ev);  // no containers known: attribution from the exec trail
          }
          write_event(ev);
        },
        [&] {
          if (registry) enricher.BeginBatch();
        });
    source->Start();
  }
  std::string audit_desc = "audit off";
  if (audit_on) {
    audit_desc = std::string("audit ") + AuditModeName(mode) + " mode";
    if (ownership)
      audit_desc += ", backlog_limit " + std::to_string(ownership->backlog_limit()) +
                    ", backlog_wait_time " + std::to_string(ownership->backlog_wait_time()) +
                    ", " + std::to_string(ownership->rules_added()) + " rules added";
    if (ownership && ownership->recovered_from_pid() != 0)
      audit_desc += " (sensor pid " + std::to_string(ownership->recovered_from_pid()) +
                    " had not exited cleanly: its settings put back at exit, " +
                    std::to_string(ownership->stale_rules_removed()) + " of its rules removed)";
    else if (ownership && ownership->stale_rules_removed() != 0)
      audit_desc += " (" + std::to_string(ownership->stale_rules_removed()) +
                    " stale driftwatch rules removed)";
  }
  std::string containers_desc;
  if (registry) {
    containers_desc = "; containers: " + (registry->endpoint().empty()
                                              ? std::string("cgroup paths only")
                                              : "CRI " + registry->endpoint()) +
                      ", cgroups " + registry->cgroup_root() + ", " +
                      std::to_string(registry->size()) + " running" +
                      (docker ? "; Docker " + docker->endpoint() + ": " + docker->Describe() : "") +
                      "; fanotify " +
                      (watcher ? std::string(FanotifyModeName(watcher->mode())) : "off");
  }
  if (guard) {
    std::string fs;
    for (const std::string& m : guard->marked()) fs += (fs.empty() ? "" : ", ") + m;
    if (guard->mount_marks()) fs = "each container's overlay mount";
    containers_desc += "; prevent " + prevent_desc + " (fail " +
                       (guard->options().fail_closed ? "closed" : "open") + " after " +
                       std::to_string(flags.prevent_deadline_ms) + " ms; marks on " + fs +
                       (guard->events() == "open" ? "; open permission events" : "") + ")";
  }
  LogBanner("driftwatch-sensor %s: %s%s\n", kVersion, audit_desc.c_str(),
               containers_desc.c_str());

  // Before the uplink: destroyed after it, whose last io runs may still meet its handlers.
  std::unique_ptr<IdentityKeeper> identity;
  std::unique_ptr<Uplink> uplink;
  if (spool) {
    // No --tls-cert: the node's own enrolled certificate (sensor/enroll.h).
    const bool enroll = !flags.insecure && flags.tls_cert.empty() && flags.tls_key.empty();
    if (!enroll && !flags.bootstrap_cert.empty()) {
      LogError("--bootstrap-cert enrolls a node certificate: not with --tls-cert or --insecure\n");
      return 2;
    }
    if (flags.bootstrap_cert.empty() != flags.bootstrap_key.empty()) {
      LogError("--bootstrap-cert and --bootstrap-key go together\n");
      return 2;
    }
    UplinkOptions uo;
    uo.targets = collectors;
    uo.insecure = flags.insecure;
    uo.ca_file = flags.tls_ca;
    uo.cert_file = flags.tls_cert;
    uo.key_file = flags.tls_key;
    uo.server_name = flags.tls_server_name;
    uo.await_certificate = enroll;
    uo.on_unreadable_record = [&output] { output.CountUnreadable(); };
    uo.on_stop_container = [&](const v1::StopContainer& stop) {
      const std::string why = "collector: " + TerminalEscape(stop.reason());
      if (!responder) {
        LogWarn("%s: asked to stop container %s; not stopped (--respond off)\n", why.c_str(),
                TerminalEscape(stop.container_id()).c_str());
      } else if (!registry->Find(stop.container_id())) {
        LogWarn("%s: asked to stop container %s, which this node does not run; not stopped\n",
                why.c_str(), TerminalEscape(stop.container_id()).c_str());
      } else {
        responder->Request(stop.container_id(), why);
      }
    };
    uo.on_prevent_policy = [&guard](const v1::PreventPolicy& p) {
      const std::string what = p.configured() ? "fleet prevention policy " +
                                                    TerminalEscape(p.name()) + " (sha256 " +
                                                    TerminalEscape(p.sha256().substr(0, 12)) + ")"
                                              : "no fleet prevention policy";
      if (!guard) {
        // Every collector says whether it has one; only a policy is worth a line here.
        if (p.configured()) LogInfo("collector: %s; not applied (--prevent off)\n", what.c_str());
        return;
      }
      const uint64_t updates = guard->fleet_policy().updates;
      if (auto r = guard->SetFleetPolicy(p); !r) {
        LogError("collector: %s: %s\n", what.c_str(), r.error().c_str());
      } else if (guard->fleet_policy().updates != updates) {  // not the same one again
        LogInfo("collector: %s applied: %zu entries in force\n", what.c_str(),
                guard->policy_entries());
      }
    };
    auto up = Uplink::Create(
        &io, spool.get(), uo,
        [&](v1::Hello* h) {
          h->set_node(id.node());
          h->set_boot_id(id.boot_id());
          h->set_sensor_start_ns(id.sensor_start_ns());
          h->set_sensor_version(kVersion);
          h->set_kernel_version(uts.release);
          h->set_audit_mode(audit_on ? AuditModeName(mode) : "off");
          h->set_fanotify_mode(watcher ? std::string(FanotifyModeName(watcher->mode())) : "off");
          // Not spooled: reaches the collector even while the spool cannot take a status.
          lifetime_losses(true).ToProto(h->mutable_losses());
        },
        [&](const std::string& container) {
          InventoryOptions o = flags.inventory;
          o.hash_max_bytes = flags.hash_max;
          return TakeInventory(registry.get(), container, o);
        });
    if (!up) {
      LogError("collector: %s\n", up.error().c_str());
      return 1;
    }
    uplink = std::move(*up);
    Uplink* u = uplink.get();
    output.SetNotify([u] { u->Notify(); });
    uplink->Start();
    if (enroll) {
      IdentityOptions o;
      o.dir = flags.node_cert_dir;
      o.node = id.node();
      o.targets = collectors;
      o.ca_file = flags.tls_ca;
      o.server_name = flags.tls_server_name;
      o.bootstrap_cert = flags.bootstrap_cert;
      o.bootstrap_key = flags.bootstrap_key;
      identity = std::make_unique<IdentityKeeper>(&io, o, [u](const NodeCredentials& c) {
        u->SetClientCertificate(c.cert_pem, c.key_pem);
      });
      if (auto r = identity->Start(); !r) {
        LogError("collector: no --tls-cert, and %s\n", r.error().c_str());
        return 1;
      }
    }
    LogInfo("spool %s (%llu events waiting), collector %s%s\n",
                 flags.spool_dir.c_str(), (unsigned long long)spool->depth(),
                 flags.collector.c_str(), flags.insecure ? " (plaintext)" : " (mTLS)");
  }

  // Metrics, health and status over HTTP, on the metrics server's own thread: what they read
  // is thread-safe, or (the uplink's last error, loop-only) a copy the loop's tick refreshes.
  SystemdNotifier systemd;
  struct {
    Mutex mu;
    std::string text DW_GUARDED_BY(mu);
    std::string target DW_GUARDED_BY(mu);  // the collector in use
  } uplink_error;
  auto uplink_last_error = [&] {
    MutexLock lock(uplink_error.mu);
    return uplink_error.text;
  };
  auto uplink_target = [&] {
    MutexLock lock(uplink_error.mu);
    return uplink_error.target;
  };
  if (uplink) {
    MutexLock lock(uplink_error.mu);
    uplink_error.target = uplink->target();  // before the loop's first tick
  }
  std::unique_ptr<MetricsServer> metrics;
  if (!flags.metrics_address.empty()) {
    auto collect = [&](MetricsWriter* w) {
      WriteMetrics(counters(uplink.get()), w);
      if (identity) {
        const IdentityCounters& ic = identity->counters();
        w->Counter("driftwatch_sensor_enrollments_total",
                   "node certificates obtained, by kind (bootstrap, renewal)",
                   static_cast<double>(ic.enrollments), {{"kind", "bootstrap"}});
        w->Counter("driftwatch_sensor_enrollments_total",
                   "node certificates obtained, by kind (bootstrap, renewal)",
                   static_cast<double>(ic.renewals), {{"kind", "renewal"}});
        w->Counter("driftwatch_sensor_enroll_failures_total",
                   "enrollment calls that failed (retried with backoff)",
                   static_cast<double>(ic.failures));
        w->Gauge("driftwatch_sensor_node_cert_not_after_seconds",
                 "expiry of the node certificate in use (unix seconds; 0: none yet)",
                 static_cast<double>(ic.not_after_s));
      }
      LossCounts life = lifetime_losses(false);
      for (const LossField& f : kLossFields)
        w->Gauge("driftwatch_sensor_lifetime_losses",
                 "losses over the sensor's lifetime on this node (this run and the earlier ones "
                 "in the spool dir's loss file), by kind",
                 static_cast<double>(life.*f.member), {{"kind", f.name}});
    };
    auto health = [&](std::string* why) {
      bool ok = true;
      if (output.failed()) {
        *why += "capture write failed; ";
        ok = false;
      }
      if (spool && spool->dropped() > 0) *why += "spool overflowed (events dropped); ";
      if (spool) {
        // Unhealthy while events are being lost; healthy again once an append succeeds.
        if (std::string err = spool->append_error(); !err.empty()) {
          *why += "spool appends failing (" + err + "); ";
          ok = false;
        }
      }
      return ok;
    };
    auto status_json = [&] {
      const std::vector<CounterReading> r = counters(uplink.get());
      std::string j = "{";
      j += "\"node\":" + JsonQuote(id.node()) + ",\"version\":" + JsonQuote(kVersion);
      j += ",\"uptime_s\":" + std::to_string((NowNs() - id.sensor_start_ns()) / 1000000000);
      j += ",\"events\":{" + StatusJsonFields(r, "events").substr(1) + "}";
      j += ",\"output\":{" + StatusJsonFields(r, "output").substr(1) + "}";
      if (registry) j += ",\"enrich\":{" + StatusJsonFields(r, "enrich").substr(1) + "}";
      j += ",\"prevent\":{\"mode\":" + JsonQuote(prevent_desc) + StatusJsonFields(r, "prevent");
      if (guard) {
        j += ",\"events\":" + JsonQuote(guard->events()) +
             ",\"marks\":" + JsonQuote(guard->mount_marks() ? "mount" : "filesystem") +
             ",\"realtime\":" + (guard->realtime() ? "true" : "false");
        const ExecGuard::FleetPolicyState f = guard->fleet_policy();
        j += ",\"policy_entries\":" + std::to_string(guard->policy_entries()) +
             ",\"fleet_policy\":{\"sha256\":" + JsonQuote(f.sha256) +
             ",\"entries\":" + std::to_string(f.entries) + ",\"source\":" + JsonQuote(f.source) +
             ",\"updates\":" + std::to_string(f.updates) + ",\"refused\":" +
             std::to_string(f.refused) + ",\"error\":" + JsonQuote(f.error) + "}";
      }
      j += "}";
      if (responder) {
        j += ",\"respond\":{\"mode\":\"stop\",\"max_per_minute\":" +
             std::to_string(responder->options().max_per_minute) + StatusJsonFields(r, "respond") +
             "}";
      }
      j += ",\"audit\":{\"mode\":" + JsonQuote(audit_on ? AuditModeName(mode) : "off");
      if (ownership)
        j += ",\"backlog_limit\":" + std::to_string(ownership->backlog_limit()) +
             ",\"backlog_wait_time\":" + std::to_string(ownership->backlog_wait_time()) +
             ",\"rules\":" + std::to_string(ownership->rules_added());
      j += StatusJsonFields(r, "audit");
      j += "},\"fanotify\":{\"mode\":" +
           JsonQuote(watcher ? std::string(FanotifyModeName(watcher->mode())) : "off");
      j += StatusJsonFields(r, "fanotify");
      j += "},\"containers\":[";
      if (registry) {
        bool first = true;
        for (const auto& c : registry->List()) {
          if (!first) j += ",";
          first = false;
          j += "{\"id\":" + JsonQuote(c.id()) + ",\"name\":" + JsonQuote(c.name()) +
               ",\"pod\":" + JsonQuote(c.pod_namespace().empty() ? c.pod_name()
                                                                   : c.pod_namespace() + "/" + c.pod_name()) +
               ",\"image\":" + JsonQuote(c.image()) + ",\"source\":" + JsonQuote(c.source()) + "}";
        }
      }
      // The CRI socket, and the Docker engine's ("docker SOCK") where one is asked.
      std::string runtime = registry ? registry->endpoint() : "";
      if (docker) runtime += (runtime.empty() ? "docker " : ", docker ") + docker->endpoint();
      j += "],\"runtime\":" + JsonQuote(runtime);
      j += ",\"spool\":";
      j += spool ? "{\"dir\":" + JsonQuote(flags.spool_dir) +
                       ",\"append_error\":" + JsonQuote(spool->append_error()) +
                       StatusJsonFields(r, "spool") + "}"
                 : std::string("null");
      LossCounts run;
      LossCounts life = lifetime_losses(false, &run);
      j += ",\"losses\":{\"run\":" + LossJson(run) + ",\"lifetime\":" + LossJson(life) +
           ",\"file\":" + (losses ? JsonQuote(flags.spool_dir + "/losses") : std::string("null")) +
           "}";
      j += ",\"collector\":";
      if (uplink) {
        std::string list;
        for (const std::string& t : collectors) list += (list.empty() ? "" : ",") + JsonQuote(t);
        j += "{\"target\":" + JsonQuote(uplink_target()) + ",\"targets\":[" + list + "]" +
             ",\"connected\":" + (uplink->counters().connected ? "true" : "false") +
             ",\"last_error\":" + JsonQuote(uplink_last_error()) +
             StatusJsonFields(r, "collector") + "}";
      } else {
        j += "null";
      }
      return j + "}";
    };
    auto m = MetricsServer::Start(flags.metrics_address, collect, health, status_json);
    if (!m) {
      // Watching goes on without metrics: a busy port must not cost the node its sensor.
      LogWarn("%s; running without metrics\n", m.error().c_str());
    } else {
      metrics = std::move(*m);
      LogInfo("metrics on http://%s (port %u): /metrics /healthz /status\n",
                   flags.metrics_address.c_str(), metrics->port());
    }
  }
  systemd.Ready(audit_desc + containers_desc);

  // Periodic work on the loop: status events, capture flush, the run's time limit.
  bool stop = false;
  auto started = std::chrono::steady_clock::now();
  auto last_status = started;
  boost::asio::steady_timer tick(io);
  std::function<void()> arm = [&] {
    tick.expires_after(std::chrono::milliseconds(100));
    tick.async_wait([&](const boost::system::error_code& ec) {
      if (ec || stop) return;
      auto now = std::chrono::steady_clock::now();
      if (now - last_status >= std::chrono::duration<double>(flags.status_interval)) {
        status(false);
        last_status = now;
      } else if (losses) {
        // A loss persisted soon after it happened (at most once a second), not only with
        // the next status: a crash in between would take it out of the lifetime totals.
        auto r = losses->StoreIfChanged(run_losses(), std::chrono::seconds(1));
        note_loss_store(r ? nullptr : &r.error());
      }
      output.Flush();
      if (uplink) {
        MutexLock lock(uplink_error.mu);
        uplink_error.text = uplink->last_error();
        uplink_error.target = uplink->target();
      }
      systemd.Watchdog();  // the loop is alive: tell systemd (when it asked)
      if (flags.duration > 0 && now - started >= std::chrono::duration<double>(flags.duration)) {
        stop = true;
        io.stop();
        return;
      }
      arm();
    });
  };
  arm();
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        // The prevention policy file is the one thing read at run time; the rest are flags.
        systemd.Reloading();
        if (guard && !flags.prevent_policy.empty()) {
          if (auto r = guard->ReloadPolicy(); r)
            LogInfo("SIGHUP: prevention policy %s reloaded: %zu entries\n",
                    flags.prevent_policy.c_str(), guard->policy_entries());
          else
            LogError("SIGHUP: %s; the policy in force stays\n", r.error().c_str());
        } else {
          LogInfo("SIGHUP: nothing to reload (restart to apply new flags)\n");
        }
        systemd.Ready("running");
        wait_signal();
        return;
      }
      stop = true;
      io.stop();
    });
  };
  wait_signal();
  io.run();
  if (identity) identity->Stop();
  // First: no exec on the node may wait for a sensor that is going away.
  if (guard) guard->Stop();
  systemd.Stopping();
  tick.cancel();
  signals.cancel();
  if (metrics) metrics->Stop();

  if (source) source->Stop();  // the parser completes what is in flight
  if (ownership) ownership->Release();
  if (watcher) watcher->Stop();
  if (reads) reads->Stop();
  if (registry) registry->Stop();
  if (docker) docker->Stop();
  status(true);
  output.Flush();
  if (uplink) {
    // What the collector has not acknowledged stays in the spool for the next start.
    uplink->Drain(std::chrono::seconds(2));
    uplink->Stop();
    output.SetNotify(nullptr);
    LogInfo("collector: %llu events acknowledged, %llu left in the spool\n",
                 (unsigned long long)uplink->counters().events_acked.load(),
                 (unsigned long long)spool->depth());
  }
  if (spool) (void)spool->Sync();
  if (losses) {
    // The final status' own append (and the drain) may have counted more.
    LossCounts life = lifetime_losses(true);
    uint64_t total = 0;
    for (const LossField& f : kLossFields) total += life.*f.member;
    LogInfo("lifetime losses on this node: %llu (%s)\n", (unsigned long long)total,
            LossJson(life).c_str());
  }
  if (source) {
    const AuditCounters& c = source->counters();
    LogInfo(
                 "%llu records, %llu events; lost: kernel %llu, socket "
                 "overruns %llu, queue drops %llu, evictions %llu; %llu parse errors; %llu "
                 "execs with arguments capped\n",
                 (unsigned long long)c.records.load(), (unsigned long long)c.events.load(),
                 (unsigned long long)c.KernelLostDelta(), (unsigned long long)c.socket_enobufs.load(),
                 (unsigned long long)c.queue_drops.load(), (unsigned long long)c.evictions.load(),
                 (unsigned long long)c.parse_errors.load(), (unsigned long long)c.args_capped.load());
  }
  if (watcher) {
    const auto& c = watcher->counters();
    LogInfo("fanotify %llu events, %llu overflows\n",
                 (unsigned long long)c.events.load(), (unsigned long long)c.overflows.load());
  }
  if (out && out != stdout) std::fclose(out);
  return output.failed() ? 1 : 0;
}

}  // namespace
}  // namespace driftwatch::sensor

int main(int argc, char** argv) {
  driftwatch::sensor::Flags f;
  CLI::App app{"driftwatch-sensor: per-node container drift sensor (kernel audit and fanotify)",
               "driftwatch-sensor"};
  app.set_version_flag("--version", driftwatch::kVersion);
  app.add_flag("--audit-only", f.audit_only,
               "run the audit source only (no container registry, no filesystem watcher)");
  app.add_option("--audit-mode", f.audit_mode,
                 "owner: register as the audit daemon and install rules; observer: read the "
                 "multicast feed beside a running auditd; auto: observer when another daemon "
                 "holds the audit pid, owner otherwise; off: no audit (containers and files only)")
      ->check(CLI::IsMember({"auto", "owner", "observer", "off"}))
      ->capture_default_str();
  app.add_option("--capture", f.capture,
                 "write the event stream (length-delimited driftwatch.v1.Event) to FILE, - for "
                 "stdout; read it back with `driftwatch analyze`");
  app.add_option("--audit-network", f.audit_network,
                 "owner mode: socket calls the audit rules add: off, connect (network events for "
                 "outbound connections, every result), all (also bind, listen and successful "
                 "accept); off by default: a connect costs ~15 us in the kernel and ~20 us in the "
                 "sensor, and a flood of them shares the sensor's queue with execs "
                 "(bench/net_rules_cost.sh)")
      ->check(CLI::IsMember({"off", "connect", "all"}))
      ->capture_default_str();
  app.add_option("--backlog-limit", f.backlog_limit, "owner mode: kernel audit backlog limit")
      ->capture_default_str();
  app.add_option("--backlog-wait-time", f.backlog_wait_time,
                 "owner mode: how long a syscall waits when the backlog is full, in the kernel's "
                 "unit (auditctl --backlog_wait_time's; its default is 60 s): 0 never stalls the "
                 "host and loses the record instead (the kernel's lost counter, the sensor's "
                 "blind-window report); under CPU starvation of the kernel's audit thread, a "
                 "wait trades the host's speed for no loss, as auditd does")
      ->capture_default_str();
  app.add_option("--audit-state-file", f.audit_state_file,
                 "owner mode: where the audit settings found at start are kept while the sensor "
                 "runs, so that a sensor started after a crash restores them (empty: not kept)")
      ->capture_default_str();
  app.add_option("--rcvbuf", f.rcvbuf, "netlink receive buffer, bytes")->capture_default_str();
  app.add_option("--queue", f.queue_records, "records queued between reader and parser")
      ->capture_default_str();
  app.add_option("--audit-batch-ms", f.audit_batch_ms,
                 "how long the audit reader gathers records before the parser takes them: "
                 "longer costs fewer wake-ups per exec, adds that much to every event's "
                 "latency, needs --rcvbuf to hold that long's records, and finds more "
                 "short-lived processes (and their parents) gone when their execs are read, "
                 "so that they are attributed by device or not at all")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--argv-max-bytes", f.argv_max_bytes,
                 "bytes of an exec's arguments kept, all together (each counted with its NUL); "
                 "past it arguments are left out and the event is marked args_capped")
      ->check(CLI::Range(size_t{1}, size_t{64} << 20))
      ->capture_default_str();
  app.add_option("--argv-max-arg-bytes", f.argv_max_arg_bytes,
                 "bytes kept of any one argument (longer ones are cut, the event marked "
                 "args_capped)")
      ->check(CLI::Range(size_t{1}, size_t{64} << 20))
      ->capture_default_str();
  app.add_option("--environ-max-bytes", f.environ_max_bytes,
                 "bytes kept of an exec'd process's environment (proc.env; whole NAME=value "
                 "entries, the rest left out and the event marked env_capped); 0: not read")
      ->check(CLI::Range(size_t{0}, size_t{1} << 20))
      ->capture_default_str();
  app.add_option("--status-interval", f.status_interval, "seconds between status events")
      ->capture_default_str();
  app.add_option("--duration", f.duration, "stop after this many seconds (0: run until SIGTERM)")
      ->capture_default_str();
  app.add_option("--node", f.node, "node name in event ids (default: hostname)");
  app.add_option("--fanotify-mode", f.fanotify_mode,
                 "auto: the best the kernel offers; fid-filesystem (5.9+), fd-filesystem "
                 "(4.20+), fd-mount (each container's root), off")
      ->check(CLI::IsMember({"auto", "fid-filesystem", "fd-filesystem", "fd-mount", "off"}))
      ->capture_default_str();
  app.add_flag("--fanotify-modify", f.fanotify_modify,
               "also report FAN_MODIFY (one event per write(); close-write is always on)");
  app.add_option("--hash-max", f.hash_max, "largest executable hashed (sha256), bytes")
      ->capture_default_str();
  app.add_option("--inventory-max-depth", f.inventory.max_depth,
                 "drift inventories: directories more levels below the container's root are "
                 "listed but not entered (the inventory says so)")
      ->capture_default_str();
  app.add_option("--inventory-max-entries", f.inventory.max_entries,
                 "drift inventories: directory entries looked at before the walk stops")
      ->capture_default_str();
  app.add_option("--inventory-max-path-bytes", f.inventory.max_path_bytes,
                 "drift inventories: bytes of listed paths before the walk stops")
      ->capture_default_str();
  app.add_option("--watch-fs", f.watch_fs,
                 "a path on each filesystem holding container snapshots (repeatable; default: "
                 "/var/lib/containerd, /var/lib/containers, /var/lib/docker where present, "
                 "else /)");
  app.add_option("--sensitive-reads", f.sensitive_reads,
                 "report sensitive files opened for reading inside containers (fanotify marks "
                 "on those files in each container; event kind read, evt.is_open_read)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--sensitive-paths", f.sensitive_paths,
                 "a sensitive file inside containers, or a directory with a trailing / (its "
                 "files); repeatable, replaces the default list (/etc/shadow, SSH keys, service "
                 "account tokens, cloud credentials: see docs)")
      ->allow_extra_args(false);
  app.add_option("--sensitive-rescan-s", f.sensitive_rescan,
                 "each container's sensitive paths are resolved again this often (a token "
                 "rotated, a key written after start)")
      ->capture_default_str();
  app.add_option("--cri-endpoint", f.cri_endpoints,
                 "CRI socket (repeatable; default: containerd's, CRI-O's, k3s's, cri-dockerd's)");
  app.add_flag("--no-cri", f.no_cri, "discover containers from cgroup paths only");
  app.add_option("--docker-endpoint", f.docker_endpoint,
                 "Docker engine socket (or Podman's Docker-compatible one) for the names, "
                 "images and labels of its containers (default: /var/run/docker.sock where it "
                 "exists)");
  app.add_flag("--no-docker", f.no_docker, "do not ask a Docker engine");
  app.add_option("--cgroup-root", f.cgroup_root,
                 "cgroup hierarchy to watch for new containers (default: v2 root, else the v1 "
                 "pids hierarchy)");
  app.add_option("--resync", f.resync, "seconds between full CRI listings")->capture_default_str();
  app.add_option("--prevent", f.prevent,
                 "drift: deny execs of files in a container's upper layer (not in its image: "
                 "written at run time) with EPERM, through fanotify exec permission events "
                 "(Linux 5.0+); image binaries and host execs always run; off")
      ->check(CLI::IsMember({"off", "drift"}))
      ->capture_default_str();
  app.add_flag("--prevent-dry-run", f.prevent_dry_run,
               "with --prevent drift: deny nothing, report each exec that would be denied");
  app.add_option("--prevent-fail", f.prevent_fail,
                 "the verdict for an exec past --prevent-deadline-ms or undecidable (a "
                 "container whose overlay is not known yet): open (allow) or closed (deny)")
      ->check(CLI::IsMember({"open", "closed"}))
      ->capture_default_str();
  app.add_option("--prevent-marks", f.prevent_marks,
                 "where prevention's marks go: filesystem (the filesystems of --watch-fs, "
                 "Linux 4.20+), mount (each container's overlay mount, as containers appear), "
                 "auto (filesystem on 6.5+; before 6.5 overlayfs hides containers' execs from "
                 "filesystem marks, so mount)")
      ->check(CLI::IsMember({"auto", "filesystem", "mount"}))
      ->capture_default_str();
  app.add_option("--prevent-events", f.prevent_events,
                 "the permission events prevention uses: exec (FAN_OPEN_EXEC_PERM, Linux 5.0+), "
                 "open (FAN_OPEN_PERM: every open on the marked filesystems waits for a "
                 "verdict, exec opens told apart by the caller's syscall; older kernels), auto "
                 "(exec where the kernel has it)")
      ->check(CLI::IsMember({"auto", "exec", "open"}))
      ->capture_default_str();
  app.add_option("--prevent-priority", f.prevent_priority,
                 "the verdict thread's scheduling: realtime (SCHED_FIFO 1: an exec waits for "
                 "its verdict, not for a core; needs CAP_SYS_NICE and real-time budget in the "
                 "sensor's cgroup, else nice -10) or normal (nice -10)")
      ->check(CLI::IsMember({"realtime", "normal"}))
      ->capture_default_str();
  app.add_option("--prevent-deadline-ms", f.prevent_deadline_ms,
                 "longest an exec waits for a verdict before the fail mode answers")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--prevent-allow", f.prevent_allow,
                 "a path inside containers (glob; * stays within a directory) whose upper-layer "
                 "files may run under --prevent drift (repeatable; config key prevent-allow, a "
                 "list)")
      ->allow_extra_args(false);
  app.add_option("--prevent-policy", f.prevent_policy,
                 "YAML file of drift that may run under --prevent drift (entries of namespaces, "
                 "pods, labels, paths, sha256; see the README), read again on SIGHUP");
  app.add_option("--respond", f.respond,
                 "stop: stop a container through the CRI when --prevent drift denies one of "
                 "its execs or the collector asks (--respond-rules); rate-limited, once per "
                 "container; off")
      ->check(CLI::IsMember({"off", "stop"}))
      ->capture_default_str();
  app.add_option("--respond-max-per-minute", f.respond_max_per_minute,
                 "--respond stop: containers stopped per minute at most on this node (more "
                 "are counted and logged, not stopped)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--respond-stop-timeout-s", f.respond_stop_timeout_s,
                 "--respond stop: seconds between SIGTERM and SIGKILL")
      ->check(CLI::Range(int64_t{0}, int64_t{3600}))
      ->capture_default_str();
  app.add_option("--metrics-address", f.metrics_address,
                 "HOST:PORT serving /metrics (Prometheus), /healthz and /status (what "
                 "`driftwatch status` reads); empty: off")
      ->capture_default_str();
  app.add_option("--log-format", f.log_format,
                 "text: one line per event of note on stderr; json: one JSON object per line "
                 "(time, level, program, msg)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--collector", f.collector,
                 "collector address HOST:PORT, or several, comma-separated: events go through the "
                 "spool to one at a time, to the next when its stream breaks (with what it has "
                 "not acknowledged); a name resolving to several addresses is tried address by "
                 "address (default: none)");
  app.add_option("--tls-ca", f.tls_ca, "PEM file of the CA that signed the collector's certificate");
  app.add_option("--tls-cert", f.tls_cert,
                 "PEM file of this node's client certificate (none: the enrolled one in "
                 "--node-cert-dir, or enroll with --bootstrap-cert)");
  app.add_option("--tls-key", f.tls_key, "PEM file of this node's private key");
  app.add_option("--bootstrap-cert", f.bootstrap_cert,
                 "without --tls-cert: a bootstrap client certificate (subject OU "
                 "driftwatch-bootstrap, short-lived, shared) to enroll this node with: the "
                 "sensor makes its own key and the collector signs a certificate for --node "
                 "(docs/node-identity.md)");
  app.add_option("--bootstrap-key", f.bootstrap_key, "the private key of --bootstrap-cert");
  app.add_option("--node-cert-dir", f.node_cert_dir,
                 "without --tls-cert: where the node's enrolled key and certificate are kept "
                 "(node.key, node.crt, mode 0600); renewed at 2/3 of their lifetime")
      ->capture_default_str();
  app.add_option("--tls-server-name", f.tls_server_name,
                 "name expected in the collector's certificate (default: the HOST of --collector)");
  app.add_flag("--insecure", f.insecure, "plaintext to the collector (it must allow it too)");
  app.add_option("--spool-dir", f.spool_dir,
                 "durable queue of events not yet acknowledged by the collector")
      ->capture_default_str();
  app.add_option("--spool-max-bytes", f.spool_max_bytes,
                 "spool bound; beyond it the oldest events are dropped (and counted)")
      ->capture_default_str();
  app.add_option("--spool-fsync", f.spool_fsync,
                 "always: fsync every event (survives power loss, slow); interval: fsync every "
                 "second (a crash of the sensor loses nothing, power loss up to a second); never")
      ->check(CLI::IsMember({"always", "interval", "never"}))
      ->capture_default_str();
  bool check_config = false;
  app.add_flag("--check-config", check_config,
               "parse the options and the config file, print the effective settings as YAML, exit");
  driftwatch::AddYamlConfig(&app, "/etc/driftwatch/sensor.yaml");
  if (int rc = driftwatch::ParseArgs(&app, argc, argv); rc >= 0) return rc;
  if (check_config) {
    std::fputs(app.config_to_str(true, false).c_str(), stdout);
    return 0;
  }
  driftwatch::SetLogFormat("driftwatch-sensor", f.log_format);
  return driftwatch::sensor::Run(f);
}
