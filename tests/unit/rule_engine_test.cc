#include "lib/rules/rule_engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "lib/alerts/alert.h"
#include "lib/detect/detect.h"
#include "unit/json_check.h"
#include "unit/rule_test_util.h"

namespace driftwatch {
namespace {

using testing::Container;
using testing::Ctx;
using testing::ExecEvent;
using testing::ReadFile;
using testing::SourceRuleFiles;
using testing::WriteEvent;


class ShippedRules : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto r = RuleSet::Load(SourceRuleFiles());
    ASSERT_TRUE(r.has_value());
    set_ = r->release();
  }
  static void TearDownTestSuite() { delete set_; }

  std::vector<std::string> Fired(const RuleContext& ctx) {
    std::vector<const Rule*> m;
    set_->Match(ctx, &m);
    std::vector<std::string> out;
    for (const Rule* r : m) out.push_back(r->name);
    return out;
  }
  bool Fires(const RuleContext& ctx, const std::string& rule) {
    auto f = Fired(ctx);
    return std::find(f.begin(), f.end(), rule) != f.end();
  }

  static RuleSet* set_;
  v1::ContainerInfo c_ = Container();
};
RuleSet* ShippedRules::set_ = nullptr;

// A parent as the correlator knows it: name, executable path and where that came from.
RuleContext WithParent(RuleContext ctx, const std::string& name, const std::string& exepath,
                       ProcessInfo::Origin origin) {
  ctx.lineage = {ProcessInfo{4200, name, exepath, name, origin, exepath}};
  return ctx;
}

TEST_F(ShippedRules, SeedDriftBinary) {
  using Origin = ProcessInfo::Origin;
  const std::string rule = "Drift Detected (Container Image Modified Binary)";
  auto ev = ExecEvent("xmrig", "/tmp/xmrig", {"./xmrig"});
  ev.mutable_exec()->set_is_exe_upper_layer(true);
  ev.mutable_exec()->set_parent_name("sh");
  EXPECT_TRUE(Fires(Ctx(ev, &c_), rule));
  // Started by the image's entrypoint wrapper: allowed.
  EXPECT_FALSE(Fires(WithParent(Ctx(ev, &c_), "tini", "/sbin/tini", Origin::kImage), rule));
  // A parent only named so is not: by its comm alone, a copy written at runtime at the
  // very path, or another binary (a symlink named tini runs /bin/busybox).
  ev.mutable_exec()->set_parent_name("tini");
  EXPECT_TRUE(Fires(Ctx(ev, &c_), rule));
  EXPECT_TRUE(Fires(WithParent(Ctx(ev, &c_), "tini", "/sbin/tini", Origin::kUpper), rule));
  EXPECT_TRUE(Fires(WithParent(Ctx(ev, &c_), "tini", "/bin/busybox", Origin::kImage), rule));
  EXPECT_TRUE(Fires(WithParent(Ctx(ev, &c_), "tini", "/tmp/tini", Origin::kUpper), rule));
  // From the image: no drift.
  ev.mutable_exec()->set_is_exe_upper_layer(false);
  EXPECT_FALSE(Fires(Ctx(ev, &c_), rule));
}

