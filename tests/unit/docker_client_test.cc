// lib/k8s/docker_client: the pure parts (inspect, list, image and event JSON, image names,
// the events stream splitter, times, API versions) on inputs trimmed from what Debian 12's
// docker.io 20.10 answered on this machine (docker_client_test.sh runs it live), hostile
// shapes among them; and the HTTP side against a fake engine on a unix socket in a temp dir:
// the response caps, the deadline, errors naming the call, a chunked event stream.
#include "lib/k8s/docker_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace driftwatch {
namespace {

constexpr const char* kInspect = R"({
  "Id": "5a97f5da3f7e8b0c36f9dc260a5e243cefc829bde1e9ae24bee3810016e23331",
  "Created": "2026-12-05T18:39:21.924159455Z",
  "Path": "/bin/sh",
  "State": {"Status": "running", "Running": true, "Pid": 22031, "ExitCode": 0,
            "StartedAt": "2026-12-05T18:39:22.223323703Z", "FinishedAt": "0001-01-01T00:00:00Z"},
  "Image": "sha256:b02a6cf1c2520595d67638b0d392c75f2ec3a7ae125234b09eb4bb9d84864b37",
  "Name": "/shop-web",
  "Driver": "overlay2",
  "HostConfig": {"NetworkMode": "none", "Privileged": false, "ReadonlyRootfs": true,
                 "CgroupParent": "", "MaskedPaths": ["/proc/asound"]},
  "GraphDriver": {
    "Data": {
      "LowerDir": "/d/overlay2/9bd7-init/diff:/d/overlay2/be41/diff",
      "MergedDir": "/d/overlay2/9bd7/merged",
      "UpperDir": "/d/overlay2/9bd7/diff",
      "WorkDir": "/d/overlay2/9bd7/work"
    },
    "Name": "overlay2"
  },
  "Mounts": [
    {"Type": "bind", "Source": "/srv/data", "Destination": "/data", "Mode": "", "RW": true,
     "Propagation": "rprivate"},
    {"Type": "volume", "Name": "cache", "Source": "/d/volumes/cache/_data",
     "Destination": "/cache", "Driver": "local", "Mode": "ro", "RW": false, "Propagation": ""}
  ],
  "Config": {
    "Hostname": "5a97f5da3f7e",
    "Image": "localhost/webapp:3",
    "Labels": {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}
  }
})";

TEST(ParseContainerInspect, Docker2010) {
  auto c = ParseContainerInspect(kInspect);
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->id, "5a97f5da3f7e8b0c36f9dc260a5e243cefc829bde1e9ae24bee3810016e23331");
  EXPECT_EQ(c->name, "shop-web");
  EXPECT_EQ(c->image, "localhost/webapp:3");
  EXPECT_EQ(c->image_id, "sha256:b02a6cf1c2520595d67638b0d392c75f2ec3a7ae125234b09eb4bb9d84864b37");
  EXPECT_EQ(c->state, "running");
  EXPECT_EQ(c->pid, 22031);
  EXPECT_FALSE(c->privileged);
  EXPECT_TRUE(c->read_only_rootfs);
  EXPECT_EQ(c->started_at_ns, 1796495962223323703);
  EXPECT_EQ(c->created_at_ns, 1796495961924159455);
  EXPECT_EQ(c->graph_driver, "overlay2");
  EXPECT_EQ(c->upper_dir, "/d/overlay2/9bd7/diff");
  EXPECT_EQ(c->merged_dir, "/d/overlay2/9bd7/merged");
  EXPECT_EQ(c->lower_dirs, (std::vector<std::string>{"/d/overlay2/9bd7-init/diff", "/d/overlay2/be41/diff"}));
  EXPECT_EQ(c->labels, (DockerLabels{{"com.docker.compose.project", "shop"},
                                     {"com.docker.compose.service", "web"}}));
  ASSERT_EQ(c->mounts.size(), 2u);
  EXPECT_EQ(c->mounts[0].type, "bind");
  EXPECT_EQ(c->mounts[0].source, "/srv/data");
  EXPECT_EQ(c->mounts[0].destination, "/data");
  EXPECT_TRUE(c->mounts[0].read_write);
  EXPECT_EQ(c->mounts[0].propagation, "rprivate");
  EXPECT_FALSE(c->mounts[1].read_write);
}

