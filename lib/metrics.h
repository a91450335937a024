// metrics: the daemons' Prometheus text endpoint, health check and status document, served
// over plain HTTP/1.1 on a configurable address (default loopback):
//   GET /metrics   Prometheus text format 0.0.4 (MetricsWriter fills it at each scrape)
//   GET /healthz   200 "ok", or 503 with the reasons
//   GET /status    a JSON document (`driftwatch status` reads the sensor's)
//
// Thread-safety: the server runs on the io_context it was given; the callbacks run there,
// one at a time, and must only read thread-safe state (atomics, locked snapshots).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

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

class MetricsServer {
 public:
  using Collect = std::function<void(MetricsWriter*)>;
  using Health = std::function<bool(std::string* why)>;
  using Status = std::function<std::string()>;  // JSON

  // Listens on `address` ("127.0.0.1:9464", "[::1]:0", "0.0.0.0:9464"; port 0: any).
  static std::expected<std::unique_ptr<MetricsServer>, std::string> Start(
      boost::asio::io_context* io, const std::string& address, Collect collect, Health health,
      Status status);
  ~MetricsServer();

  uint16_t port() const { return port_; }
  void Stop();

 private:
  MetricsServer(boost::asio::io_context* io, Collect c, Health h, Status s);
  void Accept();

  boost::asio::io_context* io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  Collect collect_;
  Health health_;
  Status status_;
  uint16_t port_ = 0;
  std::shared_ptr<bool> alive_;  // connections outliving Stop() check it
};

}  // namespace driftwatch
