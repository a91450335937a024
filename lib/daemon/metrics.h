// metrics: the daemons' Prometheus text endpoint, health check and status document, served
// over plain HTTP/1.1 on a configurable address (default loopback):
//   GET /metrics   Prometheus text format 0.0.4 (MetricsWriter fills it at each scrape)
//   GET /healthz   200 "ok", or 503 with the reasons
//   GET /status    a JSON document (`driftwatch status` reads the sensor's)
//
// Anything that can reach the port may be hostile (a pod on a host-network node, a port
// scanner), so the server is bounded (MetricsLimits) and runs on a thread of its own: it
// can be slow or refuse, never take a daemon's event path with it.
//   - At most `max_connections` at once; one more is closed as soon as it is accepted.
//   - A connection gets `idle_timeout` between two reads and `deadline` for all of it
//     (request and response: a client sending a byte a second, or never reading the
//     answer, is cut off).
//   - A request's header beyond `max_header_bytes` is answered 431, a body beyond
//     `max_body_bytes` 413, anything unparsable 400; then the connection is closed.
//   - accept() failing with EMFILE/ENFILE (or anything else) pauses accepting for
//     `accept_pause` (doubling up to `accept_pause_max` while it keeps failing) instead of
//     retrying at once: the pending connection stays in the kernel's backlog and would make
//     an immediate retry spin. Accepting resumes by itself once descriptors are free.
// Each refusal and pause is counted (MetricsServerStats) and exported on /metrics after the
// daemon's own samples: driftwatch_metrics_rejected_total{reason}, ..._accept_pauses_total
// {reason}, ..._connections, ..._requests_total.
//
// Thread-safety: Start/Stop from one controlling thread. The callbacks run on the server's
// thread, one at a time, and must only read thread-safe state (atomics, locked snapshots).
// stats() may be read from any thread.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "lib/base/result.h"

namespace driftwatch {

// Writes one scrape. HELP and TYPE lines are written once per metric name.
class MetricsWriter {
 public:
  using Labels = std::map<std::string, std::string>;
  void Counter(const std::string& name, const std::string& help, double value,
               const Labels& labels = {});
  void Gauge(const std::string& name, const std::string& help, double value,
             const Labels& labels = {});
  const std::string& text() const { return out_; }

 private:
  void Sample(const std::string& name, const std::string& help, const char* type, double value,
              const Labels& labels);
  std::string out_;
  std::set<std::string> described_;
};

struct MetricsLimits {
  size_t max_connections = 16;
  std::chrono::milliseconds idle_timeout{5000};
  std::chrono::milliseconds deadline{10000};
  size_t max_header_bytes = 8192;
  size_t max_body_bytes = 1024;  // GET and HEAD carry none
  std::chrono::milliseconds accept_pause{50};
  std::chrono::milliseconds accept_pause_max{1000};
};

// Why a connection ended without its answer, or got an error answer.
enum class MetricsReject : size_t {
  kConnectionLimit,  // closed at accept: max_connections reached
  kIdleTimeout,      // no byte for idle_timeout
  kDeadline,         // not done within deadline
  kHeaderTooLarge,   // answered 431
  kBodyTooLarge,     // answered 413
  kBadRequest,       // answered 400
  kCount
};
const char* MetricsRejectName(MetricsReject r);  // "connection_limit", "idle_timeout", ...

struct MetricsServerStats {
  std::array<std::atomic<uint64_t>, static_cast<size_t>(MetricsReject::kCount)> rejected{};
  std::atomic<uint64_t> accept_pauses_fd{0};     // accept failed: EMFILE or ENFILE
  std::atomic<uint64_t> accept_pauses_other{0};  // accept failed otherwise
  std::atomic<uint64_t> requests{0};             // requests answered (any status)
  std::atomic<uint64_t> connections{0};          // open now
  uint64_t rejected_of(MetricsReject r) const { return rejected[static_cast<size_t>(r)]; }
};

class MetricsServer {
 public:
  using Collect = std::function<void(MetricsWriter*)>;
  using Health = std::function<bool(std::string* why)>;
  using Status = std::function<std::string()>;  // JSON

  // Listens on `address` ("127.0.0.1:9464", "[::1]:0", "0.0.0.0:9464"; port 0: any) and
  // starts the server's thread.
  static Result<std::unique_ptr<MetricsServer>> Start(const std::string& address, Collect collect,
                                                      Health health, Status status,
                                                      MetricsLimits limits = {});
  ~MetricsServer();

  uint16_t port() const { return port_; }
  const MetricsServerStats& stats() const { return stats_; }
  // Closes the listener and every connection and joins the thread. Idempotent.
  void Stop();

 private:
  class Connection;
  MetricsServer(Collect c, Health h, Status s, MetricsLimits limits);
  void Accept();  // server thread
  void WriteOwnMetrics(MetricsWriter* w) const;

  Collect collect_;
  Health health_;
  Status status_;
  const MetricsLimits limits_;
  MetricsServerStats stats_;
  uint16_t port_ = 0;
  // Destruction order: the thread is joined (Stop) first; then the timer and the acceptor
  // go, then the io_context, whose destructor destroys the handlers still pending and with
  // them the connections, which count themselves out of stats_: declared above it.
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer accept_pause_timer_;
  std::chrono::milliseconds next_pause_;  // server thread
  std::thread thread_;
};

}  // namespace driftwatch
