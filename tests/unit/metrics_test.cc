// lib/metrics against a real listening server on 127.0.0.1:0 and real client sockets: the
// connection cap, the idle timeout and the whole-connection deadline (slowloris), request
// size limits, and accept() failing with EMFILE in a child process whose RLIMIT_NOFILE is
// lowered. Limits are made small so that it runs fast; the only time bounds asserted are
// generous "eventually" bounds, and the CPU bound is the one that tells a busy loop apart.
#include "lib/daemon/metrics.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace driftwatch {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kEventually = 30s;  // generous: a loaded CI machine, never a performance bound

std::unique_ptr<MetricsServer> StartServer(MetricsLimits limits) {
  auto s = MetricsServer::Start(
      "127.0.0.1:0",
      [](MetricsWriter* w) { w->Counter("test_total", "a test counter", 7); },
      [](std::string*) { return true; }, [] { return std::string("{\"ok\":true}"); }, limits);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message());
  return s ? std::move(*s) : nullptr;
}

int Connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ADD_FAILURE() << "connect: " << strerror(errno);
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

void SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close first: what it answered is what counts
    off += static_cast<size_t>(n);
  }
}

// Everything the server sends until it closes, or until `within` passes (then *closed stays
// false).
std::string ReadUntilClosed(int fd, std::chrono::milliseconds within, bool* closed) {
  std::string out;
  *closed = false;
  const auto end = Clock::now() + within;
  while (Clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    if (poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 1))) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string Get(uint16_t port, const std::string& target) {
  int fd = Connect(port);
  if (fd < 0) return "";
  SendAll(fd, "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
  bool closed = false;
  std::string r = ReadUntilClosed(fd, kEventually, &closed);
  close(fd);
  return r;
}

template <typename F>
bool Eventually(F f) {
  const auto end = Clock::now() + kEventually;
  while (Clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return f();
}

TEST(MetricsServer, ServesAndExportsItsOwnCounters) {
  auto s = StartServer({});
  ASSERT_TRUE(s);
  std::string r = Get(s->port(), "/metrics");
  EXPECT_NE(r.find("HTTP/1.1 200"), std::string::npos) << r;
  EXPECT_NE(r.find("test_total 7"), std::string::npos) << r;
  EXPECT_NE(r.find("driftwatch_metrics_rejected_total{reason=\"connection_limit\"} 0"),
            std::string::npos)
      << r;
  EXPECT_NE(r.find("driftwatch_metrics_accept_pauses_total{reason=\"fd_exhausted\"} 0"),
            std::string::npos)
      << r;
  EXPECT_NE(Get(s->port(), "/status").find("{\"ok\":true}"), std::string::npos);
  EXPECT_NE(Get(s->port(), "/nope").find("HTTP/1.1 404"), std::string::npos);
}

TEST(MetricsServer, ConnectionBeyondTheCapIsClosedAndCounted) {
  MetricsLimits l;
  l.max_connections = 2;
  l.idle_timeout = 60s;  // the two held connections must outlive the test's steps
  l.deadline = 60s;
  auto s = StartServer(l);
  ASSERT_TRUE(s);
  int a = Connect(s->port()), b = Connect(s->port());
  ASSERT_TRUE(Eventually([&] { return s->stats().connections == 2; }));
  int c = Connect(s->port());
  bool closed = false;
  std::string got = ReadUntilClosed(c, kEventually, &closed);
  EXPECT_TRUE(closed) << "the connection over the cap stayed open";
  EXPECT_EQ(got, "");
  EXPECT_EQ(s->stats().rejected_of(MetricsReject::kConnectionLimit), 1u);
  close(c);
  // The two within the cap are still served.
  for (int fd : {a, b}) {
    SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string r = ReadUntilClosed(fd, kEventually, &closed);
    EXPECT_NE(r.find("HTTP/1.1 200"), std::string::npos) << r;
    close(fd);
  }
  // And with them gone, a new one is too.
  ASSERT_TRUE(Eventually([&] { return s->stats().connections == 0; }));
  std::string r = Get(s->port(), "/metrics");
  EXPECT_NE(r.find("driftwatch_metrics_rejected_total{reason=\"connection_limit\"} 1"),
            std::string::npos)
      << r;
}

TEST(MetricsServer, SlowClientIsCutOffByTheDeadline) {
  MetricsLimits l;
  l.idle_timeout = 10s;  // each byte comes well within it: only the deadline can end this
  l.deadline = 1s;
  auto s = StartServer(l);
  ASSERT_TRUE(s);
  int fd = Connect(s->port());
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(200, 'a');
  bool closed = false;
  const auto start = Clock::now();
  // One byte, then wait a while for the server to close, like a slowloris client.
  for (size_t i = 0; i < req.size() && !closed && Clock::now() - start < kEventually; ++i) {
    if (send(fd, &req[i], 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    ReadUntilClosed(fd, 300ms, &closed);
  }
  close(fd);
  EXPECT_TRUE(closed) << "a client sending a byte at a time was never cut off";
  EXPECT_EQ(s->stats().rejected_of(MetricsReject::kDeadline), 1u);
  EXPECT_EQ(s->stats().requests, 0u);
}

TEST(MetricsServer, SilentClientIsCutOffByTheIdleTimeout) {
  MetricsLimits l;
  l.idle_timeout = 300ms;
  l.deadline = 60s;
  auto s = StartServer(l);
  ASSERT_TRUE(s);
  int fd = Connect(s->port());
  SendAll(fd, "GET /metr");
  bool closed = false;
  ReadUntilClosed(fd, kEventually, &closed);
  close(fd);
  EXPECT_TRUE(closed);
  EXPECT_EQ(s->stats().rejected_of(MetricsReject::kIdleTimeout), 1u);
}

TEST(MetricsServer, OversizedRequestsGet431Or413) {
  MetricsLimits l;
  l.max_header_bytes = 1024;
  l.max_body_bytes = 64;
  auto s = StartServer(l);
  ASSERT_TRUE(s);
  bool closed = false;
  // A header over the limit, and it keeps coming: the answer comes anyway, then the close.
  int fd = Connect(s->port());
  SendAll(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'b'));
  std::string r = ReadUntilClosed(fd, kEventually, &closed);
  close(fd);
  EXPECT_TRUE(r.starts_with("HTTP/1.1 431")) << r.substr(0, 200);
  EXPECT_TRUE(closed);
  // A body announced over the limit.
  fd = Connect(s->port());
  SendAll(fd, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n");
  r = ReadUntilClosed(fd, kEventually, &closed);
  close(fd);
  EXPECT_TRUE(r.starts_with("HTTP/1.1 413")) << r.substr(0, 200);
  // Not HTTP at all.
  fd = Connect(s->port());
  SendAll(fd, "\x16\x03\x01 hello\r\n\r\n");
  r = ReadUntilClosed(fd, kEventually, &closed);
  close(fd);
  EXPECT_TRUE(r.starts_with("HTTP/1.1 400")) << r.substr(0, 200);
  EXPECT_EQ(s->stats().rejected_of(MetricsReject::kHeaderTooLarge), 1u);
  EXPECT_EQ(s->stats().rejected_of(MetricsReject::kBodyTooLarge), 1u);
  EXPECT_EQ(s->stats().rejected_of(MetricsReject::kBadRequest), 1u);
  // Still serving.
  EXPECT_NE(Get(s->port(), "/healthz").find("HTTP/1.1 200"), std::string::npos);
}

// Child side of the EMFILE test: serve, use up every descriptor, report the CPU the process
// spends while connections wait that cannot be accepted, free the descriptors, report again.
// Talks to the parent over `to_parent` / `from_parent`; exits without returning.
[[noreturn]] void EmfileChild(int to_parent, int from_parent) {
  auto say = [&](const std::string& s) {
    std::string line = s + "\n";
    (void)!write(to_parent, line.data(), line.size());
  };
  auto wait_parent = [&] {
    char c;
    return read(from_parent, &c, 1) == 1;
  };
  MetricsLimits l;
  l.accept_pause = 20ms;
  l.accept_pause_max = 200ms;
  auto started = MetricsServer::Start(
      "127.0.0.1:0", [](MetricsWriter*) {}, [](std::string*) { return true; },
      [] { return std::string("{}"); }, l);
  if (!started) {
    say("error " + started.error().message());
    _exit(1);
  }
  auto& server = *started;
  // Every descriptor the limit allows is taken; the server's own are below it.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  int highest = 0;
  for (int fd = 0; fd < 1024; ++fd)
    if (fcntl(fd, F_GETFD) != -1) highest = fd;
  rl.rlim_cur = static_cast<rlim_t>(highest + 16);
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    say(std::string("error setrlimit: ") + strerror(errno));
    _exit(1);
  }
  std::vector<int> filler;
  for (;;) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    filler.push_back(fd);
  }
  say("port " + std::to_string(server->port()));
  if (!wait_parent()) _exit(1);  // the parent's connections wait in the backlog
  // Accepts now fail with EMFILE. Measure the whole process's CPU over a window.
  rusage r0{}, r1{};
  getrusage(RUSAGE_SELF, &r0);
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(2s);
  getrusage(RUSAGE_SELF, &r1);
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  auto secs = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  const double cpu = secs(r1.ru_utime) + secs(r1.ru_stime) - secs(r0.ru_utime) - secs(r0.ru_stime);
  say("cpu " + std::to_string(cpu / wall) + " pauses " +
      std::to_string(server->stats().accept_pauses_fd.load()) + " requests " +
      std::to_string(server->stats().requests.load()));
  for (int fd : filler) close(fd);
  if (!wait_parent()) _exit(1);  // the parent got its answers
  say("requests " + std::to_string(server->stats().requests.load()));
  server->Stop();
  _exit(0);
}

TEST(MetricsServer, EmfileDoesNotSpinAndRecovers) {
  int up[2], down[2];
  ASSERT_EQ(pipe2(up, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(down, O_CLOEXEC), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(up[0]);
    close(down[1]);
    EmfileChild(up[1], down[0]);
  }
  close(up[1]);
  close(down[0]);
  FILE* from_child = fdopen(up[0], "r");
  auto line = [&] {
    char buf[256] = {};
    if (!fgets(buf, sizeof buf, from_child)) return std::string();
    std::string s(buf);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  };
  std::string hello = line();
  ASSERT_TRUE(hello.starts_with("port ")) << hello;
  uint16_t port = static_cast<uint16_t>(std::stoi(hello.substr(5)));
  // Connections the kernel completes into the backlog; the child cannot accept them.
  std::vector<int> clients;
  for (int i = 0; i < 3; ++i) {
    int fd = Connect(port);
    ASSERT_GE(fd, 0);
    SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    clients.push_back(fd);
  }
  ASSERT_EQ(write(down[1], "g", 1), 1);
  std::string measured = line();
  double cpu = -1;
  unsigned long pauses = 0, served = 99;
  ASSERT_EQ(sscanf(measured.c_str(), "cpu %lf pauses %lu requests %lu", &cpu, &pauses, &served), 3)
      << measured;
  std::printf("CPU while accept() fails: %.1f%% of wall time, %lu pauses\n", cpu * 100, pauses);
  // A busy loop on accept() would take ~100% of a core; paused accepts take next to nothing.
  EXPECT_LT(cpu, 0.20) << "the server spins while accept() fails with EMFILE";
  EXPECT_GT(pauses, 0u) << "accept() never failed: the test did not provoke EMFILE";
  EXPECT_EQ(served, 0u);
  // Descriptors are free again: every waiting client is answered.
  for (int fd : clients) {
    bool closed = false;
    std::string r = ReadUntilClosed(fd, kEventually, &closed);
    EXPECT_NE(r.find("HTTP/1.1 200"), std::string::npos) << "no answer after recovery: " << r;
    close(fd);
  }
  ASSERT_EQ(write(down[1], "g", 1), 1);
  EXPECT_EQ(line(), "requests 3");
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  fclose(from_child);
  close(down[1]);
}

}  // namespace
}  // namespace driftwatch
