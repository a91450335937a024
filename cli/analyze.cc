// `driftwatch analyze`: offline analysis of audit logs and sensor captures, through the
// same parser, reassembler and attribution as the live sensor.
#include "cli/analyze.h"

#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "lib/audit/audit_log_reader.h"
#include "lib/audit/audit_reassembler.h"
#include "lib/audit/capture.h"
#include "lib/base/clock.h"
#include "lib/detect/detect.h"
#include "lib/detect/image_policy.h"
#include "lib/rules/rule_loader.h"
#include "lib/base/diagnostics.h"
#include "lib/event/event_json.h"
#include "lib/event/event_view.h"
#include "lib/audit/log_input.h"
#include "lib/event/process_tree.h"
#include "lib/base/terminal_text.h"

namespace driftwatch::cli {
namespace {

// Per-container drift summary: what `analyze` prints without --events until rules are
// loaded.
struct ContainerSummary {
  uint64_t execs = 0, failed = 0, chmods = 0, plumbing = 0, writes = 0;
  int64_t first_ns = 0, last_ns = 0;
  std::set<std::string> exes;
};

class Analysis {
 public:
  // REQUIRES: `detector` is null unless alerts are wanted (neither --events nor --summary).
  Analysis(const AnalyzeOptions& opt, std::unique_ptr<Detector> detector)
      : opt_(opt), detector_(std::move(detector)) {
    out_.reserve(1 << 20);
  }

  // Every event passes here, from logs and captures alike. Captures also carry file writes,
  // container reports (kept, to name the containers of later events) and sensor status.
  void OnEvent(v1::Event& ev) {
    const Kind kind = KindOf(ev);
    if (kind == Kind::kContainer) containers_[ev.container().id()] = ev.container();
    if (kind == Kind::kExec || kind == Kind::kChmod || kind == Kind::kNetwork) {
      if (ev.container_id().empty()) tree_.Attribute(&ev);
      ++(kind == Kind::kExec ? execs_ : kind == Kind::kChmod ? chmods_ : network_);
    } else if (kind == Kind::kWrite) {
      ++writes_;
    } else if (!opt_.events && !detector_) {
      return;
    }
    if (ev.id().node().empty() && !opt_.node.empty()) ev.mutable_id()->set_node(opt_.node);
    // Captures keep the sensor's own numbering; audit logs are numbered in reading order.
    if (ev.id().seq() == 0) ev.mutable_id()->set_seq(++seq_);
    if (detector_) {
      const std::string& node = ev.id().node().empty() ? kLocalNode : ev.id().node();
      detector_->OnEvent(node, ev, [this](Alert&& a) {
        AppendFalcoJson(a, &out_);
        out_.push_back('\n');
        ++alerts_;
      });
      if (out_.size() > (1 << 20)) FlushOut();
    } else if (opt_.events) {
      auto c = containers_.find(ev.container_id());
      const v1::ContainerInfo* info = c == containers_.end() ? nullptr : &c->second;
      if (AppendEventJson(ev, info, &out_)) out_.push_back('\n');
      if (out_.size() > (1 << 20)) FlushOut();
    } else {
      Summarize(ev);
    }
  }

  bool Run(const std::vector<std::string>& inputs) {
    bool ok = true;
    AuditReassembler reassembler({}, [this](v1::Event& ev) { OnEvent(ev); }, &diag_);
    for (const std::string& path : OrderInputs(inputs)) {
      auto opened = InputStream::Open(path);
      if (!opened) {
        std::fprintf(stderr, "driftwatch analyze: %s\n", opened.error().c_str());
        ok = false;
        continue;
      }
      std::unique_ptr<InputStream> in = std::move(*opened);
      if (IsCapture(in.get())) {
        v1::Event ev;
        Result<bool> more;
        while ((more = ReadCaptureEvent(in.get(), &ev)) && *more) OnEvent(ev);
        if (!more) {
          diag_.Report(&in->name(), 0,
                       "capture: " + more.error().message() + " (rest of file skipped)");
          ok = false;
        }
        continue;
      }
      // One reassembler across files: an event may straddle a log rotation.
      if (!ReadAuditLog(in.get(), &reassembler, &diag_, &log_stats_)) ok = false;
    }
    reassembler.Flush();
    FlushOut();
    if (opt_.summary) PrintSummary();
    const auto& rs = reassembler.stats();
    std::fprintf(stderr,
                 "driftwatch analyze: %llu lines, %llu records, %llu events (%llu exec, %llu "
                 "chmod, %llu file write, %llu network), %llu input errors, %llu evicted "
                 "unfinished\n",
                 ull(log_stats_.lines), ull(rs.records), ull(execs_ + chmods_ + writes_ + network_),
                 ull(execs_), ull(chmods_), ull(writes_), ull(network_), ull(diag_.count()),
                 ull(rs.evictions));
    if (detector_) {
      std::string by_rule;
      for (const auto& [rule, n] : detector_->stats().by_rule)
        by_rule += (by_rule.empty() ? "" : ", ") + rule + " " + std::to_string(n);
      std::fprintf(stderr, "driftwatch analyze: %llu alerts%s%s%s\n", ull(alerts_),
                   by_rule.empty() ? "" : " (", by_rule.c_str(), by_rule.empty() ? "" : ")");
      // Matches the rules' own exceptions let pass: said, not hidden.
      if (const uint64_t n = detector_->stats().allowed; n != 0)
        std::fprintf(stderr, "driftwatch analyze: %llu more matches excepted by the rules' "
                             "exceptions\n", ull(n));
    }
    return ok;
  }