TEST(ParseContainerInspect, CreatedNotStarted) {
  auto c = ParseContainerInspect(R"({"Id": "ab", "Name": "/x",
      "State": {"Status": "created", "Pid": 0, "StartedAt": "0001-01-01T00:00:00Z"},
      "Config": {"Image": "busybox", "Labels": null}, "HostConfig": {"Privileged": true}})");
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->state, "created");
  EXPECT_EQ(c->pid, 0);
  EXPECT_EQ(c->started_at_ns, 0);
  EXPECT_TRUE(c->labels.empty());
  EXPECT_TRUE(c->privileged);
  EXPECT_TRUE(c->upper_dir.empty());
}

// The engine's answer is input: wrong types leave fields empty, never throw or trust them.
TEST(ParseContainerInspect, HostileShapes) {
  for (const char* bad : {"", "[]", "null", "\"x\"", "{", "{\"Name\": \"/x\"}", "{\"Id\": 5}"}) {
    auto c = ParseContainerInspect(bad);
    EXPECT_FALSE(c.has_value()) << bad;
  }
  auto c = ParseContainerInspect(R"({"Id": "ab", "Name": 7, "State": {"Pid": -5, "StartedAt": 3},
      "Config": {"Image": ["x"], "Labels": {"a": "1", "b": 2, "c": null}},
      "HostConfig": {"Privileged": "true", "ReadonlyRootfs": 1},
      "GraphDriver": {"Data": null}, "Mounts": [5, {"RW": "no"}, null]})");
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ(c->name, "");
  EXPECT_EQ(c->pid, 0);
  EXPECT_EQ(c->started_at_ns, 0);
  EXPECT_EQ(c->image, "");
  EXPECT_EQ(c->labels, (DockerLabels{{"a", "1"}}));
  EXPECT_FALSE(c->privileged);
  EXPECT_FALSE(c->read_only_rootfs);
  ASSERT_EQ(c->mounts.size(), 1u);
  EXPECT_FALSE(c->mounts[0].read_write);
  auto big = ParseContainerInspect(R"({"Id": "ab", "State": {"Pid": 99999999999}})");
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->pid, 0);
}

TEST(ParseContainerList, Docker2010) {
  auto l = ParseContainerList(R"([{"Id":"5a97","Names":["/shop-web"],"Image":"localhost/webapp:3",
      "ImageID":"sha256:b02a","Created":1796495961,"Labels":{"com.docker.compose.project":"shop"},
      "State":"running","Status":"Up Less than a second"},
      {"Names":["/no-id"]}, 7, {"Id":"77","Names":[],"Labels":null,"Created":-3}])");
  ASSERT_TRUE(l.has_value()) << l.error();
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[0].name, "shop-web");
  EXPECT_EQ((*l)[0].image_id, "sha256:b02a");
  EXPECT_EQ((*l)[0].state, "running");
  EXPECT_EQ((*l)[0].created_at_ns, 1796495961000000000);
  EXPECT_EQ((*l)[0].labels.at("com.docker.compose.project"), "shop");
  EXPECT_EQ((*l)[1].id, "77");
  EXPECT_EQ((*l)[1].created_at_ns, 0);
  EXPECT_FALSE(ParseContainerList("{}").has_value());
  EXPECT_FALSE(ParseContainerList("[").has_value());
}

