// respond: the optional response to drift the sensor prevented (--respond stop): the
// container that tried to run a drifted binary is stopped through the CRI (StopContainer:
// SIGTERM, SIGKILL after --respond-stop-timeout-s), as its orchestrator would stop it; a
// Kubernetes pod then restarts it from its image, without the drift.
//
//   ExecGuard report ──Request(container)──► queue ──thread──► CRI StopContainer
//
// Never on the verdict path: Request only queues (bounded) and returns; one thread makes
// the CRI calls, one at a time, each bounded by the client's deadline plus the grace. A
// container is stopped once (asked again while stopped or being stopped: counted as
// `repeat`), at most --respond-max-per-minute containers per minute on the node (a token
// bucket: a storm of drift in many containers does not stop the node's whole workload at
// once); every request not carried out is counted by why, and logged (a line a second at
// most: a container running drift in a loop must not flood the log).
//
// Thread-safety: Request and counters() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "lib/base/mutex.h"
#include "lib/base/result.h"

namespace driftwatch {
class CriClient;
}

namespace driftwatch::sensor {

struct RespondOptions {
  std::string cri_endpoint;  // the runtime the container registry talks to
  std::chrono::milliseconds cri_timeout{5000};
  int64_t stop_timeout_s = 10;  // grace between SIGTERM and SIGKILL
  int max_per_minute = 6;
  size_t queue = 64;
};

struct RespondCounters {
  std::atomic<uint64_t> requested{0};
  std::atomic<uint64_t> stopped{0};       // StopContainer succeeded
  std::atomic<uint64_t> failed{0};        // the CRI refused or did not answer
  std::atomic<uint64_t> rate_limited{0};  // over --respond-max-per-minute: not stopped
  std::atomic<uint64_t> queue_full{0};    // not stopped
  std::atomic<uint64_t> repeat{0};        // stopped or being stopped already
};

class Responder {
 public:
  // Connects to the CRI (a runtime that does not answer is an error naming its socket).
  static Result<std::unique_ptr<Responder>> Start(RespondOptions options);
  ~Responder();  // finishes the call in progress, drops what is queued (counted as failed)
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

  // Stop `container_id` because of `why` (said in the log). Never blocks on the CRI.
  void Request(const std::string& container_id, const std::string& why);

  const RespondCounters& counters() const { return counters_; }
  const RespondOptions& options() const { return options_; }

 private:
  Responder(RespondOptions options, std::unique_ptr<CriClient> cri);
  void Run();
  bool TakeToken(std::chrono::steady_clock::time_point now) DW_REQUIRES(mu_);

  const RespondOptions options_;
  std::unique_ptr<CriClient> cri_;
  RespondCounters counters_;

  Mutex mu_;
  CondVar cv_;
  struct Job {
    std::string container_id, why;
  };
  std::deque<Job> queue_ DW_GUARDED_BY(mu_);
  std::set<std::string> acted_ DW_GUARDED_BY(mu_);  // containers stopped or being stopped
  std::deque<std::string> acted_order_ DW_GUARDED_BY(mu_);  // oldest first, to bound acted_
  double tokens_ DW_GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point refilled_ DW_GUARDED_BY(mu_);
  bool stopping_ DW_GUARDED_BY(mu_) = false;
  std::chrono::steady_clock::time_point last_refusal_log_ DW_GUARDED_BY(mu_);
  uint64_t refusals_unlogged_ DW_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace driftwatch::sensor
