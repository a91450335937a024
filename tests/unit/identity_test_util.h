// Test certificates made with OpenSSL in memory: a CA, a bootstrap certificate, CSRs that
// are wrong in one way each.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>

#include "lib/daemon/node_identity.h"

namespace driftwatch::testing {

inline std::string Pem(X509* c) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, c);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

inline std::string Pem(X509_REQ* r) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(b, r);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

inline EVP_PKEY* ReadKey(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  return k;
}

// A certificate signed by (issuer, issuer_key), or self-signed when issuer is null.
// `ou`: an OU entry ("" for none).
inline std::string MakeCert(const std::string& key_pem, const std::string& cn,
                            const std::string& ou, bool ca, X509* issuer, EVP_PKEY* issuer_key,
                            X509** out = nullptr) {
  EVP_PKEY* key = ReadKey(key_pem);
  X509* c = X509_new();
  X509_set_version(c, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c), 4242);
  X509_NAME* name = X509_NAME_new();
  if (!ou.empty())
    X509_NAME_add_entry_by_NID(name, NID_organizationalUnitName, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(ou.data()),
                               static_cast<int>(ou.size()), -1, 0);
  X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.data()),
                             static_cast<int>(cn.size()), -1, 0);
  X509_set_subject_name(c, name);
  X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name);
  X509_gmtime_adj(X509_getm_notBefore(c), -60);
  X509_gmtime_adj(X509_getm_notAfter(c), 3600);
  X509_set_pubkey(c, key);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : c, c, nullptr, nullptr, 0);
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints,
                                          ca ? "critical,CA:TRUE" : "CA:FALSE");
  X509_add_ext(c, e, -1);
  X509_EXTENSION_free(e);
  X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256());
  std::string pem = Pem(c);
  X509_NAME_free(name);
  EVP_PKEY_free(key);
  if (out) {
    *out = c;
  } else {
    X509_free(c);
  }
  return pem;
}

struct TestCa {
  std::string key_pem, cert_pem;
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  TestCa() {
    key_pem = *GenerateNodeKey();
    key = ReadKey(key_pem);
    cert_pem = MakeCert(key_pem, "test CA", "", true, nullptr, nullptr, &cert);
  }
  ~TestCa() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  // A client certificate of this CA (CN = cn; OU driftwatch-bootstrap when bootstrap).
  std::string Issue(const std::string& cn, bool bootstrap) const {
    return MakeCert(*GenerateNodeKey(), cn, bootstrap ? std::string(kBootstrapOrgUnit) : "",
                    false, cert, key);
  }
};

}  // namespace driftwatch::testing
