// Learned per-image baselines: the Detector with the shipped rules and the Baselines hook on
// hand-built events (learning, enforcing, once per new behaviour, bounds, the store's time),
// and the baseline tables in a real SQLite file (generations, edits, export and import).
#include "lib/detect/baseline.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "lib/detect/baseline_store.h"
#include "lib/detect/detect.h"
#include "unit/rule_test_util.h"

namespace driftwatch {
namespace {

using testing::SourceRuleFiles;

constexpr int64_t kSec = 1'000'000'000;
constexpr int64_t kT0 = 1'800'000'000 * kSec;  // the store's clock at the first row
const std::string kImage = "sha256:" + std::string(64, '1');

v1::Event ContainerEv(const std::string& cid, const std::string& name,
                      const std::string& image_ref = kImage) {
  v1::Event ev;
  ev.set_container_id(cid);
  v1::ContainerInfo* c = ev.mutable_container();
  c->set_id(cid);
  c->set_name(name);
  c->set_image("localhost/webapp:3");
  c->set_image_ref(image_ref);
  c->set_state("running");
  c->set_source("cri");
  return ev;
}

v1::Event Exec(const std::string& cid, uint64_t seq, const std::string& exe, bool ok = true) {
  v1::Event ev = testing::ExecEvent(exe.substr(exe.rfind('/') + 1), exe, {exe}, cid);
  ev.mutable_id()->set_seq(seq);
  ev.mutable_exec()->set_pid(static_cast<uint32_t>(1000 + seq));
  ev.mutable_exec()->set_ppid(1);
  if (!ok) {
    ev.mutable_exec()->set_success(false);
    ev.mutable_exec()->set_exit(-13);
    ev.mutable_exec()->set_errno_name("EACCES");
  }
  return ev;
}

v1::Event Net(const std::string& cid, uint64_t seq, const std::string& syscall,
              std::string addr, uint32_t port, bool ok = true) {
  v1::Event ev;
  ev.set_time_ns(kT0);
  ev.mutable_id()->set_node("node-1");
  ev.mutable_id()->set_seq(seq);
  ev.set_container_id(cid);
  v1::NetworkActivity* n = ev.mutable_network();
  n->set_syscall(syscall);
  n->set_success(ok);
  n->set_exit(ok ? 0 : -111);
  if (!ok) n->set_errno_name("ECONNREFUSED");
  n->set_pid(static_cast<uint32_t>(1000 + seq));
  n->set_comm("client");
  n->set_exe("/usr/bin/client");
  n->set_fd(3);
  n->set_family(addr.size() == 16 ? 10 : 2);
  n->set_address(addr);
  n->set_port(port);
  n->set_address_is_local(syscall == "bind");
  return ev;
}

std::string Ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return std::string{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                     static_cast<char>(d)};
}

const std::string kCidA = std::string(64, 'a');
const std::string kCidB = std::string(64, 'b');

// A collector's detection in miniature: one Detector per node, one Baselines for all.
class BaselineDetect : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = RuleSet::Load(SourceRuleFiles());
    ASSERT_TRUE(r.has_value());
    rules_ = std::shared_ptr<const RuleSet>(std::move(*r));
    opt_.learn = std::chrono::seconds(60);
  }
  // The rules that fired on this event, stored at kT0 + at_s.
  std::vector<std::string> Feed(const std::string& node, const v1::Event& ev, int64_t at_s) {
    if (!baselines_) baselines_ = std::make_unique<Baselines>(opt_);
    auto& d = detectors_[node];
    if (!d) d = std::make_unique<Detector>(rules_);
    std::vector<std::string> fired;
    d->OnEvent(
        node, ev, [&](Alert&& a) { fired.push_back(a.rule); },
        [&](RuleContext* ctx) {
          baselines_->Check(ctx, node, kT0 + at_s * kSec, &changes_);
          last_ = ctx->baseline;
        });
    return fired;
  }
  // Only the baseline rules of `fired`.
  static std::vector<std::string> Baseline(const std::vector<std::string>& fired) {
    std::vector<std::string> out;
    for (const auto& r : fired)
      if (r.starts_with("Unexpected ")) out.push_back(r);
    return out;
  }

  std::shared_ptr<const RuleSet> rules_;
  BaselineOptions opt_;
  std::unique_ptr<Baselines> baselines_;
  std::map<std::string, std::unique_ptr<Detector>> detectors_;
  BaselineChanges changes_;
  BaselineVerdict last_;
};

