// driftwatch-collector: receives sensor event streams over gRPC (mTLS), stores them in
// SQLite, and runs them through correlation and the rules into alerts. main() only wires
// the flags, the store, the server, detection and the metrics endpoint together.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include "collector/detection.h"
#include "collector/ingest_server.h"
#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/base/time_arg.h"
#include "lib/daemon/daemon_config.h"
#include "lib/store/default_db.h"
#include "lib/store/event_store.h"
#include "lib/store/pg_conn.h"
#include "lib/store/pg_event_store.h"
#include "lib/daemon/listen_address.h"
#include "lib/base/log.h"
#include "lib/daemon/metrics.h"
#include "lib/daemon/systemd_notify.h"
#include "lib/base/version.h"
#include "lib/node/prevent_policy.h"

namespace {

std::expected<std::string, std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::unexpected(path + ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A unix socket, or a host every address of which is loopback, resolved as gRPC will
// (lib/daemon/listen_address.h): "127.example.com" is whatever DNS says. Why not is logged.
bool IsLoopbackListen(const std::string& addr) {
  auto ok = driftwatch::CheckLoopbackListen(addr);
  if (!ok) LogWarn("--listen %s: %s", addr.c_str(), ok.error().c_str());
  return ok.has_value();
}

int Fail(const std::string& msg) {
  LogError("%s\n", msg.c_str());
  return 1;
}

}  // namespace

namespace collector = driftwatch::collector;

int main(int argc, char** argv) {
  CLI::App app{"driftwatch-collector: stores the event streams of driftwatch sensors and turns "
               "them into alerts",
               "driftwatch-collector"};
  app.set_version_flag("--version", driftwatch::kVersion);
  std::string listen = "0.0.0.0:7443";
  std::string tls_cert, tls_key, client_ca, port_file;
  bool insecure = false, insecure_allow_remote = false, sync_full = false;
  std::string db = driftwatch::kDefaultCollectorDb;
  // Sensors send batches of at most 256 KiB and inventory chunks of about 1 MiB; gRPC holds
  // a whole message per stream while it arrives, so this bounds hostile nodes' memory.
  int max_message_bytes = 2 << 20;
  uint32_t max_batch_events = 10000, max_in_flight = 4;
  size_t max_event_bytes = driftwatch::IngestOptions{}.max_event_bytes;
  size_t max_in_flight_bytes = driftwatch::IngestOptions{}.max_in_flight_bytes;
  int64_t retention_hours = 168;
  uint64_t retention_max_events = 10'000'000;
  int commit_interval_ms = 20;
  int stream_window_bytes = 256 << 10;
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--tls-cert", tls_cert, "server certificate (PEM)");
  app.add_option("--tls-key", tls_key, "server private key (PEM)");
  app.add_option("--client-ca", client_ca, "CA that signs the sensors' client certificates");
  app.add_flag("--insecure", insecure,
               "plaintext, node name from Hello (only on a loopback address)");
  app.add_flag("--insecure-allow-remote", insecure_allow_remote,
               "with --insecure: allow a non-loopback address");
  app.add_option("--db", db,
                 "the store: a SQLite file, or a postgresql:// URI (libpq; the password from "
                 "PGPASSWORD or ~/.pgpass) that several collectors share, each evaluating the "
                 "nodes it leases")
      ->capture_default_str();
  app.add_option("--max-message-bytes", max_message_bytes, "largest message taken")
      ->capture_default_str();
  app.add_option("--max-batch-events", max_batch_events, "most events in one batch")
      ->capture_default_str();
  app.add_option("--max-event-bytes", max_event_bytes,
                 "largest event stored as sent: a larger exec has its arguments cut to the "
                 "sensor's default caps (64 KiB, 4 KiB an argument) and is kept, marked "
                 "args_capped; anything still larger is refused (a sequence gap, alerted)")
      ->check(CLI::Range(size_t{4096}, size_t{1} << 30))
      ->capture_default_str();
  app.add_option("--max-in-flight", max_in_flight, "batches per stream awaiting the store")
      ->capture_default_str();
  app.add_option("--max-in-flight-bytes", max_in_flight_bytes,
                 "bytes of batches read and not yet stored, all streams together: past it "
                 "streams wait to read their next message")
      ->check(CLI::Range(size_t{1} << 20, size_t{1} << 40))
      ->capture_default_str();
  app.add_option("--retention-hours", retention_hours, "drop events stored longer ago (0: keep)")
      ->capture_default_str();
  app.add_option("--retention-max-events", retention_max_events,
                 "keep at most this many events (0: no bound)")
      ->capture_default_str();
  app.add_option("--commit-interval-ms", commit_interval_ms, "group commit window")
      ->capture_default_str();
  app.add_option("--stream-window-bytes", stream_window_bytes,
                 "HTTP/2 flow-control window per stream: unread bytes buffered per sensor "
                 "beyond its in-flight batches; a stream moves at most this much per round "
                 "trip (raise it for sensors far away)")
      ->capture_default_str();
  app.add_flag("--sync-full", sync_full,
               "fsync the WAL on every commit (acks survive power loss; slower)");
  app.add_option("--port-file", port_file, "write the bound port to FILE once listening");
  collector::DetectionOptions ao;
  app.add_option("--rules", ao.rule_files,
                 "rule file, loaded in the order given after the shipped rule files "
                 "(repeatable; config key `rules`, a list); reloaded on SIGHUP")
      ->allow_extra_args(false);  // one file per --rules; a config list gives several
  app.add_flag("--no-shipped-rules", ao.no_shipped_rules,
               "load only the --rules files, not the shipped macros and rules before them "
               "(config key `no-shipped-rules`)");
  app.add_option("--approved-images", ao.approved_images,
                 "approved images: image@sha256 lists or Kubernetes YAML (repeatable; reloaded "
                 "on SIGHUP)")
      ->allow_extra_args(false);
  std::string prevent_policy;
  app.add_option("--drift-policy,--prevent-policy", prevent_policy,
                 "the fleet's drift policy (the YAML of driftwatch-sensor --prevent-policy): the "
                 "drift it allows is counted in the allowed-drift summary (driftwatch alerts "
                 "--allowed), not alerted, and it is pushed to every sensor, whose prevention "
                 "adds its entries to its own; reloaded on SIGHUP");
  app.add_option("--lease-owner", ao.lease_owner,
                 "PostgreSQL --db: this collector's name in the node leases, unique among the "
                 "collectors sharing the database (default HOST:PID)");
  int64_t lease_ttl_ms = ao.lease_ttl.count();
  app.add_option("--lease-ms", lease_ttl_ms,
                 "PostgreSQL --db: a node lease lasts this long unrenewed, so a dead "
                 "collector's nodes are evaluated by another after at most this long")
      ->check(CLI::Range(int64_t{200}, int64_t{600000}))
      ->capture_default_str();
  app.add_option("--respond-rules", ao.respond_rules,
                 "a rule whose new alerts ask the node's sensor to stop the container "
                 "(repeatable; config key `respond-rules`, a list; the sensor acts only with "
                 "--respond stop)")
      ->allow_extra_args(false);
  app.add_option("--alerts-output", ao.outputs,
                 "write alerts as Falco JSON lines to FILE, - for stdout (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--webhook", ao.webhooks, "POST each alert (Falco JSON) to URL (repeatable)")
      ->allow_extra_args(false);
  app.add_option("--webhook-ca", ao.webhook_ca, "CA file for https webhooks (default: system CAs)");
  int inventory_quiet_ms = 2000, inventory_max_delay_ms = 30000;
  uint64_t inventory_max_bytes = 64ull << 20;
  uint64_t inventory_max_bytes_total = 256ull << 20;
  int64_t warmup_s = ao.warmup.count();
  uint64_t retention_max_alerts = 1'000'000;
  app.add_option("--detect-threads", ao.shards,
                 "detection threads; each evaluates the events of its share of the nodes")
      ->capture_default_str();
  app.add_option("--detect-max-lag-events", ao.max_lag_events,
                 "stored events detection may fall behind by; beyond it acks are held back "
                 "(the sensors' spools keep the events) until it catches up")
      ->capture_default_str();
  uint64_t feed_mib = ao.feed_max_bytes >> 20;
  app.add_option("--detect-feed-mib", feed_mib,
                 "committed events handed to detection in memory, at most this many MiB; "
                 "detection reads from the store what does not fit (0: always)")
      ->capture_default_str();
  app.add_option("--detect-warmup-s", warmup_s,
                 "at start, each node's correlation state is rebuilt from this much of its "
                 "stored history before its detection cursor")
      ->capture_default_str();
  app.add_option("--retention-max-alerts", retention_max_alerts,
                 "keep at most this many alerts (0: no bound; their age is bounded by "
                 "--retention-hours)")
      ->capture_default_str();
  app.add_option("--inventory-tag", ao.inventory_tag,
                 "alerts of rules with this tag ask the container's sensor for its drift "
                 "inventory (driftwatch inventory); empty: never")
      ->capture_default_str();
  app.add_option("--inventory-max-bytes", inventory_max_bytes,
                 "inventory replies a sensor stream may have being joined from chunks at once; "
                 "a reply that would go over it is discarded (and counted)")
      ->capture_default_str();
  app.add_option("--inventory-max-bytes-total", inventory_max_bytes_total,
                 "inventory replies all streams together may have being joined at once; a "
                 "reply that would go over it is discarded (and counted)")
      ->capture_default_str();
  app.add_option("--inventory-quiet-ms", inventory_quiet_ms,
                 "take the inventory once the container's alerts pause this long")
      ->capture_default_str();
  app.add_option("--inventory-max-delay-ms", inventory_max_delay_ms,
                 "... or at the latest this long after the first alert waiting for one")
      ->capture_default_str();
  std::string baselines = "on", baseline_learn = "24h";
  app.add_option("--baselines", baselines,
                 "learn what each image's containers do (processes, connections, listeners) and "
                 "judge later events against it (rules on baseline.*; driftwatch baseline)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--baseline-learn", baseline_learn,
                 "how long a baseline learns from its image's first event before it judges "
                 "(30s, 10m, 2h, 7d)")
      ->capture_default_str();
  app.add_option("--baseline-max-items", ao.baseline.max_items,
                 "items one baseline keeps; past it nothing more is recorded (counted)")
      ->capture_default_str();
  app.add_option("--baseline-max-total-items", ao.baseline.max_total_items,
                 "items all baselines keep together (each at most 1 KiB: a longer one keeps its head and a sha256 of the whole)")
      ->capture_default_str();
  app.add_option("--baseline-max", ao.baseline.max_baselines,
                 "baselines (image and container name) kept; events of more images are not "
                 "learned (counted)")
      ->capture_default_str();
  std::string aggregate_window = "60s";
  app.add_option("--aggregate-window", aggregate_window,
                 "repeats of an alert (same rule, node, container and executable sha256, else "
                 "its path or the file) within this long of the first are stored and sent as "
                 "one alert with a count (driftwatch.count, driftwatch.first_time, "
                 "driftwatch.last_time in output_fields), sent again when the window ends; "
                 "the first goes out at once (30s, 10m, 2h; 0: every alert on its own)")
      ->capture_default_str();
  std::string metadata_wait = "5s";
  app.add_option("--metadata-wait", metadata_wait,
                 "an alert of a container its node has not reported yet (no name, pod or "
                 "image) is stored at once but sent when the container's info arrives "
                 "(completed, its stored row too) or after this long as it is (2s, 30s; 0: "
                 "sent at once)")
      ->capture_default_str();
  app.add_option("--metadata-wait-max-alerts", ao.max_held_alerts,
                 "alerts held for --metadata-wait per detection thread; past it the oldest is "
                 "sent at once")
      ->capture_default_str();
  size_t held_mib = ao.max_held_bytes >> 20;
  app.add_option("--metadata-wait-max-mib", held_mib,
                 "memory the held alerts may take per detection thread (about twice their "
                 "JSON), MiB; past it the oldest is sent at once")
      ->capture_default_str();
  app.add_flag("--aggregate-critical", ao.aggregation.critical,
               "aggregate Critical, Alert and Emergency rules too (by default each of their "
               "alerts is stored and sent on its own)");
  // Node identities (docs/node-identity.md).
  driftwatch::NodeAuthorityOptions na;
  std::string enroll_validity = "30d";
  app.add_option("--deny-list", na.deny_list,
                 "revoked nodes and certificates (lines `node NAME`, `serial HEX`, `sha256 HEX`): "
                 "refused at stream start and at enrollment; reloaded on SIGHUP, which also ends "
                 "the live streams it now refuses");
  app.add_option("--enroll-ca-cert", na.ca_cert,
                 "CA certificate that signs node certificates for sensors that enroll (must be "
                 "one of --client-ca); with --enroll-ca-key");
  app.add_option("--enroll-ca-key", na.ca_key, "the private key of --enroll-ca-cert");
  app.add_option("--enroll-allow", na.allow_list,
                 "node names (or globs) that may enroll with a bootstrap certificate, one a line; "
                 "reloaded on SIGHUP; without it only renewals are signed");
  app.add_option("--enroll-validity", enroll_validity,
                 "lifetime of the node certificates signed (30s, 10m, 2h, 30d); sensors renew at "
                 "2/3 of it")
      ->capture_default_str();
  app.add_option("--enroll-records", na.records,
                 "SQLite --db only: file of the names enrolled and their newest certificate (a "
                 "bootstrap certificate cannot enroll an enrolled name again); default: --db "
                 "with `.enrollments` appended. With a postgresql:// --db the records are its "
                 "enrollments table, one per name for every collector");
  std::string metrics_address = "127.0.0.1:9465";
  app.add_option("--metrics-address", metrics_address,
                 "HOST:PORT serving /metrics (Prometheus), /healthz and /status; empty: off")
      ->capture_default_str();
  std::string log_format = "text";
  app.add_option("--log-format", log_format,
                 "text: one line per event of note on stderr; json: one JSON object per line "
                 "(time, level, program, msg)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  bool check_config = false;
  app.add_flag("--check-config", check_config,
               "parse the options and the config file, print the effective settings, exit");
  driftwatch::AddYamlConfig(&app, "/etc/driftwatch/collector.yaml");
  if (int rc = driftwatch::ParseArgs(&app, argc, argv); rc >= 0) return rc;
  if (check_config) {
    std::fputs(app.config_to_str(true, false).c_str(), stdout);
    return 0;
  }
  driftwatch::SetLogFormat("driftwatch-collector", log_format);

  // The fleet's drift policy, checked before anything starts.
  auto read_policy = [&prevent_policy]()
      -> driftwatch::Result<std::optional<driftwatch::IngestService::PreventPolicyText>> {
    if (prevent_policy.empty()) return std::nullopt;
    auto text = driftwatch::PreventPolicy::ReadChecked(prevent_policy);
    if (!text) return std::unexpected(text.error().Prefix("--drift-policy"));
    return driftwatch::IngestService::PreventPolicyText{std::move(*text), prevent_policy};
  };
  auto fleet_policy = read_policy();
  if (!fleet_policy) return Fail(fleet_policy.error().message());

  const bool tls = !tls_cert.empty() || !tls_key.empty() || !client_ca.empty();
  if (tls && insecure) return Fail("--insecure and --tls-* exclude each other");
  if (!tls && !insecure) {
    return Fail("refusing to start without mTLS: give --tls-cert, --tls-key and --client-ca "
                "(or --insecure on a loopback address, for tests)");
  }
  if (tls && (tls_cert.empty() || tls_key.empty() || client_ca.empty())) {
    return Fail("mTLS needs all of --tls-cert, --tls-key and --client-ca");
  }
  if (insecure && !IsLoopbackListen(listen) && !insecure_allow_remote) {
    return Fail("--insecure on " + listen +
                ", not a loopback address: refused (add --insecure-allow-remote to mean it)");
  }
  if (max_message_bytes <= 0 || max_batch_events == 0 || max_in_flight == 0 ||
      stream_window_bytes <= 0) {
    return Fail("--max-message-bytes, --max-batch-events, --max-in-flight and "
                "--stream-window-bytes must be > 0");
  }
  if (inventory_quiet_ms < 0 || inventory_max_delay_ms < 0)
    return Fail("--inventory-quiet-ms and --inventory-max-delay-ms must be >= 0");
  if (ao.shards == 0 || ao.max_lag_events <= 0 || warmup_s < 0)
    return Fail("--detect-threads and --detect-max-lag-events must be > 0, --detect-warmup-s >= 0");
  ao.warmup = std::chrono::seconds(warmup_s);
  // One name for this collector wherever the shared store records it: the node leases, the
  // migrations it applies, the enrollments it signs.
  if (ao.lease_owner.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    ao.lease_owner = std::string(host) + ":" + std::to_string(getpid());
  }
  ao.baselines = baselines == "on";
  // A duration flag: a number and one unit (30s, 10m, 2h, 7d); "0" when `zero_ok`.
  auto duration = [](const char* flag, const std::string& text, const char* examples,
                     bool zero_ok = false) -> std::optional<std::chrono::nanoseconds> {
    if (zero_ok && text == "0") return std::chrono::nanoseconds(0);
    const int64_t now = driftwatch::NowNs();
    auto t = driftwatch::ParseTimeArg(text, now);
    if (!t || text.find_first_not_of("0123456789smhd") != std::string::npos) {
      LogError("%s %s: not a duration (%s)\n", flag, text.c_str(), examples);
      return std::nullopt;
    }
    return std::chrono::nanoseconds(now - *t);
  };
  if (auto d = duration("--baseline-learn", baseline_learn, "30s, 10m, 2h, 7d")) {
    ao.baseline.learn = *d;
  } else {
    return 1;
  }
  if (auto d = duration("--aggregate-window", aggregate_window, "30s, 10m, 2h; 0: off", true)) {
    ao.aggregation.window = *d;
  } else {
    return 1;
  }
  if (auto d = duration("--metadata-wait", metadata_wait, "2s, 30s, 1m; 0: off", true)) {
    ao.metadata_wait = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
  } else {
    return 1;
  }
  if (ao.max_held_alerts == 0) return Fail("--metadata-wait-max-alerts must be > 0");
  if (held_mib == 0 || held_mib > (1u << 20))
    return Fail("--metadata-wait-max-mib must be between 1 and 1048576");
  ao.max_held_bytes = held_mib << 20;
  if (ao.baseline.max_items == 0 || ao.baseline.max_baselines == 0 ||
      ao.baseline.max_total_items == 0)
    return Fail("--baseline-max-items, --baseline-max-total-items and --baseline-max must be > 0");
  ao.feed_max_bytes = static_cast<size_t>(std::min<uint64_t>(feed_mib, 1u << 20)) << 20;
  ao.inventory_quiet = std::chrono::milliseconds(inventory_quiet_ms);
  ao.inventory_max_delay = std::chrono::milliseconds(inventory_max_delay_ms);

  if (auto d = duration("--enroll-validity", enroll_validity, "30s, 10m, 2h, 30d")) {
    na.validity = std::chrono::duration_cast<std::chrono::seconds>(*d);
  } else {
    return 1;
  }
  if (driftwatch::IsPgUri(db)) {
    // One record per name for every collector sharing the store, or a name enrolled at one
    // collector could be enrolled again with the bootstrap certificate at another.
    if (app.count("--enroll-records"))
      return Fail("--enroll-records is for a SQLite --db: with a postgresql:// --db the "
                  "enrollment records are the database's enrollments table, shared by every "
                  "collector");
    na.records_db = db;
    na.records_by = ao.lease_owner;
  } else if (na.records.empty()) {
    na.records = db + ".enrollments";
  }
  if (!tls && (!na.deny_list.empty() || !na.ca_cert.empty() || !na.allow_list.empty()))
    return Fail("--deny-list and --enroll-* need mTLS (no certificates with --insecure)");
  std::unique_ptr<driftwatch::NodeAuthority> authority;
  if (tls) {
    auto ca = ReadFile(client_ca);
    if (!ca) return Fail(ca.error());
    na.client_ca_bundle = *ca;
    auto a = driftwatch::NodeAuthority::Open(na);
    if (!a) return Fail(a.error().message());
    authority = std::move(*a);
    if (authority->enrollment_enabled())
      LogInfo("enrollment: node certificates signed by %s for %s, allow list %s, records %s\n",
              na.ca_cert.c_str(), enroll_validity.c_str(),
              na.allow_list.empty() ? "(none: renewals only)" : na.allow_list.c_str(),
              na.records_db.empty()
                  ? na.records.c_str()
                  : (driftwatch::RedactPgUri(na.records_db) + " (enrollments table)").c_str());
    if (!na.deny_list.empty())
      LogInfo("deny list %s: %zu entries\n", na.deny_list.c_str(), authority->deny_entries());
  }

  std::shared_ptr<grpc::ServerCredentials> creds;
  if (tls) {
    auto cert = ReadFile(tls_cert), key = ReadFile(tls_key), ca = ReadFile(client_ca);
    for (auto* r : {&cert, &key, &ca}) {
      if (!*r) return Fail(r->error());
    }
    grpc::SslServerCredentialsOptions o(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    o.pem_root_certs = *ca;
    o.pem_key_cert_pairs.push_back({*key, *cert});
    creds = grpc::SslServerCredentials(o);
  } else {
    creds = grpc::InsecureServerCredentials();
  }

  // Signals are taken by sigwait below; block them before gRPC starts its threads.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  driftwatch::StoreOptions so;
  so.path = db;
  so.commit_interval = std::chrono::milliseconds(commit_interval_ms);
  so.commit_max_events = std::max<size_t>(max_batch_events, 10000);
  so.synchronous_full = sync_full;
  so.retention_age = std::chrono::hours(retention_hours);
  so.retention_max_events = retention_max_events;
  so.retention_max_alerts = retention_max_alerts;
  // Detection starts after the store (which creates the schema) and follows its commits;
  // until then retention keeps everything.
  std::atomic<collector::Detection*> detection{nullptr};
  so.on_commit = [&detection](driftwatch::StoreCommit commit) {
    if (auto* d = detection.load()) d->Notify(std::move(commit));
  };
  so.retention_floor = [&detection]() -> int64_t {
    auto* d = detection.load();
    return d ? d->floor() : 0;
  };
  // The store: SQLite (one collector) or PostgreSQL (several share it).
  std::unique_ptr<driftwatch::EventSink> store;
  driftwatch::EventStore* sqlite_store = nullptr;  // null on PostgreSQL
  const bool on_pg = driftwatch::IsPgUri(db);
  if (on_pg) {
    if (app.count("--retention-max-events") || app.count("--retention-max-alerts") || sync_full)
      return Fail("--retention-max-events, --retention-max-alerts and --sync-full are SQLite's: "
                  "on PostgreSQL retention drops whole days (--retention-hours) and every "
                  "commit is durable as the server is configured");
    driftwatch::PgStoreOptions po;
    po.uri = db;
    po.name = ao.lease_owner;
    po.commit_interval = std::chrono::milliseconds(commit_interval_ms);
    po.commit_max_events = so.commit_max_events;
    po.retention_age = std::chrono::hours(retention_hours);
    po.on_commit = [&detection](driftwatch::PgStoreCommit commit) {
      auto* d = detection.load();
      if (!d) return;
      std::vector<std::string> nodes;
      for (const auto& [node, ids] : commit.heads) nodes.push_back(node);
      d->NotifyNodes(nodes);
    };
    auto pg = driftwatch::PgEventStore::Open(po);
    if (!pg) return Fail(pg.error().message());
    store = std::move(*pg);
  } else {
    auto sq = driftwatch::EventStore::Open(so);
    if (!sq) return Fail(sq.error().message());
    sqlite_store = sq->get();
    store = std::move(*sq);
  }
  auto head = [sqlite_store] { return sqlite_store ? sqlite_store->head() : 0; };
  ao.db = db;
  ao.lease_ttl = std::chrono::milliseconds(lease_ttl_ms);
  ao.drift_policy = prevent_policy;
  auto started_detection = collector::Detection::Start(ao, head());
  if (!started_detection) return Fail(started_detection.error());
  collector::Detection* detect = started_detection->get();
  for (const std::string& line : detect->RulesSummary()) LogInfo("rules: %s\n", line.c_str());
  detection = detect;
  detect->Notify(head());

  driftwatch::IngestOptions io;
  io.max_batch_events = max_batch_events;
  io.max_in_flight_batches = max_in_flight;
  io.max_event_bytes = max_event_bytes;
  io.max_in_flight_bytes = max_in_flight_bytes;
  io.insecure = insecure;
  io.admit = [detect](std::function<void()> release) { return detect->Admit(std::move(release)); };
  io.on_hello = [detect](const std::string& node, const driftwatch::v1::Hello& h) {
    detect->OnHello(node, h);
  };
  io.max_inventory_bytes = inventory_max_bytes;
  io.max_inventory_bytes_total = inventory_max_bytes_total;
  io.inventory_timeout = ao.inventory_timeout;
  io.on_inventory = [detect](const std::string& node, uint64_t command_id,
                             driftwatch::StoredInventory inv) {
    detect->SubmitInventory(node, command_id, std::move(inv));
  };
  driftwatch::IngestService service(store.get(), io);
  service.SetAuthority(authority.get());
  service.SetPreventPolicy(*fleet_policy);
  if (*fleet_policy)
    LogInfo("drift policy %s (sha256 %s): pushed to every sensor\n", prevent_policy.c_str(),
            service.prevent_policy_sha256().substr(0, 12).c_str());
  detect->SetStopRequester([&service](const std::string& node, const std::string& container,
                                      const std::string& reason) {
    return service.RequestStop(node, container, reason);
  });
  detect->SetInventoryRequester(
      [&service](const std::string& node, const std::string& container, uint64_t id) {
        return service.RequestInventory(node, container, id);
      });

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, creds, &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  // Dead peers (a sensor host gone without FIN) are noticed and their streams ended.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  // Memory: a stream's unread data is bounded by its HTTP/2 window. gRPC's BDP probing would
  // grow that to several MiB per stream (50 sensors: hundreds of MiB buffered in the
  // transport, beyond --max-in-flight), so the window is fixed.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, stream_window_bytes);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail("cannot listen on " + listen);
  driftwatch::LogBanner("driftwatch-collector %s: listening on %s (port %d, %s), db %s\n",
               driftwatch::kVersion, listen.c_str(), port, tls ? "mTLS" : "INSECURE plaintext",
               db.c_str());
  if (!port_file.empty()) {
    std::string tmp = port_file + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f || std::fprintf(f, "%d\n", port) < 0 || std::fclose(f) != 0 ||
        std::rename(tmp.c_str(), port_file.c_str()) != 0) {
      server->Shutdown();
      return Fail(port_file + ": cannot write the port");
    }
  }

  // Metrics, health and status on the metrics server's own thread.
  std::unique_ptr<driftwatch::MetricsServer> metrics;
  auto started = std::chrono::steady_clock::now();
  if (!metrics_address.empty()) {
    auto collect = [&](driftwatch::MetricsWriter* w) {
      const auto& c = detect->counters();
      w->Gauge("driftwatch_collector_streams", "sensor streams connected", service.active_streams());
      w->Gauge("driftwatch_collector_ingest_in_flight_bytes",
               "bytes of batches read and not yet stored (bound: --max-in-flight-bytes)",
               static_cast<double>(service.in_flight_bytes()));
      w->Counter("driftwatch_collector_ingest_budget_waits_total",
                 "times a stream waited to read because --max-in-flight-bytes was reached",
                 static_cast<double>(service.budget_waits()));
      for (const auto& n : store->Nodes()) {
        w->Counter("driftwatch_collector_events_stored_total", "events stored, by node",
                   n.events_stored, {{"node", n.node}});
        w->Counter("driftwatch_collector_events_duplicate_total",
                   "resent events dropped as already stored, by node", n.duplicates,
                   {{"node", n.node}});
      }
      for (const auto& [node, o] : service.OversizeByNode()) {
        const char* help =
            "events over --max-event-bytes, by node and action: capped (exec arguments cut, "
            "kept) or refused (left out: a sequence gap)";
        w->Counter("driftwatch_collector_events_oversize_total", help,
                   static_cast<double>(o.capped), {{"node", node}, {"action", "capped"}});
        w->Counter("driftwatch_collector_events_oversize_total", help,
                   static_cast<double>(o.refused), {{"node", node}, {"action", "refused"}});
      }
      w->Counter("driftwatch_collector_detect_events_total", "stored events evaluated by detection",
                 c.events);
      w->Counter("driftwatch_collector_detect_fed_events_total",
                 "stored events detection evaluated from memory, not read back from the store",
                 c.fed_events);
      w->Counter("driftwatch_collector_detect_feed_overflows_total",
                 "commits detection's full in-memory feed let go (read back from the store)",
                 c.feed_overflows);
      w->Counter("driftwatch_collector_detect_warmup_events_total",
                 "stored events replayed at start to rebuild correlation state", c.warmup_events);
      w->Counter("driftwatch_collector_detect_not_evaluated_total",
                 "stored events detection could not evaluate (each alerted)", c.not_evaluated);
      w->Gauge("driftwatch_collector_detect_lag_events",
               "stored events detection has not finished", detect->lag());
      w->Counter("driftwatch_collector_detect_store_errors_total",
                 "detection commits or reads that failed (retried)", c.store_errors);
      w->Counter("driftwatch_collector_detect_held_acks_total",
                 "acks held back because detection lagged", c.held_acks);
      if (on_pg) {
        w->Gauge("driftwatch_collector_detect_nodes_owned",
                 "nodes whose detection this collector leases (PostgreSQL)", c.nodes_owned);
        w->Counter("driftwatch_collector_detect_leases_taken_total",
                   "node leases taken (the node's state rebuilt from the store)", c.leases_taken);
        w->Counter("driftwatch_collector_detect_leases_lost_total",
                   "node leases another collector took while this one held them (it stalled "
                   "past the lease)",
                   c.leases_lost);
        w->Counter("driftwatch_collector_detect_leases_released_total",
                   "node leases given back (a share for another collector, or a stop)",
                   c.leases_released);
      }
      w->Counter("driftwatch_collector_alerts_redelivered_total",
                 "alerts sent to outputs again after a restart", c.redelivered);
      w->Counter("driftwatch_collector_alerts_aggregated_total",
                 "repeats counted into an earlier alert (--aggregate-window) instead of stored "
                 "and sent on their own",
                 c.aggregated);
      w->Counter("driftwatch_collector_alerts_without_metadata_total",
                 "alerts of a container stored before its node reported the container: no "
                 "name, pod or image in them",
                 c.alerts_without_metadata);
      w->Counter("driftwatch_collector_alert_metadata_filled_late_total",
                 "of those, alerts sent completed: their container's info arrived within "
                 "--metadata-wait (or was known at a restart)",
                 c.metadata_filled_late);
      w->Counter("driftwatch_collector_alert_metadata_unknown_total",
                 "of those, alerts sent without it: no info within --metadata-wait (or the "
                 "wait was 0, the hold full, the collector stopping)",
                 c.metadata_unknown);
      w->Counter("driftwatch_collector_alert_metadata_hold_overflows_total",
                 "alerts sent before their --metadata-wait ended: the hold was full",
                 c.held_overflows);
      w->Gauge("driftwatch_collector_alerts_held_for_metadata",
               "alerts stored and waiting for their container's info before they are sent",
               c.alerts_held.load());
      w->Counter("driftwatch_collector_allowed_drift_total",
                 "rule matches a rule exception or the drift policy allowed: counted in the "
                 "allowed-drift summary, not alerted",
                 c.allowed_drift);
      w->Counter("driftwatch_collector_alert_summaries_total",
                 "aggregated alerts whose window closed with repeats: their count sent",
                 c.aggregate_summaries);
      if (const driftwatch::Baselines* b = detect->baselines()) {
        const auto& bst = b->stats();
        w->Gauge("driftwatch_collector_baselines", "per-image baselines known (image, container)",
                 static_cast<double>(b->size()));
        w->Counter("driftwatch_collector_baseline_events_total",
                   "events judged against a baseline, by verdict", bst.learned,
                   {{"verdict", "learned"}});
        w->Counter("driftwatch_collector_baseline_events_total",
                   "events judged against a baseline, by verdict", bst.unexpected,
                   {{"verdict", "unexpected"}});
        w->Counter("driftwatch_collector_baseline_events_total",
                   "events judged against a baseline, by verdict",
                   bst.checked - bst.learned - bst.unexpected, {{"verdict", "known"}});
        const char* help =
            "behaviour a baseline could not record: items of a full baseline (--baseline-max-items), "
            "events of images past --baseline-max";
        w->Counter("driftwatch_collector_baseline_dropped_total", help, bst.dropped_items,
                   {{"what", "items"}});
        w->Counter("driftwatch_collector_baseline_dropped_total", help, bst.dropped_baselines,
                   {{"what", "baselines"}});
      }
      for (const auto& n : store->Nodes()) {
        w->Counter("driftwatch_collector_events_missing_total",
                   "sequence numbers that never arrived (gaps), by node", n.events_missing,
                   {{"node", n.node}});
      }
      for (const auto& [node, l] : detect->NodeLosses()) {
        w->Counter("driftwatch_collector_blind_windows_total",
                   "Sensor blind window alerts, by node", l.blind_windows, {{"node", node}});
        w->Counter("driftwatch_collector_detect_quota_evictions_total",
                   "detection state (processes, containers) a node lost to its own quota",
                   l.quota_evictions, {{"node", node}});
        const auto* d = l.lifetime.GetDescriptor();
        const auto* r = l.lifetime.GetReflection();
        for (int i = 0; i < d->field_count(); ++i) {
          w->Counter("driftwatch_collector_sensor_losses_total",
                     "loss totals the node's sensor reported, by node and counter",
                     r->GetUInt64(l.lifetime, d->field(i)),
                     {{"node", node}, {"counter", d->field(i)->name()}});
        }
      }
      if (authority) {
        const driftwatch::NodeAuthorityCounters nc = authority->counters();
        const char* signed_help = "node certificates signed, by kind (bootstrap: first "
                                  "enrollment; renewal: with the node's own certificate)";
        w->Counter("driftwatch_collector_enrollments_total", signed_help,
                   static_cast<double>(nc.signed_bootstrap), {{"kind", "bootstrap"}});
        w->Counter("driftwatch_collector_enrollments_total", signed_help,
                   static_cast<double>(nc.signed_renewal), {{"kind", "renewal"}});
        for (const auto& [reason, n] : nc.enroll_refused)
          w->Counter("driftwatch_collector_enroll_refused_total",
                     "enrollments refused, by reason (revoked, not_approved, already_enrolled, "
                     "name_mismatch, bad_signature, bad_csr, bad_name, wrong_node, oversize, ...)",
                     static_cast<double>(n), {{"reason", reason}});
        for (const auto& [reason, n] : nc.streams_refused)
          w->Counter("driftwatch_collector_streams_refused_total",
                     "ingest streams refused at start, by reason (revoked: the deny list; "
                     "bootstrap_credential)",
                     static_cast<double>(n), {{"reason", reason}});
        w->Counter("driftwatch_collector_streams_revoked_total",
                   "live ingest streams ended because a reload's deny list refuses them",
                   static_cast<double>(nc.streams_ended));
      }
      w->Counter("driftwatch_collector_rule_eval_seconds_total", "time spent evaluating rules",
                 static_cast<double>(c.eval_ns) / 1e9);
      w->Gauge("driftwatch_collector_rules_loaded", "active rules (enabled and evaluated)",
               detect->rules_loaded());
      w->Gauge("driftwatch_collector_rules_inactive",
               "enabled rules that can never match driftwatch's events (not evaluated)",
               detect->rules_inactive());
      w->Counter("driftwatch_collector_respond_stops_total",
                 "--respond-rules: container stops asked of sensors, by result",
                 c.stops_requested, {{"result", "sent"}});
      w->Counter("driftwatch_collector_respond_stops_total",
                 "--respond-rules: container stops asked of sensors, by result", c.stops_not_sent,
                 {{"result", "no_stream"}});
      w->Counter("driftwatch_collector_prevent_policy_pushes_total",
                 "fleet prevention policies sent to sensor streams (after each Hello, on reload)",
                 service.policy_pushes());
      w->Counter("driftwatch_collector_rule_reloads_total", "SIGHUP reloads, by result", c.reloads,
                 {{"result", "ok"}});
      w->Counter("driftwatch_collector_rule_reloads_total", "SIGHUP reloads, by result",
                 c.reload_failures, {{"result", "failed"}});
      for (const auto& [rule, n] : detect->AlertsByRule())
        w->Counter("driftwatch_collector_alerts_total", "alerts, by rule", n, {{"rule", rule}});
      w->Counter("driftwatch_collector_inventories_total",
                 "drift inventories asked of sensors, stored, failed", c.inventories_requested,
                 {{"result", "requested"}});
      w->Counter("driftwatch_collector_inventories_total",
                 "drift inventories asked of sensors, stored, failed", c.inventories_stored,
                 {{"result", "stored"}});
      w->Counter("driftwatch_collector_inventories_total",
                 "drift inventories asked of sensors, stored, failed", c.inventories_failed,
                 {{"result", "failed"}});
      for (const auto& [key, n] : service.InventoryDiscards()) {
        w->Counter("driftwatch_collector_inventory_chunks_discarded_total",
                   "inventory reply chunks discarded, by node and reason (unsolicited, "
                   "out_of_order, over_cap, malformed, incomplete)",
                   n, {{"node", key.first}, {"reason", key.second}});
      }
      for (const auto& [name, st] : detect->OutputStatsList()) {
        w->Counter("driftwatch_collector_output_alerts_total", "alerts handed to an output",
                   st.emitted, {{"output", name}});
        w->Counter("driftwatch_collector_output_dropped_total", "alerts an output dropped (queue full)",
                   st.dropped, {{"output", name}});
        w->Counter("driftwatch_collector_output_failed_total", "alerts an output gave up on",
                   st.failed, {{"output", name}});
      }
    };
    // The lambdas outlive this block (the metrics server keeps them): they capture only
    // what lives as long as main.
    driftwatch::EventSink* event_store = store.get();
    auto health = [detect, event_store](std::string* why) {
      *why += detect->Unhealthy();
      if (auto e = event_store->last_error(); !e.empty()) *why += "event store: " + e + "; ";
      return why->empty();
    };
    auto status = [&, health] {
      std::string j = "{\"version\":" + driftwatch::JsonQuote(driftwatch::kVersion) +
                      ",\"uptime_s\":" +
                      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::steady_clock::now() - started)
                                         .count()) +
                      ",\"streams\":" + std::to_string(service.active_streams()) +
                      ",\"rules\":" + std::to_string(detect->rules_loaded()) +
                      ",\"prevent_policy\":" +
                      (prevent_policy.empty()
                           ? std::string("null")
                           : "{\"file\":" + driftwatch::JsonQuote(prevent_policy) +
                                 ",\"sha256\":" +
                                 driftwatch::JsonQuote(service.prevent_policy_sha256()) +
                                 ",\"pushes\":" + std::to_string(service.policy_pushes()) + "}") +
                      ",\"alerts\":" + std::to_string(detect->counters().alerts.load()) +
                      ",\"alerts_aggregated\":" +
                      std::to_string(detect->counters().aggregated.load()) +
                      ",\"alerts_without_metadata\":" +
                      std::to_string(detect->counters().alerts_without_metadata.load()) +
                      ",\"alert_metadata_filled_late\":" +
                      std::to_string(detect->counters().metadata_filled_late.load()) +
                      ",\"alert_metadata_unknown\":" +
                      std::to_string(detect->counters().metadata_unknown.load()) +
                      ",\"alerts_held_for_metadata\":" +
                      std::to_string(detect->counters().alerts_held.load()) +
                      ",\"allowed_drift\":" +
                      std::to_string(detect->counters().allowed_drift.load()) +
                      ",\"nodes\":[";
      bool first = true;
      const auto losses = detect->NodeLosses();
      const int64_t lag = detect->lag();
      for (const auto& n : store->Nodes()) {
        if (!first) j += ",";
        first = false;
        j += "{\"node\":" + driftwatch::JsonQuote(n.node) +
             ",\"streams\":" + std::to_string(n.connected_streams) +
             ",\"last_seen_ns\":" + std::to_string(n.last_seen_ns) +
             ",\"events_stored\":" + std::to_string(n.events_stored) +
             ",\"events_missing\":" + std::to_string(n.events_missing) +
             ",\"detect_lag_events\":" + std::to_string(lag);
        if (auto l = losses.find(n.node); l != losses.end()) {
          j += ",\"blind_windows\":" + std::to_string(l->second.blind_windows) +
               ",\"losses\":{";
          const auto* d = l->second.lifetime.GetDescriptor();
          const auto* r = l->second.lifetime.GetReflection();
          for (int i = 0; i < d->field_count(); ++i) {
            j += std::string(i ? "," : "") + "\"" + d->field(i)->name() +
                 "\":" + std::to_string(r->GetUInt64(l->second.lifetime, d->field(i)));
          }
          j += "}";
        }
        j += "}";
      }
      std::string why;
      health(&why);  // this lambda's own copy: the block's ends before the server stops
      j += "],\"healthy\":" + std::string(why.empty() ? "true" : "false") +
           ",\"unhealthy_because\":" + driftwatch::JsonQuote(why) +
           ",\"detect\":{\"evaluated\":" + std::to_string(detect->counters().events.load()) +
           ",\"lag_events\":" + std::to_string(lag) +
           (on_pg ? ",\"nodes_owned\":" + std::to_string(detect->counters().nodes_owned.load())
                  : std::string()) +
           ",\"not_evaluated\":" + std::to_string(detect->counters().not_evaluated.load()) +
           ",\"head\":" + std::to_string(head()) + "}";
      return j + "}";
    };
    auto m = driftwatch::MetricsServer::Start(metrics_address, collect, health, status);
    if (!m) {
      LogWarn("%s; running without metrics\n", m.error().c_str());
    } else {
      metrics = std::move(*m);
      LogInfo("metrics on http://%s (port %u)\n",
                   metrics_address.c_str(), metrics->port());
    }
  }

