#include "collector/ingest_server.h"

#include "lib/base/log.h"
#include "lib/daemon/node_name.h"
#include "lib/event/file_digest.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>

namespace driftwatch {

std::string NodeFromAuthContext(const grpc::AuthContext& auth) {
  if (!auth.IsPeerAuthenticated()) return "";
  auto values = [&](const char* property) {
    std::vector<std::string> out;
    for (const grpc::string_ref& v : auth.FindPropertyValues(property))
      out.emplace_back(v.data(), v.size());
    return out;
  };
  // peer_dns holds the DNS SANs only, in certificate order; x509_subject_alternative_name
  // would also hold IP, URI and email SANs, which never name a node (lib/daemon/node_name.h).
  auto node = NodeNameFromCertificate(values(GRPC_PEER_DNS_PROPERTY_NAME),
                                      values(GRPC_X509_CN_PROPERTY_NAME));
  if (!node) {
    // The caller refuses the stream and logs its peer address next; this line says why and
    // which certificate (its subject, escaped as the log escapes every message).
    std::vector<std::string> subject = values(GRPC_X509_SUBJECT_PROPERTY_NAME);
    LogWarn("client certificate %s refused: %s",
            subject.empty() ? "(no subject)" : ("\"" + subject.front() + "\"").c_str(),
            node.error().c_str());
    return "";
  }
  return *node;
}

std::optional<CertificateInfo> PeerCertificate(const grpc::AuthContext& auth) {
  if (!auth.IsPeerAuthenticated()) return std::nullopt;
  for (const grpc::string_ref& v : auth.FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME)) {
    auto info = ReadCertificate(std::string_view(v.data(), v.size()));
    if (info) return std::move(*info);
  }
  return std::nullopt;
}

namespace {

grpc::ByteBuffer Encode(const v1::CollectorMessage& m) {
  std::string bytes = m.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

void Log(const char* fmt, auto... args) {
  ::driftwatch::Logf(::driftwatch::LogLevel::kInfo, fmt, args...);
}

}  // namespace

OversizeCounts BoundEventSizes(std::vector<std::string_view>* events, size_t max_event_bytes,
                               const ArgvCaps& caps, std::deque<std::string>* storage) {
  OversizeCounts n;
  size_t kept = 0;
  for (size_t i = 0; i < events->size(); ++i) {
    std::string_view raw = (*events)[i];
    if (raw.size() > max_event_bytes) {
      v1::Event ev;
      if (raw.size() > INT32_MAX || !ev.ParseFromArray(raw.data(), static_cast<int>(raw.size()))) {
        (*events)[kept++] = raw;  // PrepareEncodedBatch refuses the batch, as for any
        continue;
      }
      if (ev.has_exec() && CapExecArgs(ev.mutable_exec(), caps) &&
          ev.ByteSizeLong() <= max_event_bytes) {
        raw = storage->emplace_back(ev.SerializeAsString());
        ++n.capped;
      } else {
        ++n.refused;
        continue;
      }
    }
    (*events)[kept++] = raw;
  }
  events->resize(kept);
  return n;
}

// One sensor stream: bytes in, IngestSession, messages out. State changes happen under mu_;
// the gRPC calls they lead to (StartRead, StartWrite, Finish) are made after mu_ is
// released, as gRPC may run OnReadDone/OnWriteDone inline from them. Finish is only called
// when no read, write or store commit of this stream is outstanding, so no callback can
// reach the reactor after OnDone deletes it.
class StreamReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamReactor(IngestService* svc, grpc::CallbackServerContext* ctx)
      : svc_(svc),
        ctx_(ctx),
        session_(&svc->session_store_, &svc->opt_, ctx->peer(), CertNode(svc, ctx)) {
    ++svc_->active_streams_;
    // A bootstrap certificate, or one the deny list names, never opens a stream.
    if (svc_->authority_ && !svc_->opt_.insecure && !session_.failure()) {
      if (auto auth = ctx->auth_context()) cert_ = PeerCertificate(*auth).value_or(CertificateInfo{});
      if (std::string why = svc_->authority_->RefuseStream(CertNode(svc, ctx), cert_); !why.empty())
        session_.Fail(SessionCode::kUnauthenticated, why);
    }
    Actions a;
    {
      std::lock_guard lk(mu_);
      if (!session_.failure()) {
        reading_ = true;
        a.start_read = true;
      }
      a = Decide(a);
    }
    Run(a);
  }

