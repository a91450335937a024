#include "sensor/uplink.h"
#include "lib/base/log.h"
#include "lib/node/procfs.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstdio>

namespace driftwatch::sensor {
namespace {

std::expected<std::string, std::string> ReadPem(const std::string& path, const char* what) {
  std::string pem;
  if (!ReadSmallFile(path, &pem))
    return std::unexpected(std::string(what) + " " + path + ": cannot read (or empty)");
  if (pem.find("-----BEGIN") == std::string::npos)
    return std::unexpected(std::string(what) + " " + path + ": not a PEM file");
  return pem;
}

void ToProto(const DriftEntry& e, v1::InventoryEntry* o) {
  o->set_kind(DriftKindName(e.kind));
  o->set_path(e.path);
  o->set_type(std::string(1, e.type));
  o->set_size(e.size);
  o->set_mode(e.mode);
  o->set_executable(e.executable);
  o->set_sha256(e.sha256_hex);
  o->set_opaque(e.opaque_dir);
}

void ToProto(const InventoryTruncation& t, v1::InventoryTruncation* o) {
  o->set_depth(t.depth);
  o->set_entries(t.entries);
  o->set_path_bytes(t.path_bytes);
  o->set_dirs_not_entered(t.dirs_not_entered);
  o->set_first_not_entered(t.first_not_entered);
  o->set_entries_examined(t.entries_examined);
  o->set_path_bytes_listed(t.path_bytes_listed);
  o->set_max_depth(t.max_depth);
  o->set_max_entries(t.max_entries);
  o->set_max_path_bytes(t.max_path_bytes);
}

}  // namespace

InventoryChunker::InventoryChunker(uint64_t command_id, InventoryResult r, size_t chunk_bytes)
    : command_id_(command_id), r_(std::move(r)), chunk_bytes_(chunk_bytes) {}

v1::InventoryReply InventoryChunker::Next() {
  v1::InventoryReply c;
  c.set_command_id(command_id_);
  c.set_container_id(r_.container_id);
  c.set_chunk_index(next_chunk_++);
  const std::vector<DriftEntry>& entries = r_.inventory.entries;
  size_t bytes = 0;
  while (next_entry_ < entries.size()) {
    v1::InventoryEntry* e = c.add_entries();
    ToProto(entries[next_entry_], e);
    const size_t n = e->ByteSizeLong() + 8;  // tag and length of the entry, at most
    if (bytes > 0 && bytes + n > chunk_bytes_) {
      c.mutable_entries()->RemoveLast();
      break;
    }
    bytes += n;
    ++next_entry_;
  }
  done_ = next_entry_ == entries.size();
  c.set_last_chunk(done_);
  if (done_) {
    if (!r_.error.empty()) c.set_error(r_.error);
    if (r_.inventory.truncation.truncated()) ToProto(r_.inventory.truncation, c.mutable_truncated());
    r_ = InventoryResult();  // the entries are sent: give their memory back now
  }
  return c;
}

// One gRPC stream. Reads are always pending; writes are started by the Uplink on the io
// thread, one at a time. A hold keeps gRPC from finishing the stream under a write that
// the io thread is about to start; it is released (on the io thread) when the stream
// breaks or is stopped.
class Uplink::Stream : public grpc::ClientBidiReactor<v1::SensorMessage, v1::CollectorMessage>,
                       public std::enable_shared_from_this<Uplink::Stream> {
 public:
  Stream(Uplink* up) : up_(up) {}

  void Begin(v1::Collector::Stub* stub) {
    ctx_.set_wait_for_ready(false);
    stub->async()->Stream(&ctx_, this);
    AddHold();
    StartRead(&in_);
    StartCall();
  }
  void Write(v1::SensorMessage msg) {  // io thread
    out_ = std::move(msg);
    StartWrite(&out_);
  }
  void Cancel() { ctx_.TryCancel(); }
  void Release() {  // io thread
    if (released_) return;
    released_ = true;
    RemoveHold();
  }
  bool released() const { return released_; }
  std::string peer() { return ctx_.peer(); }

  void OnReadDone(bool ok) override {
    auto self = shared_from_this();
    if (!ok) {
      // The stream is ending: let it finish (OnDone says why).
      boost::asio::post(*up_->io_, [self] { self->Release(); });
      return;
    }
    v1::CollectorMessage m = std::move(in_);
    in_.Clear();
    boost::asio::post(*up_->io_, [self, m = std::move(m)] {
      if (self->up_->stream_ == self) self->up_->OnMessage(m);
    });
    StartRead(&in_);
  }
  void OnWriteDone(bool ok) override {
    auto self = shared_from_this();
    boost::asio::post(*up_->io_, [self, ok] {
      Uplink* up = self->up_;
      if (up->stream_ != self) return;
      up->writing_ = false;
      if (!ok) {
        self->Release();
        return;
      }
      up->WriteNext();
      up->Pump();
    });
  }
  void OnDone(const grpc::Status& st) override {
    auto self = shared_from_this();
    boost::asio::post(*up_->io_, [self, st] {
      if (self->up_->stream_ == self) self->up_->OnStreamDone(st);
    });
  }

 private:
  Uplink* up_;
  grpc::ClientContext ctx_;
  v1::CollectorMessage in_;
  v1::SensorMessage out_;
  bool released_ = false;  // io thread
};

std::expected<std::unique_ptr<Uplink>, std::string> Uplink::Create(
    boost::asio::io_context* io, Spool* spool, UplinkOptions options, HelloFn hello,
    InventoryFn inventory) {
  if (options.targets.empty()) return std::unexpected("no collector address");
  for (const std::string& t : options.targets)
    if (t.empty() || t.find_first_of(" \t") != std::string::npos)
      return std::unexpected("collector address '" + t + "': expected HOST:PORT");
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.insecure) {
    creds = grpc::InsecureChannelCredentials();
  } else if (options.await_certificate) {
    if (options.ca_file.empty()) return std::unexpected("TLS needs --tls-ca");
    if (auto ca = ReadPem(options.ca_file, "--tls-ca"); !ca) return std::unexpected(ca.error());
  } else {
    if (options.ca_file.empty() || options.cert_file.empty() || options.key_file.empty())
      return std::unexpected(
          "TLS needs --tls-ca, --tls-cert and --tls-key (or --insecure for plaintext)");
    grpc::SslCredentialsOptions o;
    auto ca = ReadPem(options.ca_file, "--tls-ca");
    auto cert = ReadPem(options.cert_file, "--tls-cert");
    auto key = ReadPem(options.key_file, "--tls-key");
    for (auto* r : {&ca, &cert, &key})
      if (!*r) return std::unexpected(r->error());
    o.pem_root_certs = *ca;
    o.pem_cert_chain = *cert;
    o.pem_private_key = *key;
    creds = grpc::SslCredentials(o);
  }
  return std::unique_ptr<Uplink>(new Uplink(io, spool, std::move(options), std::move(hello),
                                            std::move(inventory), std::move(creds)));
}

