#include "collector/enrollment.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "lib/base/atomic_file.h"
#include "lib/base/log.h"
#include "lib/daemon/node_name.h"
#include "lib/store/pg_conn.h"
#include "lib/store/pg_schema.h"

namespace driftwatch {
namespace {

// An operator's file (CA, key, lists), whole; errors name the flag and the path.
Result<std::string> ReadText(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::unexpected(Error::FromErrno(errno, std::string(what) + " " + path));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return std::unexpected(Error::Io(std::string(what) + " " + path + ": read error"));
  return ss.str();
}

// The first key of the per-name advisory lock (two int4 keys: a space apart from the
// single bigint keys of the migrations and partitions); the second is hashtext(name).
constexpr int32_t kEnrollLock = 0x6477656e;  // "dwen"

// A CSR that CheckNodeCsr refuses, by what it says was wrong.
EnrollRefusal CsrRefusal(const Error& e) {
  const std::string& m = e.message();
  const char* reason = m.find("signature") != std::string::npos ? "bad_signature"
                       : m.find("not the node asked") != std::string::npos ||
                               m.find("asks for DNS name") != std::string::npos
                           ? "name_mismatch"
                           : "bad_csr";
  return {EnrollRefusal::Kind::kInvalid, reason, m};
}

EnrollRefusal Internal(std::string message) {
  return {EnrollRefusal::Kind::kInternal, "internal", std::move(message)};
}

}  // namespace

NodeAuthority::NodeAuthority(NodeAuthorityOptions opt) : opt_(std::move(opt)) {}
NodeAuthority::~NodeAuthority() = default;

Result<std::unique_ptr<NodeAuthority>> NodeAuthority::Open(const NodeAuthorityOptions& opt) {
  std::unique_ptr<NodeAuthority> a(new NodeAuthority(opt));
  if (opt.ca_cert.empty() != opt.ca_key.empty())
    return std::unexpected(Error::InvalidInput("--enroll-ca-cert and --enroll-ca-key go together"));
  if (!opt.ca_cert.empty()) {
    auto cert = ReadText(opt.ca_cert, "--enroll-ca-cert");
    if (!cert) return std::unexpected(cert.error());
    auto key = ReadText(opt.ca_key, "--enroll-ca-key");
    if (!key) return std::unexpected(key.error());
    auto ca = CertificateAuthority::Load(*cert, *key);
    if (!ca) return std::unexpected(ca.error().Prefix("--enroll-ca-cert/--enroll-ca-key"));
    // Certificates the collector's TLS would refuse are worth nothing to a sensor.
    if (!(*ca)->InBundle(opt.client_ca_bundle))
      return std::unexpected(Error::InvalidInput(
          "--enroll-ca-cert " + opt.ca_cert + " is not one of the --client-ca certificates: "
          "the certificates it signs would be refused"));
    a->ca_ = std::move(*ca);
    if (opt.validity.count() < 10)
      return std::unexpected(Error::InvalidInput("--enroll-validity: at least 10 s"));
  } else if (!opt.allow_list.empty()) {
    return std::unexpected(Error::InvalidInput("--enroll-allow needs --enroll-ca-cert and --enroll-ca-key"));
  }
  if (!opt.records_db.empty()) {
    if (!opt.records.empty())
      return std::unexpected(Error::InvalidInput(
          "--enroll-records: the enrollment records are in the database " +
          RedactPgUri(opt.records_db) + ", not in a file"));
    if (!IsPgUri(opt.records_db))
      return std::unexpected(Error::InvalidInput(
          "enrollment records: " + RedactPgUri(opt.records_db) + " is not a postgresql:// URI"));
  }
  a->by_ = opt.records_by;
  if (!opt.records_db.empty() && a->by_.empty())
    return std::unexpected(Error::InvalidInput(
        "enrollment records in the database need this collector's name (records_by)"));
  if (a->ca_ && !opt.records_db.empty()) {
    // At the start, so that a collector that cannot reach its records does not start.
    MutexLock db_lock(a->db_mu_);
    if (auto ok = a->ConnectDb(); !ok)
      return std::unexpected(ok.error().Prefix("enrollment records"));
  }
  MutexLock lock(a->mu_);
  if (auto r = a->LoadLists(); !r) return std::unexpected(r.error());
  if (a->ca_ && !opt.records.empty()) {
    auto text = ReadText(opt.records, "--enroll-records");
    if (!text && text.error().code() != ErrorCode::kNotFound) return std::unexpected(text.error());
    std::istringstream in(text ? *text : "");
    std::string line;
    size_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (line.empty()) continue;
      std::istringstream fields(line);
      std::string name;
      Record r;
      if (!(fields >> name >> r.serial >> r.not_after_s))
        return std::unexpected(Error::Corruption(opt.records + ": line " + std::to_string(n) +
                                                 ": expected NAME SERIAL NOT_AFTER_S"));
      a->records_[name] = r;
    }
  }
  return a;
}

