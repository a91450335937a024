#include "sensor/enroll.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <grpcpp/grpcpp.h>

#include "driftwatch/v1/collector.grpc.pb.h"
#include "lib/base/atomic_file.h"
#include "lib/base/clock.h"
#include "lib/base/log.h"
#include "lib/daemon/node_name.h"
#include "lib/node/procfs.h"

namespace driftwatch::sensor {
namespace {

constexpr char kKeyFile[] = "/node.key";
constexpr char kCertFile[] = "/node.crt";

int64_t NowSeconds() { return NowNs() / 1000000000; }

Result<std::string> ReadPemFile(const std::string& path, const char* what) {
  std::string pem;
  if (!ReadSmallFile(path, &pem) || pem.empty())
    return std::unexpected(Error::NotFound(std::string(what) + " " + path + ": cannot read"));
  if (pem.find("-----BEGIN") == std::string::npos)
    return std::unexpected(Error::InvalidInput(std::string(what) + " " + path + ": not PEM"));
  return pem;
}

// Whether `c` names `node` as the collector will read it (first DNS SAN, else CN).
Result<void> NamesNode(const CertificateInfo& c, const std::string& node) {
  auto name = NodeNameFromCertificate(c.dns_sans, c.common_names);
  if (!name) return std::unexpected(name.error());
  if (*name != node)
    return std::unexpected(
        Error::InvalidInput("certificate names node " + *name + ", not " + node));
  return {};
}

}  // namespace

int64_t RenewAtSeconds(const CertificateInfo& c) {
  return c.not_before_s + (c.not_after_s - c.not_before_s) * 2 / 3;
}

Result<NodeCredentials> LoadStoredIdentity(const IdentityOptions& opt, int64_t now_s) {
  NodeCredentials c;
  auto key = ReadPemFile(opt.dir + kKeyFile, "node key");
  if (!key) return std::unexpected(key.error());
  auto cert = ReadPemFile(opt.dir + kCertFile, "node certificate");
  if (!cert) return std::unexpected(cert.error());
  auto info = ReadCertificate(*cert);
  if (!info) return std::unexpected(info.error().Prefix(opt.dir + kCertFile));
  if (!KeyMatchesCertificate(*key, *cert)) {
    // A crash between StoreIdentity's two renames leaves the new key beside the old
    // certificate: the old key, kept aside, still goes with it (and renews it), where
    // enrolling again would be refused while the old certificate is valid.
    auto prev = ReadPemFile(opt.dir + kKeyFile + ".prev", "previous node key");
    if (!prev || !KeyMatchesCertificate(*prev, *cert))
      return std::unexpected(Error::InvalidInput(opt.dir + kKeyFile + " is not the key of " +
                                                 opt.dir + kCertFile));
    key = std::move(prev);
  }
  if (auto ok = NamesNode(*info, opt.node); !ok)
    return std::unexpected(ok.error().Prefix(opt.dir + kCertFile));
  if (info->not_after_s <= now_s)
    return std::unexpected(Error::InvalidInput(opt.dir + kCertFile + " has expired"));
  c.key_pem = std::move(*key);
  c.cert_pem = std::move(*cert);
  c.info = std::move(*info);
  return c;
}

Result<void> StoreIdentity(const std::string& dir, const NodeCredentials& c) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return std::unexpected(Error::FromErrno(errno, dir));
  (void)::chmod(dir.c_str(), 0700);
  const std::string key = dir + kKeyFile, cert = dir + kCertFile;
  // Two files, each replaced whole. The key in use is kept as node.key.prev first: a crash
  // between the two leaves the old certificate with its key still at hand
  // (LoadStoredIdentity), not a pair that does not match.
  const std::string prev = key + ".prev";
  if (::unlink(prev.c_str()) != 0 && errno != ENOENT)
    return std::unexpected(Error::FromErrno(errno, prev));
  if (::link(key.c_str(), prev.c_str()) != 0 && errno != ENOENT)
    return std::unexpected(Error::FromErrno(errno, prev));
  if (auto r = WriteFileAtomic(key, c.key_pem); !r) return r;
  return WriteFileAtomic(cert, c.cert_pem);
}

Result<NodeCredentials> EnrollOnce(const IdentityOptions& opt, const std::string& ca_pem,
                                   const std::string& auth_cert_pem,
                                   const std::string& auth_key_pem) {
  NodeCredentials c;
  auto key = GenerateNodeKey();
  if (!key) return std::unexpected(key.error());
  auto csr = MakeNodeCsr(*key, opt.node);
  if (!csr) return std::unexpected(csr.error());
  grpc::SslCredentialsOptions so;
  so.pem_root_certs = ca_pem;
  so.pem_cert_chain = auth_cert_pem;
  so.pem_private_key = auth_key_pem;
  grpc::ChannelArguments args;
  if (!opt.server_name.empty()) args.SetSslTargetNameOverride(opt.server_name);
  auto channel = grpc::CreateCustomChannel(opt.target, grpc::SslCredentials(so), args);
  auto stub = v1::Collector::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + opt.timeout);
  v1::EnrollRequest req;
  req.set_node(opt.node);
  req.set_csr_pem(*csr);
  v1::EnrollResponse resp;
  grpc::Status st = stub->Enroll(&ctx, req, &resp);
  if (!st.ok())
    return std::unexpected(Error::Unavailable("collector " + opt.target + ": enroll refused: " +
                                              std::to_string(st.error_code()) + " " +
                                              st.error_message()));
  auto info = ReadCertificate(resp.certificate_pem());
  if (!info) return std::unexpected(info.error().Prefix("the collector's answer"));
  if (!KeyMatchesCertificate(*key, resp.certificate_pem()))
    return std::unexpected(Error::InvalidInput("the collector's certificate is not for our key"));
  if (auto ok = NamesNode(*info, opt.node); !ok)
    return std::unexpected(ok.error().Prefix("the collector's certificate"));
  c.key_pem = std::move(*key);
  c.cert_pem = resp.certificate_pem();
  c.info = std::move(*info);
  return c;
}

