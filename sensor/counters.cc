#include "sensor/counters.h"

#include "lib/event/event_view.h"
#include "sensor/audit_source.h"
#include "sensor/container_registry.h"
#include "sensor/enrich.h"
#include "sensor/fanotify_watcher.h"
#include "sensor/output.h"
#include "sensor/prevent.h"
#include "sensor/respond.h"
#include "sensor/sensitive_reads.h"
#include "sensor/spool.h"
#include "sensor/uplink.h"

namespace driftwatch::sensor {

void EnrichCounters::Publish(const Enricher& e) {
  constexpr auto kRelaxed = std::memory_order_relaxed;
  state_read.store(e.stats().state_read, kRelaxed);
  state_gone.store(e.stats().state_gone, kRelaxed);
  state_moved.store(e.stats().state_moved, kRelaxed);
  env_capped.store(e.stats().env_capped, kRelaxed);
  name_files_refused.store(e.name_stats().refused, kRelaxed);
  by_cgroup.store(e.stats().by_cgroup, kRelaxed);
  by_parent.store(e.stats().by_parent, kRelaxed);
  by_device.store(e.stats().by_device, kRelaxed);
  unknown.store(e.stats().unknown, kRelaxed);
  cache_trusted.store(e.stats().cache_trusted, kRelaxed);
}

std::vector<CounterReading> ReadCounters(const CounterSources& s) {
  std::vector<CounterReading> r;
  r.reserve(40);
  // section, key, status field, metric, help, gauge, label name, label value, value
  for (Kind k : AllKinds())
    r.push_back({"events", KindName(k), "", "driftwatch_sensor_events_total",
                 "events produced, by kind", false, "kind", KindName(k), s.output->written(k)});
  r.push_back({"output", "encode_failures", "encode_failures",
               "driftwatch_sensor_encode_failures_total",
               "events that failed to serialize or read back from the spool", false, "", "",
               s.output->encode_failures()});
  if (s.audit) {
    const AuditCounters& c = s.audit->counters();
    r.push_back({"audit", "records", "records", "driftwatch_sensor_audit_records_total",
                 "audit records read", false, "", "", c.records});
    r.push_back({"audit", "events", "events", "driftwatch_sensor_audit_events_total",
                 "audit events assembled from them", false, "", "", c.events});
    r.push_back({"audit", "kernel_lost", "kernel_lost", "driftwatch_sensor_kernel_lost_total",
                 "growth of the kernel's audit lost counter since start", false, "", "",
                 c.KernelLostDelta()});
    r.push_back({"audit", "socket_enobufs", "socket_enobufs",
                 "driftwatch_sensor_socket_enobufs_total", "netlink receive buffer overruns",
                 false, "", "", c.socket_enobufs});
    r.push_back({"audit", "queue_drops", "queue_drops", "driftwatch_sensor_queue_drops_total",
                 "records dropped between reader and parser", false, "", "", c.queue_drops});
    r.push_back({"audit", "evictions", "reassembly_evictions",
                 "driftwatch_sensor_reassembly_evictions_total",
                 "audit events pushed out unfinished", false, "", "", c.evictions});
    r.push_back({"audit", "parse_errors", "parse_errors", "driftwatch_sensor_parse_errors_total",
                 "unparseable audit records", false, "", "", c.parse_errors});
    r.push_back({"audit", "args_capped", "", "driftwatch_sensor_args_capped_total",
                 "exec events kept with their arguments cut by --argv-max-bytes or "
                 "--argv-max-arg-bytes (not a loss: marked args_capped)",
                 false, "", "", c.args_capped});
    r.push_back({"audit", "args_dropped_bytes", "", "driftwatch_sensor_args_dropped_bytes_total",
                 "argument bytes those caps left out", false, "", "", c.args_dropped_bytes});
  }
  if (s.enrich) {
    const EnrichCounters& c = *s.enrich;
    const char* state = "execs by what the sensor read of the process at its exec: read, gone "
                        "(exited or its pid reused first: fields unset), moved (exec'd again: "
                        "ids only)";
    r.push_back({"enrich", "process_state_read", "", "driftwatch_sensor_process_state_total", state,
                 false, "result", "read", c.state_read});
    r.push_back({"enrich", "process_state_gone", "", "driftwatch_sensor_process_state_total", state,
                 false, "result", "gone", c.state_gone});
    r.push_back({"enrich", "process_state_moved", "", "driftwatch_sensor_process_state_total",
                 state, false, "result", "moved", c.state_moved});
    r.push_back({"enrich", "env_capped", "", "driftwatch_sensor_env_capped_total",
                 "environments cut by --environ-max-bytes (kept whole entries, marked env_capped)",
                 false, "", "", c.env_capped});
    r.push_back({"enrich", "name_files_refused", "", "driftwatch_sensor_name_files_refused_total",
                 "a container's /etc/passwd or /etc/group not read (not a regular file, "
                 "unreadable, over 1 MiB): its names left unset",
                 false, "", "", c.name_files_refused});
    const char* by = "exec, chmod and network events by what tied them to their container or "
                     "the host: the process's cgroup, its parent's, the executable's device, "
                     "nothing";
    r.push_back({"enrich", "attributed_cgroup", "", "driftwatch_sensor_attribution_total", by,
                 false, "by", "cgroup", c.by_cgroup});
    r.push_back({"enrich", "attributed_parent", "", "driftwatch_sensor_attribution_total", by,
                 false, "by", "parent", c.by_parent});
    r.push_back({"enrich", "attributed_device", "", "driftwatch_sensor_attribution_total", by,
                 false, "by", "device", c.by_device});
    r.push_back({"enrich", "attributed_unknown", "", "driftwatch_sensor_attribution_total", by,
                 false, "by", "unknown", c.unknown});
    r.push_back({"enrich", "cache_trusted", "", "driftwatch_sensor_cache_trusted_total",
                 "attribution answers from the process cache without a read of the process's "
                 "stat: the pid counter had not passed its pid since it was seen, so it names "
                 "the same process",
                 false, "", "", c.cache_trusted});
  }
  if (s.fanotify) {
    const FanotifyCounters& c = s.fanotify->counters();
    r.push_back({"fanotify", "events", "fanotify_events", "driftwatch_sensor_fanotify_events_total",
                 "fanotify events passed on (files of containers)", false, "", "", c.events});
    r.push_back({"fanotify", "dropped_host", "", "driftwatch_sensor_fanotify_dropped_host_total",
                 "fanotify events of files no container claimed (host files): dropped", false,
                 "", "", c.dropped_host});
    r.push_back({"fanotify", "volumes_unwatched", "",
                 "driftwatch_sensor_fanotify_volumes_unwatched_total",
                 "container volumes whose filesystem the kernel refused to mark: writes there "
                 "are not seen", false, "", "", c.volumes_unwatched});
    r.push_back({"fanotify", "overflows", "fanotify_overflows",
                 "driftwatch_sensor_fanotify_overflows_total", "fanotify queue overflows", false,
                 "", "", c.overflows});
    r.push_back({"fanotify", "hash_skipped", "hash_skipped", "driftwatch_sensor_hash_skipped_total",
                 "executables over the hash size cap", false, "", "", c.hash_skipped});
    r.push_back({"fanotify", "hash_queue_full", "hash_queue_full",
                 "driftwatch_sensor_hash_queue_full_total",
                 "executables not hashed: the hash queue had no room", false, "", "",
                 c.hash_queue_full});
  }
  if (s.reads) {
    const SensitiveReadCounters& c = s.reads->counters();
    r.push_back({"sensitive_reads", "events", "", "driftwatch_sensor_sensitive_reads_total",
                 "sensitive files read in containers (events)", false, "", "", c.events});
    r.push_back({"sensitive_reads", "coalesced", "", "driftwatch_sensor_sensitive_reads_coalesced_total",
                 "sensitive reads folded into a reported one's repeats (same reader and file "
                 "within a second)",
                 false, "", "", c.coalesced});
    r.push_back({"sensitive_reads", "overflows", "", "driftwatch_sensor_sensitive_reads_lost_total",
                 "sensitive reads lost: their fanotify queue overflowed (also in "
                 "fanotify_overflows)",
                 false, "", "", c.overflows});
    r.push_back({"sensitive_reads", "marks", "", "driftwatch_sensor_sensitive_marks_total",
                 "sensitive files and directories marked in containers", false, "", "", c.marks});
    r.push_back({"sensitive_reads", "mark_errors", "",
                 "driftwatch_sensor_sensitive_mark_errors_total",
                 "sensitive files the kernel would not mark (not watched)", false, "", "",
                 c.mark_errors});
    r.push_back({"sensitive_reads", "unsafe", "", "driftwatch_sensor_sensitive_unsafe_total",
                 "sensitive paths behind a symlink on a kernel without openat2: not watched",
                 false, "", "", c.unsafe});
  }
  if (s.respond) {
    const RespondCounters& c = s.respond->counters();
    const char* results = "--respond stop: containers asked to stop after a denial, by result";
    r.push_back({"respond", "stopped", "respond_stopped", "driftwatch_sensor_respond_total",
                 results, false, "result", "stopped", c.stopped});
    r.push_back({"respond", "failed", "", "driftwatch_sensor_respond_total", results, false,
                 "result", "failed", c.failed});
    r.push_back({"respond", "rate_limited", "", "driftwatch_sensor_respond_total", results,
                 false, "result", "rate_limited", c.rate_limited});
    r.push_back({"respond", "queue_full", "", "driftwatch_sensor_respond_total", results, false,
                 "result", "queue_full", c.queue_full});
    r.push_back({"respond", "repeat", "", "driftwatch_sensor_respond_total", results, false,
                 "result", "repeat", c.repeat});
    r.push_back({"respond", "not_stopped", "respond_not_stopped", "", "", false, "", "",
                 c.failed + c.rate_limited + c.queue_full});
  }
  if (s.prevent) {
    const PreventCounters& c = s.prevent->counters();
    const char* verdicts = "exec permission events answered, by verdict";
    r.push_back({"prevent", "allowed", "", "driftwatch_sensor_prevent_verdicts_total", verdicts,
                 false, "verdict", "allowed", c.allowed});
    r.push_back({"prevent", "image_mount", "", "driftwatch_sensor_prevent_verdicts_total",
                 verdicts, false, "verdict", "image_mount", c.image_mount});
    r.push_back({"prevent", "denied", "prevent_denied", "driftwatch_sensor_prevent_verdicts_total",
                 verdicts, false, "verdict", "denied", c.denied});
    r.push_back({"prevent", "would_deny", "prevent_would_deny",
                 "driftwatch_sensor_prevent_verdicts_total", verdicts, false, "verdict",
                 "would_deny", c.would_deny});
    r.push_back({"prevent", "allowed_by_policy", "", "driftwatch_sensor_prevent_verdicts_total",
                 verdicts, false, "verdict", "allowed_by_policy", c.allowed_by_policy});
    r.push_back({"prevent", "not_exec", "", "driftwatch_sensor_prevent_verdicts_total", verdicts,
                 false, "verdict", "not_exec", c.not_exec});
    r.push_back({"prevent", "outside_layers", "", "driftwatch_sensor_prevent_verdicts_total",
                 verdicts, false, "verdict", "outside_layers", c.outside_layers});
    r.push_back({"prevent", "fail_answers", "prevent_fail_answers",
                 "driftwatch_sensor_prevent_fail_answers_total",
                 "execs answered by the fail mode (allow unless --prevent-fail closed)", false,
                 "", "", c.deadline_answers + c.undecided});
    r.push_back({"prevent", "deadline_answers", "", "driftwatch_sensor_prevent_deadline_total",
                 "execs the watchdog answered after --prevent-deadline-ms", false, "", "",
                 c.deadline_answers});
    r.push_back({"prevent", "undecided", "", "driftwatch_sensor_prevent_undecided_total",
                 "execs no verdict could be reached for (overlay not known yet, the file's "
                 "name raced)", false, "", "", c.undecided});
    r.push_back({"prevent", "reports_dropped", "", "driftwatch_sensor_prevent_reports_dropped_total",
                 "denials not described as events (report queue full): counted only", false, "",
                 "", c.reports_dropped});
    r.push_back({"prevent", "errors", "", "driftwatch_sensor_prevent_errors_total",
                 "unreadable permission events and answers the kernel refused", false, "", "",
                 c.errors});
    static constexpr std::string_view kWithin[] = {"10us", "100us", "1ms", "10ms", "100ms",
                                                   "more"};
    static constexpr std::string_view kKeys[] = {"latency_le_10us", "latency_le_100us",
                                                 "latency_le_1ms", "latency_le_10ms",
                                                 "latency_le_100ms", "latency_over_100ms"};
    for (size_t i = 0; i < std::size(kWithin); ++i)
      r.push_back({"prevent", kKeys[i], "", "driftwatch_sensor_prevent_answers_by_latency_total",
                   "answers by the time from reading the event to the answer (within: this "
                   "bucket's bound, above the one before; \"more\": over 100 ms)",
                   false, "within", kWithin[i], c.latency_buckets[i]});
    r.push_back({"prevent", "latency_max_ns", "", "driftwatch_sensor_prevent_latency_max_ns",
                 "longest time to an answer, ns", true, "", "", c.latency_max_ns});
  }
  if (s.registry) {
    r.push_back({"runtime", "", "containers", "driftwatch_sensor_containers",
                 "containers known", true, "", "", s.registry->size()});
    r.push_back({"runtime", "", "", "driftwatch_sensor_container_info_late_total",
                 "containers whose first events went out before their info (pod, image, "
                 "names): the registry did not learn it in time; their alerts may lack it",
                 false, "", "", s.registry->announce_timeouts()});
    r.push_back({"runtime", "", "", "driftwatch_sensor_pods_cached",
                 "pods whose fields the container registry keeps (by sandbox id)", true, "", "",
                 s.registry->pods_cached()});
  }
  if (s.spool) {
    r.push_back({"spool", "depth", "", "driftwatch_sensor_spool_depth",
                 "events waiting for the collector's ack", true, "", "", s.spool->depth()});
    r.push_back({"spool", "bytes", "", "driftwatch_sensor_spool_bytes", "spool size on disk", true,
                 "", "", s.spool->bytes()});
    r.push_back({"spool", "dropped", "spool_dropped", "driftwatch_sensor_spool_dropped_total",
                 "events dropped because the spool was full", false, "", "", s.spool->dropped()});
    r.push_back({"spool", "append_failures", "spool_append_failures",
                 "driftwatch_sensor_spool_append_failures_total",
                 "events the spool could not write (disk full, file size limit, I/O error)", false,
                 "", "", s.spool->append_failures()});
    r.push_back({"spool", "ack_failures", "", "driftwatch_sensor_spool_ack_failures_total",
                 "acks not written to the spool's ack file (acked events may be sent again)",
                 false, "", "", s.spool->ack_failures()});
  }
  if (s.uplink) {
    const UplinkCounters& u = s.uplink->counters();
    r.push_back({"collector", "", "", "driftwatch_sensor_collector_connected",
                 "1 while streaming to the collector", true, "", "", u.connected ? 1u : 0u});
    r.push_back({"collector", "events_sent", "", "driftwatch_sensor_collector_events_sent_total",
                 "events sent (resends included)", false, "", "", u.events_sent});
    r.push_back({"collector", "events_acked", "", "driftwatch_sensor_collector_events_acked_total",
                 "events the collector stored", false, "", "", u.events_acked});
    r.push_back({"collector", "stream_failures", "",
                 "driftwatch_sensor_collector_stream_failures_total", "streams that broke", false,
                 "", "", u.failures});
    r.push_back({"collector", "switches", "", "driftwatch_sensor_collector_switches_total",
                 "moves to the next collector of --collector's list after a stream broke", false,
                 "", "", u.switches});
    const char* inv = "drift inventories for the collector, by result";
    r.push_back({"collector", "inventories_sent", "", "driftwatch_sensor_inventories_total", inv,
                 false, "result", "sent", u.inventories});
    r.push_back({"collector", "inventories_dropped", "", "driftwatch_sensor_inventories_total",
                 inv, false, "result", "dropped", u.inventories_dropped});
    r.push_back({"collector", "inventory_chunks", "",
                 "driftwatch_sensor_inventory_chunks_total",
                 "inventory reply chunks sent to the collector", false, "", "", u.inventory_chunks});
  }
  return r;
}

void SetStatusFields(const std::vector<CounterReading>& r, v1::SensorStatus* status) {
  const auto* desc = status->GetDescriptor();
  const auto* refl = status->GetReflection();
  for (const CounterReading& c : r) {
    if (c.status_field.empty()) continue;
    const auto* f = desc->FindFieldByName(std::string(c.status_field));
    // The table names fields of event.proto; a wrong name is caught by the unit test.
    if (f == nullptr) continue;
    if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_UINT32)
      refl->SetUInt32(status, f, static_cast<uint32_t>(c.value));
    else if (f->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_UINT64)
      refl->SetUInt64(status, f, c.value);
  }
}

void WriteMetrics(const std::vector<CounterReading>& r, MetricsWriter* w) {
  for (const CounterReading& c : r) {
    if (c.metric.empty()) continue;  // a sum for the status event only
    MetricsWriter::Labels labels;
    if (!c.label_name.empty()) labels[std::string(c.label_name)] = std::string(c.label_value);
    const std::string name(c.metric), help(c.help);
    if (c.gauge)
      w->Gauge(name, help, static_cast<double>(c.value), labels);
    else
      w->Counter(name, help, static_cast<double>(c.value), labels);
  }
}

std::string StatusJsonFields(const std::vector<CounterReading>& r, std::string_view section) {
  std::string j;
  for (const CounterReading& c : r) {
    if (c.section != section || c.key.empty()) continue;
    j += ",\"";
    j += c.key;
    j += "\":" + std::to_string(c.value);
  }
  return j;
}

}  // namespace driftwatch::sensor