TEST(ParseDockerVersion, DockerAndPodman) {
  auto d = ParseDockerVersion(R"({"Platform":{"Name":""},"Components":[{"Name":"Engine",
      "Version":"20.10.24+dfsg1"},{"Name":"containerd"}],"Version":"20.10.24+dfsg1",
      "ApiVersion":"1.41","MinAPIVersion":"1.12"})");
  ASSERT_TRUE(d.has_value()) << d.error();
  EXPECT_EQ(d->engine, "docker");
  EXPECT_EQ(d->version, "20.10.24+dfsg1");
  EXPECT_EQ(d->api_version, "1.41");
  EXPECT_EQ(d->min_api_version, "1.12");
  auto p = ParseDockerVersion(R"({"Platform":{"Name":"linux/amd64/debian-12"},
      "Components":[{"Name":"Podman Engine","Version":"4.3.1"}],"Version":"4.3.1",
      "ApiVersion":"1.41","MinAPIVersion":"1.24"})");
  ASSERT_TRUE(p.has_value()) << p.error();
  EXPECT_EQ(p->engine, "podman");
  EXPECT_FALSE(ParseDockerVersion(R"({"Version":"1"})").has_value());
}

TEST(ApiVersion, Negotiation) {
  EXPECT_LT(CompareApiVersions("1.9", "1.41"), 0);
  EXPECT_GT(CompareApiVersions("1.41", "1.40"), 0);
  EXPECT_EQ(CompareApiVersions("1.41", "1.41.0"), 0);
  EXPECT_EQ(*NegotiateApiVersion("1.41"), "1.41");
  EXPECT_EQ(*NegotiateApiVersion("1.40"), "1.40");
  EXPECT_EQ(*NegotiateApiVersion("1.50"), "1.41");  // Docker 28 talks 1.41 with us
  EXPECT_EQ(*NegotiateApiVersion("2.0"), "1.41");
  for (const char* bad : {"1.23", "1.12", "", "x", "1.41;rm", ".1", "1.", "11111111111111111"}) {
    EXPECT_FALSE(NegotiateApiVersion(bad).has_value()) << bad;
  }
  auto old = NegotiateApiVersion("1.12");
  ASSERT_FALSE(old.has_value());
  EXPECT_NE(old.error().message().find("older than 1.24"), std::string::npos) << old.error();
}

TEST(ParseDockerTime, Table) {
  struct Case {
    const char* text;
    int64_t ns;
  };
  for (const Case& c : std::vector<Case>{
           {"1970-01-01T00:00:01Z", 1000000000},
           {"2026-12-05T18:39:22.223323703Z", 1796495962223323703},
           {"2026-12-05T18:39:22.2Z", 1796495962200000000},
           {"2026-12-05T18:39:22Z", 1796495962000000000},
           {"2026-12-05T19:39:22+01:00", 1796495962000000000},
           {"2026-12-05T17:39:22.5-01:00", 1796495962500000000},
           {"2026-12-05T18:39:22.1234567891234Z", 1796495962123456789},  // cut at ns
           {"0001-01-01T00:00:00Z", 0},                                  // Go's zero time
           {"", 0},
           {"2026-12-05", 0},
           {"2026-13-05T18:39:22Z", 0},
           {"2026-02-30T18:39:22Z", 0},
           {"2026-12-05T18:39:22.Z", 0},
           {"2026-12-05T18:39:22", 0},
           {"2026-12-05T18:39:22Zjunk", 0},
           {"1969-12-31T23:59:59Z", 0},
       }) {
    EXPECT_EQ(ParseDockerTime(c.text), c.ns) << c.text;
  }
}

TEST(ParseDockerEvent, Start) {
  auto e = ParseDockerEvent(R"({"status":"start","id":"8de3","from":"localhost/webapp:3",
      "Type":"container","Action":"start","Actor":{"ID":"8de3","Attributes":{
      "image":"localhost/webapp:3","name":"quick"}},"scope":"local","time":1796495963,
      "timeNano":1796495963477410047})");
  ASSERT_TRUE(e.has_value()) << e.error();
  EXPECT_EQ(e->type, "container");
  EXPECT_EQ(e->action, "start");
  EXPECT_EQ(e->id, "8de3");
  EXPECT_EQ(e->name, "quick");
  EXPECT_EQ(e->image, "localhost/webapp:3");
  EXPECT_EQ(e->time_ns, 1796495963477410047);
  auto old = ParseDockerEvent(R"({"Type":"container","Action":"die","id":"ab","time":2})");
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->id, "ab");
  EXPECT_EQ(old->time_ns, 2000000000);
  EXPECT_FALSE(ParseDockerEvent(R"({"status":"start"})").has_value());
  EXPECT_FALSE(ParseDockerEvent("[]").has_value());
}