using Rules = std::vector<std::string>;
const Rules kNone;

TEST_F(BaselineDetect, LearnsThenAlertsOncePerNewBehaviour) {
  Feed("node-1", ContainerEv(kCidA, "web"), 0);
  // Learning: the workload's processes, one destination, one port.
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 1, "/usr/bin/python3"), 1)), kNone);
  EXPECT_EQ(last_.state, BaselineVerdict::State::kLearning);
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 2, "/bin/sh"), 2)), kNone);
  EXPECT_EQ(Baseline(Feed("node-1", Net(kCidA, 3, "connect", Ip4(10, 0, 0, 5), 5432), 3)), kNone);
  EXPECT_EQ(last_.item, "10.0.0.5:5432");
  EXPECT_EQ(Baseline(Feed("node-1", Net(kCidA, 4, "bind", Ip4(0, 0, 0, 0), 8080), 4)), kNone);
  EXPECT_EQ(last_.item, "8080");

  // Enforcing (60 s after the first row): the known behaviour passes.
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 5, "/usr/bin/python3"), 61)), kNone);
  EXPECT_EQ(last_.state, BaselineVerdict::State::kEnforcing);
  EXPECT_FALSE(last_.unexpected);
  EXPECT_EQ(Baseline(Feed("node-1", Net(kCidA, 6, "connect", Ip4(10, 0, 0, 5), 5432), 62)), kNone);
  // New behaviour alerts, each once.
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 7, "/usr/bin/curl"), 63)),
            Rules{"Unexpected process for image"});
  EXPECT_EQ(last_.image, kImage);
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 8, "/usr/bin/curl"), 64)), kNone);
  EXPECT_EQ(Baseline(Feed("node-1", Net(kCidA, 9, "connect", Ip4(10, 0, 0, 5), 6379, false), 65)),
            Rules{"Unexpected connection for image"});
  EXPECT_EQ(Baseline(Feed("node-1", Net(kCidA, 10, "bind", Ip4(0, 0, 0, 0), 4444), 66)),
            Rules{"Unexpected listener for image"});
  const std::string v6(15, '\0');
  EXPECT_EQ(Baseline(Feed("node-1", Net(kCidA, 11, "connect", v6 + '\1', 443), 67)),
            Rules{"Unexpected connection for image"});
  EXPECT_EQ(last_.item, "[::1]:443");

  // Another container of the same image and name, on another node, shares the baseline.
  Feed("node-2", ContainerEv(kCidB, "web"), 70);
  EXPECT_EQ(Baseline(Feed("node-2", Exec(kCidB, 1, "/usr/bin/curl"), 71)), kNone);
  EXPECT_EQ(Baseline(Feed("node-2", Exec(kCidB, 2, "/usr/bin/wget"), 72)),
            Rules{"Unexpected process for image"});
  EXPECT_EQ(baselines_->size(), 1u);
  EXPECT_EQ(baselines_->stats().learned.load(), 4u);
  EXPECT_EQ(baselines_->stats().unexpected.load(), 5u);
  // What the store must keep: the header once, every item with where it came from.
  ASSERT_EQ(changes_.headers.size(), 1u);
  EXPECT_EQ(changes_.headers[0].first_ns, kT0 + kSec);  // its first exec, connect or bind
  EXPECT_EQ(changes_.headers[0].learn_until_ns, kT0 + 61 * kSec);
  ASSERT_EQ(changes_.items.size(), 9u);
  EXPECT_EQ(changes_.items[0].source, "learned");
  EXPECT_EQ(changes_.items[4].item, "/usr/bin/curl");
  EXPECT_EQ(changes_.items[4].source, "unexpected");
  EXPECT_EQ(changes_.items[8].node, "node-2");
}

