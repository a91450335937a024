#include "lib/daemon/node_identity.h"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>

#include <ctime>
#include <string>
#include <vector>

#include "unit/identity_test_util.h"

namespace driftwatch {
namespace {

using testing::Pem;
using testing::ReadKey;
using testing::TestCa;

// A CSR with `cns` as its subject CNs and `san` ("" for none) as requested extension,
// signed with `sign_key_pem` but carrying `pub_key_pem`'s public key.
std::string Csr(const std::string& pub_key_pem, const std::string& sign_key_pem,
                const std::vector<std::string>& cns, const std::string& san = "") {
  EVP_PKEY* pub = ReadKey(pub_key_pem);
  EVP_PKEY* sign = ReadKey(sign_key_pem);
  X509_REQ* r = X509_REQ_new();
  X509_NAME* n = X509_NAME_new();
  for (const std::string& cn : cns)
    X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.data()),
                               static_cast<int>(cn.size()), -1, 0);
  X509_REQ_set_subject_name(r, n);
  X509_REQ_set_pubkey(r, sign);
  if (!san.empty()) {
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name,
                                                     san.c_str()));
    X509_REQ_add_extensions(r, exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  X509_REQ_sign(r, sign, EVP_sha256());
  X509_REQ_set_pubkey(r, pub);  // after signing: a key swap the signature does not cover
  std::string pem = Pem(r);
  X509_REQ_free(r);
  X509_NAME_free(n);
  EVP_PKEY_free(pub);
  EVP_PKEY_free(sign);
  return pem;
}

std::string RsaKeyPem() {
  EVP_PKEY* k = EVP_RSA_gen(2048);
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  EVP_PKEY_free(k);
  return out;
}

TEST(NodeIdentityTest, OwnCsrPasses) {
  auto key = GenerateNodeKey();
  ASSERT_TRUE(key);
  auto csr = MakeNodeCsr(*key, "node-a");
  ASSERT_TRUE(csr) << csr.error();
  EXPECT_TRUE(CheckNodeCsr(*csr, "node-a"));
}

TEST(NodeIdentityTest, RefusedCsrs) {
  const std::string key = *GenerateNodeKey(), other = *GenerateNodeKey();
  struct Row {
    std::string what, csr, error;
  };
  const std::vector<Row> rows = {
      {"another name", Csr(key, key, {"node-b"}), "CSR names \"node-b\", not the node asked for \"node-a\""},
      {"no CN", Csr(key, key, {}), "CSR has 0 CNs, not exactly one"},
      {"two CNs", Csr(key, key, {"node-a", "node-b"}), "CSR has 2 CNs, not exactly one"},
      {"other DNS SAN", Csr(key, key, {"node-a"}, "DNS:node-b"),
       "CSR asks for DNS name \"node-b\", not \"node-a\""},
      {"IP SAN", Csr(key, key, {"node-a"}, "IP:10.0.0.1"),
       "CSR asks for a subjectAltName that is not a DNS name"},
      {"signature by another key", Csr(key, other, {"node-a"}), "CSR signature does not verify"},
      {"RSA key", Csr(RsaKeyPem(), RsaKeyPem(), {"node-a"}), "CSR key is not EC P-256"},
      {"not PEM", "hello", "not a PEM certificate request"},
      {"oversize", std::string(kMaxCsrBytes + 1, 'A'), "CSR of 4097 bytes: over 4096"},
  };
  for (const Row& r : rows) {
    auto got = CheckNodeCsr(r.csr, "node-a");
    ASSERT_FALSE(got) << r.what;
    EXPECT_EQ(got.error().message(), r.error) << r.what;
  }
  // The same DNS SAN as the CN is fine.
  EXPECT_TRUE(CheckNodeCsr(Csr(key, key, {"node-a"}, "DNS:node-a"), "node-a"));
}

TEST(NodeIdentityTest, SignedCertificateNamesTheNodeAndCarriesTheCsrKey) {
  TestCa ca;
  auto authority = CertificateAuthority::Load(ca.cert_pem, ca.key_pem);
  ASSERT_TRUE(authority) << authority.error();
  EXPECT_TRUE((*authority)->InBundle(ca.cert_pem));
  EXPECT_FALSE((*authority)->InBundle(TestCa().cert_pem));
  const std::string key = *GenerateNodeKey();
  auto csr = CheckNodeCsr(*MakeNodeCsr(key, "node-a.example"), "node-a.example");
  ASSERT_TRUE(csr);
  const int64_t now = time(nullptr);
  auto issued = (*authority)->Sign(*csr, "node-a.example", std::chrono::hours(24 * 30), now);
  ASSERT_TRUE(issued) << issued.error();
  EXPECT_TRUE(KeyMatchesCertificate(key, issued->pem));
  EXPECT_EQ(issued->info.common_names, std::vector<std::string>{"node-a.example"});
  EXPECT_EQ(issued->info.dns_sans, std::vector<std::string>{"node-a.example"});
  EXPECT_FALSE(issued->info.bootstrap);
  EXPECT_EQ(issued->info.not_before_s, now - 300);
  // The test CA lives an hour: the node certificate never outlives its CA.
  EXPECT_LE(issued->info.not_after_s, now + 3600 + 5);
  EXPECT_GE(issued->info.not_after_s, now + 3600 - 5);
  EXPECT_EQ(issued->info.serial.size(), 32u);
  EXPECT_EQ(issued->info.sha256.size(), 64u);
  // A name that is no DNS name goes in the CN only.
  auto csr2 = CheckNodeCsr(*MakeNodeCsr(key, "n\xc5\x93ud"), "n\xc5\x93ud");
  ASSERT_TRUE(csr2);
  auto issued2 = (*authority)->Sign(*csr2, "n\xc5\x93ud", std::chrono::hours(1), now);
  ASSERT_TRUE(issued2) << issued2.error();
  EXPECT_TRUE(issued2->info.dns_sans.empty());
  EXPECT_EQ(issued2->info.common_names, std::vector<std::string>{"n\xc5\x93ud"});
}