TEST_F(ShippedRules, SeedShellSpawned) {
  using Origin = ProcessInfo::Origin;
  auto ev = ExecEvent("sh", "/bin/sh", {"sh"});
  ev.mutable_exec()->set_parent_name("runc");  // `kubectl exec` / `ctr task exec`, as in the corpus
  EXPECT_TRUE(Fires(Ctx(ev, &c_), "Container Shell Spawned"));
  EXPECT_FALSE(Fires(WithParent(Ctx(ev, &c_), "dumb-init", "/usr/bin/dumb-init", Origin::kImage),
                     "Container Shell Spawned"));
  // An offline log says nothing of layers: the path decides.
  EXPECT_FALSE(Fires(WithParent(Ctx(ev, &c_), "tini", "/tini", Origin::kUnknown),
                     "Container Shell Spawned"));
  // An entry script: the parent's exe is the shell, the file it runs the image's script.
  auto entry = WithParent(Ctx(ev, &c_), "docker-entrypoi", "/bin/dash", Origin::kImage);
  entry.lineage[0].exe_file = "/usr/local/bin/docker-entrypoint.sh";
  EXPECT_FALSE(Fires(entry, "Container Shell Spawned"));
  entry.lineage[0].exe_file = "/tmp/docker-entrypoint.sh";
  EXPECT_TRUE(Fires(entry, "Container Shell Spawned"));
  // A workload renamed to an entrypoint's name does not silence it.
  ev.mutable_exec()->set_parent_name("tini");
  EXPECT_TRUE(Fires(Ctx(ev, &c_), "Container Shell Spawned"));
  EXPECT_TRUE(Fires(WithParent(Ctx(ev, &c_), "tini", "/usr/local/bin/python3", Origin::kImage),
                    "Container Shell Spawned"));
  EXPECT_TRUE(Fires(WithParent(Ctx(ev, &c_), "tini", "/usr/bin/tini", Origin::kUpper),
                    "Container Shell Spawned"));
  auto host = ExecEvent("sh", "/bin/sh", {"sh"}, "");
  EXPECT_FALSE(Fires(Ctx(host), "Container Shell Spawned"));
  auto failed = ExecEvent("bash", "/bin/bash", {"bash"});
  failed.mutable_exec()->set_success(false);
  failed.mutable_exec()->set_errno_name("EACCES");
  EXPECT_FALSE(Fires(Ctx(failed, &c_), "Container Shell Spawned"));
  EXPECT_TRUE(Fires(Ctx(failed, &c_), "Forbidden Exec Attempt in Container"));
  auto plumbing = ExecEvent("sh", "/", {"runc", "init"});
  plumbing.mutable_exec()->set_runtime_plumbing(true);
  EXPECT_TRUE(Fired(Ctx(plumbing, &c_)).empty());
}

TEST_F(ShippedRules, SeedPackageManager) {
  auto ev = ExecEvent("apk", "/sbin/apk", {"apk", "add", "curl"});
  EXPECT_TRUE(Fires(Ctx(ev, &c_), "Package Manager Execution in Container"));
  auto npm = ExecEvent("npm", "/usr/bin/npm", {"npm", "i"});
  EXPECT_TRUE(Fires(Ctx(npm, &c_), "Package Manager Execution in Container"));
  auto ls = ExecEvent("ls", "/bin/ls", {"ls"});
  EXPECT_FALSE(Fires(Ctx(ls, &c_), "Package Manager Execution in Container"));
}

TEST_F(ShippedRules, SeedFileWrite) {
  auto w = WriteEvent("/usr/local/bin/payload");
  EXPECT_TRUE(Fires(Ctx(w, &c_), "Container File System Write"));
  for (const char* scratch : {"/tmp/x", "/var/log/app.log", "/proc/self/attr"}) {
    auto t = WriteEvent(scratch);
    EXPECT_FALSE(Fires(Ctx(t, &c_), "Container File System Write")) << scratch;
  }
  auto del = WriteEvent("/etc/passwd", "delete");
  EXPECT_FALSE(Fires(Ctx(del, &c_), "Container File System Write"));
  auto host = WriteEvent("/etc/passwd");
  host.set_container_id("");
  EXPECT_FALSE(Fires(Ctx(host), "Container File System Write"));
}

TEST_F(ShippedRules, DropAndExecute) {
  auto ev = ExecEvent("payload", "/usr/local/bin/payload", {"payload"});
  auto ctx = Ctx(ev, &c_);
  EXPECT_FALSE(Fires(ctx, "Drop and execute new binary in container"));
  ctx.file.written_at_runtime = true;
  ctx.file.writer_name = "curl";
  ctx.file.writer_pid = 99;
  EXPECT_TRUE(Fires(ctx, "Drop and execute new binary in container"));
  // written_at_runtime implies the upper layer even when the event did not say.
  EXPECT_TRUE(Fires(ctx, "Drift Detected (Container Image Modified Binary)"));
  std::vector<RuleMatch> m;
  set_->Evaluate(ctx, &m);
  bool seen = false;
  for (const RuleMatch& x : m) {
    if (x.rule->name != "Drop and execute new binary in container") continue;
    seen = true;
    EXPECT_EQ(x.output_fields.at("proc.exe_writer.name"), "curl");
    EXPECT_EQ(x.output_fields.at("proc.exe_sha256"), "<NA>");
    EXPECT_NE(x.output.find("writer=curl writer_pid=99"), std::string::npos) << x.output;
  }
  EXPECT_TRUE(seen);
}

