// Golden files for event JSON: a handful of events of every kind (non-UTF-8 bytes, capped
// arguments, a failed exec, an unknown container, a host process) whose JSON must equal
// tests/golden/event_json/<name>.json byte for byte.
//
// To regenerate the golden files after an intended change of the output, run
//   DW_UPDATE_GOLDEN=1 build/tests/rules_tests --gtest_filter='EventJsonGolden.*'
// and review the diff (git diff tests/golden/) before committing it.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lib/event/event_fields.h"
#include "lib/event/event_json.h"
#include "lib/event/event_view.h"
#include "lib/rules/rule_fields.h"
#include "unit/json_check.h"

namespace driftwatch {
namespace {

constexpr int64_t kT = 1764758400123456789;  // 2025-12-03T10:40:00.123456789Z

v1::Event Base(uint64_t seq) {
  v1::Event ev;
  ev.set_time_ns(kT + static_cast<int64_t>(seq) * 1000);
  ev.mutable_id()->set_node("node-1");
  ev.mutable_id()->set_boot_id("9f3c2a1e-boot");
  ev.mutable_id()->set_sensor_start_ns(1764758000000000000);
  ev.mutable_id()->set_seq(seq);
  return ev;
}

const std::string kCid = "3f1a9c0e5b7d2468ace013579bdf2468ace013579bdf2468ace013579bdf2468";

v1::ContainerInfo Info() {
  v1::ContainerInfo c;
  c.set_id(kCid);
  c.set_name("web");
  c.set_runtime("containerd");
  c.set_runtime_namespace("k8s.io");
  c.set_pod_name("web-7d9f");
  c.set_pod_namespace("shop");
  c.set_pod_uid("0b1c2d3e-uid");
  c.set_image("docker.io/library/nginx:1.27");
  c.set_image_repository("docker.io/library/nginx");
  c.set_image_tag("1.27");
  c.set_image_digest("sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
  c.set_image_ref("sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
  c.set_start_time_ns(1764758300000000000);
  c.set_rootfs_dev_major(0);
  c.set_rootfs_dev_minor(77);
  c.add_lowerdirs("/var/lib/containerd/snapshots/1/fs");
  c.set_upperdir("/var/lib/containerd/snapshots/2/fs");
  c.set_privileged(false);
  c.set_init_pid(4100);
  c.set_state("running");
  c.set_cgroup_path("/kubepods/besteffort/pod0b1c/" + kCid);
  c.set_source("cri");
  v1::Mount* m = c.add_mounts();
  m->set_source("/var/run/docker.sock");
  m->set_destination("/var/run/docker.sock");
  m->set_propagation("private");
  m = c.add_mounts();
  m->set_source("/etc/ho\xFFst");
  m->set_destination("/host/etc");
  m->set_read_only(true);
  m->set_propagation("rslave");
  return c;
}

v1::ProcessExec Exec() {
  v1::ProcessExec x;
  x.set_syscall("execve");
  x.set_success(true);
  x.set_pid(4242);
  x.set_ppid(4100);
  x.set_uid(0);
  x.set_euid(0);
  x.set_gid(0);
  x.set_egid(0);
  x.set_auid(4294967295u);
  x.set_session(4294967295u);
  x.set_tty("(none)");
  x.set_comm("curl");
  x.set_exe("/usr/bin/curl");
  x.add_args("curl");
  x.add_args("-o");
  x.add_args("/tmp/x");
  x.add_args("http://example.test/x");
  x.set_argc(4);
  x.set_cwd("/root");
  x.set_path("/usr/bin/curl");
  x.set_exe_inode(1312);
  x.set_exe_dev_major(0);
  x.set_exe_dev_minor(77);
  x.set_exe_mode(0100755);
  x.set_arch("x86_64");
  x.set_parent_name("sh");
  x.set_is_exe_upper_layer(false);
  x.set_is_exe_from_memfd(false);
  return x;
}

struct Golden {
  std::string name;
  v1::Event ev;
  bool with_info = false;  // the sensor reported the event's container
};

std::vector<Golden> Events() {
  std::vector<Golden> g;
  {  // A plain exec in a known container, from the live sensor.
    Golden e{"exec_container", Base(1), true};
    *e.ev.mutable_exec() = Exec();
    e.ev.set_container_id(kCid);
    e.ev.set_attribution(v1::ATTRIBUTION_CGROUP);
    g.push_back(e);
  }
  {  // Non-UTF-8 bytes everywhere text comes from the container; argv cut by the caps; a
     // script run through its interpreter; an ENRICHED log's user name; a terminal.
    Golden e{"exec_bytes_capped", Base(2), true};
    v1::ProcessExec x = Exec();
    x.set_comm("r\xFFn");
    x.set_exe("/bin/sh");
    x.clear_args();
    x.add_args("/tmp/\xC3(evil");
    x.add_args("a\"b\\c\n");
    x.add_args("\xE2\x82\xAC long argument cut sho");
    x.set_argc(9);
    x.set_args_capped(true);
    x.set_args_dropped_bytes(70000);
    x.set_args_truncated(true);
    x.set_cwd("/tmp/d\xC0\xAF");
    x.set_path("/tmp/\xC3(evil");
    x.set_exe_file("/tmp/\xC3(evil");
    x.set_exe_file_inode(99);
    x.set_exe_file_dev_major(0);
    x.set_exe_file_dev_minor(77);
    x.set_exe_file_stat(v1::EXE_FILE_STAT_OK);
    x.set_interpreter("/bin/sh");
    x.set_is_exe_upper_layer(true);
    x.set_user_name("r\xFFoot");
    x.set_uid(1000);
    x.set_euid(1000);
    x.set_gid(1000);
    x.set_auid(1000);
    x.set_session(3);
    x.set_tty("pts0");
    *e.ev.mutable_exec() = x;
    e.ev.set_container_id(kCid);
    e.ev.set_attribution(v1::ATTRIBUTION_PARENT);
    g.push_back(e);
  }
  {  // A failed exec from an offline audit log: an audit stamp, no sensor run, a container
     // the process tree named but nobody described (unknown container).
    Golden e{"exec_failed_unknown_container", Base(3), false};
    e.ev.mutable_id()->clear_boot_id();
    e.ev.mutable_id()->set_sensor_start_ns(0);
    e.ev.mutable_audit()->set_sec(1764758400);
    e.ev.mutable_audit()->set_msec(123);
    e.ev.mutable_audit()->set_serial(77001);
    v1::ProcessExec x = Exec();
    x.set_success(false);
    x.set_exit(-13);
    x.set_errno_name("EACCES");
    x.set_path("/tmp/denied");
    x.clear_is_exe_upper_layer();
    x.clear_is_exe_from_memfd();
    x.set_parent_name("");
    *e.ev.mutable_exec() = x;
    e.ev.set_container_id("my-ctr-run-name");
    e.ev.set_attribution(v1::ATTRIBUTION_PROCESS_TREE);
    g.push_back(e);
  }
  {  // A memfd exec on the host, a runtime's plumbing, no container at all.
    Golden e{"exec_host_memfd", Base(4), false};
    v1::ProcessExec x = Exec();
    x.set_exe("/memfd:x (deleted)");
    x.set_path("/proc/self/fd/3");
    x.clear_args();
    x.add_args("/usr/local/bin/runc");
    x.add_args("init");
    x.set_comm("3");
    x.set_is_exe_from_memfd(true);
    x.set_runtime_plumbing(true);
    x.set_exe_file_stat(v1::EXE_FILE_STAT_NOT_FOUND);
    *e.ev.mutable_exec() = x;
    g.push_back(e);
  }
  {  // chmod +x of a file written at runtime, errno name missing.
    Golden e{"chmod", Base(5), true};
    v1::Chmod* c = e.ev.mutable_chmod();
    c->set_syscall("fchmodat");
    c->set_success(true);
    c->set_pid(4300);
    c->set_ppid(4100);
    c->set_uid(0);
    c->set_euid(0);
    c->set_auid(4294967295u);
    c->set_comm("chmod");
    c->set_exe("/bin/chmod");
    c->set_path("/tmp/x\xFF");
    c->set_cwd("/");
    c->set_new_mode(0755);
    c->set_old_mode(0100644);
    c->set_adds_exec(true);
    c->set_inode(1400);
    c->set_dev_major(0);
    c->set_dev_minor(77);
    c->set_arch("x86_64");
    c->set_session(4294967295u);
    c->set_tty("(none)");
    c->set_parent_name("sh");
    e.ev.set_container_id(kCid);
    e.ev.set_attribution(v1::ATTRIBUTION_CGROUP);
    g.push_back(e);
  }
  {  // A failed fchmod on the host: no path.
    Golden e{"chmod_failed_host", Base(6), false};
    v1::Chmod* c = e.ev.mutable_chmod();
    c->set_syscall("fchmod");
    c->set_success(false);
    c->set_exit(-1);
    c->set_pid(50);
    c->set_ppid(1);
    c->set_uid(1000);
    c->set_euid(1000);
    c->set_auid(1000);
    c->set_comm("python3");
    c->set_exe("/usr/bin/python3.11");
    c->set_new_mode(0700);
    c->set_tty("pts1");
    c->set_session(2);
    e.ev.set_container_id("host");
    e.ev.set_attribution(v1::ATTRIBUTION_UNKNOWN);
    g.push_back(e);
  }
  {  // An executable written in a container (created by the write), hashed.
    Golden e{"write_executable", Base(7), true};
    v1::FileWrite* w = e.ev.mutable_write();
    w->set_kind("close_write");
    w->set_created(true);
    w->set_pid(4242);
    w->set_comm("curl");
    w->set_exe("/usr/bin/curl");
    w->set_path("/tmp/x");
    w->set_inode(1400);
    w->set_dev_major(0);
    w->set_dev_minor(77);
    w->set_size(4096);
    w->set_mode(0100644);
    w->set_executable(true);
    w->set_sha256(std::string(32, '\xAB'));
    w->set_upper_path("/var/lib/containerd/snapshots/2/fs/tmp/x");
    e.ev.set_container_id(kCid);
    e.ev.set_attribution(v1::ATTRIBUTION_OVERLAY);
    g.push_back(e);
  }
  {  // A rename by an unknown writer (pid 0), a name without a directory, non-UTF-8.
    Golden e{"write_rename_unknown_writer", Base(8), false};
    v1::FileWrite* w = e.ev.mutable_write();
    w->set_kind("rename");
    w->set_path("n\xFFw");
    w->set_old_path("/tmp/.old\xC3");
    w->set_inode(7);
    w->set_dev_major(8);
    w->set_dev_minor(1);
    w->set_mode(0100600);
    e.ev.set_container_id(kCid);
    e.ev.set_attribution(v1::ATTRIBUTION_OVERLAY);
    g.push_back(e);
  }
  {  // The sensor's report of a container.
    Golden e{"container", Base(9), false};
    *e.ev.mutable_container() = Info();
    e.ev.set_container_id(kCid);
    g.push_back(e);
  }
  {  // A container known from its cgroup only: most fields unknown, a name not UTF-8.
    Golden e{"container_cgroup_only", Base(10), false};
    v1::ContainerInfo* c = e.ev.mutable_container();
    c->set_id("podman-ctr");
    c->set_name("n\xFF");
    c->set_state("running");
    c->set_source("cgroup");
    c->set_privileged(true);
    c->set_read_only_rootfs(true);
    g.push_back(e);
  }
  {  // What the sensor read of the process at its exec: namespace ids, leaders, caps, an
     // environment of hostile bytes cut by the cap, the executable's times, names from the
     // container's /etc/passwd and /etc/group.
    Golden e{"exec_process_state", Base(12), true};
    v1::ProcessExec x = Exec();
    x.set_uid(1000);
    x.set_gid(1000);
    x.set_auid(1000);
    x.set_vpid(7);
    x.set_vpgid(7);
    x.set_vsid(1);
    x.set_pgid(4242);
    x.set_sid(4100);
    x.set_start_time_ns(kT - 2500000000);
    x.set_session_leader_name("sh");
    x.set_pgid_leader_name("curl");
    x.set_cap_effective(0xa80425fb);
    x.set_cap_permitted(0xa80425fb);
    x.set_cap_inheritable(0);
    x.add_env("PATH=/usr/bin");
    x.add_env("X=\xFF\x01\"q\"");
    x.add_env("HTTP_PROXY=http://p:3128");
    x.set_env_read(true);
    x.set_env_capped(true);
    x.set_env_dropped_bytes(5000);
    x.set_exe_ctime_ns(kT - 60000000000);
    x.set_exe_mtime_ns(kT - 120000000000);
    x.set_user_name("app");
    x.set_login_name("\xFEops");
    x.set_group_name("staff");
    *e.ev.mutable_exec() = x;
    e.ev.set_container_id(kCid);
    e.ev.set_attribution(v1::ATTRIBUTION_CGROUP);
    g.push_back(e);
  }
  {  // The sensor's status.
    Golden e{"status", Base(11), false};
    v1::SensorStatus* s = e.ev.mutable_status();
    s->set_audit_mode("owner");
    s->set_fanotify_mode("fid-filesystem");
    s->set_kernel_lost(3);
    s->set_socket_enobufs(1);
    s->set_queue_drops(2);
    s->set_reassembly_evictions(4);
    s->set_records(1000);
    s->set_events(200);
    s->set_fanotify_overflows(5);
    s->set_fanotify_events(60);
    s->set_containers(7);
    s->set_final(true);
    s->set_sensor_version("0.9.0");
    s->set_prevent_mode("drift");
    s->set_prevent_denied(2);
    s->set_prevent_would_deny(0);
    s->set_prevent_fail_answers(1);
    e.ev.set_container_id("host");
    g.push_back(e);
  }
  {  // An exec the sensor denied (--prevent drift): a dropped binary, hashed.
    Golden e{"prevented", Base(13), true};
    v1::ExecPrevented* x = e.ev.mutable_prevented();
    x->set_verdict(v1::ExecPrevented::DENIED);
    x->set_reason("upper layer");
    x->set_pid(4242);
    x->set_comm("sh");
    x->set_exe("/bin/busybox");
    x->set_path("/tmp/x\xFF");
    x->set_inode(1234567);
    x->set_dev_major(254);
    x->set_dev_minor(0);
    x->set_size(1000);
    x->set_mode(0100755);
    x->set_sha256(std::string(32, '\x5a'));
    x->set_upper_path("/var/lib/containerd/snapshots/42/fs/tmp/x\xFF");
    x->set_verdict_ns(23456);
    e.ev.set_container_id(kCid);
    e.ev.set_attribution(v1::ATTRIBUTION_CGROUP);
    g.push_back(e);
  }
  {  // The same, in a dry run.
    Golden e{"prevented_dry_run", Base(14), true};
    v1::ExecPrevented* x = e.ev.mutable_prevented();
    x->set_verdict(v1::ExecPrevented::WOULD_DENY);
    x->set_reason("upper layer");
    x->set_pid(4243);
    x->set_path("/tmp/gone");
    x->set_mode(0100700);
    x->set_verdict_ns(1500);
    e.ev.set_container_id(kCid);
    e.ev.set_attribution(v1::ATTRIBUTION_CGROUP);
    g.push_back(e);
  }
  {  // A non-blocking connect to a server in a container (EINPROGRESS, the usual result).
    Golden e{"network_connect", Base(15), true};
    v1::NetworkActivity* n = e.ev.mutable_network();
    n->set_syscall("connect");
    n->set_exit(-115);
    n->set_errno_name("EINPROGRESS");
    n->set_pid(4400);
    n->set_ppid(4100);
    n->set_auid(4294967295u);
    n->set_session(4294967295u);
    n->set_tty("(none)");
    n->set_comm("curl\xFF");
    n->set_exe("/usr/bin/curl");
    n->set_cwd("/");
    n->set_arch("x86_64");
    n->set_parent_name("sh");
    n->set_fd(5);
    n->set_family(2);
    n->set_address(std::string("\xa9\xfe\xa9\xfe", 4));
    n->set_port(80);
    e.ev.set_container_id(kCid);
    e.ev.set_attribution(v1::ATTRIBUTION_CGROUP);
    g.push_back(e);
  }
  {  // An accept on the host, IPv6 client.
    Golden e{"network_accept_ipv6", Base(16), false};
    v1::NetworkActivity* n = e.ev.mutable_network();
    n->set_syscall("accept4");
    n->set_success(true);
    n->set_exit(7);
    n->set_pid(900);
    n->set_ppid(1);
    n->set_comm("sshd");
    n->set_exe("/usr/sbin/sshd");
    n->set_fd(7);
    n->set_family(10);
    n->set_address(std::string("\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16));
    n->set_port(51000);
    e.ev.set_container_id("host");
    e.ev.set_attribution(v1::ATTRIBUTION_UNKNOWN);
    g.push_back(e);
  }
  {  // A sensitive read in a container: its service account token, through the symlink.
    Golden e{"read_sensitive", Base(17), true};
    v1::FileRead* r = e.ev.mutable_read();
    r->set_pid(4500);
    r->set_comm("cat");
    r->set_exe("/bin/busybox");
    r->set_path("/var/run/secrets/kubernetes.io/serviceaccount/..2026_12_05_05_00_00.1/token");
    r->set_entry("/var/run/secrets/kubernetes.io/serviceaccount/token");
    r->set_inode(31337);
    r->set_dev_major(0);
    r->set_dev_minor(0x4d);
    r->set_file_container_id(kCid);
    r->set_repeats(4);
    e.ev.set_container_id(kCid);
    e.ev.set_attribution(v1::ATTRIBUTION_CGROUP);
    g.push_back(e);
  }
  return g;
}

std::string GoldenPath(const std::string& name) {
  return std::string(DW_SOURCE_DIR) + "/tests/golden/event_json/" + name + ".json";
}

std::string JsonOf(const Golden& g) {
  v1::ContainerInfo info = Info();
  std::string out;
  EXPECT_TRUE(AppendEventJson(g.ev, g.with_info ? &info : nullptr, &out)) << g.name;
  out.push_back('\n');
  return out;
}

TEST(EventJsonGolden, MatchesGoldenFiles) {
  const bool update = std::getenv("DW_UPDATE_GOLDEN") != nullptr;
  for (const Golden& g : Events()) {
    const std::string json = JsonOf(g);
    testing::JsonValue v;
    EXPECT_EQ(testing::JsonReader::Parse(json, &v), "") << g.name << ": " << json;
    if (update) {
      std::ofstream(GoldenPath(g.name), std::ios::binary) << json;
      continue;
    }
    std::ifstream in(GoldenPath(g.name), std::ios::binary);
    ASSERT_TRUE(in) << GoldenPath(g.name) << " missing: see this file's comment to create it";
    std::stringstream want;
    want << in.rdbuf();
    EXPECT_EQ(json, want.str()) << g.name;
  }
}

// One vocabulary: every key event JSON prints is a field rules can name (with a type and a
// doc), and every field the registry says event JSON prints shows up in a golden event.
TEST(EventJsonGolden, KeysAreRegistryFields) {
  std::set<std::string> keys;
  for (const Golden& g : Events()) {
    testing::JsonValue v;
    ASSERT_EQ(testing::JsonReader::Parse(JsonOf(g), &v), "") << g.name;
    for (const auto& [key, value] : v.members) {
      keys.insert(key);
      const FieldInfo* f = FindField(key);
      ASSERT_NE(f, nullptr) << g.name << ": " << key << " is no registry field";
      EXPECT_TRUE(f->printed()) << key;
      EXPECT_FALSE(f->doc.empty()) << key;
    }
  }
  ASSERT_NE(FindField(kCollectorStoredNs), nullptr);  // what `driftwatch events` adds
  for (const FieldInfo* f : AllFields()) {
    if (!f->printed()) continue;
    EXPECT_EQ(keys.count(std::string(f->name)), 1u) << f->name << " in no golden event";
  }
}

// Fields only event JSON had are rule fields now, read from the event as the JSON prints
// them; where the rules define a field, the rules' meaning stays (proc.tty is a number).
TEST(EventJsonGolden, JsonOnlyFieldsAreReadFromTheEvent) {
  std::vector<Golden> g = Events();
  RuleContext ctx;
  ctx.event = &g[2].ev;  // exec_failed_unknown_container: an audit serial
  FieldValue v;
  ASSERT_TRUE(FindField("audit.serial")->Extract(ctx, {}, &v));
  EXPECT_EQ(v.num, 77001);
  v.Clear();
  ASSERT_TRUE(FindField("proc.argv")->Extract(ctx, {}, &v));
  EXPECT_EQ(v.list.size(), 4u);
  v.Clear();
  ASSERT_TRUE(FindField("proc.tty")->Extract(ctx, {}, &v));
  EXPECT_EQ(v.num, 0);  // "(none)"
  v.Clear();
  EXPECT_FALSE(FindField("sensor.kernel_lost")->Extract(ctx, {}, &v));  // not a status event
  for (const Golden& e : g)
    if (KindOf(e.ev) == Kind::kStatus) ctx.event = &e.ev;
  ASSERT_TRUE(FindField("sensor.kernel_lost")->Extract(ctx, {}, &v));
  EXPECT_EQ(v.num, 3);
  v.Clear();
  EXPECT_FALSE(FindField(kCollectorStoredNs)->Extract(ctx, {}, &v));
}

// docs/fields.md is what `driftwatch rules fields --markdown` prints: it lists exactly the
// registry's fields. After adding a field: build/cli/driftwatch rules fields --markdown >
// docs/fields.md
TEST(FieldDocs, FieldsMdListsTheRegistry) {
  std::ifstream in(std::string(DW_SOURCE_DIR) + "/docs/fields.md", std::ios::binary);
  ASSERT_TRUE(in);
  std::stringstream doc;
  doc << in.rdbuf();
  EXPECT_EQ(doc.str(), FieldsMarkdown());
  for (const FieldInfo* f : AllFields()) {
    EXPECT_NE(doc.str().find("| `" + std::string(f->name)), std::string::npos) << f->name;
  }
}

TEST(EventView, KindNamesRoundTrip) {
  for (Kind k : AllKinds()) {
    EXPECT_EQ(ParseKind(KindName(k)), k);
    EXPECT_EQ(KindOfFieldNumber(KindFieldNumber(k)), k);
  }
  EXPECT_EQ(ParseKind(""), std::nullopt);
  EXPECT_EQ(ParseKind("Exec"), std::nullopt);
  EXPECT_EQ(KindOf(v1::Event()), Kind::kNone);
  EXPECT_EQ(KindNames(), "exec, chmod, write, container, status, prevented, network, read");
  for (const Golden& g : Events()) {
    const Kind k = KindOf(g.ev);
    const bool process = k == Kind::kExec || k == Kind::kChmod || k == Kind::kWrite ||
                         k == Kind::kPrevented || k == Kind::kNetwork || k == Kind::kRead;
    EXPECT_EQ(ProcessOf(g.ev).has_value(), process) << g.name;
    EXPECT_EQ(FileOf(g.ev).has_value(), k == Kind::kChmod || k == Kind::kWrite ||
                                            k == Kind::kPrevented || k == Kind::kRead)
        << g.name;
  }
}

}  // namespace
}  // namespace driftwatch
