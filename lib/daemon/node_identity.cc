#include "lib/daemon/node_identity.h"

#include <fnmatch.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "lib/daemon/node_name.h"

namespace driftwatch {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME, X509_NAME_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
void FreeGeneralNames(GENERAL_NAMES* n) { GENERAL_NAMES_free(n); }
using GensPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, FreeGeneralNames>>;
void FreeExtStack(STACK_OF(X509_EXTENSION) * s) {
  sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
}
using ExtsPtr =
    std::unique_ptr<STACK_OF(X509_EXTENSION), Deleter<STACK_OF(X509_EXTENSION), FreeExtStack>>;

// OpenSSL's last error, as text (the queue is cleared).
std::string SslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

BioPtr MemBio(std::string_view s) {
  return BioPtr(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

std::string BioText(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

X509Ptr ParseCert(std::string_view pem) {
  BioPtr b = MemBio(pem);
  return X509Ptr(b ? PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr) : nullptr);
}

KeyPtr ParseKey(std::string_view pem) {
  BioPtr b = MemBio(pem);
  return KeyPtr(b ? PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr) : nullptr);
}

int64_t AsnTimeSeconds(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string Hex(const unsigned char* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

std::vector<std::string> NameEntries(const X509_NAME* name, int nid) {
  std::vector<std::string> out;
  for (int i = -1; (i = X509_NAME_get_index_by_NID(name, nid, i)) >= 0;) {
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0) {
      out.emplace_back();
      continue;
    }
    out.emplace_back(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
  }
  return out;
}

std::vector<std::string> DnsNames(const GENERAL_NAMES* names) {
  std::vector<std::string> out;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type != GEN_DNS) continue;
    const ASN1_STRING* s = g->d.dNSName;
    out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
  }
  return out;
}

std::string OneLine(const X509_NAME* name) {
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b) return "";
  X509_NAME_print_ex(b.get(), name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  return BioText(b.get());
}

// A name a DNS SAN can carry (IA5, letters, digits, '-', '.', '_'): others go in the CN only.
bool IsDnsName(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_')
      return false;
  return true;
}

bool IsP256(const EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return false;
  char group[64] = {};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group, &len) != 1) return false;
  return std::string_view(group, len) == "prime256v1" || std::string_view(group, len) == "P-256";
}

Result<void> AddExt(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return std::unexpected(Error::InvalidInput("certificate extension " + value + ": " + SslError()));
  return {};
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
      line.remove_suffix(1);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front())))
      line.remove_prefix(1);
    out.push_back(line);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string NormalizeSerial(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return "";
    if (out.empty() && c == '0') continue;
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  if (out.empty() && !text.empty() && text.find_first_not_of("0:") == std::string_view::npos)
    return "0";
  return out;
}

std::string NormalizeSha256(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) return "";
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out.size() == 64 ? out : "";
}

Result<CertificateInfo> ReadCertificate(std::string_view pem) {
  X509Ptr cert = ParseCert(pem);
  if (!cert) return std::unexpected(Error::InvalidInput("not a PEM certificate: " + SslError()));
  CertificateInfo info;
  BnPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  if (serial) {
    char* hex = BN_bn2hex(serial.get());
    if (hex) {
      info.serial = NormalizeSerial(hex);
      OPENSSL_free(hex);
    }
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &md_len) == 1) info.sha256 = Hex(md, md_len);
  info.not_before_s = AsnTimeSeconds(X509_get0_notBefore(cert.get()));
  info.not_after_s = AsnTimeSeconds(X509_get0_notAfter(cert.get()));
  const X509_NAME* subject = X509_get_subject_name(cert.get());
  info.common_names = NameEntries(subject, NID_commonName);
  for (const std::string& ou : NameEntries(subject, NID_organizationalUnitName))
    if (ou == kBootstrapOrgUnit) info.bootstrap = true;
  GensPtr sans(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  info.dns_sans = DnsNames(sans.get());
  info.subject = OneLine(subject);
  return info;
}