IdentityKeeper::IdentityKeeper(boost::asio::io_context* io, IdentityOptions opt,
                               OnCredentials on_credentials)
    : io_(io), opt_(std::move(opt)), on_credentials_(std::move(on_credentials)), timer_(*io) {}

IdentityKeeper::~IdentityKeeper() { Stop(); }

void IdentityKeeper::Stop() {
  if (stopping_) return;
  stopping_ = true;
  timer_.cancel();
  worker_.join();  // an Enroll call in flight ends within opt_.timeout
}

Result<void> IdentityKeeper::Start() {
  auto ca = ReadPemFile(opt_.ca_file, "--tls-ca");
  if (!ca) return std::unexpected(ca.error());
  ca_pem_ = std::move(*ca);
  auto stored = LoadStoredIdentity(opt_, NowSeconds());
  if (stored) {
    LogInfo("node identity: %s%s, serial %s, valid until %lld\n", opt_.dir.c_str(), kCertFile,
            stored->info.serial.c_str(), static_cast<long long>(stored->info.not_after_s));
    Use(std::move(*stored));
    return {};
  }
  if (opt_.bootstrap_cert.empty())
    return std::unexpected(stored.error().Prefix(
        "no usable node certificate and no --bootstrap-cert to enroll with"));
  if (stored.error().code() != ErrorCode::kNotFound)
    LogWarn("node identity: %s; enrolling again\n", stored.error().c_str());
  Attempt();
  return {};
}

void IdentityKeeper::Use(NodeCredentials c) {
  current_ = std::move(c);
  counters_.not_after_s = current_.info.not_after_s;
  backoff_ = std::chrono::seconds(1);
  on_credentials_(current_);
  ScheduleRenewal();
}

void IdentityKeeper::ScheduleRenewal() {
  // At least a second: a certificate already past its renewal time is renewed at once, but
  // never in a tight loop.
  const int64_t wait = std::max<int64_t>(RenewAtSeconds(current_.info) - NowSeconds(), 1);
  timer_.expires_after(std::chrono::seconds(wait));
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopping_) Attempt();
  });
}

void IdentityKeeper::Attempt() {
  // The node certificate while it lives; the bootstrap credential before and after.
  const bool renewal = !current_.cert_pem.empty() && current_.info.not_after_s > NowSeconds();
  std::string cert = current_.cert_pem, key = current_.key_pem;
  if (!renewal) {
    if (opt_.bootstrap_cert.empty()) {
      Retry("the node certificate expired and there is no --bootstrap-cert");
      return;
    }
    auto c = ReadPemFile(opt_.bootstrap_cert, "--bootstrap-cert");
    auto k = ReadPemFile(opt_.bootstrap_key, "--bootstrap-key");
    if (!c || !k) {
      Retry(!c ? c.error().message() : k.error().message());
      return;
    }
    cert = std::move(*c);
    key = std::move(*k);
  }
  IdentityOptions o = opt_;
  if (!opt_.targets.empty()) o.target = opt_.targets[target_ % opt_.targets.size()];
  boost::asio::post(worker_, [this, renewal, o = std::move(o), cert = std::move(cert),
                              key = std::move(key)] {
    auto r = EnrollOnce(o, ca_pem_, cert, key);
    boost::asio::post(*io_, [this, renewal, r = std::move(r)]() mutable {
      if (stopping_) return;
      if (!r) {
        ++counters_.failures;
        ++target_;  // the next collector of the list, if any
        Retry(r.error().message());
        return;
      }
      if (auto s = StoreIdentity(opt_.dir, *r); !s) {
        // Still usable for this run; a restart enrolls again.
        LogWarn("node identity: storing in %s: %s\n", opt_.dir.c_str(), s.error().c_str());
      }
      ++(renewal ? counters_.renewals : counters_.enrollments);
      LogInfo("node identity: %s as node %s: certificate serial %s, valid until %lld, "
              "stored in %s\n",
              renewal ? "renewed" : "enrolled", opt_.node.c_str(), r->info.serial.c_str(),
              static_cast<long long>(r->info.not_after_s), opt_.dir.c_str());
      Use(std::move(*r));
    });
  });
}

void IdentityKeeper::Retry(const std::string& error) {
  std::chrono::seconds delay = backoff_;
  if (!current_.cert_pem.empty()) {
    // At least ten tries before the certificate in use expires.
    const int64_t left = current_.info.not_after_s - NowSeconds();
    if (left > 0) delay = std::min(delay, std::chrono::seconds(std::max<int64_t>(left / 10, 1)));
  }
  LogWarn("node identity: %s; retrying in %lld s\n", error.c_str(),
          static_cast<long long>(delay.count()));
  backoff_ = std::min(backoff_ * 2, std::chrono::seconds(300));
  timer_.expires_after(delay);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopping_) Attempt();
  });
}

}  // namespace driftwatch::sensor
