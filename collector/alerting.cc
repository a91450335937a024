#include "collector/alerting.h"

#include <cstdio>

#include "lib/rule_loader.h"
#include "lib/log.h"

namespace driftwatch::collector {

std::expected<std::shared_ptr<const RuleSet>, std::string> Alerting::LoadRules() const {
  // The shipped macros and lists always come first; then the shipped rules or the user's.
  std::vector<std::string> files = ShippedRuleFiles();
  if (!opt_.rule_files.empty()) {
    files.resize(1);
    files.insert(files.end(), opt_.rule_files.begin(), opt_.rule_files.end());
  }
  auto r = RuleSet::Load(files);
  if (!r) {
    std::string msg = "rules not loaded:";
    for (const auto& d : r.error()) msg += "\n  " + d.ToString();
    return std::unexpected(msg);
  }
  return std::shared_ptr<const RuleSet>(std::move(*r));
}

std::expected<std::shared_ptr<const ImagePolicy>, std::string> Alerting::LoadPolicy() const {
  if (opt_.approved_images.empty()) return std::shared_ptr<const ImagePolicy>();
  auto p = ImagePolicy::LoadFiles(opt_.approved_images);
  if (!p) return std::unexpected("approved images: " + p.error());
  for (const auto& w : p->warnings())
    LogWarn("approved images: %s\n", w.c_str());
  return std::make_shared<const ImagePolicy>(std::move(*p));
}

std::expected<std::unique_ptr<Alerting>, std::string> Alerting::Start(const AlertingOptions& opt) {
  std::unique_ptr<Alerting> a(new Alerting(opt));
  auto rules = a->LoadRules();
  if (!rules) return std::unexpected(rules.error());
  auto policy = a->LoadPolicy();
  if (!policy) return std::unexpected(policy.error());
  auto store = AlertStore::Open(opt.db);
  if (!store) return std::unexpected("alerts table in " + opt.db + ": " + store.error());
  a->store_ = std::move(*store);
  for (const auto& path : opt.outputs) {
    auto o = StreamOutput::Open(path);
    if (!o) return std::unexpected("alert output " + path + ": " + o.error());
    a->outputs_.emplace_back(path == "-" ? "stdout" : "file:" + path, std::move(*o));
  }
  for (const auto& url : opt.webhooks) {
    WebhookOptions wo;
    wo.url = url;
    wo.ca_file = opt.webhook_ca;
    auto w = WebhookOutput::Create(wo);
    if (!w) return std::unexpected("webhook " + url + ": " + w.error());
    (*w)->Start();
    a->outputs_.emplace_back("webhook:" + url, std::move(*w));
  }
  a->rules_loaded_ = (*rules)->enabled_count();
  a->detector_ = std::make_unique<Detector>(*rules);
  if (*policy) a->detector_->SetImagePolicy(*policy);
  a->thread_ = std::thread([p = a.get()] { p->Run(); });
  return a;
}

Alerting::~Alerting() { Stop(); }

void Alerting::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& [name, o] : outputs_)
    if (auto* w = dynamic_cast<WebhookOutput*>(o.get())) w->Drain(std::chrono::seconds(5));
}

void Alerting::Submit(std::shared_ptr<const PreparedBatch> batch) {
  size_t n = batch->events.size();
  if (n == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queued_ + n > opt_.queue_events) {
      // Detection is far behind (a burst beyond queue_events): the events are stored; count what was not
      // looked at rather than stall ingest.
      counters_.queue_drops += n;
      return;
    }
    queued_ += n;
    queue_.push_back(std::move(batch));
  }
  cv_.notify_one();
}

std::expected<size_t, std::string> Alerting::Reload() {
  auto rules = LoadRules();
  auto policy = rules ? LoadPolicy() : std::expected<std::shared_ptr<const ImagePolicy>, std::string>();
  if (!rules || !policy) {
    ++counters_.reload_failures;
    return std::unexpected((!rules ? rules.error() : policy.error()) +
                           "\nkeeping the rules and policy loaded before");
  }
  size_t n = (*rules)->enabled_count();
  {
    std::lock_guard<std::mutex> lock(mu_);
    new_rules_ = *rules;
    new_policy_ = *policy;
  }
  cv_.notify_one();
  ++counters_.reloads;
  rules_loaded_ = n;
  return n;
}

std::map<std::string, uint64_t> Alerting::AlertsByRule() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_rule_;
}

std::vector<std::pair<std::string, OutputStats>> Alerting::OutputStatsList() const {
  std::vector<std::pair<std::string, OutputStats>> out;
  for (const auto& [name, o] : outputs_) out.emplace_back(name, o->Stats());
  return out;
}

void Alerting::Run() {
  for (;;) {
    std::shared_ptr<const PreparedBatch> item;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty() || new_rules_; });
      if (new_rules_) {
        detector_->SetRules(std::move(new_rules_));
        detector_->SetImagePolicy(std::move(new_policy_));
        new_rules_.reset();
        new_policy_.reset();
      }
      if (queue_.empty()) {
        if (stop_) return;
        continue;
      }
      item = std::move(queue_.front());
      queue_.pop_front();
      queued_ -= item->events.size();
    }
    uint64_t before_ns = detector_->stats().eval_ns;
    v1::Event ev;
    for (size_t i = 0; i < item->events.size(); ++i) {
      ev.Clear();
      if (!DecodePreparedEvent(*item, i, &ev)) continue;  // validated at ingest: not expected
      detector_->OnEvent(item->node, ev, [this](Alert&& a) {
        std::string json = FalcoJson(a);
        auto fresh = store_->Insert(a, json);
        if (!fresh) {
          if (counters_.store_errors++ == 0)
            LogWarn("storing an alert: %s\n", fresh.error().c_str());
        } else if (!*fresh) {
          return;  // stored before (an event resent after a collector restart)
        }
        ++counters_.alerts;
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++by_rule_[a.rule];
        }
        for (auto& [name, o] : outputs_) o->Emit(a, json);
      });
    }
    counters_.events += item->events.size();
    counters_.eval_ns += detector_->stats().eval_ns - before_ns;
  }
}

}  // namespace driftwatch::collector
