// `driftwatch analyze`: offline analysis of audit logs and sensor captures, through the
// same parser, reassembler and attribution as the live sensor.
#include "cli/analyze.h"

#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "lib/audit_log_reader.h"
#include "lib/audit_reassembler.h"
#include "lib/capture.h"
#include "lib/diagnostics.h"
#include "lib/event_json.h"
#include "lib/log_input.h"
#include "lib/process_tree.h"

namespace driftwatch::cli {
namespace {

// Per-container drift summary: what `analyze` prints without --events until rules are
// loaded.
struct ContainerSummary {
  uint64_t execs = 0, failed = 0, chmods = 0, plumbing = 0;
  int64_t first_ns = 0, last_ns = 0;
  std::set<std::string> exes;
};

class Analysis {
 public:
  explicit Analysis(const AnalyzeOptions& opt) : opt_(opt) { out_.reserve(1 << 20); }

  // Every exec and chmod event passes here, from logs and captures alike.
  void OnEvent(v1::Event& ev) {
    if (!ev.has_exec() && !ev.has_chmod()) return;
    if (ev.container_id().empty()) tree_.Attribute(&ev);
    if (ev.id().node().empty() && !opt_.node.empty()) ev.mutable_id()->set_node(opt_.node);
    ev.mutable_id()->set_seq(++seq_);
    if (ev.has_exec()) ++execs_; else ++chmods_;
    if (opt_.events) {
      if (AppendEventJson(ev, &out_)) out_.push_back('\n');
      if (out_.size() > (1 << 20)) FlushOut();
    } else {
      Summarize(ev);
    }
  }

  bool Run(const std::vector<std::string>& inputs) {
    bool ok = true;
    AuditReassembler reassembler({}, [this](v1::Event& ev) { OnEvent(ev); }, &diag_);
    for (const std::string& path : OrderInputs(inputs)) {
      std::string err;
      auto in = InputStream::Open(path, &err);
      if (!in) {
        std::fprintf(stderr, "driftwatch analyze: %s\n", err.c_str());
        ok = false;
        continue;
      }
      if (IsCapture(in.get())) {
        v1::Event ev;
        int rc;
        while ((rc = ReadCaptureEvent(in.get(), &ev, &err)) == 1) OnEvent(ev);
        if (rc < 0) {
          diag_.Report(&in->name(), 0, "capture: " + err + " (rest of file skipped)");
          ok = false;
        }
        continue;
      }
      // One reassembler across files: an event may straddle a log rotation.
      if (!ReadAuditLog(in.get(), &reassembler, &diag_, &log_stats_)) ok = false;
    }
    reassembler.Flush();
    FlushOut();
    if (!opt_.events) PrintSummary();
    const auto& rs = reassembler.stats();
    std::fprintf(stderr,
                 "driftwatch analyze: %llu lines, %llu records, %llu events (%llu exec, %llu "
                 "chmod), %llu input errors, %llu evicted unfinished\n",
                 ull(log_stats_.lines), ull(rs.records), ull(execs_ + chmods_), ull(execs_),
                 ull(chmods_), ull(diag_.count()), ull(rs.evictions));
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
    if (ev.has_chmod()) {
      ++s.chmods;
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
    std::printf("%-24s %-10s %8s %7s %8s %6s  %-24s %s\n", "CONTAINER", "NAMESPACE", "EXECS",
                "FAILED", "CHMOD+X", "EXES", "FIRST", "LAST");
    for (const auto& [id, s] : summary_) {
      std::printf("%-24s %-10s %8llu %7llu %8llu %6zu  %-24s %s\n", ShortContainerId(id).c_str(),
                  tree_.RuntimeNamespace(id).empty() ? "-" : tree_.RuntimeNamespace(id).c_str(),
                  ull(s.execs), ull(s.failed), ull(s.chmods), s.exes.size(),
                  FormatIsoTime(s.first_ns).substr(0, 23).c_str(),
                  FormatIsoTime(s.last_ns).substr(0, 23).c_str());
    }
  }

  const AnalyzeOptions& opt_;
  Diagnostics diag_;
  ProcessTree tree_;
  LogReadStats log_stats_;
  uint64_t seq_ = 0, execs_ = 0, chmods_ = 0;
  std::string out_;
  std::map<std::string, ContainerSummary> summary_;
};

}  // namespace

int RunAnalyze(const AnalyzeOptions& opt) {
  std::vector<std::string> inputs = opt.inputs;
  if (inputs.empty()) inputs.push_back("-");
  Analysis a(opt);
  return a.Run(inputs) ? 0 : 1;
}

}  // namespace driftwatch::cli