// Issue 11: `f=/tmp/$(printf '\377')x; cp /bin/busybox "$f"; chmod 755 "$f"; "$f"` in a pod.
// The write and the exec of a name that is not UTF-8 go through correlation and the shipped
// rules like any other: "Drop and execute new binary in container" fires (whichever of the
// two arrives first), and its Falco JSON is valid and gives the name back exactly.
TEST(DropAndExecute, NameThatIsNotUtf8) {
  auto rules = RuleSet::Load(SourceRuleFiles());
  ASSERT_TRUE(rules.has_value());
  std::shared_ptr<const RuleSet> set(std::move(*rules));
  const std::string path = "/tmp/\xffx";
  const std::string cid = testing::kCid;
  uint64_t seq = 0;
  auto base = [&](int64_t t) {
    v1::Event ev;
    ev.mutable_id()->set_node("node-1");
    ev.mutable_id()->set_boot_id("b");
    ev.mutable_id()->set_seq(++seq);
    ev.set_time_ns(t);
    ev.set_container_id(cid);
    return ev;
  };
  auto container = [&](int64_t t) {
    v1::Event ev = base(t);
    *ev.mutable_container() = testing::Container("app\xfe");
    ev.mutable_container()->set_start_time_ns(t);
    return ev;
  };
  auto write = [&](int64_t t) {
    v1::Event ev = base(t);
    v1::FileWrite* w = ev.mutable_write();
    w->set_kind("close_write");
    w->set_pid(300);
    w->set_comm("cp");
    w->set_path(path);
    w->set_upper_path("/var/lib/containerd/snapshots/4/fs" + path);  // fid mode sets it
    w->set_inode(777);
    w->set_mode(0100755);
    w->set_executable(true);
    w->set_sha256(std::string(32, '\xab'));
    return ev;
  };
  auto exec = [&](int64_t t) {
    v1::Event ev = testing::ExecEvent("\xffx", path, {path, "arg\x80"}, cid);
    ev.mutable_id()->set_boot_id("b");
    ev.mutable_id()->set_seq(++seq);
    ev.set_time_ns(t);
    ev.mutable_exec()->set_exe_inode(777);
    ev.mutable_exec()->set_parent_name("sh");
    ev.mutable_exec()->set_is_exe_upper_layer(true);
    return ev;
  };
  // As the collector gets them: serialized by the sensor, parsed at the collector (a
  // `string` field that is not UTF-8 would not parse: the event would be lost here).
  auto wire = [](const v1::Event& ev) {
    v1::Event back;
    EXPECT_TRUE(back.ParseFromString(ev.SerializeAsString()));
    return back;
  };
  constexpr int64_t kSec = 1'000'000'000;
  const int64_t t0 = 1700000000 * kSec;
  for (bool write_first : {true, false}) {
    Detector d(set);
    std::vector<Alert> alerts;
    auto sink = [&](Alert&& a) { alerts.push_back(std::move(a)); };
    d.OnEvent("node-1", wire(container(t0)), sink);
    if (write_first) {
      d.OnEvent("node-1", wire(write(t0 + kSec)), sink);
      d.OnEvent("node-1", wire(exec(t0 + 2 * kSec)), sink);
    } else {
      d.OnEvent("node-1", wire(exec(t0 + 2 * kSec)), sink);
      d.OnEvent("node-1", wire(write(t0 + kSec)), sink);
    }
    const Alert* drop = nullptr;
    for (const Alert& a : alerts)
      if (a.rule == "Drop and execute new binary in container") drop = &a;
    ASSERT_NE(drop, nullptr) << (write_first ? "write first" : "exec first");
    EXPECT_EQ(drop->container_name, "app\xfe");
    EXPECT_NE(drop->message.find("proc.exepath=" + path), std::string::npos) << drop->message;
    std::string json = FalcoJson(*drop);
    testing::JsonValue v;
    ASSERT_EQ(testing::JsonReader::Parse(json, &v), "") << json;
    const testing::JsonValue* fields = v.Get("output_fields");
    ASSERT_NE(fields, nullptr) << json;
    ASSERT_NE(fields->Get("proc.exepath"), nullptr) << json;
    EXPECT_EQ(fields->Get("proc.exepath")->text, path);
    EXPECT_EQ(fields->Get("container.name")->text, "app\xfe");
    EXPECT_EQ(fields->Get("proc.exe_writer.name")->text, "cp");
    EXPECT_NE(v.Get("output")->text.find(path), std::string::npos) << json;
    EXPECT_NE(json.find(R"(/tmp/\udcffx)"), std::string::npos) << json;
  }
}