TEST(DockerImageName, Table) {
  DockerImage loaded{"sha256:b02a6cf1", {"localhost/webapp:3"}, {}};
  DockerImage pulled{"sha256:c0ffee",
                     {"busybox:1.36"},
                     {"other@sha256:1111", "busybox@sha256:2222"}};
  DockerImage untagged{"sha256:dead", {}, {}};
  struct Case {
    std::string image, image_id;
    const DockerImage* img;
    std::string repository, tag, digest;
  };
  for (const Case& c : std::vector<Case>{
           {"localhost/webapp:3", "sha256:b02a6cf1", &loaded, "localhost/webapp", "3", ""},
           {"localhost/webapp:3", "sha256:b02a6cf1", nullptr, "localhost/webapp", "3", ""},
           {"busybox:1.36", "sha256:c0ffee", &pulled, "busybox", "1.36", "sha256:2222"},
           {"registry:5000/team/app", "sha256:c0ffee", nullptr, "registry:5000/team/app", "", ""},
           {"busybox@sha256:9999", "sha256:c0ffee", &pulled, "busybox", "", "sha256:9999"},
           // Run by id, full or short: the image's own name.
           {"sha256:b02a6cf1", "sha256:b02a6cf1", &loaded, "localhost/webapp", "3", ""},
           {"b02a6c", "sha256:b02a6cf1", &loaded, "localhost/webapp", "3", ""},
           {"sha256:dead", "sha256:dead", &untagged, "", "", ""},
           {"sha256:dead", "sha256:dead", nullptr, "", "", ""},
           {"", "sha256:b02a6cf1", &loaded, "localhost/webapp", "3", ""},
       }) {
    DockerContainer ct;
    ct.image = c.image;
    ct.image_id = c.image_id;
    ImageName n = DockerImageName(ct, c.img);
    EXPECT_EQ(n.repository, c.repository) << c.image;
    EXPECT_EQ(n.tag, c.tag) << c.image;
    EXPECT_EQ(n.digest, c.digest) << c.image;
  }
}

// ---- The events stream splitter ----

constexpr const char* kEvents =
    R"({"Type":"container","Action":"create","Actor":{"ID":"a","Attributes":{"name":"x{\"}"}}})"
    "\n"
    R"({"Type":"container","Action":"start","Actor":{"ID":"a","Attributes":{"l":"[\\"}}})"
    "\n"
    R"({"Type":"container","Action":"die","Actor":{"ID":"a"}})";

TEST(JsonStreamSplitter, EverySplitPoint) {
  const std::string all = kEvents;
  for (size_t cut = 0; cut <= all.size(); ++cut) {
    JsonStreamSplitter s;
    std::vector<std::string> out;
    ASSERT_TRUE(s.Feed(std::string_view(all).substr(0, cut), out).has_value());
    ASSERT_TRUE(s.Feed(std::string_view(all).substr(cut), out).has_value());
    ASSERT_EQ(out.size(), 3u) << cut;
    EXPECT_EQ(s.buffered(), 0u);
    auto first = ParseDockerEvent(out[0]);
    ASSERT_TRUE(first.has_value()) << out[0];
    EXPECT_EQ(first->name, "x{\"}");
    EXPECT_EQ(ParseDockerEvent(out[1])->action, "start");
    EXPECT_EQ(ParseDockerEvent(out[2])->action, "die");
  }
  // Byte by byte.
  JsonStreamSplitter s;
  std::vector<std::string> out;
  for (char c : all) ASSERT_TRUE(s.Feed(std::string_view(&c, 1), out).has_value());
  EXPECT_EQ(out.size(), 3u);
}

TEST(JsonStreamSplitter, CapAndGarbage) {
  JsonStreamSplitter s(64);
  std::vector<std::string> out;
  ASSERT_TRUE(s.Feed(R"({"a":"12345"})", out).has_value());
  EXPECT_EQ(out.size(), 1u);
  // An object that never ends stops at the cap, not at the memory's end.
  auto r = s.Feed("{\"a\":\"" + std::string(100, 'x'), out);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("over 64 bytes"), std::string::npos) << r.error();
  EXPECT_LE(s.buffered(), 64u);
  EXPECT_FALSE(s.Feed("{}", out).has_value());  // stays failed
  JsonStreamSplitter g;
  EXPECT_FALSE(g.Feed("HTTP/1.1 200 OK", out).has_value());
  JsonStreamSplitter n;
  EXPECT_FALSE(n.Feed("{}\n42", out).has_value());
}

