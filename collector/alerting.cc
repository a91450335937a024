#include "collector/alerting.h"

#include <algorithm>
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

void Alerting::SetInventoryRequester(InventoryRequester fn) {
  std::lock_guard<std::mutex> lock(mu_);
  request_inventory_ = std::move(fn);
}

void Alerting::SubmitInventory(const std::string& node, v1::InventoryReply reply) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    replies_.emplace_back(node, std::move(reply));
  }
  cv_.notify_one();
}

void Alerting::WantInventory(const Alert& a) {
  if (opt_.inventory_tag.empty() || a.container_id.empty() || a.container_id == "host") return;
  if (std::find(a.tags.begin(), a.tags.end(), opt_.inventory_tag) == a.tags.end()) return;
  auto now = Clock::now();
  auto [it, fresh] = wanted_.try_emplace({a.node, a.container_id});
  InventoryWant& w = it->second;
  if (fresh) {
    w.node = a.node;
    w.container_id = a.container_id;
    w.first = now;
  }
  // The newest names: a pod sandbox's are known only after its first events.
  if (!a.container_name.empty()) w.container_name = a.container_name;
  if (!a.pod_name.empty()) {
    w.pod_name = a.pod_name;
    w.pod_namespace = a.pod_namespace;
  }
  w.rules.insert(a.rule);
  w.last = now;
}

Alerting::Clock::time_point Alerting::NextInventoryDue() const {
  auto due = Clock::now() + std::chrono::hours(1);
  for (const auto& [key, w] : wanted_)
    due = std::min({due, w.last + opt_.inventory_quiet, w.first + opt_.inventory_max_delay});
  for (const auto& [id, asked] : asked_) due = std::min(due, asked.second + opt_.inventory_timeout);
  return due;
}

void Alerting::RequestDueInventories(Clock::time_point now) {
  for (auto it = asked_.begin(); it != asked_.end();) {
    if (now < it->second.second + opt_.inventory_timeout) {
      ++it;
      continue;
    }
    ++counters_.inventories_failed;
    LogWarn("inventory of container %s on node %s: no reply within %llds\n",
            it->second.first.container_id.c_str(), it->second.first.node.c_str(),
            static_cast<long long>(
                std::chrono::duration_cast<std::chrono::seconds>(opt_.inventory_timeout).count()));
    it = asked_.erase(it);
  }
  InventoryRequester request;
  {
    std::lock_guard<std::mutex> lock(mu_);
    request = request_inventory_;
  }
  for (auto it = wanted_.begin(); it != wanted_.end();) {
    InventoryWant& w = it->second;
    if (now < w.last + opt_.inventory_quiet && now < w.first + opt_.inventory_max_delay) {
      ++it;
      continue;
    }
    const uint64_t id = next_command_id_++;
    auto sent = request ? request(w.node, w.container_id, id)
                        : std::unexpected(std::string("no sensor streams"));
    if (sent) {
      ++counters_.inventories_requested;
      asked_.emplace(id, std::pair{std::move(w), now});
    } else {
      ++counters_.inventories_failed;
      LogWarn("inventory of container %s on node %s not asked for: %s\n",
              w.container_id.c_str(), w.node.c_str(), sent.error().c_str());
    }
    it = wanted_.erase(it);
  }
}

void Alerting::StoreInventory(const std::string& node, const v1::InventoryReply& reply) {
  auto it = asked_.find(reply.command_id());
  if (it == asked_.end() || it->second.first.node != node) {
    LogWarn("node %s: inventory reply to command %llu, which is not waiting for one: ignored\n",
            node.c_str(), static_cast<unsigned long long>(reply.command_id()));
    return;
  }
  const InventoryWant& w = it->second.first;
  StoredInventory inv;
  inv.taken_ns = NowNs();
  inv.node = node;
  inv.container_id = w.container_id;
  inv.container_name = w.container_name;
  inv.pod_name = w.pod_name;
  inv.pod_namespace = w.pod_namespace;
  for (const std::string& r : w.rules) {
    if (!inv.rules.empty()) inv.rules += ',';
    inv.rules += r;
  }
  inv.error = reply.error();
  inv.entries = static_cast<uint64_t>(reply.entries_size());
  reply.SerializeToString(&inv.reply);
  asked_.erase(it);
  if (!inv.error.empty()) {
    ++counters_.inventories_failed;
    LogWarn("inventory of container %s on node %s: the sensor says: %s\n",
            inv.container_id.c_str(), node.c_str(), inv.error.c_str());
  }
  if (auto st = store_->InsertInventory(inv); !st) {
    ++counters_.inventories_failed;
    LogWarn("storing an inventory: %s\n", st.error().c_str());
    return;
  }
  if (inv.error.empty()) {
    ++counters_.inventories_stored;
    LogInfo("inventory of container %s on node %s: %llu changed paths\n",
            inv.container_id.c_str(), node.c_str(), static_cast<unsigned long long>(inv.entries));
  }
}

void Alerting::Run() {
  for (;;) {
    std::shared_ptr<const PreparedBatch> item;
    std::deque<std::pair<std::string, v1::InventoryReply>> replies;
    bool stop = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, NextInventoryDue(), [this] {
        return stop_ || !queue_.empty() || new_rules_ || !replies_.empty();
      });
      if (new_rules_) {
        detector_->SetRules(std::move(new_rules_));
        detector_->SetImagePolicy(std::move(new_policy_));
        new_rules_.reset();
        new_policy_.reset();
      }
      replies.swap(replies_);
      if (!queue_.empty()) {
        item = std::move(queue_.front());
        queue_.pop_front();
        queued_ -= item->events.size();
      } else {
        stop = stop_;
      }
    }
    for (const auto& [node, reply] : replies) StoreInventory(node, reply);
    if (stop) return;
    RequestDueInventories(Clock::now());
    if (!item) continue;
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
        WantInventory(a);
        for (auto& [name, o] : outputs_) o->Emit(a, json);
      });
    }
    counters_.events += item->events.size();
    counters_.eval_ns += detector_->stats().eval_ns - before_ns;
  }
}

}  // namespace driftwatch::collector