TEST_F(ShippedRules, ShmAndMemfd) {
  auto shm = ExecEvent("sh", "/bin/sh", {"/dev/shm/bb"});
  shm.mutable_exec()->set_path("/dev/shm/bb");
  shm.mutable_exec()->set_success(false);
  shm.mutable_exec()->set_errno_name("EACCES");
  EXPECT_TRUE(Fires(Ctx(shm, &c_), "Execution from /dev/shm"));
  auto memfd = ExecEvent("x", "/memfd:x (deleted)", {"x"}, "");
  memfd.mutable_exec()->set_path("/proc/self/fd/3");
  EXPECT_TRUE(Fires(Ctx(memfd), "Fileless execution via memfd_create"));
  EXPECT_FALSE(Fires(Ctx(memfd), "Execution from /dev/shm"));
  auto shmx = ExecEvent("ls", "/bin/ls", {"ls"});
  shmx.mutable_exec()->set_path("/dev/shmx/ls");
  EXPECT_FALSE(Fires(Ctx(shmx, &c_), "Execution from /dev/shm"));
}

TEST_F(ShippedRules, ChmodExec) {
  v1::Event ev;
  ev.set_container_id(testing::kCid);
  auto* c = ev.mutable_chmod();
  c->set_syscall("fchmodat");
  c->set_success(true);
  c->set_new_mode(0755);
  c->set_adds_exec(true);
  c->set_comm("chmod");
  c->set_path("/tmp/bb");
  EXPECT_TRUE(Fires(Ctx(ev, &c_), "Container Drift Detected (chmod)"));
  // As Falco: an exec bit in the new mode is enough (cp may have kept the bits already).
  c->set_adds_exec(false);
  EXPECT_TRUE(Fires(Ctx(ev, &c_), "Container Drift Detected (chmod)"));
  c->set_new_mode(0644);
  EXPECT_FALSE(Fires(Ctx(ev, &c_), "Container Drift Detected (chmod)"));
  c->set_new_mode(0755);
  c->set_success(false);
  c->set_exit(-1);
  EXPECT_FALSE(Fires(Ctx(ev, &c_), "Container Drift Detected (chmod)"));
}

TEST_F(ShippedRules, MissingBinary) {
  auto ev = ExecEvent("sh", "/bin/sh", {"nmap"});
  ev.mutable_exec()->set_success(false);
  ev.mutable_exec()->set_errno_name("ENOENT");
  ev.mutable_exec()->set_exit(-2);
  EXPECT_TRUE(Fires(Ctx(ev, &c_), "Exec of Missing Binary in Container"));
  EXPECT_FALSE(Fires(Ctx(ev, &c_), "Forbidden Exec Attempt in Container"));
}

TEST_F(ShippedRules, DigestAndPostureRules) {
  v1::Event ev;
  ev.set_container_id(testing::kCid);
  *ev.mutable_container() = Container();
  RuleContext ctx = Ctx(ev);
  EXPECT_TRUE(Fires(ctx, "Container Writable Root Filesystem"));
  EXPECT_FALSE(Fires(ctx, "Container Image Not Approved"));  // no policy: not judged
  ctx.image.checked = true;
  ctx.image.approved = false;
  ctx.image.mutable_tag = true;
  ctx.image.reason = "digest not in policy";
  EXPECT_TRUE(Fires(ctx, "Container Image Not Approved"));
  EXPECT_TRUE(Fires(ctx, "Container Image Mutable Tag"));
  ctx.image.approved = true;
  ctx.image.mutable_tag = false;
  EXPECT_FALSE(Fires(ctx, "Container Image Not Approved"));
  EXPECT_FALSE(Fires(ctx, "Container Image Mutable Tag"));
  ev.mutable_container()->set_read_only_rootfs(true);
  EXPECT_FALSE(Fires(ctx, "Container Writable Root Filesystem"));
  ev.mutable_container()->set_read_only_rootfs(false);
  ev.mutable_container()->set_state("removed");
  EXPECT_TRUE(Fired(ctx).empty());
}