TEST_F(BaselineDetect, ContainerNamesHaveTheirOwnBaselines) {
  Feed("node-1", ContainerEv(kCidA, "web"), 0);
  Feed("node-1", ContainerEv(kCidB, "worker"), 0);
  Feed("node-1", Exec(kCidA, 1, "/usr/bin/python3"), 1);
  Feed("node-1", Exec(kCidB, 2, "/usr/bin/worker"), 2);
  // The worker never ran python3 while it learned, though the web container did.
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidB, 3, "/usr/bin/python3"), 100)),
            Rules{"Unexpected process for image"});
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 4, "/usr/bin/python3"), 100)), kNone);
  EXPECT_EQ(baselines_->size(), 2u);
}

TEST_F(BaselineDetect, SensitiveReadsAreLearnedToo) {
  auto read = [](uint64_t seq, const std::string& path) {
    v1::Event ev;
    ev.mutable_id()->set_node("node-1");
    ev.mutable_id()->set_seq(seq);
    ev.set_container_id(kCidA);
    ev.mutable_read()->set_pid(77);
    ev.mutable_read()->set_comm("app");
    ev.mutable_read()->set_path(path);
    return ev;
  };
  Feed("node-1", ContainerEv(kCidA, "web"), 0);
  Feed("node-1", read(1, "/var/run/secrets/kubernetes.io/serviceaccount/token"), 1);
  EXPECT_EQ(last_.kind, "read");
  EXPECT_EQ(Baseline(Feed("node-1", read(2, "/var/run/secrets/kubernetes.io/serviceaccount/token"), 100)),
            kNone);
  EXPECT_EQ(Baseline(Feed("node-1", read(3, "/etc/shadow"), 101)),
            Rules{"Unexpected sensitive read for image"});
}

TEST_F(BaselineDetect, BusyboxAppletsAreTheirOwnProcesses) {
  auto applet = [](uint64_t seq, const std::string& name) {
    v1::Event ev = testing::ExecEvent(name, "/bin/busybox", {name}, kCidA);
    ev.mutable_id()->set_seq(seq);
    return ev;
  };
  Feed("node-1", ContainerEv(kCidA, "web"), 0);
  Feed("node-1", applet(1, "sh"), 1);
  EXPECT_EQ(last_.item, "/bin/busybox [sh]");
  EXPECT_EQ(Baseline(Feed("node-1", applet(2, "sh"), 100)), kNone);
  EXPECT_EQ(Baseline(Feed("node-1", applet(3, "nc"), 101)), Rules{"Unexpected process for image"});
  EXPECT_EQ(last_.item, "/bin/busybox [nc]");
}

TEST_F(BaselineDetect, LongItemsAreBoundedAndStayDistinct) {
  Feed("node-1", ContainerEv(kCidA, "web"), 0);
  const std::string a = "/" + std::string(5000, 'a') + "1", b = "/" + std::string(5000, 'a') + "2";
  Feed("node-1", Exec(kCidA, 1, a), 1);
  EXPECT_EQ(last_.item.size(), 1024u);
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 2, a), 100)), kNone);
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 3, b), 101)), Rules{"Unexpected process for image"});
}

TEST_F(BaselineDetect, HostEventsAndUnknownImagesHaveNone) {
  v1::Event host = Exec("host", 1, "/usr/bin/curl");
  Feed("node-1", host, 1000);
  EXPECT_EQ(last_.state, BaselineVerdict::State::kNone);
  v1::Event c = ContainerEv(kCidA, "web", "");  // no image reference at all
  c.mutable_container()->clear_image();
  Feed("node-1", c, 0);
  Feed("node-1", Exec(kCidA, 2, "/usr/bin/curl"), 1000);
  EXPECT_EQ(last_.state, BaselineVerdict::State::kNone);
  EXPECT_EQ(baselines_->size(), 0u);
}

