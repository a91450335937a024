// net_address: a network event's socket address (v1::NetworkActivity) as Falco's fd.*
// fields name it (server and client, local and remote sides, fd.name, fd.type), and IP
// networks ("10.0.0.0/8") for fd.net-style comparisons.
//
// Audit gives one address per call (lib/audit/audit_event.cc): connect's is the server's,
// accept's the client's, bind's the local one (a socket that will serve); listen names none.
// The side it does not give is unknown, never guessed.
// Thread-safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "driftwatch/v1/event.pb.h"

namespace driftwatch {

// "1.2.3.4" for 4 raw bytes, "2001:db8::1" for 16 (network order); "" for other sizes.
std::string IpText(std::string_view raw);

// One side of the connection: raw address bytes (4 or 16) and port; empty when unknown.
struct NetSide {
  std::string_view ip;  // raw bytes, into the event
  uint32_t port = 0;
  bool known() const { return !ip.empty(); }
};
struct NetSides {
  NetSide server, client, local, remote;
};
NetSides SidesOf(const v1::NetworkActivity& n);

// fd.name: "CIP:CPORT->SIP:SPORT" with the unknown side left out ("->1.2.3.4:443" for a
// connect, "10.0.0.5:51000->" for an accept), "IP:PORT" for a bind, the path of a unix
// socket; "" when the event names no address (listen).
std::string NetFdName(const v1::NetworkActivity& n);

// fd.type "ipv4", "ipv6", "unix"; fd.typechar "4", "6", "u"; fd.sockfamily "ip", "unix";
// "" for no address or another family.
std::string_view NetFdType(const v1::NetworkActivity& n);
std::string_view NetFdTypechar(const v1::NetworkActivity& n);
std::string_view NetSockFamily(const v1::NetworkActivity& n);

// fd.l4proto: "tcp" where the call proves a stream socket (accept, accept4, listen on an IP
// socket); "" where audit does not say (connect and bind take TCP and UDP sockets alike).
std::string_view NetL4Proto(const v1::NetworkActivity& n);

// An IP network: "10.0.0.0/8", "fe80::/10", or one address ("1.2.3.4" is 1.2.3.4/32).
struct IpNet {
  std::array<uint8_t, 16> bytes{};
  uint8_t size = 0;    // 4 or 16
  uint8_t prefix = 0;  // bits
};
std::optional<IpNet> ParseIpNet(std::string_view text);

// True when `ip` (raw bytes, 4 or 16; or its text when `is_text`) is in `net`. An IPv4
// address is not in an IPv6 network nor the reverse, except that an IPv4-mapped IPv6
// address (::ffff:1.2.3.4) is taken as its IPv4 address.
bool IpNetContains(const IpNet& net, std::string_view ip_raw);
// The raw bytes of "1.2.3.4" or "::1"; empty when the text is not an address.
std::string IpRaw(std::string_view text);

}  // namespace driftwatch
