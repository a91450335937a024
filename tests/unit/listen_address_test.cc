#include "lib/daemon/listen_address.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace driftwatch {
namespace {

TEST(ListenAddressTest, Host) {
  struct Row {
    std::string addr;
    std::string host;  // "(unix)" for a unix socket, "(error)" for malformed
  };
  const std::vector<Row> rows = {
      {"127.0.0.1:7443", "127.0.0.1"},
      {"localhost:0", "localhost"},
      {"collector.example.com:7443", "collector.example.com"},
      {"[::1]:7443", "::1"},
      {"[::1]", "::1"},
      {"[::]:0", "::"},
      {"::1", "::1"},  // bare IPv6: gRPC takes the whole string as the host
      {"fe80::1", "fe80::1"},
      {"localhost", "localhost"},
      {":7443", ""},
      {"0.0.0.0:7443", "0.0.0.0"},
      {"unix:/run/driftwatch/collector.sock", "(unix)"},
      {"unix-abstract:driftwatch", "(unix)"},
      {"vsock:2:7443", "vsock:2:7443"},  // not understood: a host that will not resolve
      {"[::1", "(error)"},
      {"[::1]x", "(error)"},
  };
  for (const Row& r : rows) {
    auto h = ListenHost(r.addr);
    std::string got = !h ? "(error)" : !*h ? "(unix)" : **h;
    EXPECT_EQ(got, r.host) << r.addr;
  }
}

TEST(ListenAddressTest, LoopbackIp) {
  for (const char* a : {"127.0.0.1", "127.1.2.3", "127.255.255.255", "::1", "::ffff:127.0.0.1",
                        "0:0:0:0:0:0:0:1"}) {
    EXPECT_TRUE(IsLoopbackIp(a)) << a;
  }
  for (const char* a : {"128.0.0.1", "10.0.0.1", "0.0.0.0", "::", "::2", "::ffff:10.0.0.1",
                        "fe80::1", "localhost", "127.example.com", "", "127.0.0.1:80"}) {
    EXPECT_FALSE(IsLoopbackIp(a)) << a;
  }
}

// The resolver is faked: names resolve as the table says, nothing goes to DNS.
TEST(ListenAddressTest, EveryResolvedAddressMustBeLoopback) {
  const std::map<std::string, std::vector<std::string>> dns = {
      {"localhost", {"127.0.0.1", "::1"}},
      {"127.0.0.1", {"127.0.0.1"}},
      {"127.1.2.3", {"127.1.2.3"}},
      {"::1", {"::1"}},
      {"::", {"::"}},
      {"0.0.0.0", {"0.0.0.0"}},
      {"10.1.2.3", {"10.1.2.3"}},
      {"127.example.com", {"93.184.216.34"}},
      {"half.example.com", {"127.0.0.1", "192.0.2.7"}},
      {"loop.example.com", {"127.0.0.53"}},
      {"empty.example.com", {}},
  };
  HostResolver fake = [&](const std::string& host) -> Result<std::vector<std::string>> {
    auto it = dns.find(host);
    if (it == dns.end()) return std::unexpected(Error::NotFound("Name or service not known"));
    return it->second;
  };
  struct Row {
    std::string addr;
    std::string error_has;  // "" for accepted
  };
  const std::vector<Row> rows = {
      {"127.0.0.1:0", ""},
      {"127.1.2.3:7443", ""},
      {"localhost:0", ""},
      {"[::1]:0", ""},
      {"::1", ""},
      {"loop.example.com:0", ""},  // a name, but it resolves to loopback only
      {"unix:/tmp/c.sock", ""},
      {"unix-abstract:dw", ""},
      {"127.example.com:0", "127.example.com resolves to 93.184.216.34, not a loopback"},
      {"half.example.com:0", "resolves to 192.0.2.7"},
      {"0.0.0.0:7443", "0.0.0.0 is not a loopback address"},
      {"[::]:7443", ":: is not a loopback address"},
      {":7443", "listens on every interface"},
      {"10.1.2.3:7443", "is not a loopback address"},
      {"127.0.0.1.nip.invalid:0", "does not resolve: Name or service not known"},
      {"empty.example.com:0", "resolves to no address"},
      {"[::1", "not a listening address"},
      {"vsock:2:7443", "does not resolve"},
  };
  for (const Row& r : rows) {
    auto got = CheckLoopbackListen(r.addr, fake);
    if (r.error_has.empty()) {
      EXPECT_TRUE(got.has_value()) << r.addr << ": " << got.error();
    } else {
      ASSERT_FALSE(got.has_value()) << r.addr;
      EXPECT_NE(got.error().message().find(r.error_has), std::string::npos)
          << r.addr << ": " << got.error();
    }
  }
}

// The real resolver on numeric addresses and /etc/hosts' localhost (no DNS query).
TEST(ListenAddressTest, RealResolverOnNumericAddresses) {
  EXPECT_TRUE(CheckLoopbackListen("127.0.0.1:0").has_value());
  EXPECT_TRUE(CheckLoopbackListen("[::1]:0").has_value());
  EXPECT_TRUE(CheckLoopbackListen("localhost:0").has_value());
  EXPECT_FALSE(CheckLoopbackListen("0.0.0.0:0").has_value());
  EXPECT_FALSE(CheckLoopbackListen("[::]:0").has_value());
  auto r = ResolveHost("127.0.0.1");
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_EQ(*r, std::vector<std::string>{"127.0.0.1"});
}

}  // namespace
}  // namespace driftwatch
