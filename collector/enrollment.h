// enrollment: the collector's say over node identities (docs/node-identity.md): who may
// open an ingest stream (not a bootstrap certificate, nothing on the deny list) and who gets
// a node certificate signed (Enroll).
//
//   bootstrap certificate ──Enroll{node, CSR}──► allow list? not denied? not enrolled yet?
//                                                CSR = node, P-256, signature ok? ──► sign
//   node certificate      ──Enroll{node, CSR}──► same node? not denied? CSR ok?  ──► sign
//
// "Enrolled" means: this collector signed a certificate for the name that has not expired
// and whose serial is not denied. The records file keeps the newest one per name (`NAME
// SERIAL NOT_AFTER_S` lines, rewritten whole and renamed into place on each signing), so a
// stolen bootstrap certificate cannot take over a name that is enrolled, also across
// restarts. The deny and allow lists are files read at Open and again on Reload (SIGHUP).
//
// Thread-safety: every method may be called from any thread (gRPC's); one mutex guards the
// lists, the records and the counters, and is held across an enrollment's checks, its
// signing and its record, so two enrollments of one name cannot both pass.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "driftwatch/v1/collector.pb.h"
#include "lib/base/mutex.h"
#include "lib/base/result.h"
#include "lib/daemon/node_identity.h"

namespace driftwatch {

struct NodeAuthorityOptions {
  std::string deny_list;         // file; "" for none
  std::string allow_list;        // file; "" for none: no bootstrap enrollment
  std::string ca_cert, ca_key;   // files; "" for both: enrollment off
  std::string records;           // file of the names enrolled
  std::string client_ca_bundle;  // --client-ca's text: the CA must be in it
  std::chrono::seconds validity{30 * 24 * 3600};
};

// Requests larger than this are refused before anything is parsed.
inline constexpr size_t kMaxEnrollRequestBytes = 8192;

struct EnrollRefusal {
  enum class Kind { kInvalid, kDenied, kOversize, kUnconfigured, kUnauthenticated, kInternal };
  Kind kind;
  std::string reason;   // the metric label: bad_name, bad_csr, bad_signature, name_mismatch,
                        // not_approved, revoked, already_enrolled, wrong_node, oversize,
                        // bootstrap_required, not_configured, internal
  std::string message;  // a sentence, for the log and the caller
};

struct NodeAuthorityCounters {
  uint64_t signed_bootstrap = 0, signed_renewal = 0;
  std::map<std::string, uint64_t> enroll_refused;   // by reason
  std::map<std::string, uint64_t> streams_refused;  // revoked, bootstrap_credential
  uint64_t streams_ended = 0;                       // live streams ended by a reload
};

class NodeAuthority {
 public:
  static Result<std::unique_ptr<NodeAuthority>> Open(const NodeAuthorityOptions& opt);

  bool enrollment_enabled() const { return ca_ != nullptr; }
  // Reads the deny and allow lists again; on error those in force stay. OK: a summary.
  Result<std::string> Reload();

  // At a stream's start: "" to admit it, else why not (counted).
  std::string RefuseStream(const std::string& node, const CertificateInfo& cert);
  // The deny list's verdict now ("" admitted), for ending live streams after a reload.
  std::string Denied(const std::string& node, const CertificateInfo& cert) const;
  void CountStreamsEnded(uint64_t n);

  // `peer`: the caller's verified certificate (nullopt: none); `peer_node`: the name
  // NodeFromAuthContext took from it. `request_bytes`: the request as received.
  std::expected<IssuedCertificate, EnrollRefusal> Enroll(
      const std::optional<CertificateInfo>& peer, const std::string& peer_node,
      const v1::EnrollRequest& request, size_t request_bytes, int64_t now_s);

  NodeAuthorityCounters counters() const;
  size_t deny_entries() const;

 private:
  explicit NodeAuthority(NodeAuthorityOptions opt) : opt_(std::move(opt)) {}
  Result<void> LoadLists() DW_REQUIRES(mu_);
  Result<void> WriteRecords() DW_REQUIRES(mu_);
  EnrollRefusal Refuse(EnrollRefusal r) DW_REQUIRES(mu_);

  struct Record {
    std::string serial;
    int64_t not_after_s = 0;
  };
  const NodeAuthorityOptions opt_;
  std::unique_ptr<CertificateAuthority> ca_;  // immutable once Open returns
  mutable Mutex mu_;
  DenyList deny_ DW_GUARDED_BY(mu_);
  std::optional<AllowList> allow_ DW_GUARDED_BY(mu_);
  std::map<std::string, Record> records_ DW_GUARDED_BY(mu_);
  NodeAuthorityCounters counters_ DW_GUARDED_BY(mu_);
};

}  // namespace driftwatch
