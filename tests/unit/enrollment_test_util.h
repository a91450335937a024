// What the enrollment tests share (tests/unit/enrollment_test.cc, records in a file;
// tests/pg/pg_enrollment_test.cc, records in PostgreSQL): a CA and the lists in a temporary
// directory with the NodeAuthorityOptions naming them, requests, and one Enroll's outcome.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

#include "collector/enrollment.h"
#include "unit/identity_test_util.h"

namespace driftwatch::testing {

// dir/ca.crt, dir/ca.key, dir/allow ("node-*"), dir/deny (empty); `opt` names them, without
// records (each test says where they are).
struct EnrollmentFiles {
  TestCa ca;
  std::string dir;
  NodeAuthorityOptions opt;

  EnrollmentFiles() {
    char tmpl[] = "/tmp/dw_enroll_test.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) ADD_FAILURE() << "mkdtemp " << tmpl;
    dir = tmpl;
    Write("ca.crt", ca.cert_pem);
    Write("ca.key", ca.key_pem);
    Write("allow", "node-*\n");
    Write("deny", "");
    opt.ca_cert = dir + "/ca.crt";
    opt.ca_key = dir + "/ca.key";
    opt.allow_list = dir + "/allow";
    opt.deny_list = dir + "/deny";
    opt.client_ca_bundle = ca.cert_pem;
    opt.validity = std::chrono::seconds(1800);
  }
  ~EnrollmentFiles() { std::filesystem::remove_all(dir); }
  EnrollmentFiles(const EnrollmentFiles&) = delete;
  EnrollmentFiles& operator=(const EnrollmentFiles&) = delete;

  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(dir + "/" + name) << text;
  }
  // A new bootstrap certificate of the CA.
  CertificateInfo Bootstrap() const {
    return *ReadCertificate(ca.Issue("driftwatch-bootstrap", true));
  }
};

// An enrollment request for `node` with a CSR (new key) for `csr_node` ("": the same).
inline v1::EnrollRequest MakeEnrollRequest(const std::string& node,
                                           const std::string& csr_node = "") {
  v1::EnrollRequest r;
  r.set_node(node);
  r.set_csr_pem(*MakeNodeCsr(*GenerateNodeKey(), csr_node.empty() ? node : csr_node));
  return r;
}

// Enroll as `req.node()` with `peer`: "" on success (the certificate in *out), else the
// refusal's reason.
inline std::string TryEnroll(NodeAuthority* a, const CertificateInfo& peer,
                             const std::string& peer_node, const v1::EnrollRequest& req,
                             IssuedCertificate* out = nullptr) {
  auto r = a->Enroll(peer, peer_node, req, req.ByteSizeLong(), time(nullptr));
  if (!r) return r.error().reason;
  if (out) *out = *r;
  return "";
}

}  // namespace driftwatch::testing