  void OnReadDone(bool ok) override {
    Actions a;
    if (!ok) {
      std::lock_guard lk(mu_);
      reading_ = false;
      read_closed_ = true;
      a = Decide(a);
    } else {
      a = HandleMessage();
    }
    Run(a);
  }

  void OnWriteDone(bool ok) override {
    Actions a;
    {
      std::lock_guard lk(mu_);
      writing_ = false;
      if (!ok) {
        write_failed_ = true;  // the client is gone: nothing more will reach it
        pending_writes_.clear();
      }
      a = Decide(a);
    }
    Run(a);
  }

  void OnCancel() override {
    Actions a;
    {
      std::lock_guard lk(mu_);
      cancelled_ = true;
      pending_writes_.clear();
      a = Decide(a);
    }
    Run(a);
  }

  void OnDone() override {
    if (registered_) svc_->Unregister(session_.node(), this);
    // No callback runs any more, and RequestInventory no longer finds the stream: the
    // session is ours alone.
    session_.End(cancelled_, finish_text_);
    --svc_->active_streams_;
    delete this;
  }

  enum class PinResult { kPinned, kEnding, kFull };
  // IngestService::Release took this parked reactor off its list: read on.
  void Resume() {
    Actions a;
    {
      std::lock_guard lk(mu_);
      parked_ = false;
      a = Decide(a);
    }
    Run(a);
  }

  // RequestInventory, with the service's streams_mu_ held: keeps the reactor from
  // finishing (and so from being deleted) until SendPinned, and makes `command_id` a
  // command whose reply this stream takes.
  PinResult PinForCommand(uint64_t command_id) {
    std::lock_guard lk(mu_);
    if (Ending() || read_closed_) return PinResult::kEnding;  // no reply could come
    if (!session_.AddCommand(command_id, IngestSession::Clock::now())) return PinResult::kFull;
    ++pins_;
    return PinResult::kPinned;
  }
  // Keeps the stream from finishing until SendPinned, for a message that asks no reply;
  // false when the stream is ending.
  bool PinForPush() {
    std::lock_guard lk(mu_);
    if (Ending()) return false;
    ++pins_;
    return true;
  }
  // The stream's certificate (empty without an authority or with --insecure).
  const CertificateInfo& cert() const { return cert_; }
  // Ends a pinned stream (PinForPush) whose certificate was revoked: the reason is its
  // failure, the call is cancelled so that the outstanding read returns, then the pin goes.
  void CancelPinned(const std::string& why) {
    {
      std::lock_guard lk(mu_);
      session_.Fail(SessionCode::kUnauthenticated, why);
    }
    ctx_->TryCancel();
    Actions a;
    {
      std::lock_guard lk(mu_);
      --pins_;
      a = Decide(a);
    }
    Run(a);
  }
  void SendPinned(grpc::ByteBuffer msg) {
    Actions a;
    {
      std::lock_guard lk(mu_);
      --pins_;
      if (!cancelled_ && !write_failed_) pending_writes_.push_back(std::move(msg));
      a = Decide(a);
    }
    Run(a);
  }

 private:
  // Nothing written to the stream would reach the sensor any more. With mu_ held.
  bool Ending() const { return finished_ || session_.failure() || cancelled_ || write_failed_; }

  struct Actions {
    bool start_read = false;
    bool start_write = false;
    bool finish = false;
    grpc::Status status;
  };

  static std::string CertNode(IngestService* svc, grpc::CallbackServerContext* ctx) {
    if (svc->opt_.insecure) return "";
    auto auth = ctx->auth_context();
    return auth ? NodeFromAuthContext(*auth) : "";
  }