TEST_F(BaselineDetect, FailedExecDoesNotTeachOrHide) {
  Feed("node-1", ContainerEv(kCidA, "web"), 0);
  Feed("node-1", Exec(kCidA, 1, "/usr/bin/python3"), 1);
  // A failed exec of a new file is no behaviour: its later success still alerts.
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 2, "/tmp/x", false), 61)), kNone);
  EXPECT_EQ(last_.state, BaselineVerdict::State::kNone);
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 3, "/tmp/x"), 62)),
            Rules{"Unexpected process for image"});
}

TEST_F(BaselineDetect, TheStoresClockDecidesNotTheSensors) {
  Feed("node-1", ContainerEv(kCidA, "web"), 0);
  Feed("node-1", Exec(kCidA, 1, "/usr/bin/python3"), 1);
  // An event back-dated by a lying node, stored after learning ended, is judged.
  v1::Event old = Exec(kCidA, 2, "/usr/bin/nc");
  old.set_time_ns(kT0 - 3600 * kSec);
  EXPECT_EQ(Baseline(Feed("node-1", old, 120)), Rules{"Unexpected process for image"});
}

TEST_F(BaselineDetect, FullBaselineNeverHides) {
  opt_.max_items = 2;
  opt_.max_baselines = 1;
  Feed("node-1", ContainerEv(kCidA, "web"), 0);
  Feed("node-1", Exec(kCidA, 1, "/bin/a"), 1);
  Feed("node-1", Exec(kCidA, 2, "/bin/b"), 2);
  Feed("node-1", Exec(kCidA, 3, "/bin/c"), 3);  // learning, full: not recorded, counted
  EXPECT_EQ(last_.state, BaselineVerdict::State::kFull);
  EXPECT_EQ(baselines_->stats().dropped_items.load(), 1u);
  // Enforcing and full: a new item alerts at every occurrence, since it cannot be recorded.
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 4, "/bin/c"), 61)),
            Rules{"Unexpected process for image"});
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 5, "/bin/c"), 62)),
            Rules{"Unexpected process for image"});
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidA, 6, "/bin/a"), 63)), kNone);
  // A second image past max_baselines: no baseline, said and counted.
  Feed("node-1", ContainerEv(kCidB, "web", "sha256:" + std::string(64, '2')), 64);
  Feed("node-1", Exec(kCidB, 7, "/bin/a"), 65);
  EXPECT_EQ(last_.state, BaselineVerdict::State::kFull);
  EXPECT_EQ(baselines_->stats().dropped_baselines.load(), 1u);
}

TEST_F(BaselineDetect, AllBaselinesTogetherAreBounded) {
  opt_.max_total_items = 2;
  Feed("node-1", ContainerEv(kCidA, "web"), 0);
  Feed("node-1", ContainerEv(kCidB, "worker"), 0);
  Feed("node-1", Exec(kCidA, 1, "/bin/a"), 1);
  Feed("node-1", Exec(kCidB, 2, "/bin/b"), 2);
  Feed("node-1", Exec(kCidB, 3, "/bin/c"), 3);  // a third item in all: not recorded
  EXPECT_EQ(last_.state, BaselineVerdict::State::kFull);
  EXPECT_EQ(baselines_->stats().dropped_items.load(), 1u);
  EXPECT_EQ(Baseline(Feed("node-1", Exec(kCidB, 4, "/bin/b"), 100)), kNone);
}