// ---- Against a fake engine ----

// A unix socket server in a temp dir: each connection reads the request head, then `answer`
// writes what it likes to the fd.
class FakeEngine {
 public:
  using Answer = std::function<void(int fd, const std::string& request)>;
  explicit FakeEngine(Answer answer) : answer_(std::move(answer)) {
    char tmpl[] = "/tmp/dw-docker-unit.XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/docker.sock";
    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof addr.sun_path - 1);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(listen_fd_, 8), 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeEngine() {
    stop_ = true;
    shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    close(listen_fd_);
    std::filesystem::remove_all(dir_);
  }
  const std::string& path() const { return path_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        requests_.push_back(req);
      }
      answer_(fd, req);
      close(fd);
    }
  }

  Answer answer_;
  std::string dir_, path_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

// The client may close first (a response over its cap): no SIGPIPE for the test process.
void WriteAll(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t n = send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    s.remove_prefix(static_cast<size_t>(n));
  }
}

std::string Ok(std::string_view body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + std::string(body);
}

constexpr const char* kVersion = R"({"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"})";

TEST(DockerClient, NegotiatesAndNamesTheCallInErrors) {
  FakeEngine engine([](int fd, const std::string& req) {
    if (req.starts_with("GET /version ")) return WriteAll(fd, Ok(kVersion));
    std::string body = R"({"message":"No such container: nope"})";
    WriteAll(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\n\r\n" + body);
  });
  auto c = DockerClient::Connect("unix://" + engine.path(), std::chrono::milliseconds(2000));
  ASSERT_TRUE(c.has_value()) << c.error();
  EXPECT_EQ((*c)->api_version(), "1.41");
  auto r = (*c)->InspectContainer("nope");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(r.error().message(), "Docker GET /v1.41/containers/nope/json on " + engine.path() +
                                     ": HTTP 404: No such container: nope");
  // Ids go into the URL path: nothing else is sent.
  auto bad = (*c)->InspectContainer("../../version?x");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidInput);
  auto reqs = engine.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_NE(reqs[1].find("Host: docker\r\n"), std::string::npos) << reqs[1];
}

TEST(DockerClient, ResponseOverItsCapIsRefused) {
  FakeEngine engine([](int fd, const std::string& req) {
    if (req.starts_with("GET /version ")) return WriteAll(fd, Ok(kVersion));
    // Claims more than the cap for one object, and starts sending it.
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kDockerMaxObjectBytes + 1) +
                     "\r\n\r\n{\"Id\":\"");
    WriteAll(fd, std::string(64 << 10, 'a'));
  });
  auto c = DockerClient::Connect(engine.path(), std::chrono::milliseconds(2000));
  ASSERT_TRUE(c.has_value()) << c.error();
  auto r = (*c)->InspectContainer("abc");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(r.error().message().find("size cap"), std::string::npos) << r.error();
}

TEST(DockerClient, ChunkedResponseOverItsCapIsRefused) {
  FakeEngine engine([](int fd, const std::string& req) {
    if (req.starts_with("GET /version ")) return WriteAll(fd, Ok(kVersion));
    // No length announced: chunks past the cap for one object.
    WriteAll(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string chunk = "10000\r\n" + std::string(0x10000, 'a') + "\r\n";
    for (size_t sent = 0; sent <= kDockerMaxObjectBytes; sent += 0x10000) WriteAll(fd, chunk);
  });
  auto c = DockerClient::Connect(engine.path(), std::chrono::milliseconds(2000));
  ASSERT_TRUE(c.has_value()) << c.error();
  auto r = (*c)->InspectImage("sha256:abc");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidInput);
  EXPECT_NE(r.error().message().find("size cap"), std::string::npos) << r.error();
}