Result<void> NodeAuthority::LoadLists() {
  DenyList deny;
  if (!opt_.deny_list.empty()) {
    auto text = ReadText(opt_.deny_list, "--deny-list");
    if (!text) return std::unexpected(text.error());
    auto d = ParseDenyList(*text);
    if (!d) return std::unexpected(d.error().Prefix("--deny-list " + opt_.deny_list));
    deny = std::move(*d);
  }
  std::optional<AllowList> allow;
  if (!opt_.allow_list.empty()) {
    auto text = ReadText(opt_.allow_list, "--enroll-allow");
    if (!text) return std::unexpected(text.error());
    auto al = ParseAllowList(*text);
    if (!al) return std::unexpected(al.error().Prefix("--enroll-allow " + opt_.allow_list));
    allow = std::move(*al);
  }
  deny_ = std::move(deny);
  allow_ = std::move(allow);
  return {};
}

Result<std::string> NodeAuthority::Reload() {
  MutexLock lock(mu_);
  if (auto r = LoadLists(); !r) return std::unexpected(r.error());
  return "deny list: " + std::to_string(deny_.size()) + " entries" +
         (allow_ ? "; allow list: " + std::to_string(allow_->patterns.size()) + " names" : "");
}

std::string NodeAuthority::RefuseStream(const std::string& node, const CertificateInfo& cert) {
  MutexLock lock(mu_);
  if (cert.bootstrap) {
    ++counters_.streams_refused["bootstrap_credential"];
    return "client certificate " + cert.subject +
           " is a bootstrap credential (OU " + std::string(kBootstrapOrgUnit) +
           "): it may only enroll, not send events";
  }
  std::string why = deny_.Refuses(node, cert);
  if (!why.empty()) {
    ++counters_.streams_refused["revoked"];
    return "revoked: " + why;
  }
  return "";
}

std::string NodeAuthority::Denied(const std::string& node, const CertificateInfo& cert) const {
  MutexLock lock(mu_);
  return deny_.Refuses(node, cert);
}

void NodeAuthority::CountStreamsEnded(uint64_t n) {
  MutexLock lock(mu_);
  counters_.streams_ended += n;
}

EnrollRefusal NodeAuthority::Refuse(EnrollRefusal r) {
  ++counters_.enroll_refused[r.reason];
  return r;
}

std::optional<EnrollRefusal> NodeAuthority::Admit(const std::optional<CertificateInfo>& peer,
                                                  const std::string& peer_node,
                                                  const v1::EnrollRequest& request,
                                                  size_t request_bytes) const {
  using K = EnrollRefusal::Kind;
  if (!ca_)
    return EnrollRefusal{K::kUnconfigured, "not_configured",
                         "enrollment is not configured on this collector (--enroll-ca-cert)"};
  if (request_bytes > kMaxEnrollRequestBytes)
    return EnrollRefusal{K::kOversize, "oversize",
                         "request of " + std::to_string(request_bytes) + " bytes: over " +
                             std::to_string(kMaxEnrollRequestBytes)};
  if (!peer)
    return EnrollRefusal{K::kUnauthenticated, "no_certificate", "no verified client certificate"};
  const std::string& node = request.node();
  if (auto ok = CheckNodeNameFrom("EnrollRequest.node", node); !ok)
    return EnrollRefusal{K::kInvalid, "bad_name", ok.error().message()};
  // The deny list first: a revoked node learns nothing more about what else would fail.
  if (std::string why = deny_.Refuses(node, *peer); !why.empty())
    return EnrollRefusal{K::kDenied, "revoked", "revoked: " + why};
  if (!peer->bootstrap && deny_.nodes.count(peer_node))
    return EnrollRefusal{K::kDenied, "revoked",
                         "revoked: node " + peer_node + " is on the deny list"};
  if (peer->bootstrap) {
    if (!allow_)
      return EnrollRefusal{K::kDenied, "not_approved",
                           "bootstrap enrollment is off (no --enroll-allow list)"};
    if (!allow_->Allows(node))
      return EnrollRefusal{K::kDenied, "not_approved",
                           "node " + node + " is not on the enrollment allow list " +
                               opt_.allow_list};
  } else if (peer_node != node) {
    // A node certificate renews itself only.
    return EnrollRefusal{K::kDenied, "wrong_node",
                         "a certificate of node " + peer_node + " cannot enroll node " + node};
  }
  return std::nullopt;
}