TEST(BaselineId, DigestThenImageIdThenName) {
  v1::ContainerInfo c;
  c.set_name("web");
  c.set_image("registry.example/web:1");
  EXPECT_EQ(BaselineIdOf(c).image, "registry.example/web:1");
  c.set_image_ref("sha256:" + std::string(64, 'c'));
  EXPECT_EQ(BaselineIdOf(c).image, "sha256:" + std::string(64, 'c'));
  c.set_image_ref("registry.example/web@sha256:" + std::string(64, 'd'));
  EXPECT_EQ(BaselineIdOf(c).image, "sha256:" + std::string(64, 'd'));
  EXPECT_EQ(BaselineIdOf(c).container, "web");
}

// The tables, in a real SQLite file.
class BaselineTables : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("dw-baseline-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "collector.db").string();
    auto s = BaselineStore::Open(path_, true);
    ASSERT_TRUE(s.has_value()) << s.error().message();
    store_ = std::move(*s);
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
  }
  void TearDown() override {
    sqlite3_close(db_);
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Write(const BaselineChanges& c) {
    ASSERT_EQ(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    auto ok = WriteBaselineChanges(db_, c, kT0);
    ASSERT_TRUE(ok.has_value()) << ok.error().message();
    ASSERT_EQ(sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  static BaselineItem Item(const BaselineId& id, int64_t gen, BaselineKind k, std::string v) {
    BaselineItem i;
    i.id = id;
    i.generation = gen;
    i.kind = k;
    i.item = std::move(v);
    i.source = "learned";
    i.first_ns = kT0;
    return i;
  }
  std::filesystem::path dir_;
  std::string path_;
  std::unique_ptr<BaselineStore> store_;
  sqlite3* db_ = nullptr;
};

TEST_F(BaselineTables, ChangesLoadBackAndEditsWinOverStaleOnes) {
  const BaselineId id{kImage, "web"};
  BaselineChanges c;
  c.headers.push_back({id, 0, kT0, kT0 + 60 * kSec, 0});
  c.items.push_back(Item(id, 0, BaselineKind::kProcess, "/usr/bin/python3"));
  c.items.push_back(Item(id, 0, BaselineKind::kListener, "8080"));
  Write(c);
  std::vector<BaselineHeader> h;
  std::vector<BaselineItem> items;
  ASSERT_TRUE(store_->Load(true, {}, &h, &items).has_value());
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].learn_until_ns, kT0 + 60 * kSec);
  EXPECT_EQ(items.size(), 2u);

  // A reset while a shard still holds a change decided under generation 0: the stale
  // change is dropped by the database, not written over the reset.
  ASSERT_EQ(store_->LastEdit().value(), 0);
  ASSERT_TRUE(store_->Reset(id).has_value());
  BaselineChanges stale;
  stale.items.push_back(Item(id, 0, BaselineKind::kProcess, "/bin/sh"));
  stale.headers.push_back({id, 0, kT0, kT0 + 60 * kSec, 0});
  Write(stale);
  h.clear();
  items.clear();
  ASSERT_TRUE(store_->Load(false, {id}, &h, &items).has_value());
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].generation, 1);
  EXPECT_EQ(h[0].first_ns, 0) << "reset: learning starts at the next row";
  EXPECT_TRUE(items.empty());
  auto edits = store_->EditsAfter(0);
  ASSERT_TRUE(edits.has_value());
  ASSERT_EQ(edits->size(), 1u);
  EXPECT_EQ((*edits)[0].second, id);

  // Loaded into Baselines, the reset baseline learns again from its next row.
  Baselines b(BaselineOptions{std::chrono::seconds(60), 100, 100});
  b.Load(true, {}, h, items);
  auto ctx_ev = Exec(kCidA, 1, "/bin/sh");
  v1::ContainerInfo info = ContainerEv(kCidA, "web").container();
  RuleContext ctx;
  ctx.event = &ctx_ev;
  ctx.container = &info;
  BaselineChanges out;
  b.Check(&ctx, "node-1", kT0 + 1000 * kSec, &out);
  EXPECT_EQ(ctx.baseline.state, BaselineVerdict::State::kLearning);
  ASSERT_EQ(out.headers.size(), 1u);
  EXPECT_EQ(out.headers[0].generation, 1);
  Write(out);
  h.clear();
  items.clear();
  ASSERT_TRUE(store_->Load(false, {id}, &h, &items).has_value());
  EXPECT_EQ(h[0].first_ns, kT0 + 1000 * kSec);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].item, "/bin/sh");
}