  static grpc::Status ToStatus(const SessionStatus& s) {
    switch (s.code) {
      case SessionCode::kInvalidArgument:
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, s.message);
      case SessionCode::kUnauthenticated:
        return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, s.message);
      case SessionCode::kUnavailable:
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, s.message);
    }
    return grpc::Status(grpc::StatusCode::INTERNAL, s.message);
  }

  // Called with mu_ held: what to do next, given the state. The session's messages are
  // queued first (none once the client is gone).
  Actions Decide(Actions a) {
    for (const v1::CollectorMessage& m : session_.TakeOutbox()) {
      if (!cancelled_ && !write_failed_) pending_writes_.push_back(Encode(m));
    }
    if (!writing_ && !pending_writes_.empty() && !cancelled_ && !write_failed_) {
      out_ = std::move(pending_writes_.front());
      pending_writes_.pop_front();
      writing_ = true;
      a.start_write = true;
    }
    const bool ending = session_.failure().has_value() || read_closed_ || cancelled_;
    if (parked_ && ending && svc_->Unpark(this)) parked_ = false;
    if (!ending && !reading_ && !parked_ &&
        session_.in_flight() < svc_->opt_.max_in_flight_batches) {
      // Past Hello, a read waits while all streams' batches in flight are over budget:
      // Release resumes it.
      if (session_.hello() && svc_->OverBudget() && svc_->Park(this)) {
        parked_ = true;
      } else {
        reading_ = true;
        a.start_read = true;
      }
    }
    if (ending && !finished_ && !reading_ && !writing_ && !cancelling_ && pins_ == 0 && !parked_ &&
        session_.in_flight() == 0 &&
        (pending_writes_.empty() || cancelled_ || write_failed_)) {
      finished_ = true;
      a.finish = true;
      a.status = session_.failure() ? ToStatus(*session_.failure()) : grpc::Status::OK;
      finish_text_ = a.status.ok() ? "OK" : a.status.error_message();
    }
    return a;
  }

  void Run(const Actions& a) {
    // Finish last: after it the reactor may be gone. Decide never asks for a read or a
    // write together with Finish.
    if (a.start_write) StartWrite(&out_);
    if (a.start_read) StartRead(&in_);
    if (a.finish) Finish(a.status);
  }

  Actions HandleMessage() {
    // in_ and msg_ belong to the read path (one read at a time): PrepareEncodedBatch, the
    // costly part, runs without mu_, so the store's writer thread never waits on it in
    // OnCommitted.
    // A local buffer, not one per stream: with many streams the memory is only held by the
    // reads being handled (gRPC's callback threads), not by every idle stream.
    std::string bytes;
    {
      std::vector<grpc::Slice> slices;
      if (in_.Dump(&slices).ok()) {
        size_t total = 0;
        for (const grpc::Slice& sl : slices) total += sl.size();
        bytes.reserve(total);
        for (const grpc::Slice& sl : slices) {
          bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
        }
      }
      in_.Clear();
    }
    // Views of at most one event over the cap: a batch over it is refused by count.
    const IngestSession::Inbound in = session_.Inspect(
        ScanSensorMessage(bytes, &msg_, svc_->opt_.max_batch_events + 1ull), msg_);
    IngestSession::Step step;
    {
      Actions a;
      {
        std::lock_guard lk(mu_);
        reading_ = false;
        step = session_.Apply(in, IngestSession::Clock::now());
        if (step.batch_id != 0) {
          reading_ = true;  // not really: keeps other reads and Finish away until Submit
        } else {
          a = Decide(Actions{});
        }
      }
      // Outside mu_ (lock order), before the read or write Decide asked for is started, so
      // the reactor cannot finish meanwhile.
      if (step.registered) {
        registered_ = true;
        svc_->Register(session_.node(), this);
        session_.HelloDone(*in.hello);
      }
      if (step.joining) {
        IngestSession::ChunkWalk w = session_.WalkChunk(msg_.parts, &step.joining->mapped());
        std::lock_guard lk(mu_);
        session_.JoinChunk(in.chunk, std::move(*step.joining), std::move(w));
      }
      session_.DeliverReady();
      if (step.batch_id == 0) return a;
    }
    const uint64_t batch_id = step.batch_id;
    const std::string& node = session_.node();
    // Charged with what the sensor sent until the store has it: a sender of big messages
    // pays for them.
    const size_t charge = bytes.size();
    svc_->Charge(charge);
    // An oversized event costs this read only: it is cut or left out before the batch is
    // prepared, stored and evaluated.
    std::deque<std::string> cut;  // cut events' bytes: msg_.events views them
    const OversizeCounts over =
        BoundEventSizes(&msg_.events, svc_->opt_.max_event_bytes, svc_->opt_.argv, &cut);
    if (over.capped + over.refused > 0) {
      svc_->CountOversize(node, over);
      if (!oversize_logged_) {
        oversize_logged_ = true;
        Log("node %s (%s): batch %llu has events over --max-event-bytes %zu: %llu cut to the "
            "argument caps (kept, marked args_capped), %llu refused (left out: a sequence "
            "gap); later ones on this stream are counted in "
            "driftwatch_collector_events_oversize_total",
            node.c_str(), ctx_->peer().c_str(), static_cast<unsigned long long>(batch_id),
            svc_->opt_.max_event_bytes, static_cast<unsigned long long>(over.capped),
            static_cast<unsigned long long>(over.refused));
      }
    }
    auto p = PrepareEncodedBatch(node, msg_.events);
    msg_.events.clear();
    cut.clear();
    if (!p) svc_->Release(charge);  // may resume streams: no lock held
    {
      std::lock_guard lk(mu_);
      if (!p) {
        reading_ = false;
        session_.BatchRefused(batch_id, p.error().message());
        return Decide(Actions{});
      }
      session_.Submitted(batch_id);
    }
    // Outside mu_: a closed store runs the callback inline. reading_ stays set until the
    // batch is queued: were the next read started meanwhile (by OnCommitted), batch N+1 could
    // reach the store before batch N, and N's events would then look like resends.
    // Detection gets the same batch once it is stored.
    auto batch = std::make_shared<const PreparedBatch>(std::move(*p));
    svc_->store_->Submit(
        batch,
        [this, batch_id, charge](const CommitResult& r) {
          svc_->Release(charge);
          if (!session_.Admit(r, [this, batch_id, r] { OnCommitted(batch_id, r); })) {
            return;  // detection is behind: acked when it catches up
          }
          OnCommitted(batch_id, r);
        },
        stream_token_);
    std::lock_guard lk(mu_);
    reading_ = false;
    return Decide(Actions{});
  }

  // Writer thread of the store.
  void OnCommitted(uint64_t batch_id, const CommitResult& r) {
    Actions a;
    bool cancel = false;
    {
      std::lock_guard lk(mu_);
      session_.Committed(batch_id, r);
      a = Decide(a);
      // A store failure with a read outstanding: cancel the call so the read returns.
      // cancelling_ keeps Finish (and so OnDone) away until TryCancel has returned.
      if (session_.store_failed() && reading_ && !cancelling_ && !cancelled_) {
        cancelling_ = true;
        cancel = true;
      }
    }
    Run(a);
    if (cancel) {
      ctx_->TryCancel();
      Actions b;
      {
        std::lock_guard lk(mu_);
        cancelling_ = false;
        b = Decide(b);
      }
      Run(b);
    }
  }

  IngestService* const svc_;
  grpc::CallbackServerContext* const ctx_;
  const uint64_t stream_token_ = svc_->next_stream_++;

  std::mutex mu_;
  IngestSession session_;      // GUARDED_BY(mu_), but for its read-path methods
  grpc::ByteBuffer in_;        // owned by the outstanding read
  ScannedSensorMessage msg_;   // read path: the message walked (views into HandleMessage's copy)
  grpc::ByteBuffer out_;       // owned by the outstanding write
  bool oversize_logged_ = false;  // read path
  std::deque<grpc::ByteBuffer> pending_writes_;
  bool reading_ = false;
  bool writing_ = false;
  bool read_closed_ = false;
  bool write_failed_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
  bool cancelling_ = false;
  int pins_ = 0;               // RequestInventory writing a command: no Finish meanwhile
  bool parked_ = false;        // waiting for the in-flight byte budget: no read, no Finish
  bool registered_ = false;    // in the service's streams_ (read path, then OnDone)
  std::string finish_text_;
  CertificateInfo cert_;       // set in the constructor, read-only after
};

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* IngestService::Stream(
    grpc::CallbackServerContext* ctx) {
  return new StreamReactor(this, ctx);
}

