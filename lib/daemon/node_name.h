// node_name: the name the collector files a sensor's events under, taken from the sensor's
// verified client certificate, and which names are acceptable at all.
//
// The name is the certificate's first DNS subject alternative name, else (no DNS SAN at all)
// its subject common name; nothing else. IP, URI and email SANs never name a node: an IP is
// where a node was, not which node it is, and a URI or email can be whatever the CA signed.
// A DNS SAN that is present but unusable is refused, not skipped for the next one or the CN:
// the certificate then says something other than what the operator meant, and a guess would
// file a node's events under another node's name.
//
// An acceptable name is 1 to 253 bytes that print as themselves: no C0 or C1 control, DEL,
// backslash or invalid UTF-8 (nothing lib/base/terminal_text.h would escape) and no space. Names
// show in tables and logs and are typed back into `driftwatch alerts --node NAME`.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "lib/base/result.h"

namespace driftwatch {

inline constexpr size_t kMaxNodeNameBytes = 253;  // a DNS name's limit

// Error: why the name is refused ("is empty", "contains a control character", "contains a
// backslash", "is not valid UTF-8", "contains a space", "is longer than 253 bytes"), without
// the name itself.
Result<void> CheckNodeName(std::string_view name);

// As CheckNodeName, with an error that is a sentence naming where the name came from and the
// name (at most 64 bytes of it): `Hello.node "a b" contains a space: not a node name`.
// Escape the message when printing it (lib/base/log.h does).
Result<void> CheckNodeNameFrom(std::string_view source, std::string_view name);

// dns_sans: the certificate's DNS SANs in certificate order; common_names: its subject CNs
// (an empty CN counts as none).
// Error: a sentence naming the refused name and where it came from ("first DNS SAN \"x\"
// contains a space: not a node name"), or saying there is no name at all. The name is in it
// as the certificate has it (at most 64 bytes of it): escape the message when printing it
// (lib/base/log.h does).
Result<std::string> NodeNameFromCertificate(const std::vector<std::string>& dns_sans,
                                            const std::vector<std::string>& common_names);

}  // namespace driftwatch
