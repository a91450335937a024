// alert_output: where alerts go. Each output takes the alert's Falco JSON line (lib/alerts/alert.h).
//   StreamOutput   one line per alert to stdout or a file (appended; reopened by Reopen(),
//                  for logrotate), flushed per alert.
//   WebhookOutput  an HTTP POST per alert of the same JSON (Content-Type application/json),
//                  as Falco's http_output does, from a bounded queue drained by one thread;
//                  a failed POST (connect error, timeout, status other than 2xx) is retried
//                  with exponential backoff, then counted as failed; a full queue drops the
//                  new alert and counts it. http:// and https:// (OpenSSL, the system's CA
//                  store or `ca_file`, host name checked) URLs.
//
// Thread-safety: Emit and Stats may be called from any thread on every output.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "lib/alerts/alert.h"
#include "lib/base/mutex.h"
#include "lib/base/result.h"

namespace boost::asio::ssl {
class context;
}

namespace driftwatch {

struct OutputStats {
  uint64_t emitted = 0;   // written or delivered
  uint64_t dropped = 0;   // queue full
  uint64_t failed = 0;    // given up on after the retries
  uint64_t retries = 0;   // attempts after a failed one
};

// What became of one alert handed to an output: delivered (written, POST answered 2xx),
// failed (given up on after the retries) or dropped (queue full, or the output stopped with
// it queued: it may be sent again later).
enum class Delivery { kDelivered, kFailed, kDropped };
using DeliveryDone = std::function<void(Delivery)>;

class AlertOutput {
 public:
  virtual ~AlertOutput() = default;
  // `json` is FalcoJson(alert), without a newline. Never blocks on the network. `done`, if
  // set, is called once with the outcome, on any thread (possibly inside Emit).
  virtual void Emit(std::string_view json, DeliveryDone done = {}) = 0;
  virtual OutputStats Stats() const = 0;
};

class StreamOutput final : public AlertOutput {
 public:
  // "-" or "" is stdout; anything else a file opened for appending (created 0640). An
  // error is coded by open's errno ("path: No such file or directory": kNotFound).
  [[nodiscard]] static Result<std::unique_ptr<StreamOutput>> Open(const std::string& path);
  ~StreamOutput() override;

  void Emit(std::string_view json, DeliveryDone done = {}) override;
  OutputStats Stats() const override;
  // Reopens the file (after a rotation); no-op for stdout.
  [[nodiscard]] Result<> Reopen();

 private:
  StreamOutput() = default;
  mutable Mutex mu_;
  std::string path_;
  FILE* f_ DW_GUARDED_BY(mu_) = nullptr;
  bool owned_ = false;
  OutputStats stats_ DW_GUARDED_BY(mu_);
};

struct WebhookOptions {
  std::string url;                      // http://host[:port]/path or https://...
  size_t queue_capacity = 10000;
  int max_attempts = 5;                 // per alert, the first included
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{10000};
  std::chrono::milliseconds timeout{5000};  // connect, send and receive, each
  std::string ca_file;                  // https: a CA bundle instead of the system's
  std::string user_agent = "driftwatch";
};

class WebhookOutput final : public AlertOutput {
 public:
  // Checks the URL; the sending thread starts with Start(). An error (kInvalidInput) for a
  // malformed URL or a scheme other than http/https.
  [[nodiscard]] static Result<std::unique_ptr<WebhookOutput>> Create(WebhookOptions opt);
  // Stops the thread: alerts still queued are counted as dropped.
  ~WebhookOutput() override;

  void Start();
  void Emit(std::string_view json, DeliveryDone done = {}) override;
  OutputStats Stats() const override;
  // Waits until the queue is empty and nothing is in flight, or `timeout` passed. True when
  // drained.
  bool Drain(std::chrono::milliseconds timeout);

 private:
  struct Url {
    bool tls = false;
    std::string host, port, target;
  };
  explicit WebhookOutput(WebhookOptions opt, Url url);
  void Run();
  // One POST; the error describes a failure (connection, timeout, HTTP status). Codes:
  // name resolution, connect and an HTTP 5xx or 429: kUnavailable; an HTTP status that
  // refuses the request: kInvalidInput; anything else: kIo.
  Result<> Post(const std::string& body);

  const WebhookOptions opt_;
  const Url url_;
  // https: the verifying TLS context (CA bundle loaded once), made by the first POST that
  // gets it loaded; the sending thread's only.
  std::unique_ptr<boost::asio::ssl::context> tls_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<std::pair<std::string, DeliveryDone>> queue_ DW_GUARDED_BY(mu_);
  bool in_flight_ DW_GUARDED_BY(mu_) = false;
  bool stop_ DW_GUARDED_BY(mu_) = false;
  OutputStats stats_ DW_GUARDED_BY(mu_);
  std::string last_error_ DW_GUARDED_BY(mu_);
  std::thread thread_;

 public:
  std::string last_error() const;
};

}  // namespace driftwatch
