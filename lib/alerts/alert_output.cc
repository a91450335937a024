#include "lib/alerts/alert_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "lib/base/asio_op.h"

namespace driftwatch {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

// ---- StreamOutput

Result<std::unique_ptr<StreamOutput>> StreamOutput::Open(const std::string& path) {
  std::unique_ptr<StreamOutput> out(new StreamOutput());
  out->path_ = path;
  if (path.empty() || path == "-") {
    MutexLock lock(out->mu_);  // not shared yet: uncontended
    out->f_ = stdout;
    return out;
  }
  if (auto ok = out->Reopen(); !ok) return std::unexpected(ok.error());
  return out;
}

StreamOutput::~StreamOutput() {
  if (owned_ && f_ != nullptr) std::fclose(f_);
}

Result<> StreamOutput::Reopen() {
  MutexLock lock(mu_);
  if (path_.empty() || path_ == "-") return {};
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return std::unexpected(Error::FromErrno(errno, path_));
  FILE* f = ::fdopen(fd, "a");
  if (f == nullptr) {
    Error err = Error::FromErrno(errno, path_);
    ::close(fd);
    return std::unexpected(std::move(err));
  }
  if (owned_ && f_ != nullptr) std::fclose(f_);
  f_ = f;
  owned_ = true;
  return {};
}

void StreamOutput::Emit(std::string_view json, DeliveryDone done) {
  Delivery d = Delivery::kDelivered;
  {
    MutexLock lock(mu_);
    // One write per line: a reader of the file never sees half an alert from us.
    std::string line(json);
    line.push_back('\n');
    if (std::fwrite(line.data(), 1, line.size(), f_) == line.size() && std::fflush(f_) == 0) {
      ++stats_.emitted;
    } else {
      ++stats_.failed;
      std::clearerr(f_);
      d = Delivery::kFailed;
    }
  }
  if (done) done(d);
}

OutputStats StreamOutput::Stats() const {
  MutexLock lock(mu_);
  return stats_;
}

// ---- WebhookOutput

Result<std::unique_ptr<WebhookOutput>> WebhookOutput::Create(WebhookOptions opt) {
  auto bad = [&opt](const char* why) {
    return std::unexpected(Error::InvalidInput("webhook URL " + opt.url + ": " + why));
  };
  Url u;
  std::string_view rest = opt.url;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
    u.tls = true;
  } else {
    return bad("http:// or https:// required");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  u.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.find('@') != std::string_view::npos) {
    return bad("user info is not supported");
  }
  std::string_view host = authority, port;
  if (authority.starts_with('[')) {  // [v6]:port
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("bad host");
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return bad("bad host");
      port = authority.substr(close + 2);
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return bad("no host");
  for (char c : port) {
    if (c < '0' || c > '9') return bad("bad port");
  }
  u.host = std::string(host);
  u.port = port.empty() ? (u.tls ? "443" : "80") : std::string(port);
  if (opt.max_attempts < 1) opt.max_attempts = 1;
  return std::unique_ptr<WebhookOutput>(new WebhookOutput(std::move(opt), std::move(u)));
}

WebhookOutput::WebhookOutput(WebhookOptions opt, Url url) : opt_(std::move(opt)), url_(std::move(url)) {}

WebhookOutput::~WebhookOutput() {
  {
    MutexLock lock(mu_);
    stop_ = true;
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
  std::deque<std::pair<std::string, DeliveryDone>> left;
  {
    MutexLock lock(mu_);
    stats_.dropped += queue_.size();
    left.swap(queue_);
  }
  for (auto& [body, done] : left)
    if (done) done(Delivery::kDropped);
}

void WebhookOutput::Start() {
  MutexLock lock(mu_);
  if (!thread_.joinable() && !stop_) thread_ = std::thread([this] { Run(); });
}

void WebhookOutput::Emit(std::string_view json, DeliveryDone done) {
  {
    MutexLock lock(mu_);
    if (queue_.size() >= opt_.queue_capacity) {
      ++stats_.dropped;
      lock.Unlock();
      if (done) done(Delivery::kDropped);
      return;
    }
    queue_.emplace_back(std::string(json), std::move(done));
  }
  cv_.NotifyAll();
}

OutputStats WebhookOutput::Stats() const {
  MutexLock lock(mu_);
  return stats_;
}

std::string WebhookOutput::last_error() const {
  MutexLock lock(mu_);
  return last_error_;
}

bool WebhookOutput::Drain(std::chrono::milliseconds timeout) {
  MutexLock lock(mu_);
  return cv_.WaitFor(lock, timeout,
                     [this]() DW_REQUIRES(mu_) { return queue_.empty() && !in_flight_; });
}

void WebhookOutput::Run() {
  MutexLock lock(mu_);
  while (true) {
    cv_.Wait(lock, [this]() DW_REQUIRES(mu_) { return stop_ || !queue_.empty(); });
    if (stop_) return;
    std::string body = std::move(queue_.front().first);
    DeliveryDone done = std::move(queue_.front().second);
    queue_.pop_front();
    in_flight_ = true;
    auto backoff = opt_.backoff_initial;
    bool delivered = false;
    for (int attempt = 1; attempt <= opt_.max_attempts && !stop_; ++attempt) {
      lock.Unlock();
      auto r = Post(body);
      lock.Lock();
      if (r) {
        delivered = true;
        break;
      }
      last_error_ = r.error().message();
      if (attempt == opt_.max_attempts) break;
      ++stats_.retries;
      cv_.WaitFor(lock, backoff, [this]() DW_REQUIRES(mu_) { return stop_; });
      backoff = std::min(backoff * 2, opt_.backoff_max);
    }
    Delivery outcome = Delivery::kDelivered;
    if (delivered) {
      ++stats_.emitted;
    } else if (stop_) {
      ++stats_.dropped;  // stopped mid-retries: not given up on, may be sent again
      outcome = Delivery::kDropped;
    } else {
      ++stats_.failed;
      outcome = Delivery::kFailed;
    }
    if (done) {
      lock.Unlock();
      done(outcome);
      lock.Lock();
    }
    in_flight_ = false;
    cv_.NotifyAll();  // Drain
  }
}

namespace {

template <class Stream>
Result<unsigned> Exchange(asio::io_context& ioc, Stream& stream, beast::tcp_stream& tcp,
                          const http::request<http::string_body>& req,
                          std::chrono::milliseconds timeout) {
  tcp.expires_after(timeout);
  if (auto ec = RunOp(ioc, [&](auto h) { http::async_write(stream, req, h); })) {
    return std::unexpected(Error::Io("send: " + ec.message()));
  }
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  tcp.expires_after(timeout);
  if (auto ec = RunOp(ioc, [&](auto h) { http::async_read(stream, buf, parser, h); })) {
    return std::unexpected(Error::Io("receive: " + ec.message()));
  }
  return parser.get().result_int();
}

}  // namespace

Result<> WebhookOutput::Post(const std::string& body) {
  asio::io_context ioc;
  asio::ip::tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(url_.host, url_.port, ec);
  if (ec) return std::unexpected(Error::Unavailable(url_.host + ": " + ec.message()));

  http::request<http::string_body> req{http::verb::post, url_.target, 11};
  const bool default_port = url_.port == (url_.tls ? "443" : "80");
  const bool v6 = url_.host.find(':') != std::string::npos;
  std::string host_header = v6 ? "[" + url_.host + "]" : url_.host;
  if (!default_port) host_header += ":" + url_.port;
  req.set(http::field::host, host_header);
  req.set(http::field::user_agent, opt_.user_agent);
  req.set(http::field::content_type, "application/json");
  req.set(http::field::connection, "close");
  req.body() = body;
  req.prepare_payload();

  Result<unsigned> status;
  const std::string where = (url_.tls ? "https://" : "http://") + host_header + url_.target;
  if (!url_.tls) {
    beast::tcp_stream stream(ioc);
    stream.expires_after(opt_.timeout);
    if (auto e = RunOp(ioc, [&](auto h) { stream.async_connect(endpoints, h); })) {
      return std::unexpected(Error::Unavailable(where + ": connect: " + e.message()));
    }
    status = Exchange(ioc, stream, stream, req, opt_.timeout);
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  } else {
    if (!tls_) {
      auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
      if (opt_.ca_file.empty()) {
        ctx->set_default_verify_paths(ec);
      } else {
        ctx->load_verify_file(opt_.ca_file, ec);
      }
      if (ec) return std::unexpected(Error::Io(where + ": CA certificates: " + ec.message()));
      ctx->set_verify_mode(asio::ssl::verify_peer);
      tls_ = std::move(ctx);
    }
    beast::ssl_stream<beast::tcp_stream> stream(ioc, *tls_);
    if (!SSL_set_tlsext_host_name(stream.native_handle(), url_.host.c_str())) {
      return std::unexpected(Error::Io(where + ": SNI failed"));
    }
    stream.set_verify_callback(asio::ssl::host_name_verification(url_.host));
    beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
    tcp.expires_after(opt_.timeout);
    if (auto e = RunOp(ioc, [&](auto h) { tcp.async_connect(endpoints, h); })) {
      return std::unexpected(Error::Unavailable(where + ": connect: " + e.message()));
    }
    tcp.expires_after(opt_.timeout);
    if (auto e = RunOp(ioc, [&](auto h) {
          stream.async_handshake(asio::ssl::stream_base::client, h);
        })) {
      return std::unexpected(Error::Io(where + ": TLS handshake: " + e.message()));
    }
    status = Exchange(ioc, stream, tcp, req, opt_.timeout);
    tcp.expires_after(opt_.timeout);
    RunOp(ioc, [&](auto h) { stream.async_shutdown(h); });  // peers often just close
  }
  if (!status) return std::unexpected(std::move(status.error()).Prefix(where));
  if (*status < 200 || *status >= 300) {
    // A server error or "too many requests" may pass; any other status refuses the request.
    const ErrorCode code =
        *status >= 500 || *status == 429 ? ErrorCode::kUnavailable : ErrorCode::kInvalidInput;
    return std::unexpected(Error(code, where + ": HTTP status " + std::to_string(*status)));
  }
  return {};
}

}  // namespace driftwatch
