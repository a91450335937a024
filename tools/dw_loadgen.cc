// dw-loadgen: simulated sensors for the collector. Each sensor is one gRPC stream with its own
// node name and run (boot id, start time), sending realistic exec events in batches with
// several batches in flight, and counting the acks. Prints one JSON object with the totals.
//
// Test switches make a sensor misbehave on purpose: --no-hello, --oversize, --oversize-cwd,
// --hello-node, --decreasing-batch-id, --stray-inventory (--stray-inventory-bytes: a big one);
// --resend sends every sensor's events a second time on a new stream; --argv-bytes makes every
// exec carry that much argv, as a sensor that does not cap arguments would send them
// (--batch-bytes keeps messages in bounds). --drift ends each run with a package manager exec
// (a drift alert; --drift-execs N: its last N events, identical repeats), and --answer-inventory waits for the collector's inventory command and
// answers it: two entries in one message as sensors did before chunks, or
// --inventory-entries in chunks of about 1 MiB (--inventory-misorder: the first two swapped;
// --inventory-truncated: marked as cut at the depth cap). --container-info-after-ms MS sends
// each run's container event (its info) last, MS ms after the rest was acked, as a sensor whose
// runtime answered late does; --no-container-info never sends it.
//
// --network-share PERCENT makes that share of each sensor's events (after its first, the
// container, and before a --drift ending) network events of the same container, spread evenly
// through the run: mostly connects (AF_INET) of the app and of its curl children to a small
// set of destinations (DNS, database, cache, services, one outside address), most of them
// EINPROGRESS as non-blocking sockets report, some connected at once, some ECONNREFUSED;
// a few binds (the app's listening ports, some EADDRINUSE); counted as network_events_sent.
// 0 (the default): exec events only, as before the flag.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <google/protobuf/arena.h>
#include <google/protobuf/unknown_field_set.h>
#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>

#include "driftwatch/v1/collector.grpc.pb.h"
#include "lib/base/json.h"