Result<std::string> GenerateNodeKey() {
  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return std::unexpected(Error::Io("EC P-256 key generation: " + SslError()));
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_PrivateKey(b.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return std::unexpected(Error::Io("writing the key: " + SslError()));
  return BioText(b.get());
}

Result<std::string> MakeNodeCsr(std::string_view key_pem, std::string_view node) {
  KeyPtr key = ParseKey(key_pem);
  if (!key) return std::unexpected(Error::InvalidInput("not a PEM private key: " + SslError()));
  ReqPtr req(X509_REQ_new());
  NamePtr name(X509_NAME_new());
  if (!req || !name) return std::unexpected(Error::Io("CSR: " + SslError()));
  const std::string cn(node);
  if (X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.data()),
                                 static_cast<int>(cn.size()), -1, 0) != 1 ||
      X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_REQ_set_subject_name(req.get(), name.get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return std::unexpected(Error::InvalidInput("CSR for " + cn + ": " + SslError()));
  }
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_X509_REQ(b.get(), req.get()) != 1)
    return std::unexpected(Error::Io("writing the CSR: " + SslError()));
  return BioText(b.get());
}

bool KeyMatchesCertificate(std::string_view key_pem, std::string_view cert_pem) {
  KeyPtr key = ParseKey(key_pem);
  X509Ptr cert = ParseCert(cert_pem);
  bool ok = key && cert && X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  return ok;
}

Result<CheckedCsr> CheckNodeCsr(std::string_view csr_pem, std::string_view node) {
  auto bad = [](std::string m) { return std::unexpected(Error::InvalidInput(std::move(m))); };
  if (csr_pem.size() > kMaxCsrBytes)
    return bad("CSR of " + std::to_string(csr_pem.size()) + " bytes: over " +
               std::to_string(kMaxCsrBytes));
  BioPtr b = MemBio(csr_pem);
  ReqPtr req(b ? PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) {
    ERR_clear_error();
    return bad("not a PEM certificate request");
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (!key || !IsP256(key)) return bad("CSR key is not EC P-256");
  if (X509_REQ_verify(req.get(), key) != 1) {
    ERR_clear_error();
    return bad("CSR signature does not verify");
  }
  std::vector<std::string> cns = NameEntries(X509_REQ_get_subject_name(req.get()), NID_commonName);
  auto shown = [](std::string_view s) {
    std::string out(1, '"');
    out.append(s.substr(0, 64));
    out.append(s.size() > 64 ? "...\"" : "\"");
    return out;
  };
  if (cns.size() != 1)
    return bad("CSR has " + std::to_string(cns.size()) + " CNs, not exactly one");
  if (cns.front() != node)
    return bad("CSR names " + shown(cns.front()) + ", not the node asked for " + shown(node));
  ExtsPtr exts(X509_REQ_get_extensions(req.get()));
  for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts.get()); ++i) {
    X509_EXTENSION* e = sk_X509_EXTENSION_value(exts.get(), i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) != NID_subject_alt_name) continue;
    GensPtr sans(static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(e)));
    if (!sans) return bad("CSR subjectAltName does not parse");
    if (sk_GENERAL_NAME_num(sans.get()) != static_cast<int>(DnsNames(sans.get()).size()))
      return bad("CSR asks for a subjectAltName that is not a DNS name");
    for (const std::string& dns : DnsNames(sans.get()))
      if (dns != node) return bad("CSR asks for DNS name " + shown(dns) + ", not " + shown(node));
  }
  unsigned char* der = nullptr;
  int n = i2d_X509_REQ(req.get(), &der);
  if (n <= 0) return bad("CSR does not encode: " + SslError());
  CheckedCsr out{std::string(reinterpret_cast<char*>(der), static_cast<size_t>(n))};
  OPENSSL_free(der);
  return out;
}

