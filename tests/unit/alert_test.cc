// Alerts: Falco JSON, the stream and webhook outputs, the alerts table.
#include "lib/alerts/alert.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "lib/alerts/alert_output.h"
#include "lib/alerts/alert_store.h"
#include "lib/detect/detect.h"

namespace driftwatch {
namespace {

using nlohmann::json;

// The shape of Falco's JSON alert, as the "Output Channels" page of falco.org shows it (own
// values, same keys and formats).
constexpr const char* kFalcoShape = R"json({"hostname":"worker-1","output":"09:15:02.000000001: Warning Example (proc=sh)","priority":"Warning","rule":"Example rule","source":"syscall","tags":["a","b"],"time":"2024-01-02T09:15:02.000000001Z","output_fields":{"evt.time":1704186902000000001,"proc.name":"sh"}})json";

Alert Sample() {
  Alert a;
  a.time_ns = 1'685'022'245'478'445'995;  // 2023-05-25T13:44:05.478445995Z
  a.rule = "Drop and execute new binary in container";
  a.priority = Priority::kCritical;
  a.message = "Executing binary not part of base image (proc_exe=/tmp/x \"quoted\")";
  a.output_fields = {{"proc.name", AlertField::String("x")},
                     {"proc.tty", AlertField::Number(34816)},
                     {"proc.is_exe_upper_layer", AlertField::Bool(true)},
                     {"k8s.pod.name", AlertField::Null()}};
  a.tags = {"mitre_persistence", "container", "TA0003", "container"};
  a.hostname = "node-a";
  a.node = "node-a";
  a.container_id = std::string(64, 'a');
  a.pod_name = "api";
  a.pod_namespace = "default";
  return a;
}

// `text` matches `pattern`, where '9' stands for any digit and every other character for
// itself: "9999-99-99T99:99:99.999999999Z" is Falco's time.
bool Shape(std::string_view text, std::string_view pattern) {
  if (text.size() != pattern.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (pattern[i] == '9' ? (text[i] < '0' || text[i] > '9') : text[i] != pattern[i]) return false;
  }
  return true;
}

constexpr std::string_view kTime = "9999-99-99T99:99:99.999999999Z";
constexpr std::string_view kOutputPrefix = "99:99:99.999999999: ";

std::set<std::string> Keys(const json& j) {
  std::set<std::string> k;
  for (auto& [key, v] : j.items()) k.insert(key);
  return k;
}

TEST(Alert, FalcoJsonShape) {
  const std::string line = FalcoJson(Sample());
  EXPECT_EQ(line.find('\n'), std::string::npos);
  json j = json::parse(line);
  json ref = json::parse(kFalcoShape);
  EXPECT_EQ(Keys(j), Keys(ref));
  // Falco prints the keys sorted (its JSON library's order).
  EXPECT_TRUE(line.starts_with("{\"hostname\":")) << line;
  EXPECT_LT(line.find("\"output\":"), line.find("\"output_fields\":"));
  EXPECT_LT(line.find("\"tags\":"), line.find("\"time\":"));
  ASSERT_TRUE(Shape(ref["time"].get<std::string>(), kTime));
  EXPECT_TRUE(Shape(j["time"].get<std::string>(), kTime));
  EXPECT_FALSE(Shape("2023-05-25T13:44:05.478445Z", kTime));  // the checker checks
  EXPECT_EQ(j["time"], "2023-05-25T13:44:05.478445995Z");
  ASSERT_TRUE(Shape(ref["output"].get<std::string>().substr(0, kOutputPrefix.size()),
                    kOutputPrefix));
  EXPECT_EQ(j["output"],
            "13:44:05.478445995: Critical Executing binary not part of base image "
            "(proc_exe=/tmp/x \"quoted\")");
  EXPECT_EQ(j["priority"], "Critical");
  EXPECT_EQ(j["rule"], "Drop and execute new binary in container");
  EXPECT_EQ(j["source"], "syscall");
  EXPECT_EQ(j["hostname"], "node-a");
  EXPECT_EQ(j["tags"], json({"TA0003", "container", "mitre_persistence"}));
  EXPECT_TRUE(ref["output_fields"]["evt.time"].is_number_integer());
  EXPECT_EQ(j["output_fields"]["evt.time"].get<int64_t>(), 1'685'022'245'478'445'995);
  EXPECT_EQ(j["output_fields"]["proc.name"], "x");
  EXPECT_EQ(j["output_fields"]["proc.tty"], 34816);
  EXPECT_EQ(j["output_fields"]["proc.is_exe_upper_layer"], true);
  EXPECT_TRUE(j["output_fields"]["k8s.pod.name"].is_null());
}

TEST(Alert, Priorities) {
  EXPECT_EQ(ParsePriority("CRITICAL"), Priority::kCritical);
  EXPECT_EQ(ParsePriority("warning"), Priority::kWarning);
  EXPECT_EQ(ParsePriority("info"), Priority::kInformational);
  EXPECT_EQ(ParsePriority("Informational"), Priority::kInformational);
  EXPECT_FALSE(ParsePriority("severe"));
  EXPECT_EQ(PriorityName(Priority::kEmergency), "Emergency");
  EXPECT_EQ(PriorityName(Priority::kDebug), "Debug");
  EXPECT_LT(Priority::kCritical, Priority::kWarning);  // more severe is smaller
}

TEST(Alert, FillContext) {
  v1::Event ev;
  ev.mutable_id()->set_node("n1");
  ev.mutable_id()->set_boot_id("b");
  ev.mutable_id()->set_sensor_start_ns(5);
  ev.mutable_id()->set_seq(9);
  ev.set_time_ns(123);
  ev.set_container_id("cid");
  v1::ContainerInfo c;
  c.set_name("api");
  c.set_pod_name("p");
  c.set_pod_namespace("ns");
  RuleContext ctx;
  ctx.event = &ev;
  ctx.container = &c;
  Alert a;
  FillAlertContext(ctx, &a);
  EXPECT_EQ(a.time_ns, 123);
  EXPECT_EQ(a.hostname, "n1");
  EXPECT_EQ(a.container_id, "cid");
  EXPECT_EQ(a.container_name, "api");
  EXPECT_EQ(a.pod_namespace, "ns");
  EXPECT_EQ(a.event_key, "n1/b/5/9");
}

TEST(Alert, ParseFalcoJsonRoundTrip) {
  const Alert a = Sample();
  const std::string line = FalcoJson(a);
  auto back = ParseFalcoJson(line);
  ASSERT_TRUE(back) << line;
  EXPECT_EQ(FalcoJson(*back), line);
  EXPECT_EQ(back->message, a.message);
  EXPECT_EQ(back->time_ns, a.time_ns);
  EXPECT_EQ(back->priority, a.priority);
  EXPECT_EQ(back->hostname, "node-a");
  EXPECT_TRUE(back->node.empty());  // a column, not in the JSON
  // Not read back exactly, so never rewritten: other shapes, and bytes that are not UTF-8
  // (their \udcXX escapes are no JSON a parser takes back).
  Alert odd = a;
  odd.message = "bad byte \xff";
  for (const std::string& bad :
       {std::string("{}"), std::string("not json"), FalcoJson(odd),
        std::string(R"({"hostname":"n","output":"x","output_fields":{"evt.time":1.5},)"
                    R"("priority":"Warning","rule":"r","source":"s","tags":[],"time":"t"})")})
    EXPECT_FALSE(ParseFalcoJson(bad)) << bad;
}

// Issue 19: an alert made before its container's info arrived is completed from the info
// that came later, as if it had been there: columns, container fields, the message.
TEST(Detect, FillContainerMetadataLate) {
  const std::string rule = R"(
- rule: pm
  desc: d
  condition: container.id != host and proc.name = apk
  output: pm (command=%proc.cmdline container=%container.name image=%container.image.repository)
  priority: ERROR
)";
  auto rules = RuleSet::LoadStrings({{"r.yaml", rule}});
  ASSERT_TRUE(rules);
  std::shared_ptr<const RuleSet> set(std::move(*rules));
  Detector d(set);
  v1::Event ex;
  ex.mutable_id()->set_node("n");
  ex.mutable_id()->set_boot_id("b");
  ex.mutable_id()->set_seq(2);
  ex.set_time_ns(2'000'000'000);
  ex.set_container_id(std::string(64, 'c'));
  auto* x = ex.mutable_exec();
  x->set_success(true);
  x->set_pid(10);
  x->set_ppid(1);
  x->set_exe("/sbin/apk");
  x->set_comm("apk");
  for (const char* arg : {"apk", "add", "curl"}) x->add_args(arg);
  x->set_argc(3);
  std::vector<Alert> got;
  d.OnEvent("n", ex, [&](Alert&& a) { got.push_back(std::move(a)); });
  ASSERT_EQ(got.size(), 1u);
  Alert a = got[0];
  EXPECT_TRUE(MissingContainerMetadata(a));
  EXPECT_EQ(a.message, "pm (command=apk add curl container=<NA> image=<NA>)");
  RuleContext ctx;
  EXPECT_FALSE(d.ContainerContext("n", ex.container_id(), &ctx));

  v1::Event ce;
  ce.mutable_id()->set_node("n");
  ce.mutable_id()->set_seq(3);
  ce.set_time_ns(3'000'000'000);
  ce.set_container_id(ex.container_id());
  auto* c = ce.mutable_container();
  c->set_id(ex.container_id());
  c->set_name("api");
  c->set_pod_name("api-7d9f8c6b5-x2x7q");
  c->set_pod_namespace("shop");
  c->set_image_repository("registry.example.com/shop/api");
  c->set_image_ref("sha256:" + std::string(64, 'e'));
  d.OnEvent("n", ce, [](Alert&&) {});
  ASSERT_TRUE(d.ContainerContext("n", ex.container_id(), &ctx));
  auto field = [](const Alert& al, const std::string& k) {
    for (const auto& [n, v] : al.output_fields)
      if (n == k) return v.kind == AlertField::Kind::kNull ? std::string("null") : v.str;
    return std::string("absent");
  };
  Alert filled = a;
  FillContainerMetadata(ctx, set.get(), &filled);
  EXPECT_FALSE(MissingContainerMetadata(filled));
  EXPECT_EQ(filled.container_name, "api");
  EXPECT_EQ(filled.pod_name, "api-7d9f8c6b5-x2x7q");
  EXPECT_EQ(filled.pod_namespace, "shop");
  EXPECT_EQ(filled.message,
            "pm (command=apk add curl container=api image=registry.example.com/shop/api)");
  EXPECT_EQ(field(filled, "container.name"), "api");
  EXPECT_EQ(field(filled, "k8s.pod.name"), "api-7d9f8c6b5-x2x7q");
  EXPECT_EQ(field(filled, "k8s.ns.name"), "shop");
  EXPECT_EQ(field(filled, "container.image.id"), "sha256:" + std::string(64, 'e'));
  EXPECT_EQ(field(filled, "proc.cmdline"), "apk add curl");  // the event's, untouched
  // The same alert read back from its stored JSON (a restart) is completed the same way.
  auto stored = ParseFalcoJson(FalcoJson(a));
  ASSERT_TRUE(stored);
  stored->node = a.node;
  stored->container_id = a.container_id;
  FillContainerMetadata(ctx, set.get(), &*stored);
  EXPECT_EQ(FalcoJson(*stored), FalcoJson(filled));

  // Rules reloaded with another output for the rule: fields filled, the message kept.
  auto other = RuleSet::LoadStrings(
      {{"r.yaml", R"(
- rule: pm
  desc: d
  condition: container.id != host and proc.name = apk
  output: other (container=%container.name)
  priority: ERROR
)"}});
  ASSERT_TRUE(other);
  Alert kept = a;
  FillContainerMetadata(ctx, other->get(), &kept);
  EXPECT_EQ(kept.message, a.message);
  EXPECT_EQ(field(kept, "container.name"), "api");
}

TEST(AlertOutput, StreamToFile) {
  auto path = std::filesystem::temp_directory_path() / ("dw_alerts_" + std::to_string(getpid()));
  std::filesystem::remove(path);
  auto out = StreamOutput::Open(path.string());
  ASSERT_TRUE(out) << out.error();
  Alert a = Sample();
  (*out)->Emit(FalcoJson(a));
  a.rule = "second";
  (*out)->Emit(FalcoJson(a));
  EXPECT_EQ((*out)->Stats().emitted, 2u);
  std::ifstream in(path);
  std::string l1, l2, l3;
  ASSERT_TRUE(std::getline(in, l1));
  ASSERT_TRUE(std::getline(in, l2));
  EXPECT_FALSE(std::getline(in, l3));
  EXPECT_EQ(json::parse(l1)["rule"], "Drop and execute new binary in container");
  EXPECT_EQ(json::parse(l2)["rule"], "second");
  std::filesystem::remove(path);
  auto missing = StreamOutput::Open("/nonexistent-dir/alerts.json");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message(), "/nonexistent-dir/alerts.json: No such file or directory");
}

// A tiny HTTP/1.1 server on 127.0.0.1:0: answers each request with the next status of
// `statuses` (200 once they run out) and keeps the request bodies.
class TestServer {
 public:
  // With `tls`, connections are TLS (the context's certificate).
  explicit TestServer(std::vector<int> statuses, SSL_CTX* tls = nullptr)
      : tls_(tls), statuses_(std::move(statuses)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~TestServer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string url() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) +
           "/alerts";
  }
  std::vector<std::string> bodies() {
    std::lock_guard l(mu_);
    return bodies_;
  }
  std::vector<std::string> heads() {
    std::lock_guard l(mu_);
    return heads_;
  }

 private:
  void Run() {
    while (true) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      SSL* ssl = nullptr;
      if (tls_ != nullptr) {
        ssl = SSL_new(tls_);
        SSL_set_fd(ssl, c);
        if (SSL_accept(ssl) != 1) {  // the client refused our certificate
          SSL_free(ssl);
          ::close(c);
          continue;
        }
      }
      auto recv = [&](char* b, size_t n) -> ssize_t {
        return ssl ? SSL_read(ssl, b, static_cast<int>(n)) : ::read(c, b, n);
      };
      std::string data;
      char buf[4096];
      size_t header_end = std::string::npos;
      size_t want = 0;
      while (true) {
        ssize_t n = recv(buf, sizeof buf);
        if (n <= 0) break;
        data.append(buf, static_cast<size_t>(n));
        if (header_end == std::string::npos) {
          header_end = data.find("\r\n\r\n");
          if (header_end == std::string::npos) continue;
          std::string lower = data.substr(0, header_end);
          for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          size_t cl = lower.find("content-length:");
          want = cl == std::string::npos ? 0 : std::stoul(lower.substr(cl + 15));
        }
        if (data.size() >= header_end + 4 + want) break;
      }
      int status = 200;
      {
        std::lock_guard l(mu_);
        if (header_end != std::string::npos) {
          heads_.push_back(data.substr(0, header_end));
          bodies_.push_back(data.substr(header_end + 4, want));
        }
        if (next_ < statuses_.size()) status = statuses_[next_++];
      }
      std::string resp = "HTTP/1.1 " + std::to_string(status) +
                         " X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
      if (ssl != nullptr) {
        SSL_write(ssl, resp.data(), static_cast<int>(resp.size()));
        SSL_shutdown(ssl);
        SSL_free(ssl);
      } else {
        ssize_t ignored = ::write(c, resp.data(), resp.size());
        (void)ignored;
      }
      ::close(c);
    }
  }

  SSL_CTX* tls_ = nullptr;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<int> statuses_;
  size_t next_ = 0;
  std::vector<std::string> bodies_, heads_;
};

WebhookOptions Fast(const std::string& url) {
  WebhookOptions o;
  o.url = url;
  o.backoff_initial = std::chrono::milliseconds(1);
  o.backoff_max = std::chrono::milliseconds(4);
  return o;
}

constexpr auto kHangGuard = std::chrono::seconds(60);

TEST(Webhook, RetriesAfterFailure) {
  TestServer server({500, 503});
  auto out = WebhookOutput::Create(Fast(server.url()));
  ASSERT_TRUE(out) << out.error();
  (*out)->Start();
  Alert a = Sample();
  const std::string body = FalcoJson(a);
  (*out)->Emit(body);
  ASSERT_TRUE((*out)->Drain(kHangGuard));
  OutputStats s = (*out)->Stats();
  EXPECT_EQ(s.emitted, 1u);
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_NE((*out)->last_error().find("503"), std::string::npos) << (*out)->last_error();
  auto bodies = server.bodies();
  ASSERT_EQ(bodies.size(), 3u);
  for (const auto& b : bodies) EXPECT_EQ(b, body);
  const std::string head = server.heads()[0];
  EXPECT_TRUE(head.starts_with("POST /alerts HTTP/1.1")) << head;
  EXPECT_NE(head.find("application/json"), std::string::npos) << head;
}

TEST(Webhook, GivesUpAfterMaxAttempts) {
  TestServer server({500, 500, 500});
  WebhookOptions o = Fast(server.url());
  o.max_attempts = 2;
  auto out = WebhookOutput::Create(o);
  ASSERT_TRUE(out) << out.error();
  (*out)->Start();
  Alert a = Sample();
  (*out)->Emit(FalcoJson(a));
  ASSERT_TRUE((*out)->Drain(kHangGuard));
  EXPECT_EQ((*out)->Stats().failed, 1u);
  EXPECT_EQ((*out)->Stats().emitted, 0u);
  EXPECT_EQ(server.bodies().size(), 2u);
}

TEST(Webhook, FullQueueDropsAndCounts) {
  TestServer server({});
  WebhookOptions o = Fast(server.url());
  o.queue_capacity = 2;
  auto out = WebhookOutput::Create(o);
  ASSERT_TRUE(out) << out.error();
  Alert a = Sample();
  for (int i = 0; i < 5; ++i) {
    a.rule = std::to_string(i);
    a.rule.insert(a.rule.begin(), 'r');
    (*out)->Emit(FalcoJson(a));  // not started: the queue fills
  }
  EXPECT_EQ((*out)->Stats().dropped, 3u);
  (*out)->Start();
  ASSERT_TRUE((*out)->Drain(kHangGuard));
  EXPECT_EQ((*out)->Stats().emitted, 2u);
  auto bodies = server.bodies();
  ASSERT_EQ(bodies.size(), 2u);
  EXPECT_EQ(json::parse(bodies[0])["rule"], "r0");
  EXPECT_EQ(json::parse(bodies[1])["rule"], "r1");
}

TEST(Webhook, ConnectionRefusedFails) {
  int port;
  {
    TestServer gone({});
    port = std::stoi(gone.url().substr(gone.url().rfind(':') + 1));
  }
  WebhookOptions o = Fast("http://127.0.0.1:" + std::to_string(port) + "/");
  o.max_attempts = 2;
  auto out = WebhookOutput::Create(o);
  ASSERT_TRUE(out);
  (*out)->Start();
  Alert a = Sample();
  (*out)->Emit(FalcoJson(a));
  ASSERT_TRUE((*out)->Drain(kHangGuard));
  EXPECT_EQ((*out)->Stats().failed, 1u);
  EXPECT_NE((*out)->last_error().find("connect"), std::string::npos) << (*out)->last_error();
}

// A self-signed certificate for 127.0.0.1 (P-256), its PEM in `pem_path`.
struct SelfSigned {
  explicit SelfSigned(const std::string& pem_path) {
    key = EVP_EC_gen("P-256");
    cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"},
                              std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
      X509_add_ext(cert, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(cert, key, EVP_sha256());
    FILE* f = std::fopen(pem_path.c_str(), "w");
    PEM_write_X509(f, cert);
    std::fclose(f);
    ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate(ctx, cert);
    SSL_CTX_use_PrivateKey(ctx, key);
  }
  ~SelfSigned() {
    SSL_CTX_free(ctx);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  SSL_CTX* ctx = nullptr;
};

TEST(Webhook, Https) {
  const std::string pem =
      (std::filesystem::temp_directory_path() / ("dw_ca_" + std::to_string(getpid()) + ".pem"))
          .string();
  SelfSigned cert(pem);
  ASSERT_NE(cert.ctx, nullptr);
  TestServer server({}, cert.ctx);
  Alert a = Sample();
  {
    WebhookOptions o = Fast(server.url());
    o.ca_file = pem;
    auto out = WebhookOutput::Create(o);
    ASSERT_TRUE(out) << out.error();
    (*out)->Start();
    (*out)->Emit(FalcoJson(a));
    ASSERT_TRUE((*out)->Drain(kHangGuard));
    EXPECT_EQ((*out)->Stats().emitted, 1u) << (*out)->last_error();
  }
  ASSERT_EQ(server.bodies().size(), 1u);
  EXPECT_EQ(server.bodies()[0], FalcoJson(a));
  {
    // The system's CAs do not vouch for a self-signed certificate: nothing is sent.
    WebhookOptions o = Fast(server.url());
    o.max_attempts = 1;
    auto out = WebhookOutput::Create(o);
    ASSERT_TRUE(out) << out.error();
    (*out)->Start();
    (*out)->Emit(FalcoJson(a));
    ASSERT_TRUE((*out)->Drain(kHangGuard));
    EXPECT_EQ((*out)->Stats().failed, 1u);
    EXPECT_NE((*out)->last_error().find("TLS handshake"), std::string::npos)
        << (*out)->last_error();
  }
  EXPECT_EQ(server.bodies().size(), 1u);
  std::filesystem::remove(pem);
}

WebhookOptions Opts(const std::string& url) {
  WebhookOptions o;
  o.url = url;
  return o;
}

TEST(Webhook, Urls) {
  auto ftp = WebhookOutput::Create(Opts("ftp://x/"));
  ASSERT_FALSE(ftp);
  EXPECT_EQ(ftp.error().code(), ErrorCode::kInvalidInput);
  EXPECT_EQ(ftp.error().message(), "webhook URL ftp://x/: http:// or https:// required");
  EXPECT_FALSE(WebhookOutput::Create(Opts("http://")));
  EXPECT_FALSE(WebhookOutput::Create(Opts("http://host:12x/")));
  EXPECT_TRUE(WebhookOutput::Create(Opts("http://sidekick:2801")));
  EXPECT_TRUE(WebhookOutput::Create(Opts("https://hooks.example.com/a/b")));
  EXPECT_TRUE(WebhookOutput::Create(Opts("http://[::1]:2801/")));
}

class AlertStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("dw_alertstore_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    db_ = (dir_ / "collector.db").string();
    auto st = AlertStore::Open(db_);
    ASSERT_TRUE(st) << st.error();
    struct Row {
      int64_t t;
      const char* node;
      std::string cid;
      const char* pod;
      const char* ns;
      const char* rule;
      Priority p;
      const char* key;
    };
    const std::string a(64, 'a'), b(64, 'b');
    for (const Row& r : std::vector<Row>{
             {100, "n1", a, "api", "default", "Drop and execute", Priority::kCritical, "n1/b/0/1"},
             {200, "n1", a, "api", "default", "Terminal shell", Priority::kNotice, "n1/b/0/2"},
             {300, "n2", b, "db", "prod", "Drop and execute", Priority::kWarning, "n2/b/0/1"},
             {400, "n2", b, "db", "prod", "Package manager", Priority::kError, ""},
             {500, "n2", "host", "", "", "Terminal shell", Priority::kDebug, ""}}) {
      Alert al;
      al.time_ns = r.t;
      al.node = al.hostname = r.node;
      al.container_id = r.cid;
      al.pod_name = r.pod;
      al.pod_namespace = r.ns;
      al.rule = r.rule;
      al.priority = r.p;
      al.event_key = r.key;
      al.message = std::string("m") + std::to_string(r.t);
      auto ok = (*st)->Insert(al, FalcoJson(al));
      ASSERT_TRUE(ok) << ok.error();
      EXPECT_TRUE(*ok);
    }
    // The same event and rule again (re-evaluated after a restart): stored once.
    Alert dup;
    dup.time_ns = 100;
    dup.rule = "Drop and execute";
    dup.event_key = "n1/b/0/1";
    auto again = (*st)->Insert(dup, FalcoJson(dup));
    ASSERT_TRUE(again);
    EXPECT_FALSE(*again);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<int64_t> Times(const AlertQuery& q) {
    auto r = AlertReader::Open(db_);
    EXPECT_TRUE(r) << r.error();
    std::vector<int64_t> out;
    auto n = (*r)->Query(q, [&](const StoredAlert& a) {
      out.push_back(a.time_ns);
      EXPECT_EQ(json::parse(a.json)["rule"], a.rule);
      EXPECT_EQ(a.message, "m" + std::to_string(a.time_ns));
    });
    EXPECT_TRUE(n) << n.error();
    return out;
  }

  std::filesystem::path dir_;
  std::string db_;
};

using V = std::vector<int64_t>;

AlertQuery Q(const std::function<void(AlertQuery*)>& f) {
  AlertQuery q;
  f(&q);
  return q;
}

TEST_F(AlertStoreTest, Filters) {
  EXPECT_EQ(Times({}), (V{100, 200, 300, 400, 500}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) { q->node = "n1"; })), (V{100, 200}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) { q->container = std::string(12, 'b'); })), (V{300, 400}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) { q->container = std::string(64, 'a'); })), (V{100, 200}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) { q->container = "host"; })), (V{500}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) { q->pod = "db"; })), (V{300, 400}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) { q->pod = "default/api"; })), (V{100, 200}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) { q->pod = "prod/api"; })), V{});
  EXPECT_EQ(Times(Q([](AlertQuery* q) { q->rule = "Drop and execute"; })), (V{100, 300}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) { q->min_priority = Priority::kError; })), (V{100, 400}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) { q->min_priority = Priority::kWarning; })),
            (V{100, 300, 400}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) {
              q->since_ns = 200;
              q->until_ns = 400;
            })),
            (V{200, 300}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) { q->limit = 2; })), (V{400, 500}));
  EXPECT_EQ(Times(Q([](AlertQuery* q) {
              q->node = "n2";
              q->rule = "Terminal shell";
            })),
            (V{500}));
}