namespace {

struct Flags {
  std::string target;
  std::string ca, cert, key, server_name, cert_dir;
  bool insecure = false;
  int sensors = 50;
  uint64_t events_per_sensor = 10000;
  uint64_t first_seq = 1;  // > 1: the run's earlier events are never sent (a sensor's loss)
  int batch = 500;
  int window = 8;
  std::string node_prefix = "sim-";
  std::string hello_node;
  std::string boot_id;
  int64_t sensor_start_ns = 0;
  bool resend = false;
  bool no_hello = false;
  bool stray_inventory = false;
  uint64_t stray_inventory_bytes = 0;
  uint64_t inventory_entries = 0;
  bool inventory_misorder = false;
  bool inventory_truncated = false;
  bool drift = false;
  uint64_t drift_execs = 1;  // with --drift: the run's last this many events
  int answer_inventory_s = 0;
  uint64_t oversize = 0;
  uint64_t oversize_cwd = 0;
  uint64_t argv_bytes = 0;
  uint64_t drift_arg_bytes = 0;
  uint64_t batch_bytes = 0;  // 0: batches cut by count only
  bool decreasing_batch_id = false;
  int network_share = 0;  // percent of the events that are network events
  int interval_ms = 0;
  int deadline_s = 300;
  // The run's container event (its info): first (-1), or last, sent on its own this many ms
  // after the other events were acked (a runtime that answered late); none at all.
  int container_info_after_ms = -1;
  bool no_container_info = false;
};

struct Result {
  std::string node;
  std::string welcome_node;
  uint64_t sent = 0, acked = 0, stored = 0, duplicates = 0, batches_acked = 0;
  uint64_t network_sent = 0;
  uint64_t inventories_answered = 0;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
};

const char* CodeName(grpc::StatusCode c) {
  static const char* names[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  int i = static_cast<int>(c);
  return i >= 0 && i <= 16 ? names[i] : "?";
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "dw-loadgen: %s: cannot read\n", path.c_str());
    std::exit(2);
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Hex(std::mt19937_64& rng, int n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) s += d[rng() & 15];
  return s;
}

// A sensor's identity and its event templates.
struct Sensor {
  std::string node;
  std::string boot_id;
  int64_t start_ns = 0;
  std::string container_id;
  uint64_t salt = 0;  // varies the network events' mix from sensor to sensor
  driftwatch::v1::Event tmpl;      // an exec
  driftwatch::v1::Event net_tmpl;  // a network event, process fields of the app
};

// Where the containers' processes connect, with how often (in percent of the connects).
struct NetDest {
  uint8_t ip[4];
  uint32_t port;
  int weight;
  int refused;  // percent of its connects refused (ECONNREFUSED)
  bool udp;     // connect on a datagram socket: succeeds at once, never refused
  bool curl;    // made by a curl child (as the exec events' curl) rather than by the app
};
constexpr NetDest kNetDests[] = {
    {{10, 96, 0, 10}, 53, 25, 0, true, false},       // cluster DNS
    {{10, 96, 14, 22}, 5432, 20, 10, false, false},  // postgres
    {{10, 96, 3, 17}, 6379, 15, 10, false, false},   // redis
    {{10, 96, 88, 41}, 8443, 15, 0, false, true},    // inventory service, curl
    {{10, 96, 201, 5}, 9092, 10, 10, false, false},  // kafka
    {{10, 96, 0, 1}, 443, 5, 5, false, false},       // kube-apiserver
    {{10, 244, 3, 18}, 8080, 5, 40, false, false},   // a peer pod that restarts now and then
    {{52, 94, 236, 248}, 443, 5, 0, false, true},    // an outside API, curl
};

uint64_t Mix64(uint64_t x) {  // splitmix64's finalizer: a cheap, deterministic spread
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The sequence number of the run's container event: 1, the last (--container-info-after-ms)
// or none (0, --no-container-info).
uint64_t ContainerSeq(const Flags& fl) {
  if (fl.no_container_info) return 0;
  return fl.container_info_after_ms >= 0 ? fl.events_per_sensor : 1;
}

// The run's last exec: the last event, or the one before a late container event.
uint64_t LastExecSeq(const Flags& fl) {
  return ContainerSeq(fl) == fl.events_per_sensor && fl.events_per_sensor > 1
             ? fl.events_per_sensor - 1
             : fl.events_per_sensor;
}

// True when event `seq` is one of the run's --drift package manager execs (its last
// --drift-execs execs, never the container).
bool IsDriftSeq(const Flags& fl, uint64_t seq) {
  return fl.drift && seq != ContainerSeq(fl) && seq <= LastExecSeq(fl) &&
         seq + fl.drift_execs > LastExecSeq(fl);
}

// True when event `seq` is one of the --network-share percent made network events: the
// share spread evenly over the run (50: every second event).
bool IsNetworkSeq(const Flags& fl, uint64_t seq) {
  if (fl.network_share <= 0 || seq <= 1 || seq == ContainerSeq(fl)) return false;
  if (IsDriftSeq(fl, seq)) return false;
  const auto p = static_cast<uint64_t>(fl.network_share);
  return seq * p / 100 != (seq - 1) * p / 100;
}

Sensor MakeSensor(const Flags& fl, int i) {
  std::mt19937_64 rng(0x5eed + static_cast<uint64_t>(i));
  Sensor s;
  s.node = fl.node_prefix + std::to_string(i);
  s.boot_id = fl.boot_id.empty() ? Hex(rng, 8) + "-" + Hex(rng, 4) + "-" + Hex(rng, 4) + "-" +
                                       Hex(rng, 4) + "-" + Hex(rng, 12)
                                 : fl.boot_id;
  s.start_ns = fl.sensor_start_ns;
  s.container_id = Hex(rng, 64);
  auto& e = s.tmpl;
  e.mutable_id()->set_node(s.node);
  e.mutable_id()->set_boot_id(s.boot_id);
  e.mutable_id()->set_sensor_start_ns(s.start_ns);
  e.set_container_id(s.container_id);
  e.set_attribution(driftwatch::v1::ATTRIBUTION_CGROUP);
  auto* x = e.mutable_exec();
  x->set_syscall("execve");
  x->set_success(true);
  x->set_ppid(4321);
  x->set_uid(1000);
  x->set_euid(1000);
  x->set_gid(1000);
  x->set_egid(1000);
  x->set_auid(4294967295u);
  x->set_session(4294967295u);
  x->set_tty("(none)");
  x->set_comm("curl");
  x->set_exe("/usr/bin/curl");
  x->add_args("curl");
  x->add_args("-sS");
  x->add_args("--retry");
  x->add_args("3");
  x->add_args("-H");
  x->add_args("Accept: application/json");
  x->add_args("https://inventory.payments.svc.cluster.local:8443/api/v1/items?page=1");
  x->set_argc(7);
  x->set_cwd("/srv/app");
  x->set_path("/usr/bin/curl");
  x->set_exe_inode(1835027);
  x->set_exe_dev_major(0);
  x->set_exe_dev_minor(52);
  x->set_exe_mode(0100755);
  x->set_arch("x86_64");
  x->set_parent_name("sh");
  x->set_is_exe_upper_layer(false);
  if (fl.argv_bytes > 0) {
    // Arguments of at most 128 KiB (the kernel's MAX_ARG_STRLEN) until argv holds
    // --argv-bytes, each counted with its NUL as the kernel counts them.
    uint64_t total = 0;
    for (const auto& a : x->args()) total += a.size() + 1;
    while (total < fl.argv_bytes) {
      const uint64_t n = std::min<uint64_t>(128 << 10, fl.argv_bytes - total);
      x->add_args(std::string(n > 1 ? n - 1 : 0, static_cast<char>('a' + x->args_size() % 26)));
      total += std::max<uint64_t>(n, 1);
    }
    x->set_argc(static_cast<uint32_t>(x->args_size()));
  }

  s.salt = rng();
  auto& ne = s.net_tmpl;
  *ne.mutable_id() = e.id();
  ne.set_container_id(s.container_id);
  ne.set_attribution(driftwatch::v1::ATTRIBUTION_CGROUP);
  auto* n = ne.mutable_network();  // the app, the container's main process
  n->set_syscall("connect");
  n->set_pid(4310);
  n->set_ppid(4300);
  n->set_uid(1000);
  n->set_euid(1000);
  n->set_auid(4294967295u);
  n->set_session(4294967295u);
  n->set_tty("(none)");
  n->set_comm("api");
  n->set_exe("/srv/app/bin/api");
  n->set_cwd("/srv/app");
  n->set_arch("x86_64");
  n->set_parent_name("tini");
  n->set_family(2);  // AF_INET
  return s;
}

// The body of network event `seq`: a connect (92%) or a bind (8%), with its result.
void FillNetwork(const Sensor& s, uint64_t seq, driftwatch::v1::NetworkActivity* n) {
  const uint64_t h = Mix64(s.salt ^ seq);
  n->set_fd(static_cast<int32_t>(3 + (h >> 32) % 40));
  const auto fail = [n](int err, const char* name) {
    n->set_success(false);
    n->set_exit(-err);
    n->set_errno_name(name);
  };
  const int pick = static_cast<int>(h % 100);
  const int result = static_cast<int>((h >> 8) % 100);
  if (pick < 8) {
    // The app's listening ports: 8080 (http), 9090 (metrics); a worker started while
    // another holds the port is refused.
    n->set_syscall("bind");
    n->set_address(std::string(4, '\0'));  // 0.0.0.0
    n->set_port(pick < 6 ? 8080 : 9090);
    n->set_address_is_local(true);
    if (result < 25) {
      fail(98, "EADDRINUSE");
    } else {
      n->set_success(true);
    }
    return;
  }
  int w = static_cast<int>((h >> 16) % 100);
  const NetDest* d = &kNetDests[0];
  for (const NetDest& x : kNetDests) {
    d = &x;
    if (w < x.weight) break;
    w -= x.weight;
  }
  n->set_address(std::string(reinterpret_cast<const char*>(d->ip), 4));
  n->set_port(d->port);
  if (d->curl) {
    // A curl child of the shell (as the exec events' curl), its pid an exec's.
    n->set_pid(static_cast<uint32_t>(10000 + (seq - 1) % 50000));
    n->set_ppid(4321);
    n->set_comm("curl");
    n->set_exe("/usr/bin/curl");
    n->set_parent_name("sh");
  }
  if (d->udp || result < 20) {
    n->set_success(true);  // a datagram socket, or a blocking one connected at once
  } else if (result >= 100 - d->refused) {
    fail(111, "ECONNREFUSED");
  } else {
    fail(115, "EINPROGRESS");  // a non-blocking socket, the usual case
  }
}

// First event of a run: the container the exec events belong to.
void AddContainerEvent(const Sensor& s, uint64_t seq, int64_t t, driftwatch::v1::Event* e) {
  e->mutable_id()->CopyFrom(s.tmpl.id());
  e->mutable_id()->set_seq(seq);
  e->set_time_ns(t);
  e->set_container_id(s.container_id);
  auto* c = e->mutable_container();
  c->set_id(s.container_id);
  c->set_name("api");
  c->set_runtime("containerd");
  c->set_runtime_namespace("k8s.io");
  c->set_pod_name("payments-api-7d9f8c6b5-x2x7q");
  c->set_pod_namespace("payments");
  c->set_image_repository("registry.example.com/payments/api");
  c->set_image_tag("1.42.0");
  c->set_image("registry.example.com/payments/api:1.42.0");
  c->set_state("running");
  c->set_source("cri");
}

// Returns the number of network events put into the batch.
uint64_t FillBatch(const Flags& fl, const Sensor& s, uint64_t first_seq, uint64_t n, int64_t t0,
                   bool oversize, driftwatch::v1::EventBatch* b) {
  b->clear_events();
  uint64_t network = 0;
  for (uint64_t k = 0; k < n; ++k) {
    const uint64_t seq = first_seq + k;
    const int64_t t = t0 + static_cast<int64_t>(seq) * 1000;
    driftwatch::v1::Event* e = b->add_events();
    if (seq == ContainerSeq(fl)) {
      AddContainerEvent(s, seq, t, e);
      continue;
    }
    if (IsNetworkSeq(fl, seq)) {
      *e = s.net_tmpl;
      e->mutable_id()->set_seq(seq);
      e->set_time_ns(t);
      FillNetwork(s, seq, e->mutable_network());
      e->mutable_audit()->set_sec(static_cast<uint64_t>(t / 1000000000));
      e->mutable_audit()->set_serial(seq);
      ++network;
      continue;
    }
    *e = s.tmpl;
    e->mutable_id()->set_seq(seq);
    e->set_time_ns(t);
    auto* x = e->mutable_exec();
    x->set_pid(static_cast<uint32_t>(10000 + seq % 50000));
    x->set_args(6, "https://inventory.payments.svc.cluster.local:8443/api/v1/items?page=" +
                       std::to_string(seq));
    e->mutable_audit()->set_sec(static_cast<uint64_t>(t / 1000000000));
    e->mutable_audit()->set_serial(seq);
    if (oversize && k + 1 == n) {
      if (fl.oversize > 0) x->add_args(std::string(fl.oversize, 'A'));
      if (fl.oversize_cwd > 0) x->set_cwd(std::string(fl.oversize_cwd, 'C'));
    }
    if (IsDriftSeq(fl, seq)) {
      // The run's last execs: a package manager in the container, the same each time.
      x->set_comm("apk");
      x->set_exe("/sbin/apk");
      x->set_path("/sbin/apk");
      x->clear_args();
      for (const char* a : {"apk", "add", "curl"}) x->add_args(a);
      if (fl.drift_arg_bytes > 0) x->add_args(std::string(fl.drift_arg_bytes, 'p'));
      x->set_argc(static_cast<uint32_t>(x->args_size()));
    }
  }
  return network;
}

// Answers an inventory command as a chunking sensor does: --inventory-entries added
// directories with 250-byte names, about 1 MiB of entries per message.
bool AnswerInChunks(const Flags& fl, const driftwatch::v1::Command& c,
                    grpc::ClientReaderWriter<driftwatch::v1::SensorMessage,
                                             driftwatch::v1::CollectorMessage>* stream) {
  std::vector<driftwatch::v1::SensorMessage> chunks;
  uint64_t next = 0;
  while (next < fl.inventory_entries) {
    driftwatch::v1::SensorMessage m;
    auto* inv = m.mutable_inventory();
    inv->set_command_id(c.command_id());
    inv->set_container_id(c.inventory().container_id());
    inv->set_chunk_index(static_cast<uint32_t>(chunks.size()));
    for (size_t bytes = 0; next < fl.inventory_entries && bytes < (1 << 20); ++next) {
      auto* e = inv->add_entries();
      std::string name = std::to_string(next);
      name.insert(0, 250 - name.size(), 'n');
      e->set_kind("added");
      e->set_path("/data/" + name);
      e->set_type("d");
      e->set_size(4096);
      e->set_mode(0755);
      bytes += e->ByteSizeLong() + 4;
    }
    inv->set_last_chunk(next == fl.inventory_entries);
    if (inv->last_chunk() && fl.inventory_truncated) {
      auto* t = inv->mutable_truncated();  // as a sensor whose walk hit its depth cap
      t->set_depth(true);
      t->set_dirs_not_entered(1);
      t->set_first_not_entered("/data/deep");
      t->set_entries_examined(fl.inventory_entries + 1);
      t->set_path_bytes_listed(next * 256);
      t->set_max_depth(128);
      t->set_max_entries(200000);
      t->set_max_path_bytes(16 << 20);
    }
    chunks.push_back(std::move(m));
  }
  if (fl.inventory_misorder && chunks.size() > 1) std::swap(chunks[0], chunks[1]);
  for (const auto& m : chunks) {
    if (!stream->Write(m)) return false;
  }
  return true;
}

Result RunStream(const Flags& fl, const std::shared_ptr<grpc::Channel>& ch, const Sensor& s,
                 int64_t t0) {
  Result r;
  r.node = s.node;
  auto stub = driftwatch::v1::Collector::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(fl.deadline_s));
  auto stream = stub->Stream(&ctx);
  driftwatch::v1::SensorMessage out;
  driftwatch::v1::CollectorMessage in;

  if (!fl.no_hello) {
    auto* h = out.mutable_hello();
    h->set_node(fl.hello_node.empty() ? s.node : fl.hello_node);
    h->set_boot_id(s.boot_id);
    h->set_sensor_start_ns(s.start_ns);
    h->set_sensor_version("loadgen");
    h->set_kernel_version("6.1.0");
    h->set_audit_mode("owner");
    h->set_fanotify_mode("fid-filesystem");
    if (stream->Write(out) && stream->Read(&in) && in.has_welcome()) {
      r.welcome_node = in.welcome().node();
    }
  }
  if (fl.stray_inventory) {
    // A reply to a command the collector never sent: to be discarded, the stream going on.
    // Built in the wire format (an unknown field 3 of the message is its inventory body on
    // the wire), so that a reply of many small entries costs this tool nothing to build.
    std::string reply;
    driftwatch::v1::InventoryReply head;
    head.set_command_id(424242);
    head.set_container_id("0123456789ab");
    head.SerializeToString(&reply);
    while (reply.size() + 2 <= fl.stray_inventory_bytes) reply.append("\x22\x00", 2);  // {}
    out.Clear();
    out.GetReflection()->MutableUnknownFields(&out)->AddLengthDelimited(
        driftwatch::v1::SensorMessage::kInventoryFieldNumber, reply);
    stream->Write(out);
  }

  // Acks arrive on this thread; the writer waits on the window.
  std::mutex mu;
  std::condition_variable cv;
  uint64_t acked_batch = 0;
  bool reader_done = false;
  std::vector<uint64_t> batch_events{0};  // events in batch i (index = batch id)
  std::vector<driftwatch::v1::Command> commands;
  std::thread reader([&] {
    driftwatch::v1::CollectorMessage m;
    while (stream->Read(&m)) {
      if (m.has_command()) {
        // Inventory requests only: a collector sends every stream its prevention policy
        // (Command{prevent_policy}) and may ask to stop containers; a simulated node has
        // nothing to do with either.
        if (!m.command().has_inventory()) continue;
        std::lock_guard lk(mu);
        commands.push_back(m.command());
        cv.notify_all();
        continue;
      }
      if (!m.has_ack()) continue;
      std::lock_guard lk(mu);
      for (uint64_t b = acked_batch + 1; b <= m.ack().batch_id() && b < batch_events.size(); ++b) {
        r.acked += batch_events[b];
        ++r.batches_acked;
      }
      acked_batch = std::max(acked_batch, m.ack().batch_id());
      r.stored += m.ack().stored();
      r.duplicates += m.ack().duplicates();
      cv.notify_all();
    }
    std::lock_guard lk(mu);
    reader_done = true;
    cv.notify_all();
  });

  uint64_t seq = std::max<uint64_t>(fl.first_seq, 1);
  uint64_t batch_id = 0;
  // As the sensor's uplink does (256 KiB): batches cut by bytes too.
  const uint64_t per_batch_by_bytes =
      fl.batch_bytes == 0 ? UINT64_MAX
                          : std::max<uint64_t>(1, fl.batch_bytes / std::max<size_t>(1, s.tmpl.ByteSizeLong()));
  // A late container event is sent on its own after the rest.
  const bool info_late = ContainerSeq(fl) == fl.events_per_sensor && fl.container_info_after_ms >= 0;
  const uint64_t total = info_late ? fl.events_per_sensor - 1 : fl.events_per_sensor;
  const size_t block_size = 4096 + static_cast<size_t>(fl.batch) * 2048;
  std::unique_ptr<char[]> block(new char[block_size]);
  google::protobuf::ArenaOptions arena_opt;
  arena_opt.initial_block = block.get();
  arena_opt.initial_block_size = block_size;
  while (seq <= total) {
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return reader_done || batch_id - acked_batch < static_cast<uint64_t>(fl.window); });
      if (reader_done) break;
    }
    uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(fl.batch), total - seq + 1);
    n = std::min<uint64_t>(n, per_batch_by_bytes);
    uint64_t id = ++batch_id;
    if (fl.decreasing_batch_id && id == 2) id = 1;
    // Each batch is built on an arena over a block reused from batch to batch: building
    // events field by field on the heap costs more CPU than the collector's ingest does.
    google::protobuf::Arena arena(arena_opt);
    auto* msg = google::protobuf::Arena::CreateMessage<driftwatch::v1::SensorMessage>(&arena);
    auto* b = msg->mutable_batch();
    b->set_batch_id(id);
    const uint64_t network =
        FillBatch(fl, s, seq, n, t0, (fl.oversize > 0 || fl.oversize_cwd > 0) && batch_id == 1, b);
    {
      std::lock_guard lk(mu);
      batch_events.push_back(n);
    }
    if (!stream->Write(*msg)) break;
    r.sent += n;
    r.network_sent += network;
    seq += n;
    if (fl.interval_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(fl.interval_ms));
  }
  // Wait for every ack (or the end of the stream), then half-close.
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return reader_done || acked_batch >= batch_id; });
  }
  if (info_late && seq == total + 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(fl.container_info_after_ms));
    google::protobuf::Arena arena(arena_opt);
    auto* msg = google::protobuf::Arena::CreateMessage<driftwatch::v1::SensorMessage>(&arena);
    auto* b = msg->mutable_batch();
    b->set_batch_id(++batch_id);
    FillBatch(fl, s, fl.events_per_sensor, 1, t0, false, b);
    {
      std::lock_guard lk(mu);
      batch_events.push_back(1);
    }
    if (stream->Write(*msg)) {
      r.sent += 1;
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return reader_done || acked_batch >= batch_id; });
    }
  }
  if (fl.answer_inventory_s > 0) {
    // Writes stay on this thread (one at a time on a stream): the reader hands commands over.
    std::vector<driftwatch::v1::Command> got;
    {
      std::unique_lock lk(mu);
      cv.wait_for(lk, std::chrono::seconds(fl.answer_inventory_s),
                  [&] { return reader_done || !commands.empty(); });
      got.swap(commands);
    }
    for (const auto& c : got) {
      if (!c.has_inventory()) continue;
      if (fl.inventory_entries > 0 && c.inventory().container_id() == s.container_id) {
        if (AnswerInChunks(fl, c, stream.get())) ++r.inventories_answered;
        continue;
      }
      driftwatch::v1::SensorMessage reply;
      auto* inv = reply.mutable_inventory();
      inv->set_command_id(c.command_id());
      inv->set_container_id(c.inventory().container_id());
      if (c.inventory().container_id() != s.container_id) {
        inv->set_error("no running container " + c.inventory().container_id());
      } else {
        auto* e = inv->add_entries();
        e->set_kind("added");
        e->set_path("/usr/local/bin/dropped");
        e->set_type("f");
        e->set_size(12345);
        e->set_mode(0755);
        e->set_executable(true);
        e->set_sha256(std::string(64, 'e'));
        e = inv->add_entries();
        e->set_kind("deleted");
        e->set_path("/etc/motd");
        e->set_type("f");
      }
      if (stream->Write(reply)) ++r.inventories_answered;
    }
  }
  stream->WritesDone();
  reader.join();
  grpc::Status st = stream->Finish();
  r.code = st.error_code();
  r.message = st.error_message();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dw-loadgen: simulated driftwatch sensors streaming to a collector"};
  Flags fl;
  app.add_option("--target", fl.target, "collector HOST:PORT")->required();
  app.add_option("--ca", fl.ca, "CA certificate that signed the collector's (PEM)");
  app.add_option("--cert", fl.cert, "client certificate (PEM)");
  app.add_option("--key", fl.key, "client key (PEM)");
  app.add_option("--cert-dir", fl.cert_dir,
                 "per-sensor client certificates: DIR/NODE.crt and DIR/NODE.key");
  app.add_option("--server-name", fl.server_name, "TLS name to expect from the collector");
  app.add_flag("--insecure", fl.insecure, "plaintext");
  app.add_option("--sensors", fl.sensors, "simulated sensors (streams)")->capture_default_str();
  app.add_option("--first-seq", fl.first_seq,
                 "send the run's events from this sequence number on (a gap before it)")
      ->capture_default_str();
  app.add_option("--events-per-sensor", fl.events_per_sensor, "events per sensor")
      ->capture_default_str();
  app.add_option("--batch", fl.batch, "events per batch")->capture_default_str();
  app.add_option("--window", fl.window, "batches in flight per stream")->capture_default_str();
  app.add_option("--node-prefix", fl.node_prefix, "node name = PREFIX + index")
      ->capture_default_str();
  app.add_option("--hello-node", fl.hello_node, "send this as Hello.node instead");
  app.add_option("--boot-id", fl.boot_id, "boot id of every sensor's run (default: random)");
  app.add_option("--sensor-start-ns", fl.sensor_start_ns,
                 "start time of every sensor's run (default: now); same value = same events");
  app.add_flag("--resend", fl.resend, "send every sensor's events again on a second stream");
  app.add_flag("--no-hello", fl.no_hello, "start with a batch instead of Hello");
  app.add_flag("--stray-inventory", fl.stray_inventory,
               "after Hello, an InventoryReply to a command never sent");
  app.add_option("--stray-inventory-bytes", fl.stray_inventory_bytes,
                 "with --stray-inventory: fill the reply with empty entries up to BYTES");
  app.add_option("--inventory-entries", fl.inventory_entries,
                 "with --answer-inventory: answer with N entries in chunks of about 1 MiB");
  app.add_flag("--inventory-misorder", fl.inventory_misorder,
               "with --inventory-entries: send the second chunk first");
  app.add_flag("--inventory-truncated", fl.inventory_truncated,
               "with --inventory-entries: say the walk stopped at the depth cap");
  app.add_flag("--drift", fl.drift, "the last event of each run: a package manager exec");
  app.add_option("--drift-execs", fl.drift_execs,
                 "with --drift: the last N events of each run are that exec (identical "
                 "repeats, as a container running it in a loop)")
      ->capture_default_str();
  app.add_option("--container-info-after-ms", fl.container_info_after_ms,
                 "send each run's container event last, on its own, this many ms after the "
                 "other events were acked (a runtime that answered late); -1: first")
      ->capture_default_str();
  app.add_flag("--no-container-info", fl.no_container_info,
               "send no container event (a container its node never reported)");
  app.add_option("--answer-inventory", fl.answer_inventory_s,
                 "after the last ack, wait up to SECONDS for inventory commands and answer them");
  app.add_option("--oversize", fl.oversize, "put an argument of BYTES into the first batch");
  app.add_option("--oversize-cwd", fl.oversize_cwd,
                 "give the first batch's last exec a cwd of BYTES (no argument to cut)");
  app.add_option("--drift-arg-bytes", fl.drift_arg_bytes,
                 "with --drift, the package manager's exec carries one more argument of this "
                 "many bytes (alerts with long command lines)")
      ->check(CLI::Range(0, 128 << 10));
  app.add_option("--argv-bytes", fl.argv_bytes,
                 "every exec carries this many bytes of argv (as an uncapped sensor sends)");
  app.add_option("--batch-bytes", fl.batch_bytes,
                 "cut batches at about this many bytes too, as sensors do (262144); 0: by "
                 "count only")
      ->capture_default_str();
  app.add_flag("--decreasing-batch-id", fl.decreasing_batch_id, "number the second batch 1");
  app.add_option("--network-share", fl.network_share,
                 "make PERCENT of each sensor's events network events of its container "
                 "(connects, mostly EINPROGRESS, some refused; binds), spread evenly; 0: "
                 "exec events only")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  app.add_option("--interval-ms", fl.interval_ms, "pause between batches");
  app.add_option("--deadline-s", fl.deadline_s, "deadline of each stream")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (fl.sensors <= 0 || fl.batch <= 0 || fl.window <= 0) {
    std::fprintf(stderr, "dw-loadgen: --sensors, --batch and --window must be > 0\n");
    return 2;
  }
  if (fl.sensor_start_ns == 0) {
    fl.sensor_start_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  }

  // Paired with grpc_shutdown_blocking at the end: gRPC's own shutdown is otherwise
  // asynchronous, and an exit racing it left TLS objects behind (LeakSanitizer reports in
  // the sanitizer build, and a report's exit lost the unflushed JSON).
  grpc_init();
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (fl.insecure) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions o;
    if (!fl.ca.empty()) o.pem_root_certs = ReadFile(fl.ca);
    if (!fl.cert.empty()) o.pem_cert_chain = ReadFile(fl.cert);
    if (!fl.key.empty()) o.pem_private_key = ReadFile(fl.key);
    creds = grpc::SslCredentials(o);
  }

  std::vector<Sensor> sensors;
  for (int i = 0; i < fl.sensors; ++i) sensors.push_back(MakeSensor(fl, i));
  const int64_t t0 = fl.sensor_start_ns;

  std::vector<Result> results;
  std::mutex results_mu;
  std::atomic<uint64_t> reconnects{0};  // streams made again after a failed connection
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < fl.sensors; ++i) {
    threads.emplace_back([&, i] {
      // One connection per sensor, as real sensors have.
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      if (!fl.server_name.empty()) args.SetSslTargetNameOverride(fl.server_name);
      auto sensor_creds = creds;
      if (!fl.cert_dir.empty() && !fl.insecure) {
        grpc::SslCredentialsOptions o;
        if (!fl.ca.empty()) o.pem_root_certs = ReadFile(fl.ca);
        const std::string base = fl.cert_dir + "/" + sensors[static_cast<size_t>(i)].node;
        o.pem_cert_chain = ReadFile(base + ".crt");
        o.pem_private_key = ReadFile(base + ".key");
        sensor_creds = grpc::SslCredentials(o);
      }
      auto ch = grpc::CreateCustomChannel(fl.target, sensor_creds, args);
      for (int pass = 0; pass < (fl.resend ? 2 : 1); ++pass) {
        Result r = RunStream(fl, ch, sensors[static_cast<size_t>(i)], t0);
        // As a sensor does: a connection that failed before anything was acked (a slow
        // handshake under load) is made again, at most 3 times, a second apart.
        for (int retry = 0; retry < 3 && r.code == grpc::StatusCode::UNAVAILABLE && r.acked == 0;
             ++retry) {
          reconnects.fetch_add(1);
          std::this_thread::sleep_for(std::chrono::seconds(1));
          r = RunStream(fl, ch, sensors[static_cast<size_t>(i)], t0);
        }
        std::lock_guard lk(results_mu);
        results.push_back(std::move(r));
      }
    });
  }
  for (auto& t : threads) t.join();
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  uint64_t sent = 0, acked = 0, stored = 0, dups = 0, batches = 0, answered = 0, network = 0;
  std::map<std::string, int> codes;
  std::map<std::string, int> welcome_nodes;
  std::string errors;
  for (const Result& r : results) {
    sent += r.sent;
    network += r.network_sent;
    acked += r.acked;
    stored += r.stored;
    dups += r.duplicates;
    batches += r.batches_acked;
    answered += r.inventories_answered;
    ++codes[CodeName(r.code)];
    if (!r.welcome_node.empty()) ++welcome_nodes[r.welcome_node];
    if (r.code != grpc::StatusCode::OK) {
      if (!errors.empty()) errors += ",";
      errors += "{\"node\":";
      driftwatch::AppendJsonString(r.node, &errors);
      errors += ",\"code\":\"" + std::string(CodeName(r.code)) + "\",\"message\":";
      driftwatch::AppendJsonString(r.message, &errors);
      errors += "}";
    }
  }
  std::string out = "{\"sensors\":" + std::to_string(fl.sensors) +
                    ",\"streams\":" + std::to_string(results.size()) +
                    ",\"events_sent\":" + std::to_string(sent) +
                    ",\"network_events_sent\":" + std::to_string(network) +
                    ",\"events_acked\":" + std::to_string(acked) +
                    ",\"batches_acked\":" + std::to_string(batches) +
                    ",\"stored\":" + std::to_string(stored) +
                    ",\"duplicates\":" + std::to_string(dups) +
                    ",\"inventories_answered\":" + std::to_string(answered) +
                    ",\"reconnects\":" + std::to_string(reconnects.load());
  char buf[128];
  std::snprintf(buf, sizeof buf, ",\"wall_s\":%.3f,\"events_per_s\":%.0f", wall,
                wall > 0 ? static_cast<double>(acked) / wall : 0.0);
  out += buf;
  out += ",\"status\":{";
  bool first = true;
  for (auto& [c, n] : codes) {
    out += (first ? "\"" : ",\"") + c + "\":" + std::to_string(n);
    first = false;
  }
  out += "},\"welcome_nodes\":{";
  first = true;
  for (auto& [node, n] : welcome_nodes) {
    if (!first) out += ",";
    driftwatch::AppendJsonString(node, &out);
    out += ":" + std::to_string(n);
    first = false;
  }
  out += "},\"errors\":[" + errors + "]}";
  std::printf("%s\n", out.c_str());
  std::fflush(stdout);
  creds.reset();
  grpc_shutdown_blocking();
  return codes.size() == 1 && codes.count("OK") && acked == sent ? 0 : 1;
}