Uplink::Uplink(boost::asio::io_context* io, Spool* spool, UplinkOptions options, HelloFn hello,
               InventoryFn inventory, std::shared_ptr<grpc::ChannelCredentials> creds)
    : io_(io),
      spool_(spool),
      options_(std::move(options)),
      hello_(std::move(hello)),
      inventory_(std::move(inventory)),
      creds_(std::move(creds)),
      linger_timer_(*io),
      retry_timer_(*io),
      backoff_(options_.backoff_min),
      rng_(std::random_device{}()) {
  if (options_.await_certificate) {
    if (auto ca = ReadPem(options_.ca_file, "--tls-ca")) ca_pem_ = std::move(*ca);  // read in Create
  }
  if (creds_) MakeChannels();
}

void Uplink::MakeChannels() {
  grpc::ChannelArguments args;
  if (!options_.server_name.empty()) args.SetSslTargetNameOverride(options_.server_name);
  // A dead peer is noticed within ~40 s even without traffic.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Reconnection pacing is ours (jittered backoff): keep gRPC's own short.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(64 << 20);
  // New credentials (a renewed certificate): the old channels are kept, not dropped, as
  // one may be failing right now (see the header); a few renewals' worth, oldest out.
  for (auto& ch : channels_) retired_channels_.push_back(std::move(ch));
  while (retired_channels_.size() > 4 * options_.targets.size()) retired_channels_.pop_front();
  channels_.clear();
  stubs_.clear();
  for (const std::string& t : options_.targets) {
    channels_.push_back(grpc::CreateCustomChannel(t, creds_, args));
    stubs_.push_back(v1::Collector::NewStub(channels_.back()));
  }
}

