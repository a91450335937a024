#include "cli/alerts.h"

#include <cstdio>
#include <string>

#include "lib/alerts/alert.h"
#include "lib/alerts/alert_store.h"
#include "lib/alerts/pg_alert_reader.h"
#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/event/event_json.h"
#include "lib/store/event_store.h"
#include "lib/base/time_arg.h"
#include "lib/base/terminal_text.h"

namespace driftwatch::cli {
namespace {

// Every field but the time and priority comes from sensors, containers and rule outputs:
// escaped (lib/base/terminal_text.h), which also keeps each row one line.
void PrintRow(const StoredAlert& a) {
  std::string t = FormatIsoTime(a.time_ns).substr(0, 19) + "Z";
  std::string container = a.container_name.empty() ? ShortContainerId(a.container_id)
                                                   : a.container_name;
  std::string pod = a.pod_name.empty() ? "-" : a.pod_namespace + "/" + a.pod_name;
  // An aggregate: how many ("+" while its window still counts repeats), and over when.
  const std::string count = std::to_string(a.count) + (a.open ? "+" : "");
  const std::string span = a.count > 1 ? "  [" + FormatIsoTime(a.first_ns).substr(0, 19) +
                                             "Z .. " + FormatIsoTime(a.last_ns).substr(0, 19) +
                                             "Z]"
                                       : "";
  std::printf("%-20s  %-13s  %-16s  %-20s  %-30s  %-6s  %s\n    %s%s\n", t.c_str(),
              std::string(PriorityName(a.priority)).c_str(), TerminalEscape(a.node).c_str(),
              TerminalEscape(container).c_str(), TerminalEscape(pod).c_str(), count.c_str(),
              TerminalEscape(a.rule).c_str(), TerminalEscape(a.message).c_str(), span.c_str());
}

// Says "driftwatch alerts: what" on stderr; returns `status`.
int Say(int status, const std::string& what) {
  std::fprintf(stderr, "driftwatch alerts: %s\n", what.c_str());
  return status;
}

// --db as messages name it: a URI without its password.
std::string DbName(const std::string& db) { return IsPgUri(db) ? RedactPgUri(db) : db; }

// Flushes stdout: 0, or 1 when the output could not be written.
int Flushed() { return std::fflush(stdout) == 0 ? 0 : 1; }

std::string AllowedJson(const StoredAllowedDrift& d) {
  auto q = [](const std::string& v) { return JsonQuote(v); };
  return "{\"day\":" + q(d.day) + ",\"node\":" + q(d.node) + ",\"namespace\":" +
         q(d.pod_namespace) + ",\"workload\":" + q(d.workload) + ",\"container\":" +
         q(d.container_name) + ",\"image\":" + q(d.image) + ",\"rule\":" + q(d.rule) +
         ",\"allowed_by\":" + q(d.allowed_by) + ",\"subject\":" + q(d.subject) +
         ",\"count\":" + std::to_string(d.count) + ",\"first_time\":" +
         q(FormatIsoTime(d.first_ns)) + ",\"last_time\":" + q(FormatIsoTime(d.last_ns)) +
         ",\"last_pod\":" + q(d.pod_name) + ",\"last_container_id\":" + q(d.container_id) +
         ",\"last_output\":" + q(d.message) + "}";
}

int RunAllowed(const AlertsOptions& opt) {
  if (!opt.container.empty() || !opt.rule.empty() || !opt.priority.empty() ||
      !opt.until.empty()) {
    return Say(2, "--allowed: filters by --node, --pod, --since and --limit only");
  }
  AllowedDriftQuery q;
  q.node = opt.node;
  q.pod = opt.pod;
  q.limit = opt.limit;
  std::optional<int64_t> until;
  if (auto r = ParseTimeRange(opt.since, "", NowNs(), &q.since_ns, &until); !r)
    return Say(2, r.error().message());
  auto reader = OpenAlertQueries(opt.db);
  if (!reader) return Say(1, reader.error().message());
  if (opt.table) {
    std::printf("%-10s  %-16s  %-30s  %-20s  %-8s  %-36s  %s\n", "DAY", "NODE",
                "NAMESPACE/WORKLOAD", "CONTAINER", "COUNT", "RULE", "ALLOWED BY");
  }
  auto n = (*reader)->QueryAllowed(q, [&](const StoredAllowedDrift& d) {
    if (opt.table) {
      std::printf("%-10s  %-16s  %-30s  %-20s  %-8llu  %-36s  %s\n    %s\n", d.day.c_str(),
                  TerminalEscape(d.node).c_str(),
                  TerminalEscape(d.pod_namespace + "/" + d.workload).c_str(),
                  TerminalEscape(d.container_name).c_str(),
                  static_cast<unsigned long long>(d.count), TerminalEscape(d.rule).c_str(),
                  TerminalEscape(d.allowed_by).c_str(), TerminalEscape(d.subject).c_str());
    } else {
      const std::string json = AllowedJson(d);
      std::fwrite(json.data(), 1, json.size(), stdout);
      std::fputc('\n', stdout);
    }
  });
  if (!n) return Say(1, DbName(opt.db) + ": " + n.error().message());
  return Flushed();
}

}  // namespace

int RunAlerts(const AlertsOptions& opt) {
  if (opt.allowed) return RunAllowed(opt);
  AlertQuery q;
  q.node = opt.node;
  q.container = opt.container;
  q.pod = opt.pod;
  q.rule = opt.rule;
  q.limit = opt.limit;
  if (!opt.priority.empty()) {
    q.min_priority = ParsePriority(opt.priority);
    if (!q.min_priority) {
      std::fprintf(stderr, "driftwatch alerts: --priority %s: not one of emergency, alert, "
                   "critical, error, warning, notice, informational, debug\n",
                   opt.priority.c_str());
      return 2;
    }
  }
  if (auto r = ParseTimeRange(opt.since, opt.until, NowNs(), &q.since_ns, &q.until_ns); !r)
    return Say(2, r.error().message());
  auto reader = OpenAlertQueries(opt.db);
  if (!reader) return Say(1, reader.error().message());
  if (opt.table) {
    std::printf("%-20s  %-13s  %-16s  %-20s  %-30s  %-6s  %s\n", "TIME", "PRIORITY", "NODE",
                "CONTAINER", "POD", "COUNT", "RULE");
  }
  auto n = (*reader)->Query(q, [&](const StoredAlert& a) {
    if (opt.table) {
      PrintRow(a);
    } else {
      const std::string json = a.FullJson();
      std::fwrite(json.data(), 1, json.size(), stdout);
      std::fputc('\n', stdout);
    }
  });
  if (!n) return Say(1, DbName(opt.db) + ": " + n.error().message());
  return Flushed();
}

}  // namespace driftwatch::cli
