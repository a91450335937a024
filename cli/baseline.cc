// `driftwatch baseline`: inspect and edit the baselines a collector learned, per image and
// container name: what its containers ran, connected to and listened on while it learned,
// and what they did since that was not in it ("unexpected", each alerted once).
#include "cli/baseline.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/base/terminal_text.h"
#include "lib/detect/baseline_store.h"

namespace driftwatch::cli {
namespace {

// Messages name images and containers the sensors reported: escaped.
int Fail(const std::string& msg) {
  std::fprintf(stderr, "driftwatch baseline: %s\n", TerminalEscapeLines(msg).c_str());
  return 1;
}

std::string Name(const BaselineId& id) {
  return TerminalEscape(id.image) + " container " + TerminalEscape(id.container);
}

std::string State(const BaselineHeader& h, int64_t now) {
  if (h.first_ns == 0) return "learning (from the next event)";
  if (now < h.learn_until_ns) return "learning until " + FormatIsoTime(h.learn_until_ns);
  return "enforcing since " + FormatIsoTime(h.learn_until_ns);
}

std::string SummaryJson(const BaselineSummary& s, int64_t now) {
  const BaselineHeader& h = s.header;
  std::string o = "{\"image\":" + JsonQuote(h.id.image) + ",\"container\":" +
                  JsonQuote(h.id.container) + ",\"state\":\"" +
                  (h.first_ns != 0 && now >= h.learn_until_ns ? "enforcing" : "learning") + "\"";
  auto time = [&h](int64_t ns) { return h.first_ns ? JsonQuote(FormatIsoTime(ns)) : "null"; };
  o.append(",\"first\":").append(time(h.first_ns));
  o.append(",\"learn_until\":").append(time(h.learn_until_ns));
  o += ",\"processes\":" + std::to_string(s.processes) + ",\"connections\":" +
       std::to_string(s.connections) + ",\"listeners\":" + std::to_string(s.listeners) +
       ",\"reads\":" + std::to_string(s.reads) +
       ",\"unexpected\":" + std::to_string(s.unexpected) + ",\"dropped\":" +
       std::to_string(h.dropped) + "}";
  return o;
}

std::string ItemJson(const BaselineItem& i) {
  return "{\"image\":" + JsonQuote(i.id.image) + ",\"container\":" + JsonQuote(i.id.container) +
         ",\"kind\":\"" + std::string(BaselineKindName(i.kind)) + "\",\"item\":" +
         JsonQuote(i.item) + ",\"source\":" + JsonQuote(i.source) + ",\"detail\":" +
         JsonQuote(i.detail) + ",\"node\":" + JsonQuote(i.node) + ",\"first\":" +
         JsonQuote(FormatIsoTime(i.first_ns)) + ",\"event_key\":" + JsonQuote(i.event_key) + "}";
}

// The baselines IMAGE (and --container) name; one only unless `many`.
Result<std::vector<BaselineId>> Match(BaselineStore* st, const BaselineOptions& opt, bool many) {
  if (opt.image.empty())
    return std::unexpected(Error::InvalidInput(opt.action + " needs IMAGE (see driftwatch baseline list)"));
  auto ids = st->Find(opt.image, opt.container);
  if (!ids) return std::unexpected(ids.error());
  if (ids->empty()) {
    return std::unexpected(Error::NotFound(
        "no baseline of image " + opt.image +
        (opt.container.empty() ? std::string() : " and container " + opt.container) +
        " in " + opt.db));
  }
  if (ids->size() > 1 && !many) {
    std::string msg = std::to_string(ids->size()) + " baselines match " + opt.image +
                      " (narrow it with the full digest or --container" +
                      (opt.action == "export" ? std::string(")") : std::string(", or --all)")) +
                      ":";
    for (const BaselineId& id : *ids) msg += "\n  " + id.image + " container " + id.container;
    return std::unexpected(Error::InvalidInput(msg));
  }
  return ids;
}

Result<BaselineSummary> SummaryOf(BaselineStore* st, const BaselineId& id) {
  auto all = st->List();
  if (!all) return std::unexpected(all.error());
  for (BaselineSummary& s : *all)
    if (s.header.id == id) return s;
  return std::unexpected(Error::NotFound("baseline " + id.image + " " + id.container + " is gone"));
}

int List(BaselineStore* st, const BaselineOptions& opt) {
  auto all = st->List();
  if (!all) return Fail(all.error().message());
  const int64_t now = NowNs();
  for (const BaselineSummary& s : *all) {
    if (opt.json) {
      std::printf("%s\n", SummaryJson(s, now).c_str());
      continue;
    }
    std::printf("%s\n  %s; %llu processes, %llu connections, %llu listeners, %llu reads, "
                "%llu unexpected%s\n",
                Name(s.header.id).c_str(), State(s.header, now).c_str(),
                static_cast<unsigned long long>(s.processes),
                static_cast<unsigned long long>(s.connections),
                static_cast<unsigned long long>(s.listeners),
                static_cast<unsigned long long>(s.reads),
                static_cast<unsigned long long>(s.unexpected),
                s.header.dropped ? (", " + std::to_string(s.header.dropped) +
                                    " not recorded (full)").c_str()
                                 : "");
  }
  if (!opt.json) std::printf("%zu baseline(s)\n", all->size());
  return 0;
}

int Show(BaselineStore* st, const BaselineOptions& opt) {
  auto ids = Match(st, opt, /*many=*/true);
  if (!ids) return Fail(ids.error().message());
  std::vector<BaselineHeader> headers;
  std::vector<BaselineItem> items;
  if (auto ok = st->Load(false, *ids, &headers, &items); !ok) return Fail(ok.error().message());
  const int64_t now = NowNs();
  for (const BaselineHeader& h : headers) {
    if (opt.json) {
      for (const BaselineItem& i : items)
        if (i.id == h.id) std::printf("%s\n", ItemJson(i).c_str());
      continue;
    }
    std::printf("%s\n  %s\n", Name(h.id).c_str(), State(h, now).c_str());
    if (h.dropped) std::printf("  %llu items not recorded: the baseline is full\n",
                               static_cast<unsigned long long>(h.dropped));
    for (BaselineKind k : kBaselineKinds) {
      for (const BaselineItem& i : items) {
        if (i.id != h.id || i.kind != k) continue;
        std::printf("  %-10s %-10s %s%s%s  (%s, %s)\n", std::string(BaselineKindName(k)).c_str(),
                    i.source.c_str(), TerminalEscape(i.item).c_str(), i.detail.empty() ? "" : "  ",
                    TerminalEscape(i.detail).c_str(), FormatIsoTime(i.first_ns).c_str(),
                    i.node.empty() ? "-" : TerminalEscape(i.node).c_str());
      }
    }
  }
  return 0;
}

int Export(BaselineStore* st, const BaselineOptions& opt) {
  auto ids = Match(st, opt, /*many=*/false);
  if (!ids) return Fail(ids.error().message());
  auto s = SummaryOf(st, ids->front());
  if (!s) return Fail(s.error().message());
  std::vector<BaselineHeader> headers;
  std::vector<BaselineItem> items;
  if (auto ok = st->Load(false, *ids, &headers, &items); !ok) return Fail(ok.error().message());
  const std::string yaml = BaselineYaml(*s, items);
  if (opt.file.empty() || opt.file == "-") {
    std::fputs(yaml.c_str(), stdout);
    return 0;
  }
  std::ofstream out(opt.file, std::ios::binary | std::ios::trunc);
  out << yaml;
  out.close();
  if (!out) return Fail(opt.file + ": cannot write");
  return 0;
}

int Import(BaselineStore* st, const BaselineOptions& opt) {
  std::ifstream in(opt.file, std::ios::binary);
  if (!in) return Fail(opt.file + ": cannot read");
  std::ostringstream ss;
  ss << in.rdbuf();
  auto parsed = ParseBaselineYaml(ss.str(), opt.file);
  if (!parsed) return Fail(parsed.error().message());
  if (!opt.image.empty()) parsed->id.image = opt.image;
  if (!opt.container.empty()) parsed->id.container = opt.container;
  if (parsed->id.image.empty() || parsed->id.container.empty())
    return Fail(opt.file + ": no \"# image:\" and \"# container:\" header: give --image and --container");
  if (auto ok = st->Import(parsed->id, parsed->items, NowNs()); !ok) return Fail(ok.error().message());
  std::printf("imported %zu items into %s (enforcing)\n", parsed->items.size(),
              Name(parsed->id).c_str());
  return 0;
}

}  // namespace

int RunBaseline(const BaselineOptions& opt) {
  const bool edit = opt.action == "import" || opt.action == "reset" || opt.action == "enforce";
  auto st = BaselineStore::Open(opt.db, edit);
  if (!st) return Fail(st.error().message());
  BaselineStore* s = st->get();
  if (opt.action == "list") return List(s, opt);
  if (opt.action == "show") return Show(s, opt);
  if (opt.action == "export") return Export(s, opt);
  if (opt.action == "import") return Import(s, opt);
  auto ids = Match(s, opt, opt.all);
  if (!ids) return Fail(ids.error().message());
  for (const BaselineId& id : *ids) {
    auto ok = opt.action == "reset" ? s->Reset(id) : s->Enforce(id, NowNs());
    if (!ok) return Fail(ok.error().message());
    std::printf("%s %s\n", opt.action == "reset" ? "reset (learning again from its next event):"
                                                 : "enforcing:",
                Name(id).c_str());
  }
  return 0;
}

}  // namespace driftwatch::cli