Uplink::~Uplink() { Stop(); }

void Uplink::Start() {
  started_ = true;
  Connect();
}

void Uplink::SetClientCertificate(const std::string& cert_pem, const std::string& key_pem) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ca_pem_;
  o.pem_cert_chain = cert_pem;
  o.pem_private_key = key_pem;
  creds_ = grpc::SslCredentials(o);
  // A new channel: the live stream keeps the old one (its call holds it) until it ends.
  MakeChannels();
  if (!started_ || stopping_) return;
  if (!stream_) {
    if (!retry_pending_) Connect();  // else the retry connects with the new channel
    return;
  }
  switching_ = true;
  MaybeSwitch();
}

void Uplink::MaybeSwitch() {
  if (!switching_ || !stream_) return;
  if (welcomed_ && !in_flight_.empty()) return;  // the acks come first
  stream_->Cancel();  // OnStreamDone opens the next stream at once
}

void Uplink::Drain(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  Pump();
  while (stream_ && welcomed_ && spool_->acked() < spool_->end() &&
         std::chrono::steady_clock::now() < deadline) {
    io_->restart();
    io_->run_one_for(std::chrono::milliseconds(20));
    Pump();
  }
}

void Uplink::Stop() {
  if (stopping_) return;
  stopping_ = true;
  linger_timer_.cancel();
  retry_timer_.cancel();
  inventory_pool_.join();
  if (stream_) {
    stream_->Cancel();
    stream_->Release();
    // gRPC must be done with the reactor before it goes: run the loop until OnDone.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (stream_ && std::chrono::steady_clock::now() < deadline) {
      io_->restart();
      io_->run_one_for(std::chrono::milliseconds(100));
    }
  }
}

void Uplink::Notify() {
  if (notify_pending_.exchange(true)) return;
  boost::asio::post(*io_, [this] {
    if (stopping_) return;
    if (linger_armed_) return;
    linger_armed_ = true;
    linger_timer_.expires_after(options_.linger);
    linger_timer_.async_wait([this](const boost::system::error_code& ec) {
      linger_armed_ = false;
      notify_pending_ = false;
      if (!ec) Pump();
    });
  });
}

void Uplink::Connect() {
  policy_generation_ = 0;
  if (stopping_ || stubs_.empty()) return;
  welcomed_ = false;
  writing_ = false;
  out_.clear();
  DropInventories();
  in_flight_.clear();
  next_batch_id_ = 1;
  stream_ = std::make_shared<Stream>(this);
  stream_->Begin(stubs_[target_].get());
  v1::SensorMessage m;
  v1::Hello* h = m.mutable_hello();
  if (hello_) hello_(h);
  h->set_spool_dropped(spool_->dropped());
  Send(std::move(m));
}

void Uplink::Send(v1::SensorMessage msg) {
  out_.push_back(std::move(msg));
  WriteNext();
}