TEST(DockerClient, SilentEngineMeetsTheDeadline) {
  std::atomic<bool> release{false};
  FakeEngine engine([&release](int fd, const std::string& req) {
    if (req.starts_with("GET /version ")) return WriteAll(fd, Ok(kVersion));
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{");  // then nothing
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  });
  auto c = DockerClient::Connect(engine.path(), std::chrono::milliseconds(300));
  ASSERT_TRUE(c.has_value()) << c.error();
  auto t0 = std::chrono::steady_clock::now();
  auto r = (*c)->ListContainers(true);
  auto took = std::chrono::steady_clock::now() - t0;
  release = true;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message().find("within 300 ms"), std::string::npos) << r.error();
  EXPECT_NE(r.error().message().find("/containers/json?all=1"), std::string::npos) << r.error();
  EXPECT_LT(took, std::chrono::seconds(2));
}

TEST(DockerClient, NoEngine) {
  auto c = DockerClient::Connect("/nonexistent/docker.sock", std::chrono::milliseconds(200));
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(c.error().message().find("/nonexistent/docker.sock"), std::string::npos);
  EXPECT_FALSE(DockerClient::Connect("relative.sock", std::chrono::milliseconds(200)).has_value());
}

TEST(DockerClient, ChunkedEventStream) {
  std::atomic<bool> release{false};
  FakeEngine engine([&release](int fd, const std::string& req) {
    if (req.starts_with("GET /version ")) return WriteAll(fd, Ok(kVersion));
    WriteAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
    const std::string all = std::string(kEvents) + "\n";
    // The first event split across two chunks; the rest after a pause.
    auto chunk = [fd](std::string_view s) {
      char head[32];
      snprintf(head, sizeof head, "%zx\r\n", s.size());
      WriteAll(fd, head);
      WriteAll(fd, s);
      WriteAll(fd, "\r\n");
    };
    chunk(std::string_view(all).substr(0, 20));
    chunk(std::string_view(all).substr(20, 70));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    chunk(std::string_view(all).substr(90));
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    WriteAll(fd, "0\r\n\r\n");
  });
  auto c = DockerClient::Connect(engine.path(), std::chrono::milliseconds(2000));
  ASSERT_TRUE(c.has_value()) << c.error();
  auto stream = (*c)->Events();
  ASSERT_TRUE(stream.has_value()) << stream.error();
  std::vector<std::string> actions;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (actions.size() < 3 && std::chrono::steady_clock::now() < deadline) {
    auto e = (*stream)->Next(std::chrono::milliseconds(50));
    ASSERT_TRUE(e.has_value()) << e.error();
    if (*e) actions.push_back((*e)->action);
  }
  EXPECT_EQ(actions, (std::vector<std::string>{"create", "start", "die"}));
  // Nothing more: the wait is kept, and the stream stays usable.
  auto t0 = std::chrono::steady_clock::now();
  auto none = (*stream)->Next(std::chrono::milliseconds(100));
  ASSERT_TRUE(none.has_value()) << none.error();
  EXPECT_FALSE(none->has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(90));
  release = true;
  // The engine ends the stream: an error that says so.
  Result<std::optional<DockerEvent>> end = std::optional<DockerEvent>();
  for (int i = 0; i < 50 && end.has_value(); ++i) end = (*stream)->Next(std::chrono::milliseconds(100));
  ASSERT_FALSE(end.has_value());
  EXPECT_NE(end.error().message().find("/v1.41/events"), std::string::npos) << end.error();
  auto reqs = engine.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_TRUE(reqs[1].starts_with(
      "GET /v1.41/events?filters=%7B%22type%22%3A%5B%22container%22%5D%7D HTTP/1.1\r\n"))
      << reqs[1];
}

}  // namespace
}  // namespace driftwatch