struct CertificateAuthority::Impl {
  X509Ptr cert;
  KeyPtr key;
};

CertificateAuthority::CertificateAuthority(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CertificateAuthority::~CertificateAuthority() = default;

Result<std::unique_ptr<CertificateAuthority>> CertificateAuthority::Load(std::string_view cert_pem,
                                                                         std::string_view key_pem) {
  auto impl = std::make_unique<Impl>();
  impl->cert = ParseCert(cert_pem);
  if (!impl->cert) return std::unexpected(Error::InvalidInput("CA certificate: not PEM"));
  impl->key = ParseKey(key_pem);
  if (!impl->key) return std::unexpected(Error::InvalidInput("CA key: not a PEM private key"));
  if (X509_check_private_key(impl->cert.get(), impl->key.get()) != 1) {
    ERR_clear_error();
    return std::unexpected(Error::InvalidInput("the CA key is not the CA certificate's"));
  }
  if (X509_check_ca(impl->cert.get()) == 0)
    return std::unexpected(Error::InvalidInput("the CA certificate is not a CA (basicConstraints)"));
  return std::unique_ptr<CertificateAuthority>(new CertificateAuthority(std::move(impl)));
}

bool CertificateAuthority::InBundle(std::string_view bundle_pem) const {
  BioPtr b = MemBio(bundle_pem);
  if (!b) return false;
  bool found = false;
  while (X509* c = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) {
    found = found || X509_cmp(c, impl_->cert.get()) == 0;
    X509_free(c);
  }
  ERR_clear_error();  // the end of the bundle reads as an error
  return found;
}

Result<IssuedCertificate> CertificateAuthority::Sign(const CheckedCsr& csr, std::string_view node,
                                                     std::chrono::seconds validity,
                                                     int64_t now_s) const {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(csr.der.data());
  ReqPtr req(d2i_X509_REQ(nullptr, &p, static_cast<long>(csr.der.size())));
  if (!req) return std::unexpected(Error::InvalidInput("CSR: " + SslError()));
  X509Ptr cert(X509_new());
  NamePtr subject(X509_NAME_new());
  if (!cert || !subject) return std::unexpected(Error::Io("certificate: " + SslError()));
  unsigned char rnd[16];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return std::unexpected(Error::Io("serial: " + SslError()));
  // Positive, and 32 hex digits: never shortened by a leading zero, in DER or in hex.
  rnd[0] = static_cast<unsigned char>((rnd[0] & 0x3F) | 0x40);
  BnPtr serial(BN_bin2bn(rnd, sizeof rnd, nullptr));
  const std::string cn(node);
  const int64_t ca_end = AsnTimeSeconds(X509_get0_notAfter(impl_->cert.get()));
  int64_t end = now_s + validity.count();
  // Backdated for clock skew, but by little of a short lifetime: sensors renew at 2/3 of it.
  const int64_t backdate = std::min<int64_t>(300, validity.count() / 10);
  if (ca_end > 0 && end > ca_end) end = ca_end;
  if (!serial || !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) ||
      X509_set_version(cert.get(), 2) != 1 ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(impl_->cert.get())) != 1 ||
      X509_NAME_add_entry_by_NID(subject.get(), NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.data()),
                                 static_cast<int>(cn.size()), -1, 0) != 1 ||
      X509_set_subject_name(cert.get(), subject.get()) != 1 ||
      !ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(now_s - backdate)) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(end)) ||
      X509_set_pubkey(cert.get(), X509_REQ_get0_pubkey(req.get())) != 1) {
    return std::unexpected(Error::InvalidInput("certificate for " + cn + ": " + SslError()));
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, impl_->cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair<int, std::string>{NID_basic_constraints, "critical,CA:FALSE"},
                            {NID_key_usage, "critical,digitalSignature"},
                            {NID_ext_key_usage, "clientAuth"},
                            {NID_subject_key_identifier, "hash"}}) {
    if (auto r = AddExt(cert.get(), &ctx, nid, value); !r) return std::unexpected(r.error());
  }
  // Only a CA with a key identifier of its own can be named by one.
  if (X509_get0_subject_key_id(impl_->cert.get()) != nullptr) {
    if (auto r = AddExt(cert.get(), &ctx, NID_authority_key_identifier, "keyid"); !r)
      return std::unexpected(r.error());
  }
  if (IsDnsName(node)) {
    if (auto r = AddExt(cert.get(), &ctx, NID_subject_alt_name, "DNS:" + cn); !r)
      return std::unexpected(r.error());
  }
  if (X509_sign(cert.get(), impl_->key.get(), EVP_sha256()) <= 0)
    return std::unexpected(Error::Io("signing: " + SslError()));
  BioPtr b(BIO_new(BIO_s_mem()));
  if (!b || PEM_write_bio_X509(b.get(), cert.get()) != 1)
    return std::unexpected(Error::Io("writing the certificate: " + SslError()));
  IssuedCertificate out;
  out.pem = BioText(b.get());
  auto info = ReadCertificate(out.pem);
  if (!info) return std::unexpected(info.error());
  out.info = std::move(*info);
  return out;
}

