// `driftwatch status`: audit mode and settings, fanotify mode, watched containers, spool
// depth, collector connection and loss counters of this node's sensor, read from its
// /status endpoint (plain HTTP on loopback by default). `--collector`: the fleet as the
// collector's /status reports it, a health and detection header and one line per node.
// `--db`: the fleet as the store records it, whichever collectors wrote it.
#include "cli/status.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "lib/base/terminal_text.h"
#include "lib/event/event_json.h"
#include "lib/store/event_reader.h"
#include "lib/store/pg_conn.h"
#include "lib/store/pg_event_reader.h"

namespace driftwatch::cli {
namespace {

namespace http = boost::beast::http;

std::string Fetch(const std::string& hostport, const std::string& path, std::string* err) {
  size_t colon = hostport.rfind(':');
  if (colon == std::string::npos) {
    *err = "want HOST:PORT, got " + hostport;
    return "";
  }
  try {
    boost::asio::io_context io;
    boost::asio::ip::tcp::resolver resolver(io);
    boost::beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(5));
    stream.connect(resolver.resolve(hostport.substr(0, colon), hostport.substr(colon + 1)));
    http::request<http::empty_body> req(http::verb::get, path, 11);
    req.set(http::field::host, hostport);
    http::write(stream, req);
    boost::beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    if (res.result() != http::status::ok) {
      *err = "HTTP " + std::to_string(res.result_int());
      return "";
    }
    return res.body();
  } catch (const std::exception& e) {
    *err = e.what();
    return "";
  }
}

std::string Num(const nlohmann::json& j, const char* k) {
  return j.contains(k) ? j[k].dump() : "-";
}

std::optional<uint64_t> Unsigned(const nlohmann::json& j, const char* k) {
  if (!j.is_object() || !j.contains(k)) return std::nullopt;
  const auto& v = j[k];
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

// "3s ago", "4m ago", "2h ago", "5d ago"; "never" for 0.
std::string Age(int64_t then_ns, int64_t now_ns) {
  if (then_ns <= 0) return "never";
  const int64_t s = now_ns > then_ns ? (now_ns - then_ns) / 1'000'000'000 : 0;
  if (s < 120) return std::to_string(s) + "s ago";
  if (s < 2 * 3600) return std::to_string(s / 60) + "m ago";
  if (s < 2 * 86400) return std::to_string(s / 3600) + "h ago";
  return std::to_string(s / 86400) + "d ago";
}

// "0", or the sum and the counters that are not zero: "57 (kernel_lost 55, queue_drops 2)".
std::string Losses(const nlohmann::json& l) {
  if (!l.is_object()) return "-";
  uint64_t sum = 0;
  std::string parts;
  for (const auto& [k, v] : l.items()) {
    if (!v.is_number_unsigned() && !v.is_number_integer()) continue;
    const uint64_t n = v.is_number_unsigned() ? v.get<uint64_t>()
                                              : static_cast<uint64_t>(std::max<int64_t>(0, v.get<int64_t>()));
    if (n == 0) continue;
    sum += n;
    parts += (parts.empty() ? "" : ", ") + TerminalEscape(k) + " " + std::to_string(n);
  }
  return sum == 0 ? "0" : std::to_string(sum) + " (" + parts + ")";
}

// Columns as wide as their widest cell, two spaces apart.
// REQUIRES: every row has the first row's number of cells.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

// The collector's view: its /status document (collector/main.cc) as a header and a table.
// Names and reasons from the document are printed escaped (lib/base/terminal_text.h).
int RunCollectorStatus(const StatusOptions& opt) {
  std::string err;
  const std::string body = Fetch(opt.collector, "/status", &err);
  if (body.empty()) {
    std::fprintf(stderr,
                 "driftwatch status: cannot read the collector's status at %s: %s (is "
                 "driftwatch-collector running with --metrics-address %s?)\n",
                 opt.collector.c_str(), err.empty() ? "empty answer" : err.c_str(),
                 opt.collector.c_str());
    return 1;
  }
  if (opt.json) {
    std::fwrite(body.data(), 1, body.size(), stdout);
    if (body.back() != '\n') std::fputc('\n', stdout);
    return 0;
  }
  nlohmann::json s;
  try {
    s = nlohmann::json::parse(body);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "driftwatch status: collector at %s: bad status document: %s\n",
                 opt.collector.c_str(), e.what());
    return 1;
  }
  if (!s.is_object() || !s.contains("nodes")) {
    std::fprintf(stderr,
                 "driftwatch status: %s answers /status without \"nodes\": not a "
                 "driftwatch-collector (a sensor? use --sensor)\n",
                 opt.collector.c_str());
    return 1;
  }
  auto num = [](const nlohmann::json& j, const char* k) {
    auto v = Unsigned(j, k);
    return v ? std::to_string(*v) : std::string("-");
  };
  const bool healthy = s.value("healthy", false);
  std::string why = s.contains("unhealthy_because") && s["unhealthy_because"].is_string()
                        ? TerminalEscape(s["unhealthy_because"].get<std::string>())
                        : std::string();
  while (!why.empty() && (why.back() == ' ' || why.back() == ';')) why.pop_back();
  // "1 stream", "3 streams", "- alerts" (absent).
  auto count = [&](const char* k, const char* one, const char* many) {
    auto v = Unsigned(s, k);
    return (v ? std::to_string(*v) : std::string("-")) + " " + (v && *v == 1 ? one : many);
  };
  std::printf("collector  %s, driftwatch-collector %s, up %s s: %s%s%s%s; %s, %s, %s\n",
              opt.collector.c_str(),
              s.contains("version") && s["version"].is_string()
                  ? TerminalEscape(s["version"].get<std::string>()).c_str()
                  : "-",
              num(s, "uptime_s").c_str(), healthy ? "healthy" : "UNHEALTHY",
              healthy || why.empty() ? "" : " (", healthy ? "" : why.c_str(),
              healthy || why.empty() ? "" : ")",
              count("streams", "stream", "streams").c_str(), count("rules", "rule", "rules").c_str(),
              count("alerts", "alert", "alerts").c_str());
  const nlohmann::json d = s.contains("detect") ? s["detect"] : nlohmann::json::object();
  std::printf("detection  %s events evaluated, %s behind the store (head %s), %s not evaluated\n",
              num(d, "evaluated").c_str(), num(d, "lag_events").c_str(), num(d, "head").c_str(),
              num(d, "not_evaluated").c_str());
  if (s.contains("prevent_policy") && s["prevent_policy"].is_object()) {
    const auto& p = s["prevent_policy"];
    auto text = [&](const char* k) {
      return p.contains(k) && p[k].is_string() ? TerminalEscape(p[k].get<std::string>()) : "-";
    };
    std::printf("prevention policy %s (sha256 %.12s), %s pushes to sensors\n", text("file").c_str(),
                text("sha256").c_str(), num(p, "pushes").c_str());
  }
  const auto& nodes = s["nodes"];
  if (!nodes.is_array() || nodes.empty()) {
    std::printf("nodes      none yet (no sensor has connected)\n");
    return 0;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::vector<std::vector<std::string>> rows = {{"NODE", "STREAMS", "LAST SEEN", "STORED",
                                                 "MISSING", "LOSSES", "BLIND WINDOWS",
                                                 "DETECT LAG"}};
  for (const auto& n : nodes) {
    const auto last = Unsigned(n, "last_seen_ns");
    rows.push_back({n.contains("node") && n["node"].is_string()
                        ? TerminalEscape(n["node"].get<std::string>())
                        : "-",
                    num(n, "streams"), last ? Age(static_cast<int64_t>(*last), now) : "-",
                    num(n, "events_stored"), num(n, "events_missing"),
                    n.contains("losses") ? Losses(n["losses"]) : "-", num(n, "blind_windows"),
                    num(n, "detect_lag_events")});
  }
  PrintTable(rows);
  return 0;
}

// The store's view (EventQueries::Status): a header naming the store, and on PostgreSQL
// the live collectors, then one line per node in the collector view's columns (those the
// store records) and, on PostgreSQL, the collector evaluating each node.
int RunStoreStatus(const StatusOptions& opt) {
  const bool pg = IsPgUri(opt.db);
  const std::string where = pg ? RedactPgUri(opt.db) : opt.db;
  auto reader = OpenEventQueries(opt.db);
  if (!reader) {
    std::fprintf(stderr, "driftwatch status: %s\n", reader.error().c_str());
    return 1;
  }
  auto st = (*reader)->Status();
  if (!st) {
    // PostgreSQL's errors name the (redacted) URI already.
    std::fprintf(stderr, "driftwatch status: %s%s%s\n", pg ? "" : where.c_str(), pg ? "" : ": ",
                 st.error().c_str());
    return 1;
  }
  if (opt.json) {
    using Json = nlohmann::ordered_json;  // keys in the order written, as /status has them
    Json j = {{"store", where},
              {"backend", pg ? "postgresql" : "sqlite"},
              {"schema_version", st->schema_version}};
    if (pg) j["collectors"] = st->live_collectors;
    j["nodes"] = Json::array();
    for (const StoredNodeStatus& n : st->nodes) {
      Json o = {{"node", n.state.node},
                {"streams", n.state.connected_streams},
                {"last_seen_ns", n.state.last_seen_ns},
                {"events_stored", n.state.events_stored},
                {"events_missing", n.state.events_missing},
                {"detect_lag_events", n.detect_lag},
                {"detect_lag_at_least", n.detect_lag_at_least}};
      if (pg) {
        o["evaluated_by"] = n.lease_owner.empty() ? Json() : Json(n.lease_owner);
        o["lease_expired"] = n.lease_expired;
      }
      j["nodes"].push_back(std::move(o));
    }
    // Names are the store's bytes, not always UTF-8: invalid sequences become U+FFFD.
    std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
    return 0;
  }
  std::string collectors;
  for (const std::string& c : st->live_collectors)
    collectors += (collectors.empty() ? "" : ", ") + TerminalEscape(c);
  std::printf("store      %s: %s, schema version %d%s%s\n", TerminalEscape(where).c_str(),
              pg ? "PostgreSQL" : "SQLite", st->schema_version,
              !pg ? "" : collectors.empty() ? "; no collector alive" : "; collectors alive: ",
              collectors.c_str());
  if (st->nodes.empty()) {
    std::printf("nodes      none yet (no sensor has connected)\n");
    return 0;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::vector<std::vector<std::string>> rows = {
      {"NODE", "STREAMS", "LAST SEEN", "STORED", "MISSING", "DETECT LAG"}};
  if (pg) rows[0].push_back("EVALUATED BY");
  for (const StoredNodeStatus& n : st->nodes) {
    // ">=": SQLite counted the newest kMaxLagScan rows only.
    std::vector<std::string> r = {
        TerminalEscape(n.state.node), std::to_string(n.state.connected_streams),
        Age(n.state.last_seen_ns, now), std::to_string(n.state.events_stored),
        std::to_string(n.state.events_missing),
        (n.detect_lag_at_least ? ">=" : "") + std::to_string(n.detect_lag)};
    if (pg) {
      r.push_back(n.lease_owner.empty()
                      ? "-"
                      : TerminalEscape(n.lease_owner) + (n.lease_expired ? " (expired)" : ""));
    }
    rows.push_back(std::move(r));
  }
  PrintTable(rows);
  return 0;
}

}  // namespace

int RunStatus(const StatusOptions& opt) {
  if (!opt.db.empty()) return RunStoreStatus(opt);
  if (!opt.collector.empty()) return RunCollectorStatus(opt);
  std::string err;
  std::string body = Fetch(opt.sensor, "/status", &err);
  if (body.empty()) {
    std::fprintf(stderr,
                 "driftwatch status: sensor at %s: %s (is driftwatch-sensor running with "
                 "--metrics-address %s?)\n",
                 opt.sensor.c_str(), err.c_str(), opt.sensor.c_str());
    return 1;
  }
  if (opt.json) {
    std::fwrite(body.data(), 1, body.size(), stdout);
    return 0;
  }
  nlohmann::json s;
  try {
    s = nlohmann::json::parse(body);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "driftwatch status: sensor at %s: bad status document: %s\n",
                 opt.sensor.c_str(), e.what());
    return 1;
  }
  auto str = [](const nlohmann::json& j, const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string("-");
  };
  const auto& a = s["audit"];
  const auto& f = s["fanotify"];
  std::printf("sensor     %s %s on node %s, up %s s\n", "driftwatch-sensor", str(s, "version").c_str(),
              str(s, "node").c_str(), Num(s, "uptime_s").c_str());
  std::printf("audit      %s mode, backlog_limit %s, backlog_wait_time %s, %s rules\n",
              str(a, "mode").c_str(), Num(a, "backlog_limit").c_str(),
              Num(a, "backlog_wait_time").c_str(), Num(a, "rules").c_str());
  std::printf("           %s records; lost: kernel %s, socket %s, queue %s, evicted %s\n",
              Num(a, "records").c_str(), Num(a, "kernel_lost").c_str(),
              Num(a, "socket_enobufs").c_str(), Num(a, "queue_drops").c_str(),
              Num(a, "evictions").c_str());
  std::printf("fanotify   %s, %s events, %s overflows\n", str(f, "mode").c_str(),
              Num(f, "events").c_str(), Num(f, "overflows").c_str());
  if (s["prevent"].is_object() && str(s["prevent"], "mode") != "off") {
    const auto& p = s["prevent"];
    std::printf("prevent    %s: %s denied, %s would deny, %s allowed by policy, %s fail answers "
                "(%s past the deadline, %s undecided), longest answer %s ns\n",
                str(p, "mode").c_str(), Num(p, "denied").c_str(), Num(p, "would_deny").c_str(),
                Num(p, "allowed_by_policy").c_str(), Num(p, "fail_answers").c_str(),
                Num(p, "deadline_answers").c_str(), Num(p, "undecided").c_str(),
                Num(p, "latency_max_ns").c_str());
    if (p["fleet_policy"].is_object() && !str(p["fleet_policy"], "sha256").empty()) {
      const auto& fp = p["fleet_policy"];
      std::printf("           policy: %s entries in force, fleet's sha256 %.12s (%s entries, from %s)\n",
                  Num(p, "policy_entries").c_str(), str(fp, "sha256").c_str(),
                  Num(fp, "entries").c_str(), TerminalEscape(str(fp, "source")).c_str());
    }
    if (p["fleet_policy"].is_object() && !str(p["fleet_policy"], "error").empty()) {
      std::printf("           fleet policy refused: %s\n",
                  TerminalEscape(str(p["fleet_policy"], "error")).c_str());
    }
  } else {
    std::printf("prevent    off\n");
  }
  if (s["respond"].is_object()) {
    const auto& r = s["respond"];
    std::printf("respond    stop (at most %s a minute): %s stopped, %s failed, %s rate limited, %s "
                "queue full\n",
                Num(r, "max_per_minute").c_str(), Num(r, "stopped").c_str(),
                Num(r, "failed").c_str(), Num(r, "rate_limited").c_str(),
                Num(r, "queue_full").c_str());
  }
  const auto& cs = s["containers"];
  std::printf("containers %zu watched (runtime %s)\n", cs.is_array() ? cs.size() : 0,
              str(s, "runtime").empty() ? "cgroups only" : str(s, "runtime").c_str());
  if (cs.is_array()) {
    for (const auto& c : cs)
      std::printf("           %-12s  %-24s %-32s %s\n", ShortContainerId(str(c, "id")).c_str(),
                  str(c, "name").c_str(),
                  str(c, "pod").c_str(), str(c, "image").c_str());
  }
  if (s["spool"].is_object()) {
    const auto& sp = s["spool"];
    std::printf("spool      %s: %s events waiting, %s bytes, %s dropped\n", str(sp, "dir").c_str(),
                Num(sp, "depth").c_str(), Num(sp, "bytes").c_str(), Num(sp, "dropped").c_str());
  } else {
    std::printf("spool      none (no collector configured)\n");
  }
  if (s["collector"].is_object()) {
    const auto& c = s["collector"];
    bool up = c.value("connected", false);
    std::printf("collector  %s: %s, %s events acknowledged, %s stream failures%s%s\n",
                str(c, "target").c_str(), up ? "connected" : "NOT connected",
                Num(c, "events_acked").c_str(), Num(c, "stream_failures").c_str(),
                str(c, "last_error") != "" && str(c, "last_error") != "-" ? "; last error: " : "",
                str(c, "last_error") != "-" ? str(c, "last_error").c_str() : "");
  } else {
    std::printf("collector  none\n");
  }
  return 0;
}

}  // namespace driftwatch::cli
