#include "lib/daemon/metrics.h"

#include <pthread.h>

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cmath>
#include <cstdio>

#include "lib/base/log.h"

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


const char* MetricsRejectName(MetricsReject r) {
  switch (r) {
    case MetricsReject::kConnectionLimit: return "connection_limit";
    case MetricsReject::kIdleTimeout: return "idle_timeout";
    case MetricsReject::kDeadline: return "deadline";
    case MetricsReject::kHeaderTooLarge: return "header_too_large";
    case MetricsReject::kBodyTooLarge: return "body_too_large";
    case MetricsReject::kBadRequest: return "bad_request";
    case MetricsReject::kCount: break;
  }
  return "?";
}

// One request, one response, then close: scrapes are rare and short. Lives while a handler
// holds it; runs on the server's thread only.
class MetricsServer::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(MetricsServer* srv, tcp::socket s)
      : srv_(srv),
        socket_(std::move(s)),
        idle_(srv->io_),
        deadline_(srv->io_),
        // Bounds what a client can make the server buffer, whatever the parser's limits.
        buf_(srv->limits_.max_header_bytes + srv->limits_.max_body_bytes + 1024) {
    ++srv_->stats_.connections;
    parser_.header_limit(static_cast<uint32_t>(srv->limits_.max_header_bytes));
    parser_.body_limit(srv->limits_.max_body_bytes);
  }
  ~Connection() { --srv_->stats_.connections; }

  void Run() {
    deadline_.expires_after(srv_->limits_.deadline);
    deadline_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Abort(MetricsReject::kDeadline);
    });
    Read();
  }

 private:
  void Read() {
    idle_.expires_after(srv_->limits_.idle_timeout);  // cancels the previous wait
    idle_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Abort(MetricsReject::kIdleTimeout);
    });
    http::async_read_some(socket_, buf_, parser_,
                          [self = shared_from_this()](boost::beast::error_code ec, size_t) {
                            self->OnRead(ec);
                          });
  }

  void OnRead(boost::beast::error_code ec) {
    if (done_) return;
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      Fail(MetricsReject::kHeaderTooLarge, http::status::request_header_fields_too_large,
           "request header too large\n");
    } else if (ec == http::error::body_limit) {
      Fail(MetricsReject::kBodyTooLarge, http::status::payload_too_large,
           "request body too large\n");
    } else if (ec == http::error::end_of_stream || ec == boost::asio::error::eof ||
               ec == boost::asio::error::connection_reset) {
      Close();  // the client went away: nothing to answer
    } else if (ec) {
      Fail(MetricsReject::kBadRequest, http::status::bad_request, "bad request\n");
    } else if (!parser_.is_done()) {
      Read();
    } else {
      Respond(parser_.get());
    }
  }

  void Respond(const http::request<http::string_body>& req) {
    idle_.cancel();  // the deadline still bounds the write
    std::string target(req.target());
    if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
    res_.version(req.version());
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res_.result(http::status::method_not_allowed);
      res_.body() = "GET only\n";
    } else if (target == "/metrics") {
      MetricsWriter w;
      srv_->collect_(&w);
      srv_->WriteOwnMetrics(&w);
      res_.result(http::status::ok);
      res_.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res_.body() = w.text();
    } else if (target == "/healthz" || target == "/health") {
      std::string why;
      bool ok = srv_->health_(&why);
      res_.result(ok ? http::status::ok : http::status::service_unavailable);
      res_.body() = ok ? "ok\n" : why + "\n";
    } else if (target == "/status") {
      res_.result(http::status::ok);
      res_.set(http::field::content_type, "application/json");
      res_.body() = srv_->status_() + "\n";
    } else {
      res_.result(http::status::not_found);
      res_.body() = "not found: /metrics, /healthz, /status\n";
    }
    Write();
  }

  // An error answer (counted), then close.
  void Fail(MetricsReject why, http::status status, const char* body) {
    ++srv_->stats_.rejected[static_cast<size_t>(why)];
    idle_.cancel();
    error_answer_ = true;
    res_.version(11);
    res_.result(status);
    res_.body() = body;
    Write();
  }

  void Write() {
    ++srv_->stats_.requests;
    res_.keep_alive(false);
    res_.prepare_payload();
    http::async_write(socket_, res_,
                      [self = shared_from_this()](boost::beast::error_code ec, size_t) {
                        if (self->done_) return;
                        if (ec) return self->Close();
                        self->answered_ = true;
                        boost::system::error_code ignored;
                        if (!self->error_answer_) {
                          self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
                          return self->Close();
                        }
                        // The request was not read to its end: closing now, with its rest
                        // unread, would reset the connection and could take the answer with
                        // it. Say we are done and read the rest away (the deadline bounds it).
                        self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                        self->Drain();
                      });
  }

  void Drain() {
    socket_.async_read_some(boost::asio::buffer(scratch_),
                            [self = shared_from_this()](boost::system::error_code ec, size_t) {
                              if (self->done_) return;
                              if (ec) return self->Close();
                              self->Drain();
                            });
  }

  void Abort(MetricsReject why) {
    if (done_) return;
    if (!answered_) ++srv_->stats_.rejected[static_cast<size_t>(why)];
    Close();
  }

  // Closing the socket ends the pending read or write; cancelling the timers ends their
  // waits: then no handler holds the connection and it goes.
  void Close() {
    done_ = true;
    boost::system::error_code ignored;
    socket_.close(ignored);
    idle_.cancel();
    deadline_.cancel();
  }

  MetricsServer* srv_;
  tcp::socket socket_;
  boost::asio::steady_timer idle_;
  boost::asio::steady_timer deadline_;
  boost::beast::flat_buffer buf_;
  http::request_parser<http::string_body> parser_;
  http::response<http::string_body> res_;
  std::array<char, 4096> scratch_;  // what Drain reads away
  bool error_answer_ = false;       // the answer is an error: the request may not be all read
  bool answered_ = false;           // the answer is written
  bool done_ = false;
};

