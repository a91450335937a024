// `driftwatch status`: audit mode and settings, fanotify mode, watched containers, spool
// depth, collector connection and loss counters of this node's sensor, read from its
// /status endpoint (plain HTTP on loopback by default).
#include "cli/status.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "lib/event_json.h"

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

}  // namespace

int RunStatus(const StatusOptions& opt) {
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
