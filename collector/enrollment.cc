#include "collector/enrollment.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "lib/base/atomic_file.h"
#include "lib/base/log.h"
#include "lib/daemon/node_name.h"

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

}  // namespace

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

std::expected<IssuedCertificate, EnrollRefusal> NodeAuthority::Enroll(
    const std::optional<CertificateInfo>& peer, const std::string& peer_node,
    const v1::EnrollRequest& request, size_t request_bytes, int64_t now_s) {
  using K = EnrollRefusal::Kind;
  MutexLock lock(mu_);
  auto refuse = [&](K kind, const char* reason, std::string message) DW_REQUIRES(mu_) {
    return std::unexpected(Refuse({kind, reason, std::move(message)}));
  };
  if (!ca_)
    return refuse(K::kUnconfigured, "not_configured",
                  "enrollment is not configured on this collector (--enroll-ca-cert)");
  if (request_bytes > kMaxEnrollRequestBytes)
    return refuse(K::kOversize, "oversize",
                  "request of " + std::to_string(request_bytes) + " bytes: over " +
                      std::to_string(kMaxEnrollRequestBytes));
  if (!peer) return refuse(K::kUnauthenticated, "no_certificate", "no verified client certificate");
  const std::string& node = request.node();
  if (auto ok = CheckNodeNameFrom("EnrollRequest.node", node); !ok)
    return refuse(K::kInvalid, "bad_name", ok.error().message());
  // The deny list first: a revoked node learns nothing more about what else would fail.
  if (std::string why = deny_.Refuses(node, *peer); !why.empty())
    return refuse(K::kDenied, "revoked", "revoked: " + why);
  if (!peer->bootstrap && deny_.nodes.count(peer_node))
    return refuse(K::kDenied, "revoked", "revoked: node " + peer_node + " is on the deny list");
  if (peer->bootstrap) {
    if (!allow_)
      return refuse(K::kDenied, "not_approved",
                    "bootstrap enrollment is off (no --enroll-allow list)");
    if (!allow_->Allows(node))
      return refuse(K::kDenied, "not_approved",
                    "node " + node + " is not on the enrollment allow list " + opt_.allow_list);
    if (auto it = records_.find(node); it != records_.end() && it->second.not_after_s > now_s &&
                                       !deny_.serials.count(it->second.serial)) {
      return refuse(K::kDenied, "already_enrolled",
                    "node " + node + " is already enrolled (certificate serial " +
                        it->second.serial + " valid until " +
                        std::to_string(it->second.not_after_s) +
                        "): renew with that certificate, or deny its serial to enroll again");
    }
  } else if (peer_node != node) {
    // A node certificate renews itself only.
    return refuse(K::kDenied, "wrong_node",
                  "a certificate of node " + peer_node + " cannot enroll node " + node);
  }
  auto csr = CheckNodeCsr(request.csr_pem(), node);
  if (!csr) {
    const std::string& m = csr.error().message();
    const char* reason = m.find("signature") != std::string::npos      ? "bad_signature"
                         : m.find("not the node asked") != std::string::npos ||
                                 m.find("asks for DNS name") != std::string::npos
                             ? "name_mismatch"
                             : "bad_csr";
    return refuse(K::kInvalid, reason, m);
  }
  auto issued = ca_->Sign(*csr, node, opt_.validity, now_s);
  if (!issued) return refuse(K::kInternal, "internal", issued.error().message());
  Record prev;
  const bool had = records_.count(node) > 0;
  if (had) prev = records_[node];
  records_[node] = {issued->info.serial, issued->info.not_after_s};
  if (!opt_.records.empty()) {
    if (auto w = WriteRecords(); !w) {
      // Unrecorded, a bootstrap certificate could enroll the name again after a restart.
      if (had) records_[node] = prev; else records_.erase(node);
      return refuse(K::kInternal, "internal", "records: " + w.error().message());
    }
  }
  ++(peer->bootstrap ? counters_.signed_bootstrap : counters_.signed_renewal);
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