TEST_F(BaselineTables, ExportImportRoundTripAndEnforce) {
  const BaselineId id{kImage, "web-1"};
  BaselineChanges c;
  c.headers.push_back({id, 0, kT0, kT0 + 60 * kSec, 3});
  c.items.push_back(Item(id, 0, BaselineKind::kProcess, "/usr/bin/python3"));
  c.items.push_back(Item(id, 0, BaselineKind::kProcess, "/opt/app/run \"x\""));
  c.items.push_back(Item(id, 0, BaselineKind::kConnection, "[fd00::5]:443"));
  c.items.push_back(Item(id, 0, BaselineKind::kListener, "8080"));
  Write(c);
  auto list = store_->List();
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].processes, 2u);
  EXPECT_EQ((*list)[0].connections, 1u);
  EXPECT_EQ((*list)[0].listeners, 1u);
  std::vector<BaselineHeader> h;
  std::vector<BaselineItem> items;
  ASSERT_TRUE(store_->Load(true, {}, &h, &items).has_value());
  const std::string yaml = BaselineYaml((*list)[0], items);
  EXPECT_NE(yaml.find("- list: dw_baseline_web_1_processes"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("items: [8080]"), std::string::npos) << yaml;

  // An exported file is a Falco rules file: the rule loader takes its lists.
  auto rules = RuleSet::LoadStrings({{"baseline.yaml", yaml}});
  EXPECT_TRUE(rules.has_value());

  auto parsed = ParseBaselineYaml(yaml, "baseline.yaml");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
  EXPECT_EQ(parsed->id, id);
  ASSERT_EQ(parsed->items.size(), 4u);
  EXPECT_EQ(parsed->items[0].second, "/opt/app/run \"x\"");  // stored order: by item

  // Imported under another container name: enforcing at once, exactly those items.
  parsed->items.pop_back();
  const BaselineId other{kImage, "web-2"};
  ASSERT_TRUE(store_->Import(other, parsed->items, kT0 + 5 * kSec).has_value());
  h.clear();
  items.clear();
  ASSERT_TRUE(store_->Load(false, {other}, &h, &items).has_value());
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h[0].learn_until_ns, kT0 + 5 * kSec);
  EXPECT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].source, "imported");

  ASSERT_TRUE(store_->Enforce(id, kT0 + 7 * kSec).has_value());
  h.clear();
  items.clear();
  ASSERT_TRUE(store_->Load(false, {id}, &h, &items).has_value());
  EXPECT_EQ(h[0].learn_until_ns, kT0 + 7 * kSec);
  EXPECT_EQ(items.size(), 4u);
  auto found = store_->Find("sha256:1111", "web-2");
  ASSERT_TRUE(found.has_value());
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0], other);
}

TEST(BaselineYamlParse, ErrorsNameFileAndLine) {
  auto bad = ParseBaselineYaml("- list: dw_baseline_web_listeners\n  items: [80, 99999]\n", "b.yaml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("b.yaml:2:"), std::string::npos) << bad.error().message();
  EXPECT_NE(bad.error().message().find("99999"), std::string::npos);
  auto other = ParseBaselineYaml("- list: shell_binaries\n  items: [sh]\n", "c.yaml");
  ASSERT_FALSE(other.has_value());
  EXPECT_NE(other.error().message().find("c.yaml:1:"), std::string::npos) << other.error().message();
  auto broken = ParseBaselineYaml("- list: [\n", "d.yaml");
  ASSERT_FALSE(broken.has_value());
  EXPECT_NE(broken.error().message().find("d.yaml:"), std::string::npos);
}

}  // namespace
}  // namespace driftwatch