std::string DenyList::Refuses(std::string_view node, const CertificateInfo& cert) const {
  if (nodes.count(std::string(node))) return "node " + std::string(node) + " is on the deny list";
  if (!cert.serial.empty() && serials.count(cert.serial))
    return "certificate serial " + cert.serial + " is on the deny list";
  if (!cert.sha256.empty() && sha256s.count(cert.sha256))
    return "certificate sha256 " + cert.sha256 + " is on the deny list";
  return "";
}

Result<DenyList> ParseDenyList(std::string_view text) {
  DenyList out;
  size_t n = 0;
  for (std::string_view line : Lines(text)) {
    ++n;
    if (line.empty()) continue;
    auto bad = [n](const std::string& m) {
      return std::unexpected(Error::InvalidInput("line " + std::to_string(n) + ": " + m));
    };
    size_t sp = line.find_first_of(" \t");
    if (sp == std::string_view::npos)
      return bad("expected `node NAME`, `serial HEX` or `sha256 HEX`");
    std::string_view kind = line.substr(0, sp), value = line.substr(sp + 1);
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front())))
      value.remove_prefix(1);
    if (value.find_first_of(" \t") != std::string_view::npos)
      return bad("one value a line (`" + std::string(kind) + " VALUE`)");
    if (kind == "node") {
      if (auto ok = CheckNodeNameFrom("node", value); !ok) return bad(ok.error().message());
      out.nodes.emplace(value);
    } else if (kind == "serial") {
      std::string s = NormalizeSerial(value);
      if (s.empty()) return bad("serial \"" + std::string(value.substr(0, 80)) + "\" is not hex");
      out.serials.insert(std::move(s));
    } else if (kind == "sha256") {
      std::string s = NormalizeSha256(value);
      if (s.empty())
        return bad("sha256 \"" + std::string(value.substr(0, 100)) + "\" is not 64 hex digits");
      out.sha256s.insert(std::move(s));
    } else {
      return bad("unknown entry \"" + Lower(kind.substr(0, 20)) +
                 "\": expected node, serial or sha256");
    }
  }
  return out;
}

bool AllowList::Allows(std::string_view node) const {
  const std::string name(node);
  for (const std::string& p : patterns)
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}

Result<AllowList> ParseAllowList(std::string_view text) {
  AllowList out;
  size_t n = 0;
  for (std::string_view line : Lines(text)) {
    ++n;
    if (line.empty()) continue;
    if (line.find_first_of(" \t") != std::string_view::npos)
      return std::unexpected(Error::InvalidInput("line " + std::to_string(n) +
                                                 ": one name or glob a line"));
    out.patterns.emplace_back(line);
  }
  return out;
}

}  // namespace driftwatch
