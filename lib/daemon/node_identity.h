// node_identity: the X.509 side of per-node identities (docs/node-identity.md), shared by the
// sensor (its key, its CSR, the certificate it got back) and the collector (CSR checks,
// signing, what a peer's certificate is, deny and allow lists).
//
// A node certificate has CN and DNS SAN = the node name (the SAN only where the name is a
// DNS name; NodeNameFromCertificate reads the SAN first, else the CN), EKU clientAuth, and a
// short validity. A bootstrap certificate is any client certificate of the collector's CA
// whose subject has OU = kBootstrapOrgUnit: it may ask for a node certificate (Enroll) and
// nothing else; the ingest stream refuses it.
//
// Deny list (collector --deny-list), one entry a line, `#` starts a comment:
//   node NAME        every certificate of NAME is refused, and NAME cannot enroll
//   serial HEX       the certificate with that serial (openssl x509 -serial; colons, case
//                    and leading zeros do not matter)
//   sha256 HEX       the certificate whose DER has that SHA-256 (openssl x509 -fingerprint
//                    -sha256)
// Allow list (collector --enroll-allow): one node name or glob (fnmatch: *, ?, [...]) a line,
// `#` comments. Only names it matches may enroll with a bootstrap certificate.
//
// Thread-safety: pure functions and values; CertificateAuthority is immutable once loaded
// (Sign may be called from any thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "lib/base/result.h"

namespace driftwatch {

inline constexpr std::string_view kBootstrapOrgUnit = "driftwatch-bootstrap";
// A P-256 CSR in PEM is about 450 bytes; anything much larger is not one of ours.
inline constexpr size_t kMaxCsrBytes = 4096;

// What a PEM certificate says about itself.
struct CertificateInfo {
  std::string serial;  // uppercase hex, no leading zeros (NormalizeSerial)
  std::string sha256;  // lowercase hex of the DER
  int64_t not_before_s = 0, not_after_s = 0;  // unix seconds
  bool bootstrap = false;                     // subject OU = kBootstrapOrgUnit
  std::vector<std::string> dns_sans, common_names;
  std::string subject;  // one line, for logs
};
Result<CertificateInfo> ReadCertificate(std::string_view pem);

// "0a:1B:..." -> "A1B..."; "" when `text` is not hex.
std::string NormalizeSerial(std::string_view text);
// "AB:cd:..." -> "abcd..."; "" when `text` is not 64 hex digits.
std::string NormalizeSha256(std::string_view text);

// A new EC P-256 private key, PKCS#8 PEM.
Result<std::string> GenerateNodeKey();
// A CSR (PEM) with subject CN = node, signed by `key_pem`.
Result<std::string> MakeNodeCsr(std::string_view key_pem, std::string_view node);
// True when the certificate's public key is the key's.
bool KeyMatchesCertificate(std::string_view key_pem, std::string_view cert_pem);

// A CSR that passed CheckNodeCsr: its DER, kept for signing.
struct CheckedCsr {
  std::string der;
};
// The CSR asks for `node` and nothing else, and is signed by the key it carries: at most
// kMaxCsrBytes of PEM; an EC P-256 key; subject CN = node (exactly one CN); DNS SANs, if
// requested at all, = node; the signature verifies. Error: a sentence saying which.
Result<CheckedCsr> CheckNodeCsr(std::string_view csr_pem, std::string_view node);

struct IssuedCertificate {
  std::string pem;
  CertificateInfo info;
};

class CertificateAuthority {
 public:
  // The CA's certificate and its private key (PEM); error when they do not belong together
  // or the certificate is not a CA.
  static Result<std::unique_ptr<CertificateAuthority>> Load(std::string_view cert_pem,
                                                            std::string_view key_pem);
  ~CertificateAuthority();
  // A node certificate for `node` with the CSR's key, valid from 5 minutes (at most a tenth
  // of `validity`) before `now_s` (clock skew) until `now_s` + `validity`, never past the CA's own expiry; a random serial of 32 hex digits (126 random bits).
  Result<IssuedCertificate> Sign(const CheckedCsr& csr, std::string_view node,
                                 std::chrono::seconds validity, int64_t now_s) const;
  // The CA's certificate is one of those in `bundle_pem` (the collector's --client-ca).
  bool InBundle(std::string_view bundle_pem) const;

 private:
  struct Impl;
  explicit CertificateAuthority(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct DenyList {
  std::set<std::string> nodes, serials, sha256s;
  size_t size() const { return nodes.size() + serials.size() + sha256s.size(); }
  // Why a certificate of `node` is refused ("node X is on the deny list", "certificate
  // serial S is on the deny list"), "" when it is not.
  std::string Refuses(std::string_view node, const CertificateInfo& cert) const;
};
// Error: names the line ("line 3: ..."). `name` is the file's, for messages.
Result<DenyList> ParseDenyList(std::string_view text);

struct AllowList {
  std::vector<std::string> patterns;
  bool Allows(std::string_view node) const;
};
Result<AllowList> ParseAllowList(std::string_view text);

}  // namespace driftwatch