// Issue 19: drift the policy allows goes to the allowed sink, with its workload and what
// allowed it; drift in the same pod that no entry allows still alerts; a rule the entry does
// not cover (no drift tag) still alerts.
TEST(AllowedDrift, PolicyAllowsDeclaredDriftOnly) {
  auto rules = RuleSet::Load(SourceRuleFiles());
  ASSERT_TRUE(rules.has_value());
  std::shared_ptr<const RuleSet> set(std::move(*rules));
  auto policy = PreventPolicy::Parse(
      "allow:\n  - {name: builds, path_annotation: driftwatch.io/allow-drift}\n", "p.yaml");
  ASSERT_TRUE(policy) << policy.error();
  constexpr int64_t kSec = 1'000'000'000;
  const int64_t t0 = 1700000000 * kSec;
  uint64_t seq = 0;
  auto base = [&](int64_t t) {
    v1::Event ev;
    ev.mutable_id()->set_node("node-1");
    ev.mutable_id()->set_boot_id("b");
    ev.mutable_id()->set_seq(++seq);
    ev.set_time_ns(t);
    ev.set_container_id(testing::kCid);
    return ev;
  };
  v1::Event container = base(t0);
  *container.mutable_container() = testing::Container("build");
  v1::ContainerInfo& c = *container.mutable_container();
  c.set_pod_name("compile-28374650-x2kqp");
  c.set_pod_namespace("ci");
  v1::Label* a = c.add_pod_annotations();
  a->set_key("driftwatch.io/allow-drift");
  a->set_value("/workspace/out/*");
  auto write = [&](int64_t t, const std::string& path) {
    v1::Event ev = base(t);
    v1::FileWrite* w = ev.mutable_write();
    w->set_kind("close_write");
    w->set_pid(300);
    w->set_comm("cc");
    w->set_path(path);
    w->set_inode(path.size());
    w->set_mode(0100755);
    w->set_executable(true);
    return ev;
  };
  auto exec = [&](int64_t t, const std::string& path) {
    v1::Event ev = testing::ExecEvent("x", path, {path}, testing::kCid);
    ev.mutable_id()->set_boot_id("b");
    ev.mutable_id()->set_seq(++seq);
    ev.set_time_ns(t);
    ev.mutable_exec()->set_exe_inode(path.size());
    ev.mutable_exec()->set_is_exe_upper_layer(true);
    return ev;
  };
  Detector d(set);
  d.SetDriftPolicy(std::make_shared<const PreventPolicy>(std::move(*policy)));
  std::vector<Alert> alerts;
  std::vector<AllowedMatch> allowed;
  auto sink = [&](Alert&& x) { alerts.push_back(std::move(x)); };
  auto allow = [&](AllowedMatch&& m) { allowed.push_back(std::move(m)); };
  d.OnEvent("node-1", container, sink, nullptr, allow);
  d.OnEvent("node-1", write(t0 + kSec, "/workspace/out/app"), sink, nullptr, allow);
  d.OnEvent("node-1", exec(t0 + 2 * kSec, "/workspace/out/app"), sink, nullptr, allow);
  const std::string kDrop = "Drop and execute new binary in container";
  auto has = [&](const std::vector<Alert>& v, const std::string& rule) {
    return std::any_of(v.begin(), v.end(), [&](const Alert& x) { return x.rule == rule; });
  };
  EXPECT_FALSE(has(alerts, kDrop));
  ASSERT_FALSE(allowed.empty());
  const AllowedMatch* m = nullptr;
  for (const AllowedMatch& x : allowed)
    if (x.alert.rule == kDrop) m = &x;
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->allowed_by, "policy builds");
  EXPECT_EQ(m->workload, "compile");  // a CronJob's pod: -<minutes>-<5 chars> dropped
  EXPECT_EQ(m->alert.pod_namespace, "ci");
  EXPECT_EQ(d.stats().allowed, allowed.size());
  // The same pod, a file its annotation does not list: drift.
  d.OnEvent("node-1", write(t0 + 3 * kSec, "/tmp/payload"), sink, nullptr, allow);
  d.OnEvent("node-1", exec(t0 + 4 * kSec, "/tmp/payload"), sink, nullptr, allow);
  EXPECT_TRUE(has(alerts, kDrop));
}