 private:
  static unsigned long long ull(uint64_t v) { return v; }

  void FlushOut() {
    if (!out_.empty()) std::fwrite(out_.data(), 1, out_.size(), stdout);
    out_.clear();
  }

  void Summarize(const v1::Event& ev) {
    ContainerSummary& s = summary_[ev.container_id()];
    if (s.first_ns == 0) s.first_ns = ev.time_ns();
    s.last_ns = ev.time_ns();
    const Kind kind = KindOf(ev);
    if (kind == Kind::kChmod) {
      ++s.chmods;
      return;
    }
    // The summary is of drift: execs, chmods, writes.
    if (kind == Kind::kNetwork || kind == Kind::kRead) return;
    if (kind == Kind::kWrite) {
      ++s.writes;
      return;
    }
    const v1::ProcessExec& e = ev.exec();
    if (e.runtime_plumbing()) {
      ++s.plumbing;
      return;
    }
    ++s.execs;
    if (!e.success()) ++s.failed;
    if (s.exes.size() < 10000) s.exes.insert(e.success() ? e.exe() : e.path());
  }

  void PrintSummary() {
    std::printf("%-24s %-10s %-24s %8s %7s %8s %6s %7s  %-24s %s\n", "CONTAINER", "NAMESPACE",
                "POD", "EXECS", "FAILED", "CHMOD+X", "EXES", "WRITES", "FIRST", "LAST");
    for (const auto& [id, s] : summary_) {
      std::string ns = tree_.RuntimeNamespace(id), pod;
      if (auto c = containers_.find(id); c != containers_.end()) {
        if (!c->second.pod_namespace().empty()) ns = c->second.pod_namespace();
        pod = c->second.pod_name();
      }
      // Ids, namespaces and pods come from the logs and captures read: escaped.
      std::printf("%-24s %-10s %-24s %8llu %7llu %8llu %6zu %7llu  %-24s %s\n",
                  TerminalEscape(ShortContainerId(id)).c_str(),
                  ns.empty() ? "-" : TerminalEscape(ns).c_str(),
                  pod.empty() ? "-" : TerminalEscape(pod).c_str(), ull(s.execs), ull(s.failed),
                  ull(s.chmods), s.exes.size(), ull(s.writes),
                  FormatIsoTime(s.first_ns).substr(0, 23).c_str(),
                  FormatIsoTime(s.last_ns).substr(0, 23).c_str());
    }
  }

  const AnalyzeOptions& opt_;
  Diagnostics diag_;
  ProcessTree tree_;
  LogReadStats log_stats_;
  static inline const std::string kLocalNode = "local";
  std::unique_ptr<Detector> detector_;
  uint64_t seq_ = 0, execs_ = 0, chmods_ = 0, writes_ = 0, network_ = 0, alerts_ = 0;
  std::map<std::string, v1::ContainerInfo> containers_;  // from captures' container reports
  std::string out_;
  std::map<std::string, ContainerSummary> summary_;
};

}  // namespace

int RunAnalyze(const AnalyzeOptions& opt) {
  std::vector<std::string> inputs = opt.inputs;
  if (inputs.empty()) inputs.push_back("-");
  if (opt.events && opt.summary) {
    std::fprintf(stderr, "driftwatch analyze: --events and --summary exclude each other\n");
    return 2;
  }
  std::unique_ptr<Detector> detector;
  if (!opt.events && !opt.summary) {
    // The collector's load order (lib/rules/rule_loader.h RuleFilesToLoad).
    const std::vector<std::string> files = RuleFilesToLoad(opt.rules, opt.no_shipped_rules);
    if (files.empty()) {
      std::fprintf(stderr, "driftwatch analyze: no rule files (--no-shipped-rules needs --rules)\n");
      return 2;
    }
    auto rules = RuleSet::Load(files);
    if (!rules) {
      for (const auto& d : rules.error()) std::fprintf(stderr, "%s\n", d.ToString().c_str());
      std::fprintf(stderr, "driftwatch analyze: rules not loaded\n");
      return 2;
    }
    detector = std::make_unique<Detector>(std::shared_ptr<const RuleSet>(std::move(*rules)));
    if (!opt.approved_images.empty()) {
      auto policy = ImagePolicy::LoadFiles(opt.approved_images);
      if (!policy) {
        std::fprintf(stderr, "driftwatch analyze: %s\n", policy.error().c_str());
        return 2;
      }
      for (const auto& w : policy->warnings()) std::fprintf(stderr, "driftwatch analyze: %s\n", w.c_str());
      detector->SetImagePolicy(std::make_shared<const ImagePolicy>(std::move(*policy)));
    }
  }
  Analysis a(opt, std::move(detector));
  return a.Run(inputs) ? 0 : 1;
}

}  // namespace driftwatch::cli
