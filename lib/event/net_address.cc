#include "lib/event/net_address.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

namespace driftwatch {
namespace {

bool IsAccept(std::string_view syscall) { return syscall == "accept" || syscall == "accept4"; }

std::string Endpoint(const NetSide& s) {
  std::string out = IpText(s.ip);
  out += ':';
  out += std::to_string(s.port);
  return out;
}

// ::ffff:a.b.c.d as its IPv4 bytes; other addresses as they are.
std::string_view Unmapped(std::string_view raw) {
  static constexpr char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\xff', '\xff'};
  if (raw.size() == 16 && std::memcmp(raw.data(), kMapped, 12) == 0) return raw.substr(12);
  return raw;
}

}  // namespace

std::string IpText(std::string_view raw) {
  char buf[INET6_ADDRSTRLEN];
  if (raw.size() == 4) return inet_ntop(AF_INET, raw.data(), buf, sizeof buf) ? buf : "";
  if (raw.size() == 16) return inet_ntop(AF_INET6, raw.data(), buf, sizeof buf) ? buf : "";
  return "";
}

std::string IpRaw(std::string_view text) {
  char s[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof s) return "";
  text.copy(s, text.size());
  s[text.size()] = '\0';
  unsigned char b[16];
  if (inet_pton(AF_INET, s, b) == 1) return std::string(reinterpret_cast<char*>(b), 4);
  if (inet_pton(AF_INET6, s, b) == 1) return std::string(reinterpret_cast<char*>(b), 16);
  return "";
}

NetSides SidesOf(const v1::NetworkActivity& n) {
  NetSides s;
  const std::string_view ip = n.address();
  if (ip.size() != 4 && ip.size() != 16) return s;
  const NetSide side{ip, n.port()};
  if (n.address_is_local()) {
    s.local = side;
    s.server = side;  // a bound socket is the serving end
  } else if (IsAccept(n.syscall())) {
    s.remote = side;
    s.client = side;
  } else {
    s.remote = side;
    s.server = side;
  }
  return s;
}

std::string NetFdName(const v1::NetworkActivity& n) {
  if (n.family() == AF_UNIX) return n.unix_path();
  const NetSides s = SidesOf(n);
  if (s.local.known() && !s.remote.known()) return Endpoint(s.local);
  if (!s.client.known() && !s.server.known()) return "";
  return (s.client.known() ? Endpoint(s.client) : "") + "->" +
         (s.server.known() ? Endpoint(s.server) : "");
}

std::string_view NetFdType(const v1::NetworkActivity& n) {
  switch (n.family()) {
    case AF_INET: return "ipv4";
    case AF_INET6: return "ipv6";
    case AF_UNIX: return "unix";
  }
  return "";
}

std::string_view NetFdTypechar(const v1::NetworkActivity& n) {
  switch (n.family()) {
    case AF_INET: return "4";
    case AF_INET6: return "6";
    case AF_UNIX: return "u";
  }
  return "";
}

std::string_view NetSockFamily(const v1::NetworkActivity& n) {
  switch (n.family()) {
    case AF_INET:
    case AF_INET6: return "ip";
    case AF_UNIX: return "unix";
  }
  return "";
}

std::string_view NetL4Proto(const v1::NetworkActivity& n) {
  const bool ip = n.family() == AF_INET || n.family() == AF_INET6;
  const bool stream = IsAccept(n.syscall()) || n.syscall() == "listen";
  return ip && stream ? "tcp" : "";
}

std::optional<IpNet> ParseIpNet(std::string_view text) {
  std::string_view addr = text;
  int prefix = -1;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    addr = text.substr(0, slash);
    std::string_view p = text.substr(slash + 1);
    auto r = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || r.ec != std::errc() || r.ptr != p.data() + p.size()) return std::nullopt;
  }
  const std::string raw = IpRaw(addr);
  if (raw.empty()) return std::nullopt;
  IpNet net;
  net.size = static_cast<uint8_t>(raw.size());
  if (prefix < 0) prefix = net.size * 8;
  if (prefix > net.size * 8) return std::nullopt;
  net.prefix = static_cast<uint8_t>(prefix);
  std::memcpy(net.bytes.data(), raw.data(), raw.size());
  return net;
}

bool IpNetContains(const IpNet& net, std::string_view ip_raw) {
  std::string_view ip = ip_raw;
  if (net.size == 4) ip = Unmapped(ip);
  if (ip.size() != net.size) return false;
  const auto* a = reinterpret_cast<const uint8_t*>(ip.data());
  const int full = net.prefix / 8, rest = net.prefix % 8;
  if (std::memcmp(a, net.bytes.data(), static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff00 >> rest);
  return (a[full] & mask) == (net.bytes[static_cast<size_t>(full)] & mask);
}

}  // namespace driftwatch