  driftwatch::SystemdNotifier systemd;
  systemd.Ready("listening on " + listen + ", " + std::to_string(detect->rules_loaded()) + " rules");
  auto tick = systemd.watchdog_interval().count() > 0 ? systemd.watchdog_interval()
                                                       : std::chrono::milliseconds(1000);
  int sig = 0;
  for (;;) {
    timespec ts{static_cast<time_t>(tick.count() / 1000), static_cast<long>(tick.count() % 1000) * 1000000};
    sig = sigtimedwait(&sigs, nullptr, &ts);
    systemd.Watchdog();
    if (sig == SIGHUP) {
      systemd.Reloading();
      auto r = detect->Reload();
      if (r) {
        for (const std::string& line : *r) LogInfo("SIGHUP: rules reloaded: %s\n", line.c_str());
      } else {
        LogError("SIGHUP: %s\n", r.error().c_str());
      }
      if (authority) {
        if (auto r = authority->Reload(); !r) {
          LogError("SIGHUP: %s; the deny and allow lists in force stay\n", r.error().c_str());
        } else {
          const size_t ended = service.EndDeniedStreams();
          LogInfo("SIGHUP: %s; %zu live streams ended as revoked\n", r->c_str(), ended);
        }
      }
      if (!prevent_policy.empty()) {
        if (auto p = read_policy(); !p) {
          LogError("SIGHUP: %s; the sensors keep the policy they have\n",
                   p.error().message().c_str());
        } else {
          service.SetPreventPolicy(*p);
          LogInfo("SIGHUP: drift policy %s (sha256 %s) pushed to the connected sensors\n",
                  prevent_policy.c_str(), service.prevent_policy_sha256().substr(0, 12).c_str());
        }
      }
      systemd.Ready("reloaded");
      continue;
    }
    if (sig == SIGTERM || sig == SIGINT) break;
  }
  systemd.Stopping();
  LogInfo("signal %d: shutting down\n", sig);
  // Streams get 5 s to finish; their outstanding batches are committed before they end (held
  // acks go out: what detection has not evaluated yet is in the store, evaluated at the next
  // start).
  detect->ReleaseAll();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server->Wait();
  store->Close();
  detect->Stop();
  if (metrics) metrics->Stop();
  LogInfo("stopped (%llu alerts)\n",
               (unsigned long long)detect->counters().alerts.load());
  return 0;
}