void Uplink::WriteNext() {
  if (writing_ || !stream_ || stream_->released()) return;
  v1::SensorMessage m;
  // Inventory chunks and batches take turns: neither waits for all of the other.
  if (!inventories_.empty() && (out_.empty() || !last_write_chunk_)) {
    InventoryChunker& inv = inventories_.front();
    *m.mutable_inventory() = inv.Next();
    ++counters_.inventory_chunks;
    if (inv.done()) {
      ++counters_.inventories;
      inventories_.pop_front();
    }
    last_write_chunk_ = true;
  } else if (!out_.empty()) {
    m = std::move(out_.front());
    out_.pop_front();
    last_write_chunk_ = false;
  } else {
    return;
  }
  writing_ = true;
  stream_->Write(std::move(m));
}

void Uplink::Pump() {
  if (!stream_ || !welcomed_ || stopping_) return;
  if (switching_) {
    MaybeSwitch();
    return;
  }
  // Keep at most one batch queued behind the write in progress: the rest waits in the
  // spool, where a broken stream cannot lose it.
  while (static_cast<int>(in_flight_.size()) < options_.window && out_.size() < 2) {
    std::vector<std::string> events;
    uint64_t next = send_pos_;
    auto r = spool_->Read(send_pos_, max_batch_, options_.batch_bytes, &events, &next);
    if (!r) {
      LogWarn("spool read: %s\n", r.error().c_str());
      return;
    }
    if (events.empty()) return;
    v1::SensorMessage m;
    v1::EventBatch* b = m.mutable_batch();
    b->set_batch_id(next_batch_id_++);
    // Positions of the records read: consecutive from here, unless the spool had a gap
    // (then this underestimates, and a resend may report a record twice).
    const uint64_t first = std::max(send_pos_, spool_->acked());
    for (size_t i = 0; i < events.size(); ++i) {
      if (!b->add_events()->ParseFromString(events[i])) {
        // Unreadable spool record (checksummed, so a bug, not disk rot): not sent, and a
        // loss: counted, never skipped in silence.
        b->mutable_events()->RemoveLast();
        const uint64_t pos = first + i;
        if (pos >= unreadable_reported_until_) {
          unreadable_reported_until_ = pos + 1;
          ++counters_.unreadable;
          LogWarn("spool record %llu is not an event: not sent, counted as an encode failure\n",
                  (unsigned long long)pos);
          if (options_.on_unreadable_record) options_.on_unreadable_record();
        }
      }
    }
    in_flight_.push_back({b->batch_id(), next, events.size()});
    send_pos_ = next;
    ++counters_.batches;
    counters_.events_sent += events.size();
    Send(std::move(m));
  }
}

void Uplink::OnMessage(const v1::CollectorMessage& m) {
  if (m.has_welcome()) {
    welcomed_ = true;
    backoff_ = options_.backoff_min;
    failed_in_row_ = 0;
    size_t cap = m.welcome().max_batch_events();
    max_batch_ = cap == 0 ? options_.batch_events : std::min(options_.batch_events, cap);
    send_pos_ = spool_->acked();  // everything unacknowledged goes (again)
    ++counters_.connects;
    counters_.connected = true;
    LogInfo("connected to collector %s as node %s; %llu events to send\n",
                 target().c_str(), m.welcome().node().c_str(),
                 (unsigned long long)spool_->depth());
    Pump();
  } else if (m.has_ack()) {
    uint64_t end = 0;
    size_t n = 0;
    while (!in_flight_.empty() && in_flight_.front().batch_id <= m.ack().batch_id()) {
      end = in_flight_.front().end_pos;
      n += in_flight_.front().events;
      in_flight_.pop_front();
    }
    if (n > 0) {
      // An ack file that cannot be written (the spool still releases acked segments) costs
      // only resends after a restart: said when it starts and when it ends, not per batch.
      auto r = spool_->Ack(end);
      if (!r && !ack_failing_)
        LogWarn("spool ack: %s (acked events may be sent again after a restart)\n",
                r.error().c_str());
      else if (r && ack_failing_)
        LogInfo("spool ack: written again\n");
      ack_failing_ = !r;
      counters_.events_acked += n;
      counters_.duplicates += m.ack().duplicates();
    }
    Pump();
  } else if (m.has_command() && m.command().has_prevent_policy()) {
    // Pushes of one stream may cross (a reload racing the one sent after Hello): the newest
    // generation wins.
    const v1::PreventPolicy& p = m.command().prevent_policy();
    if (p.generation() <= policy_generation_) return;
    policy_generation_ = p.generation();
    if (options_.on_prevent_policy) options_.on_prevent_policy(p);
  } else if (m.has_command() && m.command().has_stop_container()) {
    if (options_.on_stop_container) options_.on_stop_container(m.command().stop_container());
  } else if (m.has_command() && m.command().has_inventory()) {
    uint64_t cmd = m.command().command_id();
    std::string id = m.command().inventory().container_id();
    // A file-tree walk: off the loop thread. The reply goes on the stream that asked: the
    // collector only takes it there.
    std::weak_ptr<Stream> asked = stream_;
    boost::asio::post(inventory_pool_, [this, cmd, id, asked] {
      InventoryResult r;
      if (inventory_) {
        r = inventory_(id);
      } else {
        r.container_id = id;
        r.error = "inventory not available on this sensor";
      }
      boost::asio::post(*io_, [this, cmd, asked, r = std::move(r)]() mutable {
        if (stopping_) return;
        if (!stream_ || stream_ != asked.lock()) {
          ++counters_.inventories_dropped;
          LogWarn("inventory of container %s (command %llu): the stream that asked for it "
                  "ended; not sent\n",
                  r.container_id.c_str(), static_cast<unsigned long long>(cmd));
          return;
        }
        inventories_.emplace_back(cmd, std::move(r), options_.inventory_chunk_bytes);
        WriteNext();
      });
    });
  }
}

