// driftwatch-collector: receives sensor event streams over gRPC (mTLS) and stores them in
// SQLite. main() only wires the flags, the store and the server together.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include "collector/ingest_server.h"
#include "lib/event_store.h"
#include "lib/version.h"

namespace {

std::expected<std::string, std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::unexpected(path + ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The host part of HOST:PORT / [V6]:PORT names a loopback address.
bool IsLoopbackListen(const std::string& addr) {
  if (addr.starts_with("unix:")) return true;
  std::string host = addr;
  if (host.starts_with("[")) {
    host = host.substr(1, host.find(']') - 1);
  } else if (auto c = host.rfind(':'); c != std::string::npos) {
    host = host.substr(0, c);
  }
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

int Fail(const std::string& msg) {
  std::fprintf(stderr, "driftwatch-collector: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"driftwatch-collector: stores the event streams of driftwatch sensors"};
  app.set_version_flag("--version", driftwatch::kVersion);
  std::string listen = "0.0.0.0:7443";
  std::string tls_cert, tls_key, client_ca, port_file;
  bool insecure = false, insecure_allow_remote = false, sync_full = false;
  std::string db = "/var/lib/driftwatch/collector.db";
  int max_message_bytes = 16 << 20;
  uint32_t max_batch_events = 10000, max_in_flight = 4;
  int64_t retention_hours = 168;
  uint64_t retention_max_events = 10'000'000;
  int commit_interval_ms = 20;
  int stream_window_bytes = 1 << 20;
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--tls-cert", tls_cert, "server certificate (PEM)");
  app.add_option("--tls-key", tls_key, "server private key (PEM)");
  app.add_option("--client-ca", client_ca, "CA that signs the sensors' client certificates");
  app.add_flag("--insecure", insecure,
               "plaintext, node name from Hello (only on a loopback address)");
  app.add_flag("--insecure-allow-remote", insecure_allow_remote,
               "with --insecure: allow a non-loopback address");
  app.add_option("--db", db, "SQLite database")->capture_default_str();
  app.add_option("--max-message-bytes", max_message_bytes, "largest message taken")
      ->capture_default_str();
  app.add_option("--max-batch-events", max_batch_events, "most events in one batch")
      ->capture_default_str();
  app.add_option("--max-in-flight", max_in_flight, "batches per stream awaiting the store")
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
                 "beyond its in-flight batches")
      ->capture_default_str();
  app.add_flag("--sync-full", sync_full,
               "fsync the WAL on every commit (acks survive power loss; slower)");
  app.add_option("--port-file", port_file, "write the bound port to FILE once listening");
  CLI11_PARSE(app, argc, argv);

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
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  driftwatch::StoreOptions so;
  so.path = db;
  so.commit_interval = std::chrono::milliseconds(commit_interval_ms);
  so.commit_max_events = std::max<size_t>(max_batch_events, 10000);
  so.synchronous_full = sync_full;
  so.retention_age = std::chrono::hours(retention_hours);
  so.retention_max_events = retention_max_events;
  auto store = driftwatch::EventStore::Open(so);
  if (!store) return Fail(store.error());

  driftwatch::IngestOptions io;
  io.max_batch_events = max_batch_events;
  io.max_in_flight_batches = max_in_flight;
  io.insecure = insecure;
  driftwatch::IngestService service(store->get(), io);

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
  std::fprintf(stderr, "driftwatch-collector %s: listening on %s (port %d, %s), db %s\n",
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

  int sig = 0;
  sigwait(&sigs, &sig);
  std::fprintf(stderr, "driftwatch-collector: signal %d: shutting down\n", sig);
  // Streams get 5 s to finish; their outstanding batches are committed before they end.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server->Wait();
  (*store)->Close();
  std::fprintf(stderr, "driftwatch-collector: stopped\n");
  return 0;
}