TEST_F(AlertStoreTest, DatabaseWithoutAlertsReadsEmpty) {
  const std::string other = (dir_ / "empty.db").string();
  { std::ofstream(other).flush(); }
  auto r = AlertReader::Open(other);
  ASSERT_TRUE(r) << r.error();
  auto n = (*r)->Query({}, [](const StoredAlert&) { ADD_FAILURE(); });
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 0u);
  EXPECT_FALSE(AlertReader::Open((dir_ / "missing.db").string()));
  auto m = (*r)->QueryInventories({}, [](const StoredInventory&) { ADD_FAILURE(); });
  ASSERT_TRUE(m);
  EXPECT_EQ(*m, 0u);
}

// A reply's bytes: a blob with a NUL and a high byte, kept as they are.
std::string Blob(int64_t t) {
  std::string b("\0bytes\xff", 7);
  b.append(std::to_string(t));
  return b;
}

TEST_F(AlertStoreTest, InventoriesKeptPerContainerAndQueried) {
  auto st = AlertStore::Open(db_);
  ASSERT_TRUE(st) << st.error();
  const std::string a(64, 'a'), b(64, 'b');
  auto put = [&](int64_t t, const std::string& node, const std::string& cid, const char* name,
                 const char* pod, const char* ns, const std::string& error) {
    StoredInventory inv;
    inv.taken_ns = t;
    inv.node = node;
    inv.container_id = cid;
    inv.container_name = name;
    inv.pod_name = pod;
    inv.pod_namespace = ns;
    inv.rules = "Drop and execute,Terminal shell";
    inv.error = error;
    inv.entries = static_cast<uint64_t>(t);
    inv.reply = Blob(t);
    auto ok = (*st)->InsertInventory(inv);
    ASSERT_TRUE(ok) << ok.error();
  };
  // Container a on n1 gets more than kept; b on n2 and a on n2 (same id, other node) one each.
  const int kept = AlertStore::kInventoriesKept;
  for (int i = 1; i <= kept + 5; ++i) put(i, "n1", a, "api", "api-7f", "default", "");
  put(1000, "n2", b, "db", "db-0", "prod", "");
  put(2000, "n2", a, "api", "api-9x", "default", "no running container aaaa on this node");

  auto r = AlertReader::Open(db_);
  ASSERT_TRUE(r) << r.error();
  auto times = [&](const InventoryQuery& q) {
    V out;
    auto n = (*r)->QueryInventories(q, [&](const StoredInventory& inv) {
      out.push_back(inv.taken_ns);
      EXPECT_EQ(inv.reply, Blob(inv.taken_ns));
      EXPECT_EQ(inv.entries, static_cast<uint64_t>(inv.taken_ns));
      EXPECT_EQ(inv.rules, "Drop and execute,Terminal shell");
    });
    EXPECT_TRUE(n) << n.error();
    return out;
  };
  V n1_a;
  for (int i = 6; i <= kept + 5; ++i) n1_a.push_back(i);  // the oldest five were dropped
  InventoryQuery q;
  q.node = "n1";
  EXPECT_EQ(times(q), n1_a);
  q = {};
  q.container = std::string(12, 'a');
  V all_a = n1_a;
  all_a.push_back(2000);
  EXPECT_EQ(times(q), all_a);
  q.limit = 1;
  EXPECT_EQ(times(q), (V{2000}));
  q = {};
  q.name = "db";
  EXPECT_EQ(times(q), (V{1000}));
  q = {};
  q.pod = "default/api-7f";
  q.limit = 2;
  EXPECT_EQ(times(q), (V{kept + 4, kept + 5}));
  q = {};
  q.pod = "prod/api-7f";
  EXPECT_EQ(times(q), V{});
  q = {};
  q.name = "api";
  q.node = "n2";
  std::string error;
  ASSERT_TRUE((*r)->QueryInventories(q, [&](const StoredInventory& inv) { error = inv.error; }));
  EXPECT_EQ(error, "no running container aaaa on this node");
}

}  // namespace
}  // namespace driftwatch
