#include "lib/metrics.h"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <cstdio>

namespace driftwatch {
namespace http = boost::beast::http;
using boost::asio::ip::tcp;

namespace {

std::string EscapeLabel(const std::string& v) {
  std::string o;
  for (char c : v) {
    if (c == '\\' || c == '"') o.push_back('\\');
    if (c == '\n') {
      o += "\\n";
      continue;
    }
    o.push_back(c);
  }
  return o;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", v);
  }
  return buf;
}

// One request, one response, then close: scrapes are rare and short.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket s, MetricsServer::Collect* c, MetricsServer::Health* h,
             MetricsServer::Status* st, std::shared_ptr<bool> alive)
      : socket_(std::move(s)), collect_(c), health_(h), status_(st), alive_(std::move(alive)) {}

  void Run() {
    auto self = shared_from_this();
    http::async_read(socket_, buf_, req_, [self](boost::beast::error_code ec, size_t) {
      if (ec || !*self->alive_) return;
      self->Respond();
    });
  }

 private:
  void Respond() {
    res_.version(req_.version());
    res_.keep_alive(false);
    std::string target(req_.target());
    if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
    if (req_.method() != http::verb::get && req_.method() != http::verb::head) {
      res_.result(http::status::method_not_allowed);
      res_.body() = "GET only\n";
    } else if (target == "/metrics") {
      MetricsWriter w;
      (*collect_)(&w);
      res_.result(http::status::ok);
      res_.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res_.body() = w.text();
    } else if (target == "/healthz" || target == "/health") {
      std::string why;
      bool ok = (*health_)(&why);
      res_.result(ok ? http::status::ok : http::status::service_unavailable);
      res_.body() = ok ? "ok\n" : why + "\n";
    } else if (target == "/status") {
      res_.result(http::status::ok);
      res_.set(http::field::content_type, "application/json");
      res_.body() = (*status_)() + "\n";
    } else {
      res_.result(http::status::not_found);
      res_.body() = "not found: /metrics, /healthz, /status\n";
    }
    res_.prepare_payload();
    auto self = shared_from_this();
    http::async_write(socket_, res_, [self](boost::beast::error_code, size_t) {
      boost::beast::error_code ignored;
      self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  tcp::socket socket_;
  boost::beast::flat_buffer buf_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  MetricsServer::Collect* collect_;
  MetricsServer::Health* health_;
  MetricsServer::Status* status_;
  std::shared_ptr<bool> alive_;
};

}  // namespace

void MetricsWriter::Sample(const std::string& name, const std::string& help, const char* type,
                           double value, const Labels& labels) {
  if (described_.insert(name).second) {
    out_ += "# HELP " + name + " " + help + "\n";
    out_ += "# TYPE " + name + " " + type + "\n";
  }
  out_ += name;
  if (!labels.empty()) {
    out_ += "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out_ += ",";
      first = false;
      out_ += k + "=\"" + EscapeLabel(v) + "\"";
    }
    out_ += "}";
  }
  out_ += " " + FormatValue(value) + "\n";
}

void MetricsWriter::Counter(const std::string& name, const std::string& help, double value,
                            const Labels& labels) {
  Sample(name, help, "counter", value, labels);
}

void MetricsWriter::Gauge(const std::string& name, const std::string& help, double value,
                          const Labels& labels) {
  Sample(name, help, "gauge", value, labels);
}

MetricsServer::MetricsServer(boost::asio::io_context* io, Collect c, Health h, Status s)
    : io_(io),
      acceptor_(*io),
      collect_(std::move(c)),
      health_(std::move(h)),
      status_(std::move(s)),
      alive_(std::make_shared<bool>(true)) {}

MetricsServer::~MetricsServer() { Stop(); }

std::expected<std::unique_ptr<MetricsServer>, std::string> MetricsServer::Start(
    boost::asio::io_context* io, const std::string& address, Collect collect, Health health,
    Status status) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return std::unexpected("metrics address " + address + ": want HOST:PORT");
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(address.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535) return std::unexpected("metrics address " + address + ": bad port");
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) return std::unexpected("metrics address " + address + ": " + ec.message());
  std::unique_ptr<MetricsServer> s(
      new MetricsServer(io, std::move(collect), std::move(health), std::move(status)));
  tcp::endpoint ep(ip, static_cast<uint16_t>(port));
  s->acceptor_.open(ep.protocol(), ec);
  if (!ec) s->acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s->acceptor_.bind(ep, ec);
  if (!ec) s->acceptor_.listen(64, ec);
  if (ec) return std::unexpected("metrics " + address + ": " + ec.message());
  s->port_ = s->acceptor_.local_endpoint().port();
  s->Accept();
  return s;
}

void MetricsServer::Accept() {
  acceptor_.async_accept([this, alive = alive_](boost::system::error_code ec, tcp::socket sock) {
    if (!*alive) return;
    if (!ec) {
      std::make_shared<Connection>(std::move(sock), &collect_, &health_, &status_, alive_)->Run();
    }
    if (acceptor_.is_open()) Accept();
  });
}

void MetricsServer::Stop() {
  *alive_ = false;
  boost::system::error_code ec;
  acceptor_.close(ec);
}

}  // namespace driftwatch
