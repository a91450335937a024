#include "lib/daemon/node_name.h"

#include "lib/base/terminal_text.h"

namespace driftwatch {

Result<void> CheckNodeName(std::string_view name) {
  if (name.empty()) return std::unexpected(Error::InvalidInput("is empty"));
  if (name.size() > kMaxNodeNameBytes) {
    return std::unexpected(
        Error::InvalidInput("is longer than " + std::to_string(kMaxNodeNameBytes) + " bytes"));
  }
  if (IsTerminalClean(name)) {
    if (name.find(' ') != std::string_view::npos)
      return std::unexpected(Error::InvalidInput("contains a space"));
    return {};
  }
  // Say which of the things lib/base/terminal_text.h escapes it holds. A 0xC2 byte always leads
  // a sequence, so 0xC2 0x80-0x9F is a C1 control in UTF-8.
  for (size_t i = 0; i < name.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    unsigned char next = i + 1 < name.size() ? static_cast<unsigned char>(name[i + 1]) : 0;
    if (c < 0x20 || c == 0x7F || (c == 0xC2 && next >= 0x80 && next <= 0x9F)) {
      return std::unexpected(Error::InvalidInput("contains a control character"));
    }
  }
  if (name.find('\\') != std::string_view::npos)
    return std::unexpected(Error::InvalidInput("contains a backslash"));
  return std::unexpected(Error::InvalidInput("is not valid UTF-8"));
}

Result<void> CheckNodeNameFrom(std::string_view source, std::string_view name) {
  auto ok = CheckNodeName(name);
  if (ok) return ok;
  std::string shown = name.size() > 64 ? std::string(name.substr(0, 64)) + "..." : std::string(name);
  return std::unexpected(Error::InvalidInput(std::string(source) + " \"" + shown + "\" " +
                                             ok.error().message() + ": not a node name"));
}

Result<std::string> NodeNameFromCertificate(const std::vector<std::string>& dns_sans,
                                            const std::vector<std::string>& common_names) {
  const std::string* name = nullptr;
  const char* source = nullptr;
  if (!dns_sans.empty()) {
    name = &dns_sans.front();
    source = "first DNS SAN";
  } else if (!common_names.empty() && !common_names.front().empty()) {
    name = &common_names.front();
    source = "CN (no DNS SAN)";
  } else {
    // gRPC gives a certificate without a CN an empty one.
    return std::unexpected(Error::InvalidInput("no DNS SAN and no CN to take the node name from"));
  }
  if (auto ok = CheckNodeNameFrom(source, *name); !ok)
    return std::unexpected(std::move(ok.error()));
  return *name;
}

}  // namespace driftwatch
