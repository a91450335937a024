#include "sensor/respond.h"

#include <algorithm>

#include "lib/base/log.h"
#include "lib/k8s/cri_client.h"

namespace driftwatch::sensor {
namespace {

// Containers remembered as acted on; beyond it the oldest are forgotten (a container id is
// not reused, so forgetting one only allows asking a long-stopped container again).
constexpr size_t kActedMax = 4096;

}  // namespace

Result<std::unique_ptr<Responder>> Responder::Start(RespondOptions options) {
  if (options.max_per_minute < 1)
    return std::unexpected(Error::InvalidInput("--respond-max-per-minute must be at least 1"));
  if (options.stop_timeout_s < 0)
    return std::unexpected(Error::InvalidInput("--respond-stop-timeout-s must not be negative"));
  if (options.cri_endpoint.empty())
    return std::unexpected(Error::InvalidInput(
        "--respond stop: no CRI runtime answered (the container registry found none): "
        "give --cri-endpoint"));
  auto cri = CriClient::Connect(options.cri_endpoint, options.cri_timeout);
  if (!cri) return std::unexpected(cri.error().Prefix("--respond stop"));
  std::unique_ptr<Responder> r(new Responder(std::move(options), std::move(*cri)));
  r->thread_ = std::thread([p = r.get()] { p->Run(); });
  return r;
}

Responder::Responder(RespondOptions options, std::unique_ptr<CriClient> cri)
    : options_(std::move(options)), cri_(std::move(cri)) {
  MutexLock lock(mu_);
  tokens_ = options_.max_per_minute;
  refilled_ = std::chrono::steady_clock::now();
}

Responder::~Responder() {
  {
    MutexLock lock(mu_);
    stopping_ = true;
    counters_.failed += queue_.size();
    for (const Job& j : queue_)
      LogWarn("respond: container %s not stopped: the sensor is stopping\n",
              j.container_id.c_str());
    queue_.clear();
  }
  cv_.NotifyAll();
  if (thread_.joinable()) thread_.join();
}

bool Responder::TakeToken(std::chrono::steady_clock::time_point now) {
  const double per_s = options_.max_per_minute / 60.0;
  tokens_ = std::min<double>(options_.max_per_minute,
                             tokens_ + per_s * std::chrono::duration<double>(now - refilled_).count());
  refilled_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

void Responder::Request(const std::string& container_id, const std::string& why) {
  ++counters_.requested;
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    if (acted_.contains(container_id)) {
      ++counters_.repeat;
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    std::string refused;
    if (queue_.size() >= options_.queue) {
      ++counters_.queue_full;
      refused = std::to_string(queue_.size()) + " stops queued already";
    } else if (!TakeToken(now)) {
      ++counters_.rate_limited;
      refused = "over --respond-max-per-minute " + std::to_string(options_.max_per_minute);
    }
    if (!refused.empty()) {
      // A container that keeps running drift keeps being refused: a line a second at most,
      // the rest counted (and said in the next line).
      if (now - last_refusal_log_ >= std::chrono::seconds(1)) {
        LogWarn("respond: container %s not stopped (%s): %s%s\n", container_id.c_str(),
                why.c_str(), refused.c_str(),
                refusals_unlogged_ == 0
                    ? ""
                    : (" (" + std::to_string(refusals_unlogged_) +
                       " more refused since the last such line)").c_str());
        last_refusal_log_ = now;
        refusals_unlogged_ = 0;
      } else {
        ++refusals_unlogged_;
      }
      return;
    }
    acted_.insert(container_id);
    acted_order_.push_back(container_id);
    if (acted_order_.size() > kActedMax) {
      acted_.erase(acted_order_.front());
      acted_order_.pop_front();
    }
    queue_.push_back({container_id, why});
  }
  cv_.NotifyOne();
}

void Responder::Run() {
  for (;;) {
    Job job;
    {
      MutexLock lock(mu_);
      cv_.Wait(lock, [&]() DW_REQUIRES(mu_) { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    auto r = cri_->StopContainer(job.container_id, options_.stop_timeout_s);
    if (r) {
      ++counters_.stopped;
      LogWarn("respond: container %s stopped through %s (%s)\n", job.container_id.c_str(),
              cri_->endpoint().c_str(), job.why.c_str());
    } else {
      ++counters_.failed;
      LogError("respond: container %s not stopped (%s): %s\n", job.container_id.c_str(),
               job.why.c_str(), r.error().message().c_str());
    }
  }
}

}  // namespace driftwatch::sensor