TEST(NodeIdentityTest, CaKeyMustMatch) {
  TestCa a, b;
  auto bad = CertificateAuthority::Load(a.cert_pem, b.key_pem);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), "the CA key is not the CA certificate's");
  auto not_ca = CertificateAuthority::Load(a.Issue("leaf", false), a.key_pem);
  EXPECT_FALSE(not_ca);
}

TEST(NodeIdentityTest, BootstrapRoleFromOrgUnit) {
  TestCa ca;
  auto boot = ReadCertificate(ca.Issue("driftwatch-bootstrap", true));
  ASSERT_TRUE(boot);
  EXPECT_TRUE(boot->bootstrap);
  auto node = ReadCertificate(ca.Issue("node-a", false));
  ASSERT_TRUE(node);
  EXPECT_FALSE(node->bootstrap);
  EXPECT_EQ(node->serial, "1092");  // 4242
}

TEST(NodeIdentityTest, DenyListParsing) {
  auto d = ParseDenyList(
      "# revoked\n"
      "node worker-1\n"
      "  node   worker-2   # stolen laptop\n"
      "\n"
      "serial 00:0a:1B:ff\n"
      "sha256 " + std::string(32, 'A') + ":" + std::string(32, 'b') + "\n");
  ASSERT_TRUE(d) << d.error();
  EXPECT_EQ(d->nodes, (std::set<std::string>{"worker-1", "worker-2"}));
  EXPECT_EQ(d->serials, std::set<std::string>{"A1BFF"});
  EXPECT_EQ(d->sha256s, std::set<std::string>{std::string(32, 'a') + std::string(32, 'b')});
  CertificateInfo c;
  c.serial = "A1BFF";
  EXPECT_EQ(d->Refuses("worker-9", c), "certificate serial A1BFF is on the deny list");
  EXPECT_EQ(d->Refuses("worker-1", CertificateInfo{}), "node worker-1 is on the deny list");
  EXPECT_EQ(d->Refuses("worker-9", CertificateInfo{}), "");

  struct Row {
    std::string text, error;
  };
  const std::vector<Row> bad = {
      {"worker-1\n", "line 1: expected `node NAME`, `serial HEX` or `sha256 HEX`"},
      {"\nhost worker-1\n", "line 2: unknown entry \"host\": expected node, serial or sha256"},
      {"serial xyz\n", "line 1: serial \"xyz\" is not hex"},
      {"sha256 abcd\n", "line 1: sha256 \"abcd\" is not 64 hex digits"},
      {"node a b\n", "line 1: one value a line (`node VALUE`)"},
      {"node bad\x1b[2J\n", "line 1: node \"bad\x1b[2J\" contains a control character: not a node name"},
  };
  for (const Row& r : bad) {
    auto got = ParseDenyList(r.text);
    ASSERT_FALSE(got) << r.text;
    EXPECT_EQ(got.error().message(), r.error);
  }
}

TEST(NodeIdentityTest, NormalizedSerialsAndFingerprints) {
  EXPECT_EQ(NormalizeSerial("00:AB:cd"), "ABCD");
  EXPECT_EQ(NormalizeSerial("0"), "0");
  EXPECT_EQ(NormalizeSerial("zz"), "");
  EXPECT_EQ(NormalizeSha256(std::string(63, 'a')), "");
}

TEST(NodeIdentityTest, AllowListGlobs) {
  auto a = ParseAllowList("# nodes of the prod pool\nprod-*\nbuild-[0-9]\nexact.node\n");
  ASSERT_TRUE(a);
  for (const char* yes : {"prod-1", "prod-x.y", "build-7", "exact.node"})
    EXPECT_TRUE(a->Allows(yes)) << yes;
  for (const char* no : {"prod", "build-77", "exact.node2", "dev-1"}) EXPECT_FALSE(a->Allows(no)) << no;
  EXPECT_FALSE(ParseAllowList("two names\n"));
}

}  // namespace
}  // namespace driftwatch