void Uplink::OnStreamDone(const grpc::Status& st) {
  counters_.connected = false;
  std::string peer = stream_ ? stream_->peer() : "";
  stream_.reset();
  welcomed_ = false;
  writing_ = false;
  out_.clear();
  DropInventories();
  in_flight_.clear();
  if (stopping_) return;
  if (switching_) {
    // Ended by us for a renewed certificate: not a failure, no backoff.
    switching_ = false;
    LogInfo("collector: reconnecting with the renewed certificate\n");
    Connect();
    return;
  }
  ++counters_.failures;
  ++failed_in_row_;
  last_error_ = "collector " + target() + (peer.empty() ? "" : " (" + peer + ")") + ": " +
                std::to_string(st.error_code()) + " " + st.error_message();
  if (options_.targets.size() > 1) {
    // On to the next collector (its own channel), the spool's unacknowledged events resent
    // there after its Welcome.
    target_ = (target_ + 1) % options_.targets.size();
    ++counters_.switches;
    last_error_ += "; moving to collector " + target();
  }
  ScheduleReconnect();
}

void Uplink::DropInventories() {
  for (const InventoryChunker& inv : inventories_) {
    ++counters_.inventories_dropped;
    LogWarn("inventory (command %llu): its stream ended before it was sent whole; dropped\n",
            static_cast<unsigned long long>(inv.command_id()));
  }
  inventories_.clear();
}

void Uplink::ScheduleReconnect() {
  // Full jitter between half the backoff and the backoff, doubling up to the cap once every
  // collector of the list failed in turn (until then the next one is tried soon).
  const bool round_done = failed_in_row_ % options_.targets.size() == 0;
  const std::chrono::milliseconds cap = round_done ? backoff_ : options_.backoff_min;
  std::uniform_int_distribution<int64_t> d(cap.count() / 2, cap.count());
  auto delay = std::chrono::milliseconds(d(rng_));
  LogWarn("%s; retrying in %lld ms (%llu events waiting)\n",
               last_error_.c_str(), (long long)delay.count(), (unsigned long long)spool_->depth());
  if (round_done) backoff_ = std::min(backoff_ * 2, options_.backoff_max);
  retry_timer_.expires_after(delay);
  retry_pending_ = true;
  retry_timer_.async_wait([this](const boost::system::error_code& ec) {
    retry_pending_ = false;
    if (!ec) Connect();
  });
}

}  // namespace driftwatch::sensor