std::optional<EnrollRefusal> NodeAuthority::Enrolled(const std::string& node,
                                                     const std::optional<Record>& r,
                                                     int64_t now_s) const {
  if (!r || r->not_after_s <= now_s || deny_.serials.count(r->serial)) return std::nullopt;
  return EnrollRefusal{EnrollRefusal::Kind::kDenied, "already_enrolled",
                       "node " + node + " is already enrolled (certificate serial " + r->serial +
                           " valid until " + std::to_string(r->not_after_s) +
                           "): renew with that certificate, or deny its serial to enroll again"};
}

std::expected<IssuedCertificate, EnrollRefusal> NodeAuthority::Enroll(
    const std::optional<CertificateInfo>& peer, const std::string& peer_node,
    const v1::EnrollRequest& request, size_t request_bytes, int64_t now_s) {
  if (!opt_.records_db.empty()) return EnrollWithDb(peer, peer_node, request, request_bytes, now_s);
  return EnrollWithFile(peer, peer_node, request, request_bytes, now_s);
}

std::expected<IssuedCertificate, EnrollRefusal> NodeAuthority::EnrollWithFile(
    const std::optional<CertificateInfo>& peer, const std::string& peer_node,
    const v1::EnrollRequest& request, size_t request_bytes, int64_t now_s) {
  MutexLock lock(mu_);
  if (auto no = Admit(peer, peer_node, request, request_bytes))
    return std::unexpected(Refuse(std::move(*no)));
  const std::string& node = request.node();
  if (peer->bootstrap) {
    auto it = records_.find(node);
    if (auto no = Enrolled(node, it == records_.end() ? std::nullopt : std::optional(it->second),
                           now_s))
      return std::unexpected(Refuse(std::move(*no)));
  }
  auto csr = CheckNodeCsr(request.csr_pem(), node);
  if (!csr) return std::unexpected(Refuse(CsrRefusal(csr.error())));
  auto issued = ca_->Sign(*csr, node, opt_.validity, now_s);
  if (!issued) return std::unexpected(Refuse(Internal(issued.error().message())));
  Record prev;
  const bool had = records_.count(node) > 0;
  if (had) prev = records_[node];
  records_[node] = {issued->info.serial, issued->info.not_after_s};
  if (!opt_.records.empty()) {
    if (auto w = WriteRecords(); !w) {
      // Unrecorded, a bootstrap certificate could enroll the name again after a restart.
      if (had) records_[node] = prev; else records_.erase(node);
      return std::unexpected(Refuse(Internal("records: " + w.error().message())));
    }
  }
  ++(peer->bootstrap ? counters_.signed_bootstrap : counters_.signed_renewal);
  return std::move(*issued);
}

std::expected<IssuedCertificate, EnrollRefusal> NodeAuthority::EnrollWithDb(
    const std::optional<CertificateInfo>& peer, const std::string& peer_node,
    const v1::EnrollRequest& request, size_t request_bytes, int64_t now_s) {
  // One enrollment at a time on this collector's connection; enrollments are rare.
  MutexLock db_lock(db_mu_);
  {
    MutexLock lock(mu_);
    if (auto no = Admit(peer, peer_node, request, request_bytes))
      return std::unexpected(Refuse(std::move(*no)));
  }
  auto issued = SignInTransaction(*peer, request, now_s);
  MutexLock lock(mu_);
  if (!issued) return std::unexpected(Refuse(std::move(issued.error())));
  ++(peer->bootstrap ? counters_.signed_bootstrap : counters_.signed_renewal);
  return issued;
}

Result<void> NodeAuthority::ConnectDb() {
  db_.reset();
  auto c = PgConn::Connect(opt_.records_db);
  if (!c) return std::unexpected(c.error());
  if (auto v = MigratePg(c->get(), PgStoreMigrations(), by_); !v)
    return std::unexpected(v.error());
  db_ = std::move(*c);
  return {};
}

