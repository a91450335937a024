// enrollment: the collector's say over node identities (docs/node-identity.md): who may
// open an ingest stream (not a bootstrap certificate, nothing on the deny list) and who gets
// a node certificate signed (Enroll).
//
//   bootstrap certificate ──Enroll{node, CSR}──► allow list? not denied? not enrolled yet?
//                                                CSR = node, P-256, signature ok? ──► sign
//   node certificate      ──Enroll{node, CSR}──► same node? not denied? CSR ok?  ──► sign
//
// "Enrolled" means: a certificate was signed for the name that has not expired and whose
// serial is not denied. The records keep the newest one per name, so a stolen bootstrap
// certificate cannot take over a name that is enrolled, also across restarts. They live in
//  - a file (`records`, SQLite deployments: one collector): `NAME SERIAL NOT_AFTER_S` lines,
//    read at Open, rewritten whole and renamed into place on each signing;
//  - or the shared PostgreSQL store (`records_db`, several collectors): the enrollments
//    table (migration 3, lib/store/pg_schema.cc), one row per name for every collector.
//    Each enrollment is one transaction holding an advisory lock on the name
//    (pg_advisory_xact_lock(kEnrollLock, hashtext(name))): read the row, decide, sign,
//    upsert, COMMIT, and only then is the certificate returned, so two collectors never both
//    pass the "not enrolled yet" check for one name. Nothing is cached: the check reads the
//    row inside that transaction (RefuseStream and Denied use the deny list only, never the
//    records). A database error refuses the enrollment (internal, naming the redacted URI)
//    and nothing is signed unrecorded; a lost connection is made again at the next call.
//    A COMMIT whose answer is lost may have recorded a certificate that was never handed
//    out: the name then stays enrolled (the safe side) until it expires or its serial is
//    denied.
// The deny and allow lists are files read at Open and again on Reload (SIGHUP).
//
// Thread-safety: every method may be called from any thread (gRPC's). mu_ guards the lists,
// the records file's map and the counters; with the records file it is held across an
// enrollment's checks, its signing and its record. With the database, db_mu_ (taken before
// mu_) holds the connection for a whole enrollment, and mu_ is taken only for the list
// checks and the counters, so stream admission never waits for the database.
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

class PgConn;  // lib/store/pg_conn.h: this header is read without libpq's

struct NodeAuthorityOptions {
  std::string deny_list;         // file; "" for none
  std::string allow_list;        // file; "" for none: no bootstrap enrollment
  std::string ca_cert, ca_key;   // files; "" for both: enrollment off
  std::string records;           // file of the names enrolled; "" for none
  std::string records_db;        // postgresql:// URI: the records in its enrollments table
                                 // instead (then `records` must be "")
  std::string records_by;        // enrollments.enrolled_by: this collector (required with
                                 // records_db: the collector's --lease-owner)
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
  ~NodeAuthority();  // out of line: PgConn is incomplete here

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
  struct Record {
    std::string serial;
    int64_t not_after_s = 0;
  };

  explicit NodeAuthority(NodeAuthorityOptions opt);
  Result<void> LoadLists() DW_REQUIRES(mu_);
  Result<void> WriteRecords() DW_REQUIRES(mu_);
  EnrollRefusal Refuse(EnrollRefusal r) DW_REQUIRES(mu_);
  // The checks that need neither the records nor the CSR: configuration, size, the caller's
  // certificate, the name, the deny and allow lists, renewal of itself only. Not counted.
  std::optional<EnrollRefusal> Admit(const std::optional<CertificateInfo>& peer,
                                     const std::string& peer_node,
                                     const v1::EnrollRequest& request,
                                     size_t request_bytes) const DW_REQUIRES(mu_);
  // A bootstrap enrollment's "not enrolled yet", given the name's record. Not counted.
  std::optional<EnrollRefusal> Enrolled(const std::string& node, const std::optional<Record>& r,
                                        int64_t now_s) const DW_REQUIRES(mu_);
  std::expected<IssuedCertificate, EnrollRefusal> EnrollWithFile(
      const std::optional<CertificateInfo>& peer, const std::string& peer_node,
      const v1::EnrollRequest& request, size_t request_bytes, int64_t now_s) DW_EXCLUDES(mu_);
  std::expected<IssuedCertificate, EnrollRefusal> EnrollWithDb(
      const std::optional<CertificateInfo>& peer, const std::string& peer_node,
      const v1::EnrollRequest& request, size_t request_bytes, int64_t now_s)
      DW_EXCLUDES(mu_, db_mu_);
  // Read the record, decide, sign, upsert, COMMIT: one transaction (header comment).
  // Refusals are not counted.
  std::expected<IssuedCertificate, EnrollRefusal> SignInTransaction(
      const CertificateInfo& peer, const v1::EnrollRequest& request, int64_t now_s)
      DW_REQUIRES(db_mu_) DW_EXCLUDES(mu_);
  // Connected, migrated (the table exists whichever of the store and this opens first).
  Result<void> ConnectDb() DW_REQUIRES(db_mu_);

  const NodeAuthorityOptions opt_;
  std::unique_ptr<CertificateAuthority> ca_;  // immutable once Open returns
  std::string by_;                            // enrolled_by; immutable once Open returns
  Mutex db_mu_;  // taken before mu_, never after
  std::unique_ptr<PgConn> db_ DW_GUARDED_BY(db_mu_);  // null: connect at the next call
  mutable Mutex mu_;
  DenyList deny_ DW_GUARDED_BY(mu_);
  std::optional<AllowList> allow_ DW_GUARDED_BY(mu_);
  std::map<std::string, Record> records_ DW_GUARDED_BY(mu_);  // the records file's
  NodeAuthorityCounters counters_ DW_GUARDED_BY(mu_);
};

}  // namespace driftwatch
