#include "cli/alerts.h"

#include <cstdio>
#include <string>

#include "lib/alerts/alert.h"
#include "lib/alerts/alert_store.h"
#include "lib/base/clock.h"
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

}  // namespace

int RunAlerts(const AlertsOptions& opt) {
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
  if (auto r = ParseTimeRange(opt.since, opt.until, NowNs(), &q.since_ns, &q.until_ns); !r) {
    std::fprintf(stderr, "driftwatch alerts: %s\n", r.error().c_str());
    return 2;
  }
  auto reader = AlertReader::Open(opt.db);
  if (!reader) {
    std::fprintf(stderr, "driftwatch alerts: %s\n", reader.error().c_str());
    return 1;
  }
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
  if (!n) {
    std::fprintf(stderr, "driftwatch alerts: %s: %s\n", opt.db.c_str(), n.error().c_str());
    return 1;
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace driftwatch::cli