grpc::ServerUnaryReactor* IngestService::Enroll(grpc::CallbackServerContext* ctx,
                                                const v1::EnrollRequest* request,
                                                v1::EnrollResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto auth = ctx->auth_context();
  std::optional<CertificateInfo> peer;
  std::string peer_node;
  if (auth && !opt_.insecure) {
    peer = PeerCertificate(*auth);
    peer_node = NodeFromAuthContext(*auth);
  }
  const std::string shown_peer =
      peer ? (peer->bootstrap ? "bootstrap certificate " : "node certificate ") + peer->subject +
                 " serial " + peer->serial
           : std::string("no certificate");
  if (!authority_) {
    LogWarn("enroll from %s (%s): enrollment is not configured on this collector",
            ctx->peer().c_str(), shown_peer.c_str());
    reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                 "enrollment is not configured on this collector"));
    return reactor;
  }
  auto issued = authority_->Enroll(peer, peer_node, *request, request->ByteSizeLong(),
                                   std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
  if (!issued) {
    const EnrollRefusal& r = issued.error();
    LogWarn("enroll of node \"%s\" from %s (%s) refused (%s): %s",
            request->node().substr(0, 64).c_str(), ctx->peer().c_str(), shown_peer.c_str(),
            r.reason.c_str(), r.message.c_str());
    grpc::StatusCode code = grpc::StatusCode::INTERNAL;
    switch (r.kind) {
      case EnrollRefusal::Kind::kInvalid: code = grpc::StatusCode::INVALID_ARGUMENT; break;
      case EnrollRefusal::Kind::kDenied: code = grpc::StatusCode::PERMISSION_DENIED; break;
      case EnrollRefusal::Kind::kOversize: code = grpc::StatusCode::RESOURCE_EXHAUSTED; break;
      case EnrollRefusal::Kind::kUnconfigured: code = grpc::StatusCode::UNIMPLEMENTED; break;
      case EnrollRefusal::Kind::kUnauthenticated: code = grpc::StatusCode::UNAUTHENTICATED; break;
      case EnrollRefusal::Kind::kInternal: code = grpc::StatusCode::INTERNAL; break;
    }
    reactor->Finish(grpc::Status(code, r.message));
    return reactor;
  }
  Log("enrolled node %s from %s (%s): certificate serial %s, valid until %lld",
      request->node().c_str(), ctx->peer().c_str(), shown_peer.c_str(),
      issued->info.serial.c_str(), static_cast<long long>(issued->info.not_after_s));
  response->set_certificate_pem(std::move(issued->pem));
  response->set_serial(issued->info.serial);
  response->set_not_after_s(issued->info.not_after_s);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

size_t IngestService::EndDeniedStreams() {
  if (!authority_) return 0;
  std::vector<std::pair<StreamReactor*, std::string>> ending;
  {
    MutexLock lk(streams_mu_);
    for (auto& [node, r] : streams_) {
      std::string why = authority_->Denied(node, r->cert());
      if (!why.empty() && r->PinForPush()) ending.emplace_back(r, "revoked: " + why);
    }
  }
  // Outside streams_mu_: ending a stream may unregister it inline.
  for (auto& [r, why] : ending) r->CancelPinned(why);
  authority_->CountStreamsEnded(ending.size());
  return ending.size();
}

void IngestService::StoreAdapter::NodeConnected(const std::string& node,
                                               const NodeHello& hello) {
  svc_->store_->NodeConnected(node, hello);
}
void IngestService::StoreAdapter::NodeDisconnected(const std::string& node) {
  svc_->store_->NodeDisconnected(node);
}
std::optional<NodeState> IngestService::StoreAdapter::Node(const std::string& node) const {
  return svc_->store_->Node(node);
}
void IngestService::StoreAdapter::OnHello(const std::string& node, const v1::Hello& hello) {
  if (svc_->opt_.on_hello) svc_->opt_.on_hello(node, hello);
}
bool IngestService::StoreAdapter::Admit(std::function<void()> release) {
  return !svc_->opt_.admit || svc_->opt_.admit(std::move(release));
}
void IngestService::StoreAdapter::OnInventory(const std::string& node, uint64_t command_id,
                                             StoredInventory inv) {
  if (svc_->opt_.on_inventory) svc_->opt_.on_inventory(node, command_id, std::move(inv));
}
uint64_t IngestService::StoreAdapter::CountInventoryDiscard(const std::string& node,
                                                            const std::string& reason) {
  MutexLock lk(svc_->discards_mu_);
  return ++svc_->discards_[{node, reason}];
}
uint64_t IngestService::StoreAdapter::InventoryBytes() const {
  return svc_->inventory_bytes_.load();
}
void IngestService::StoreAdapter::AddInventoryBytes(int64_t delta) {
  svc_->inventory_bytes_ += static_cast<uint64_t>(delta);
}

std::map<std::pair<std::string, std::string>, uint64_t> IngestService::InventoryDiscards() const {
  MutexLock lk(discards_mu_);
  return discards_;
}

void IngestService::Register(const std::string& node, StreamReactor* r) {
  grpc::ByteBuffer policy;
  {
    MutexLock lk(streams_mu_);
    streams_.emplace(node, r);
    if (policy_generation_ == 0 || !r->PinForPush()) return;
    policy = policy_message_;  // slices are shared, not copied
  }
  r->SendPinned(std::move(policy));
  ++policy_pushes_;
}

std::expected<void, std::string> IngestService::RequestStop(const std::string& node,
                                                            const std::string& container_id,
                                                            const std::string& reason) {
  StreamReactor* target = nullptr;
  {
    MutexLock lk(streams_mu_);
    auto [b, e] = streams_.equal_range(node);
    for (auto it = e; it != b && !target;) {  // the newest stream first
      --it;
      if (it->second->PinForPush()) target = it->second;
    }
  }
  if (!target) return std::unexpected("node " + node + " has no sensor stream connected");
  v1::CollectorMessage m;
  m.mutable_command()->mutable_stop_container()->set_container_id(container_id);
  m.mutable_command()->mutable_stop_container()->set_reason(reason);
  target->SendPinned(Encode(m));
  return {};
}

void IngestService::SetPreventPolicy(const std::optional<PreventPolicyText>& policy) {
  v1::CollectorMessage m;
  v1::PreventPolicy* p = m.mutable_command()->mutable_prevent_policy();
  p->set_configured(policy.has_value());
  if (policy) {
    p->set_text(policy->text);
    p->set_name(policy->name);
    p->set_sha256(Sha256Hex(policy->text));
  }
  std::vector<StreamReactor*> pinned;
  grpc::ByteBuffer encoded;
  {
    MutexLock lk(streams_mu_);
    p->set_generation(++policy_generation_);
    policy_sha256_ = p->sha256();
    policy_message_ = Encode(m);
    encoded = policy_message_;
    for (auto& [node, r] : streams_) {
      if (r->PinForPush()) pinned.push_back(r);
    }
  }
  // Outside streams_mu_: a write may run a reaction inline, which may unregister.
  for (StreamReactor* r : pinned) r->SendPinned(encoded);
  policy_pushes_ += pinned.size();
}

std::string IngestService::prevent_policy_sha256() const {
  MutexLock lk(streams_mu_);
  return policy_sha256_;
}

void IngestService::Release(size_t bytes) {
  in_flight_bytes_ -= bytes;
  if (OverBudget()) return;
  std::vector<StreamReactor*> resume;
  {
    MutexLock lk(parked_mu_);
    resume.swap(parked_);
  }
  // Every waiting stream reads on: none can be left waiting with room in the budget.
  for (StreamReactor* r : resume) r->Resume();
}

bool IngestService::Park(StreamReactor* r) {
  MutexLock lk(parked_mu_);
  // Checked again under the lock Release takes after lowering the total: a Release between
  // the caller's check and here is seen, and the stream is not left parked.
  if (!OverBudget()) return false;
  parked_.push_back(r);
  ++budget_waits_;
  return true;
}

bool IngestService::Unpark(StreamReactor* r) {
  MutexLock lk(parked_mu_);
  auto it = std::find(parked_.begin(), parked_.end(), r);
  if (it == parked_.end()) return false;
  parked_.erase(it);
  return true;
}

void IngestService::CountOversize(const std::string& node, const OversizeCounts& n) {
  MutexLock lk(oversize_mu_);
  OversizeCounts& c = oversize_[node];
  c.capped += n.capped;
  c.refused += n.refused;
}

std::map<std::string, OversizeCounts> IngestService::OversizeByNode() const {
  MutexLock lk(oversize_mu_);
  return oversize_;
}

void IngestService::Unregister(const std::string& node, StreamReactor* r) {
  MutexLock lk(streams_mu_);
  auto [b, e] = streams_.equal_range(node);
  for (auto it = b; it != e; ++it) {
    if (it->second == r) {
      streams_.erase(it);
      return;
    }
  }
}

std::expected<void, std::string> IngestService::RequestInventory(const std::string& node,
                                                                 const std::string& container_id,
                                                                 uint64_t command_id) {
  StreamReactor* target = nullptr;
  {
    MutexLock lk(streams_mu_);
    auto [b, e] = streams_.equal_range(node);
    // The newest stream first: an older one of the same node is usually a dead connection
    // not yet noticed.
    for (auto it = e; it != b && !target;) {
      --it;
      switch (it->second->PinForCommand(command_id)) {
        case StreamReactor::PinResult::kPinned:
          target = it->second;
          break;
        case StreamReactor::PinResult::kFull:
          return std::unexpected("node " + node + "'s stream has " +
                                 std::to_string(opt_.max_inventory_commands) +
                                 " inventory commands outstanding");
        case StreamReactor::PinResult::kEnding:
          break;
      }
    }
  }
  if (!target) return std::unexpected("node " + node + " has no sensor stream connected");
  v1::CollectorMessage m;
  m.mutable_command()->set_command_id(command_id);
  m.mutable_command()->mutable_inventory()->set_container_id(container_id);
  target->SendPinned(Encode(m));
  return {};
}

}  // namespace driftwatch
