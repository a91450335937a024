// listen_address: where a gRPC listening address (the collector's --listen) binds, for the
// collector's rule that plaintext (--insecure) is served on this machine only.
//
// Forms, as gRPC's server takes them: "unix:PATH" and "unix-abstract:NAME" (local sockets);
// otherwise HOST:PORT, [HOST]:PORT or HOST alone (as gRPC splits them: with more than one
// colon and no brackets, the whole string is the host). gRPC resolves HOST (numeric, or a
// name through /etc/hosts and DNS) and listens on every address it resolves to; an empty
// HOST is every interface. So the check is on the addresses, not the text: "127.example.com"
// is whatever DNS says it is, and "localhost" is loopback only if it resolves to loopback.
// What is not understood (other URI schemes such as vsock:, a name that does not resolve)
// is refused.
//
// The answer is the resolver's at the time of the check; gRPC resolves again when it binds.
// A name whose answer an attacker controls can change in between: give a numeric address
// or localhost to be sure.
//
// Thread-safety: pure functions, but for the resolver's (getaddrinfo(3) is thread-safe).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/result.h"

namespace driftwatch {

// A host's addresses as numeric text ("127.0.0.1", "::1"). Error: why it does not resolve.
using HostResolver = std::function<Result<std::vector<std::string>>(const std::string& host)>;

// getaddrinfo(3), IPv4 and IPv6, as gRPC's native resolver asks.
Result<std::vector<std::string>> ResolveHost(const std::string& host);

// The HOST of a listening address; nullopt for a unix socket. Error: malformed ("[::1" with
// no closing bracket, text after "]" that is not ":PORT").
Result<std::optional<std::string>> ListenHost(std::string_view addr);

// 127.0.0.0/8, ::1, and 127.0.0.0/8 mapped into IPv6 (::ffff:127.x.y.z). False for text
// that is not a numeric address.
bool IsLoopbackIp(std::string_view numeric);

// OK when the address is a unix socket or every address its host resolves to is loopback.
// Error: a sentence saying which address is not loopback, or why the host was not resolved.
Result<void> CheckLoopbackListen(std::string_view addr, const HostResolver& resolve = ResolveHost);

}  // namespace driftwatch