MetricsServer::MetricsServer(Collect c, Health h, Status s, MetricsLimits limits)
    : collect_(std::move(c)),
      health_(std::move(h)),
      status_(std::move(s)),
      limits_(limits),
      acceptor_(io_),
      accept_pause_timer_(io_),
      next_pause_(limits.accept_pause) {}

MetricsServer::~MetricsServer() { Stop(); }

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& address,
                                                            Collect collect, Health health,
                                                            Status status, MetricsLimits limits) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos)
    return std::unexpected(Error::InvalidInput("metrics address " + address + ": want HOST:PORT"));
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    port = std::stoi(address.substr(colon + 1));
  } catch (...) {
    port = -1;
  }
  if (port < 0 || port > 65535)
    return std::unexpected(Error::InvalidInput("metrics address " + address + ": bad port"));
  if (limits.max_connections == 0) limits.max_connections = 1;
  boost::system::error_code ec;
  auto ip = boost::asio::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec)
    return std::unexpected(Error::InvalidInput("metrics address " + address + ": " + ec.message()));
  std::unique_ptr<MetricsServer> s(
      new MetricsServer(std::move(collect), std::move(health), std::move(status), limits));
  tcp::endpoint ep(ip, static_cast<uint16_t>(port));
  s->acceptor_.open(ep.protocol(), ec);
  if (!ec) s->acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) s->acceptor_.bind(ep, ec);
  if (!ec) s->acceptor_.listen(64, ec);
  if (ec) return std::unexpected(Error::FromErrno(ec.value(), "metrics " + address));
  s->port_ = s->acceptor_.local_endpoint().port();
  s->Accept();
  MetricsServer* raw = s.get();
  s->thread_ = std::thread([raw] {
    pthread_setname_np(pthread_self(), "dw-metrics");
    raw->io_.run();
  });
  return s;
}

void MetricsServer::Accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
    if (ec == boost::asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // The failed connection stays queued in the kernel: retrying now would fail again at
      // once, in a loop. Wait, longer each time it keeps failing.
      const bool fds = ec == boost::asio::error::no_descriptors ||
                       ec == boost::system::errc::too_many_files_open_in_system;
      if (next_pause_ == limits_.accept_pause)
        LogWarn("metrics: accept failed (%s): pausing accepts\n", ec.message().c_str());
      ++(fds ? stats_.accept_pauses_fd : stats_.accept_pauses_other);
      accept_pause_timer_.expires_after(next_pause_);
      next_pause_ = std::min(next_pause_ * 2, std::max(limits_.accept_pause_max, limits_.accept_pause));
      accept_pause_timer_.async_wait([this](boost::system::error_code e) {
        if (!e) Accept();
      });
      return;
    }
    if (next_pause_ != limits_.accept_pause) {
      LogInfo("metrics: accepting again\n");
      next_pause_ = limits_.accept_pause;
    }
    if (stats_.connections >= limits_.max_connections) {
      ++stats_.rejected[static_cast<size_t>(MetricsReject::kConnectionLimit)];
      boost::system::error_code ignored;
      sock.close(ignored);
    } else {
      std::make_shared<Connection>(this, std::move(sock))->Run();
    }
    Accept();
  });
}

void MetricsServer::WriteOwnMetrics(MetricsWriter* w) const {
  for (size_t i = 0; i < static_cast<size_t>(MetricsReject::kCount); ++i) {
    w->Counter("driftwatch_metrics_rejected_total",
               "metrics server connections refused, cut off or answered with an error, by "
               "reason",
               static_cast<double>(stats_.rejected[i]),
               {{"reason", MetricsRejectName(static_cast<MetricsReject>(i))}});
  }
  w->Counter("driftwatch_metrics_accept_pauses_total",
             "times the metrics server paused accepting because accept() failed, by reason",
             static_cast<double>(stats_.accept_pauses_fd), {{"reason", "fd_exhausted"}});
  w->Counter("driftwatch_metrics_accept_pauses_total",
             "times the metrics server paused accepting because accept() failed, by reason",
             static_cast<double>(stats_.accept_pauses_other), {{"reason", "error"}});
  w->Gauge("driftwatch_metrics_connections", "metrics server connections open",
           static_cast<double>(stats_.connections));
  w->Counter("driftwatch_metrics_requests_total", "requests the metrics server answered",
             static_cast<double>(stats_.requests));
}

void MetricsServer::Stop() {
  if (!thread_.joinable()) return;
  io_.stop();
  thread_.join();
  boost::system::error_code ec;
  acceptor_.close(ec);  // the port is free once Stop returns
  accept_pause_timer_.cancel();
}

}  // namespace driftwatch