std::expected<IssuedCertificate, EnrollRefusal> NodeAuthority::SignInTransaction(
    const CertificateInfo& peer, const v1::EnrollRequest& request, int64_t now_s) {
  const std::string& node = request.node();
  // A connection that was lost, or left inside a transaction, is made again.
  if (db_ == nullptr || !db_->connected() || PQtransactionStatus(db_->raw()) != PQTRANS_IDLE) {
    if (auto ok = ConnectDb(); !ok)
      return std::unexpected(Internal("enrollment records: " + ok.error().message()));
  }
  // Read committed whatever the server's default: the record is read after the lock is
  // taken, and must be what the last holder committed (a repeatable-read snapshot would be
  // taken by the lock's own statement, before the wait).
  if (auto ok = db_->Run("begin the enrollment of node " + node,
                         "BEGIN ISOLATION LEVEL READ COMMITTED");
      !ok) {
    db_.reset();
    return std::unexpected(Internal("enrollment records: " + ok.error().message()));
  }
  std::optional<EnrollRefusal> refusal;
  std::optional<IssuedCertificate> issued;
  auto body = [&]() DW_REQUIRES(db_mu_) -> Result<void> {
    // A collector stuck inside its transaction (a partition) holds the name's lock until the
    // server notices: wait a while, then refuse, so that the sensor's retry comes back.
    if (auto ok = db_->Run("limit the lock wait", "SET LOCAL lock_timeout = '10s'"); !ok)
      return ok;
    if (auto ok = db_->Exec("lock the enrollment of node " + node,
                            "SELECT pg_advisory_xact_lock(" + std::to_string(kEnrollLock) +
                                ", hashtext($1))",
                            {node});
        !ok)
      return std::unexpected(ok.error());
    if (peer.bootstrap) {
      auto row = db_->Exec("read the enrollment record of node " + node,
                           "SELECT serial, not_after_s FROM enrollments WHERE name = $1", {node});
      if (!row) return std::unexpected(row.error());
      std::optional<Record> record;
      if (PQntuples(row->get()) == 1)
        record = Record{PgGetText(row->get(), 0, 0), PgGetInt(row->get(), 0, 1)};
      MutexLock lock(mu_);  // the deny list's serials
      if ((refusal = Enrolled(node, record, now_s))) return {};
    }
    auto csr = CheckNodeCsr(request.csr_pem(), node);
    if (!csr) {
      refusal = CsrRefusal(csr.error());
      return {};
    }
    auto cert = ca_->Sign(*csr, node, opt_.validity, now_s);
    if (!cert) {
      refusal = Internal(cert.error().message());
      return {};
    }
    if (auto ok = db_->Exec(
            "record the enrollment of node " + node,
            std::string("INSERT INTO enrollments(name, serial, not_after_s, enrolled_by, "
                        "updated_ns) VALUES ($1, $2, $3, $4, ") +
                kPgServerNowNs +
                ") ON CONFLICT (name) DO UPDATE SET serial = excluded.serial, "
                "not_after_s = excluded.not_after_s, enrolled_by = excluded.enrolled_by, "
                "updated_ns = excluded.updated_ns",
            {node, cert->info.serial, std::to_string(cert->info.not_after_s), by_});
        !ok)
      return std::unexpected(ok.error());
    issued = std::move(*cert);
    return {};
  };
  auto ok = body();
  if (ok && issued) ok = db_->Run("commit the enrollment of node " + node, "COMMIT");
  if (!ok || !issued) {
    // A refusal, or a failure: nothing of this enrollment stays (and nothing was returned).
    if (!db_->connected()) {
      db_.reset();
    } else if (PQtransactionStatus(db_->raw()) != PQTRANS_IDLE &&
               !db_->Run("roll back the enrollment of node " + node, "ROLLBACK")) {
      db_.reset();
    }
  }
  if (!ok) return std::unexpected(Internal("enrollment records: " + ok.error().message()));
  if (refusal) return std::unexpected(std::move(*refusal));
  return std::move(*issued);
}

Result<void> NodeAuthority::WriteRecords() {
  std::string text;
  for (const auto& [name, r] : records_)
    text += name + " " + r.serial + " " + std::to_string(r.not_after_s) + "\n";
  return WriteFileAtomic(opt_.records, text);
}

NodeAuthorityCounters NodeAuthority::counters() const {
  MutexLock lock(mu_);
  return counters_;
}

size_t NodeAuthority::deny_entries() const {
  MutexLock lock(mu_);
  return deny_.size();
}

}  // namespace driftwatch
