#include "cli/events.h"

#include <cstdio>
#include <string>

#include "lib/base/clock.h"
#include "lib/event/event_fields.h"
#include "lib/event/event_json.h"
#include "lib/event/event_view.h"
#include "lib/store/event_store.h"
#include "lib/base/time_arg.h"
#include "lib/store/event_reader.h"
#include "lib/store/pg_conn.h"
#include "lib/store/pg_event_reader.h"

namespace driftwatch::cli {

int RunEvents(const EventsOptions& opt) {
  EventQuery q;
  q.node = opt.node;
  q.container = opt.container;
  q.kind = opt.kind;
  q.limit = opt.limit;
  if (!q.kind.empty() && !ParseKind(q.kind)) {
    std::fprintf(stderr, "driftwatch events: --kind %s: not one of %s\n", q.kind.c_str(),
                 KindNames().c_str());
    return 2;
  }
  if (auto r = ParseTimeRange(opt.since, opt.until, NowNs(), &q.since_ns, &q.until_ns); !r) {
    std::fprintf(stderr, "driftwatch events: %s\n", r.error().c_str());
    return 2;
  }
  auto reader = OpenEventQueries(opt.db);
  if (!reader) {
    std::fprintf(stderr, "driftwatch events: %s\n", reader.error().c_str());
    return 1;
  }
  std::string line;
  auto n = (*reader)->Query(q, [&](const StoredEvent& se) {
    line.clear();
    if (!AppendEventJson(se.event, se.container ? &*se.container : nullptr, &line)) return;
    // When the collector committed it: with evt.time, the event's end-to-end latency.
    line.pop_back();
    line += ",\"";
    line += kCollectorStoredNs;
    line += "\":" + std::to_string(se.stored_ns) + "}\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
  });
  if (!n) {
    std::fprintf(stderr, "driftwatch events: %s: %s\n", RedactPgUri(opt.db).c_str(),
                 n.error().c_str());
    return 1;
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace driftwatch::cli
