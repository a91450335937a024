#include "lib/daemon/listen_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace driftwatch {

Result<std::vector<std::string>> ResolveHost(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res); rc != 0) {
    const std::string why = gai_strerror(rc);
    return std::unexpected(rc == EAI_NONAME || rc == EAI_NODATA ? Error::NotFound(why)
                                                                : Error::Unavailable(why));
  }
  std::vector<std::string> out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = "";
    const void* a = nullptr;
    if (ai->ai_family == AF_INET) {
      a = &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr;
    } else if (ai->ai_family == AF_INET6) {
      a = &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr;
    } else {
      continue;
    }
    if (inet_ntop(ai->ai_family, a, buf, sizeof buf) != nullptr) out.emplace_back(buf);
  }
  freeaddrinfo(res);
  return out;
}

Result<std::optional<std::string>> ListenHost(std::string_view addr) {
  if (addr.starts_with("unix:") || addr.starts_with("unix-abstract:")) {
    return std::optional<std::string>();
  }
  if (addr.starts_with("[")) {
    size_t close = addr.find(']');
    if (close == std::string_view::npos)
      return std::unexpected(Error::InvalidInput("no closing ']'"));
    std::string_view rest = addr.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(":"))
      return std::unexpected(Error::InvalidInput("text after ']'"));
    return std::optional<std::string>(std::string(addr.substr(1, close - 1)));
  }
  size_t colon = addr.find(':');
  if (colon != std::string_view::npos && addr.find(':', colon + 1) == std::string_view::npos) {
    return std::optional<std::string>(std::string(addr.substr(0, colon)));  // HOST:PORT
  }
  return std::optional<std::string>(std::string(addr));  // HOST, or a bare IPv6 address
}

bool IsLoopbackIp(std::string_view numeric) {
  std::string s(numeric);
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

Result<void> CheckLoopbackListen(std::string_view addr, const HostResolver& resolve) {
  auto host = ListenHost(addr);
  if (!host) return std::unexpected(std::move(host.error()).Prefix("not a listening address"));
  if (!*host) return {};  // a unix socket
  const std::string& h = **host;
  if (h.empty()) return std::unexpected(Error::InvalidInput("no host: listens on every interface"));
  auto addrs = resolve(h);
  if (!addrs) return std::unexpected(std::move(addrs.error()).Prefix(h + " does not resolve"));
  if (addrs->empty()) return std::unexpected(Error::NotFound(h + " resolves to no address"));
  for (const std::string& a : *addrs) {
    if (!IsLoopbackIp(a)) {
      return std::unexpected(
          Error::InvalidInput(h == a ? h + " is not a loopback address"
                                     : h + " resolves to " + a + ", not a loopback address"));
    }
  }
  return {};
}

}  // namespace driftwatch
