// enroll: the sensor's own node certificate (docs/node-identity.md).
//
//   start ─► node.key + node.crt in --node-cert-dir usable? ──yes──► uplink uses them
//               │ no                                                   │ at 2/3 of the lifetime
//               ▼                                                      ▼
//   new key, CSR ─Enroll (bootstrap cert)─► collector      new key, CSR ─Enroll (node cert)─►
//               └──────────── store 0600, hand to the uplink ◄─────────┘
//
// The key is made here (EC P-256) and never leaves the node; the collector signs the CSR.
// "Usable": the key is the certificate's, the certificate names this node and has not
// expired. Files are written to `.new` names, synced and renamed (key, then certificate);
// a crash between the two renames leaves a pair that does not match, which reads as no
// identity: the bootstrap credential enrolls again. A failed enrollment is retried with
// backoff (1 s doubling to 5 min, and at least ten times before the certificate expires);
// once the node certificate has expired, renewal falls back to the bootstrap credential.
// Events wait in the spool meanwhile.
//
// Thread-safety: Start, Stop and the callback run on the io_context's thread; the Enroll
// call itself runs on a worker thread of its own. counters() from any thread.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "lib/base/result.h"
#include "lib/daemon/node_identity.h"

namespace driftwatch::sensor {

struct IdentityOptions {
  std::string dir;                            // --node-cert-dir: node.key, node.crt
  std::string node;                           // the name enrolled
  std::string target, ca_file, server_name;   // the collector, as the uplink reaches it
  // With several collectors (IdentityKeeper): each attempt asks the next after a failure.
  std::vector<std::string> targets;
  std::string bootstrap_cert, bootstrap_key;  // files; "" for none
  std::chrono::seconds timeout{10};           // one Enroll call
};

struct NodeCredentials {
  std::string cert_pem, key_pem;
  CertificateInfo info;
};

// The stored identity, if usable at `now_s` (see above). Error: why not.
Result<NodeCredentials> LoadStoredIdentity(const IdentityOptions& opt, int64_t now_s);
// Writes key and certificate (0600, the directory 0700) as described above.
Result<void> StoreIdentity(const std::string& dir, const NodeCredentials& c);
// One enrollment: a new key and CSR, Enroll authenticated with (auth_cert_pem, auth_key_pem),
// the answer checked (our key, our name). Not stored.
Result<NodeCredentials> EnrollOnce(const IdentityOptions& opt, const std::string& ca_pem,
                                   const std::string& auth_cert_pem,
                                   const std::string& auth_key_pem);
// When a certificate is renewed: at 2/3 of its lifetime.
int64_t RenewAtSeconds(const CertificateInfo& c);

struct IdentityCounters {
  std::atomic<uint64_t> enrollments{0};  // with the bootstrap credential
  std::atomic<uint64_t> renewals{0};     // with the node certificate
  std::atomic<uint64_t> failures{0};     // Enroll calls that failed (retried)
  std::atomic<int64_t> not_after_s{0};   // of the certificate in use
};

class IdentityKeeper {
 public:
  using OnCredentials = std::function<void(const NodeCredentials&)>;
  // REQUIRES: `io` outlives this object.
  IdentityKeeper(boost::asio::io_context* io, IdentityOptions opt, OnCredentials on_credentials);
  ~IdentityKeeper();

  // Uses the stored identity (on_credentials runs before Start returns) or starts enrolling
  // with the bootstrap credential. Error: the CA file does not read, or there is no usable
  // identity and no bootstrap credential.
  Result<void> Start();
  void Stop();
  const IdentityCounters& counters() const { return counters_; }

 private:
  void Use(NodeCredentials c);
  void ScheduleRenewal();
  void Attempt();  // an Enroll call on the worker, with the node or bootstrap credential
  void Retry(const std::string& error);

  boost::asio::io_context* io_;
  const IdentityOptions opt_;
  OnCredentials on_credentials_;
  std::string ca_pem_;
  NodeCredentials current_;  // io thread; empty before the first certificate
  boost::asio::steady_timer timer_;
  std::chrono::seconds backoff_{1};
  size_t target_ = 0;  // index in opt_.targets asked next
  bool stopping_ = false;
  IdentityCounters counters_;
  boost::asio::thread_pool worker_{1};
};

}  // namespace driftwatch::sensor