TEST(AllowedDrift, WorkloadOfPods) {
  v1::ContainerInfo c;
  EXPECT_EQ(WorkloadOf(nullptr), "");
  c.set_name("solo");
  EXPECT_EQ(WorkloadOf(&c), "solo");  // no pod: the container
  auto pod = [&](const std::string& name) {
    c.set_pod_name(name);
    return WorkloadOf(&c);
  };
  EXPECT_EQ(pod("web-7c9f8d6b5-x2kqp"), "web");           // Deployment
  EXPECT_EQ(pod("agent-x2kqp"), "agent");                  // DaemonSet, Job
  EXPECT_EQ(pod("backup-28374650-x2kqp"), "backup");       // CronJob
  EXPECT_EQ(pod("db-0"), "db-0");                          // StatefulSet: its own
  EXPECT_EQ(pod("hand-made"), "hand-made");
  EXPECT_EQ(pod("web-AAAAA"), "web-AAAAA");                // not generated characters
  v1::Label* l = c.add_pod_labels();
  l->set_key("app");
  l->set_value("shop");
  EXPECT_EQ(pod("web-7c9f8d6b5-x2kqp"), "shop");          // the app label first
}

TEST(RuleEngine, OutputNonAsciiAndNA) {
  std::string seed = ReadFile(std::string(DW_SOURCE_DIR) + "/../shared/seed/seed-rules.yaml");
  std::string macros = ReadFile(std::string(DW_SOURCE_DIR) + "/rules/driftwatch_macros.yaml");
  auto r = RuleSet::LoadStrings({{"m.yaml", macros}, {"s.yaml", seed}});
  ASSERT_TRUE(r.has_value());
  auto ev = ExecEvent("bash", "/bin/bash", {"bash", "-i"});
  ev.mutable_exec()->set_parent_name("runc");
  v1::ContainerInfo c = Container();
  c.set_image_tag("");
  std::vector<RuleMatch> m;
  (*r)->Evaluate(Ctx(ev, &c), &m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].rule->name, "Container Shell Spawned");
  EXPECT_EQ(m[0].output,
            "容器中启动了 shell (user=root shell=bash container=api image=docker.io/library/nginx)");
  EXPECT_EQ(m[0].output_fields.size(), 4u);
  EXPECT_EQ(m[0].output_fields.at("user.name"), "root");

  auto drift = ExecEvent("x", "/x", {"x"});
  drift.mutable_exec()->set_is_exe_upper_layer(true);
  drift.mutable_exec()->set_uid(1000);
  m.clear();
  (*r)->Evaluate(Ctx(drift, &c), &m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(m[0].output.find("user=<NA> command=x container=api"), std::string::npos) << m[0].output;
  EXPECT_NE(m[0].output.find("image=docker.io/library/nginx:<NA>"), std::string::npos) << m[0].output;
  EXPECT_EQ(m[0].output_fields.at("container.image.tag"), "<NA>");
}

TEST(RuleEngine, OutputFormatParsing) {
  auto f = OutputFormat::Parse("a=%proc.name. b=%proc.aname[2] 100% c=%(x) %evt.type");
  ASSERT_TRUE(f.has_value()) << f.error().message;
  auto ev = ExecEvent("sh", "/bin/sh", {"sh"});
  auto ctx = Ctx(ev, nullptr, {"p1", "p2"});
  std::string out;
  std::map<std::string, std::string> fields;
  f->Format(ctx, &out, &fields);
  EXPECT_EQ(out, "a=sh. b=p2 100% c=%(x) execve");
  EXPECT_EQ(fields.at("proc.aname[2]"), "p2");
  EXPECT_FALSE(OutputFormat::Parse("%proc.nothing").has_value());
  EXPECT_FALSE(OutputFormat::Parse("%proc.apid").has_value());
}

TEST(RuleEngine, ConcurrentEvaluationIsSafe) {
  auto r = RuleSet::Load(SourceRuleFiles());
  ASSERT_TRUE(r.has_value());
  const RuleSet& set = **r;
  auto ev = ExecEvent("apk", "/sbin/apk", {"apk", "add"});
  v1::ContainerInfo c = Container();
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        std::vector<RuleMatch> m;
        set.Evaluate(Ctx(ev, &c), &m);
        if (m.size() != 1 || m[0].rule->name != "Package Manager Execution in Container") ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace driftwatch
