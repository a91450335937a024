#include "collector/ingest_server.h"

#include "lib/log.h"
#include "lib/node_name.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>

#include <google/protobuf/io/coded_stream.h>

#include "lib/version.h"
#include "lib/wire_format.h"

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
  // would also hold IP, URI and email SANs, which never name a node (lib/node_name.h).
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

namespace {

grpc::ByteBuffer Encode(const v1::CollectorMessage& m) {
  std::string bytes = m.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

void Log(const char* fmt, auto... args) {
  ::driftwatch::Logf(::driftwatch::LogLevel::kInfo, fmt, args...);
}

// Parses a message given as parts that protobuf would merge, in order.
bool ParseParts(const std::vector<std::string_view>& parts, google::protobuf::Message* m) {
  m->Clear();
  for (std::string_view p : parts) {
    google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(p.data()),
                                              static_cast<int>(p.size()));
    if (!m->MergeFromCodedStream(&in) || !in.ConsumedEntireMessage()) return false;
  }
  return true;
}

}  // namespace

std::expected<void, std::string> ScanSensorMessage(std::string_view bytes,
                                                   ScannedSensorMessage* out,
                                                   size_t max_event_views) {
  using M = v1::SensorMessage;
  auto reset = [out](M::BodyCase body) {
    out->body = body;
    out->batch_id = 0;
    out->events.clear();
    out->event_count = 0;
    out->parts.clear();
  };
  reset(M::BODY_NOT_SET);
  std::string_view in = bytes;
  while (!in.empty()) {
    uint64_t field = 0, wt = 0, value = 0;
    std::string_view sub;
    if (!wire::NextField(&in, &field, &wt, &value, &sub)) {
      return std::unexpected("malformed SensorMessage");
    }
    if (wt != 2) continue;  // no known field here has another wire type: unknown, skipped
    const M::BodyCase body = field == M::kBatchFieldNumber       ? M::kBatch
                             : field == M::kHelloFieldNumber     ? M::kHello
                             : field == M::kInventoryFieldNumber ? M::kInventory
                                                                 : M::BODY_NOT_SET;
    if (body == M::BODY_NOT_SET) continue;
    // Another body field replaces the oneof; the same one again merges into it.
    if (body != out->body) reset(body);
    if (body != M::kBatch) {
      out->parts.push_back(sub);
      continue;
    }
    while (!sub.empty()) {
      uint64_t f = 0, w = 0, v = 0;
      std::string_view ev;
      if (!wire::NextField(&sub, &f, &w, &v, &ev)) return std::unexpected("malformed EventBatch");
      if (f == v1::EventBatch::kBatchIdFieldNumber && w == 0) out->batch_id = v;
      if (f == v1::EventBatch::kEventsFieldNumber && w == 2) {
        ++out->event_count;
        if (out->events.size() < max_event_views) out->events.push_back(ev);
      }
    }
  }
  return {};
}

namespace {

// Calls fn(field, wire_type, value, span) for each field of an InventoryReply given as
// `parts` (merged in order); `span` is the field as received (tag, length and bytes).
template <typename Fn>
std::expected<void, std::string> WalkInventory(const std::vector<std::string_view>& parts,
                                               Fn&& fn) {
  for (std::string_view in : parts) {
    while (!in.empty()) {
      const char* begin = in.data();
      uint64_t field = 0, wt = 0, value = 0;
      std::string_view sub;
      if (!wire::NextField(&in, &field, &wt, &value, &sub)) {
        return std::unexpected("malformed InventoryReply");
      }
      if (auto r = fn(field, wt, value, sub, std::string_view(begin, in.data() - begin)); !r) {
        return r;
      }
    }
  }
  return {};
}

}  // namespace

std::expected<void, std::string> ScanInventoryChunk(const std::vector<std::string_view>& parts,
                                                    InventoryChunkScan* out) {
  using R = v1::InventoryReply;
  *out = InventoryChunkScan();
  for (std::string_view p : parts) out->bytes += p.size();
  return WalkInventory(parts, [out](uint64_t f, uint64_t wt, uint64_t v, std::string_view,
                                    std::string_view) -> std::expected<void, std::string> {
    if (wt == 0 && f == R::kCommandIdFieldNumber) out->command_id = v;
    // As protobuf reads a uint32 and a bool from a varint.
    if (wt == 0 && f == R::kChunkIndexFieldNumber) out->chunk_index = static_cast<uint32_t>(v);
    if (wt == 0 && f == R::kLastChunkFieldNumber) {
      out->has_last_chunk = true;
      out->last_chunk = v != 0;
    }
    if (wt == 2 && f == R::kEntriesFieldNumber) ++out->entries;
    return {};
  });
}

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

// One sensor stream. State changes happen under mu_; the gRPC calls they lead to (StartRead,
// StartWrite, Finish) are made after mu_ is released, as gRPC may run OnReadDone/OnWriteDone
// inline from them. Finish is only called when no read, write or store commit of this stream
// is outstanding, so no callback can reach the reactor after OnDone deletes it.
class StreamReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamReactor(IngestService* svc, grpc::CallbackServerContext* ctx)
      : svc_(svc), ctx_(ctx), peer_(ctx->peer()) {
    ++svc_->active_streams_;
    if (!svc_->opt_.insecure) {
      auto auth = ctx->auth_context();
      if (auth) cert_node_ = NodeFromAuthContext(*auth);
    }
    Actions a;
    {
      std::lock_guard lk(mu_);
      if (!svc_->opt_.insecure && cert_node_.empty()) {
        FailLocked(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                "no node name in the client certificate (SAN DNS or CN)"));
      } else {
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
    if (registered_) svc_->Unregister(node_, this);
    // No callback runs any more: the inventories being joined are ours alone.
    for (const auto& [command_id, a] : inventories_) {
      if (a.next_chunk > 0 && a.failed.empty()) {
        Discard(command_id, "incomplete", "the stream ended before its last chunk");
      }
    }
    {
      std::lock_guard lk(mu_);
      AddInventoryBytes(-static_cast<int64_t>(inventory_bytes_));
    }
    if (hello_) {
      svc_->store_->NodeDisconnected(node_);
      auto n = svc_->store_->Node(node_);
      Log("node %s disconnected (%s): stream stored %llu, duplicates %llu; node streams %u, "
          "stored %llu",
          node_.c_str(), cancelled_ ? "cancelled" : finish_text_.c_str(),
          static_cast<unsigned long long>(stored_),
          static_cast<unsigned long long>(duplicates_), n ? n->connected_streams : 0,
          static_cast<unsigned long long>(n ? n->events_stored : 0));
    } else if (!finish_text_.empty() && finish_text_ != "OK") {
      Log("stream from %s ended before Hello: %s", peer_.c_str(), finish_text_.c_str());
    }
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
    if (finished_ || finish_status_ || read_closed_ || cancelled_ || write_failed_) {
      return PinResult::kEnding;
    }
    const auto now = std::chrono::steady_clock::now();
    ExpireInventoriesLocked(now);
    if (inventories_.size() >= svc_->opt_.max_inventory_commands) return PinResult::kFull;
    inventories_[command_id].asked = now;
    ++pins_;
    return PinResult::kPinned;
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
  struct Actions {
    bool start_read = false;
    bool start_write = false;
    bool finish = false;
    grpc::Status status;
  };
  struct InFlight {
    uint64_t batch_id = 0;
    bool done = false;
    CommitResult result;
  };
  // An inventory command sent on this stream and the chunks of its reply joined so far.
  struct Assembly {
    std::chrono::steady_clock::time_point asked;
    uint32_t next_chunk = 0;
    std::string failed;       // the reason it was discarded: so are its later chunks
    std::string header;       // the latest chunk's fields but its entries (wire format)
    std::string entries;      // every chunk's entries fields so far (wire format)
    uint64_t entry_count = 0;
    std::string container_id, error;  // from header
    uint64_t size() const { return header.size() + entries.size(); }
  };
  using Assemblies = std::map<uint64_t, Assembly>;  // by command id

  // Called with mu_ held: what to do next, given the state.
  Actions Decide(Actions a) {
    if (!writing_ && !pending_writes_.empty() && !cancelled_ && !write_failed_) {
      out_ = std::move(pending_writes_.front());
      pending_writes_.pop_front();
      writing_ = true;
      a.start_write = true;
    }
    const bool ending = finish_status_.has_value() || read_closed_ || cancelled_;
    if (parked_ && ending && svc_->Unpark(this)) parked_ = false;
    if (!ending && !reading_ && !parked_ &&
        inflight_.size() < svc_->opt_.max_in_flight_batches) {
      // Past Hello, a read waits while all streams' batches in flight are over budget:
      // Release resumes it.
      if (hello_ && svc_->OverBudget() && svc_->Park(this)) {
        parked_ = true;
      } else {
        reading_ = true;
        a.start_read = true;
      }
    }
    if (ending && !finished_ && !reading_ && !writing_ && !cancelling_ && pins_ == 0 && !parked_ &&
        inflight_.empty() &&
        (pending_writes_.empty() || cancelled_ || write_failed_)) {
      finished_ = true;
      a.finish = true;
      a.status = finish_status_.value_or(grpc::Status::OK);
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

  void FailLocked(grpc::Status st) {
    if (finish_status_) return;
    Log("stream from %s%s%s: %s", peer_.c_str(), node_.empty() ? "" : " node ", node_.c_str(),
        st.error_message().c_str());
    finish_status_ = std::move(st);
  }

  Actions HandleMessage() {
    // in_, msg_ and node_ belong to the read path (one read at a time):
    // PrepareEncodedBatch, the costly part, runs without mu_, so the store's writer thread
    // never waits on it in OnCommitted.
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
    auto scanned = ScanSensorMessage(bytes, &msg_, svc_->opt_.max_batch_events + 1ull);
    // Hello first: nothing else is looked at before it, and only a Hello is parsed whole.
    // hello_ is written on this path only (under mu_, in OnHello), so read here without it.
    std::string refused;
    std::optional<v1::Hello> hello;
    InventoryChunkScan chunk;
    if (scanned) {
      using M = v1::SensorMessage;
      if (msg_.body == M::BODY_NOT_SET) {
        refused = "SensorMessage without a body (hello, batch or inventory)";
      } else if (!hello_ && msg_.body != M::kHello) {
        refused = std::string(msg_.body == M::kBatch ? "EventBatch" : "InventoryReply") +
                  " before Hello: the first message must be Hello";
      } else if (hello_ && msg_.body == M::kHello) {
        refused = "second Hello on the stream";
      } else if (msg_.body == M::kHello) {
        hello.emplace();
        if (!ParseParts(msg_.parts, &*hello)) refused = "malformed Hello";
      } else if (msg_.body == M::kInventory) {
        if (auto c = ScanInventoryChunk(msg_.parts, &chunk); !c) refused = c.error();
      }
    }
    std::optional<PreparedBatch> prepared;
    uint64_t batch_id = 0;
    {
      Actions a;
      bool register_node = false;
      std::optional<Assemblies::node_type> joining;
      {
        std::lock_guard lk(mu_);
        reading_ = false;
        if (finish_status_) return Decide(Actions{});
        if (!scanned || !refused.empty()) {
          FailLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                  scanned ? refused : scanned.error()));
          return Decide(Actions{});
        }
        switch (msg_.body) {
          case v1::SensorMessage::kHello:
            OnHello(*hello);
            register_node = hello_ && !finish_status_;
            break;
          case v1::SensorMessage::kBatch:
            if (CheckBatch()) batch_id = msg_.batch_id;
            break;
          case v1::SensorMessage::kInventory:
            joining = TakeAssemblyLocked(chunk);
            break;
          case v1::SensorMessage::BODY_NOT_SET:
            break;  // refused above
        }
        if (batch_id != 0) {
          reading_ = true;  // not really: keeps other reads and Finish away until Submit
        } else {
          a = Decide(Actions{});
        }
      }
      // Outside mu_ (lock order), before the read or write Decide asked for is started, so
      // the reactor cannot finish meanwhile.
      if (register_node) {
        registered_ = true;
        svc_->Register(node_, this);
        if (svc_->opt_.on_hello) svc_->opt_.on_hello(node_, *hello);
      }
      if (joining) JoinChunk(chunk, std::move(*joining));
      DeliverReady();
      if (batch_id == 0) return a;
    }
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
      svc_->CountOversize(node_, over);
      if (!oversize_logged_) {
        oversize_logged_ = true;
        Log("node %s (%s): batch %llu has events over --max-event-bytes %zu: %llu cut to the "
            "argument caps (kept, marked args_capped), %llu refused (left out: a sequence "
            "gap); later ones on this stream are counted in "
            "driftwatch_collector_events_oversize_total",
            node_.c_str(), peer_.c_str(), static_cast<unsigned long long>(batch_id),
            svc_->opt_.max_event_bytes, static_cast<unsigned long long>(over.capped),
            static_cast<unsigned long long>(over.refused));
      }
    }
    auto p = PrepareEncodedBatch(node_, msg_.events);
    msg_.events.clear();
    cut.clear();
    if (!p) svc_->Release(charge);  // may resume streams: no lock held
    {
      std::lock_guard lk(mu_);
      if (!p) {
        reading_ = false;
        FailLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "batch " + std::to_string(batch_id) + ": " + p.error()));
        return Decide(Actions{});
      }
      inflight_.push_back(InFlight{batch_id, false, {}});
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
          if (r.error.empty() && svc_->opt_.admit &&
              !svc_->opt_.admit([this, batch_id, r] { OnCommitted(batch_id, r); })) {
            return;  // detection is behind: acked when it catches up
          }
          OnCommitted(batch_id, r);
        },
        stream_token_);
    std::lock_guard lk(mu_);
    reading_ = false;
    return Decide(Actions{});
  }

  // REQUIRES: mu_.
  void OnHello(const v1::Hello& h) {
    if (svc_->opt_.insecure) {
      // No certificate: the sensor names itself, and the name must be one a certificate
      // could carry (lib/node_name.h). FailLocked's log line names the peer.
      if (auto ok = CheckNodeNameFrom("Hello.node", h.node()); !ok) {
        FailLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                ok.error() + " (--insecure files events under Hello.node)"));
        return;
      }
      node_ = h.node();
    } else {
      node_ = cert_node_;
      if (!h.node().empty() && h.node() != cert_node_) {
        Log("peer %s says Hello.node=%s but its certificate names %s: filing under %s",
            peer_.c_str(), h.node().c_str(), cert_node_.c_str(), cert_node_.c_str());
      }
    }
    hello_ = true;
    NodeHello nh{h.boot_id(),      h.sensor_start_ns(), h.sensor_version(), h.kernel_version(),
                 h.audit_mode(),   h.fanotify_mode(),   h.spool_dropped(),  peer_};
    svc_->store_->NodeConnected(node_, nh);
    auto n = svc_->store_->Node(node_);
    Log("node %s connected from %s (sensor %s, boot %s; node streams %u, stored %llu)",
        node_.c_str(), peer_.c_str(), h.sensor_version().c_str(), h.boot_id().c_str(),
        n ? n->connected_streams : 1,
        static_cast<unsigned long long>(n ? n->events_stored : 0));
    v1::CollectorMessage m;
    v1::Welcome* w = m.mutable_welcome();
    w->set_node(node_);
    w->set_collector_version(kVersion);
    w->set_max_batch_events(svc_->opt_.max_batch_events);
    pending_writes_.push_back(Encode(m));
  }

  // REQUIRES: mu_. False (and the stream failed) when the batch is refused.
  bool CheckBatch() {
    if (msg_.batch_id <= last_batch_id_) {
      FailLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "batch_id " + std::to_string(msg_.batch_id) +
                                  " does not increase (previous " +
                                  std::to_string(last_batch_id_) + ")"));
      return false;
    }
    if (msg_.event_count > svc_->opt_.max_batch_events) {
      FailLocked(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "batch " + std::to_string(msg_.batch_id) + " has " +
                                  std::to_string(msg_.event_count) +
                                  " events, more than max_batch_events " +
                                  std::to_string(svc_->opt_.max_batch_events)));
      return false;
    }
    last_batch_id_ = msg_.batch_id;
    return true;
  }

  // Inventory replies. The read path decides under mu_ (TakeAssemblyLocked) and joins
  // outside it (JoinChunk), on the assembly it took out of inventories_: RequestInventory
  // only adds commands and expires old ones, so nothing else touches it meanwhile.

  // REQUIRES: mu_. The assembly `c` continues, taken out of inventories_ for JoinChunk;
  // nullopt when the chunk is discarded (counted and logged here).
  std::optional<Assemblies::node_type> TakeAssemblyLocked(const InventoryChunkScan& c) {
    ExpireInventoriesLocked(std::chrono::steady_clock::now());
    auto it = inventories_.find(c.command_id);
    if (it == inventories_.end()) {
      Discard(c.command_id, "unsolicited", "no such command outstanding on this stream");
      return std::nullopt;
    }
    Assembly& a = it->second;
    if (a.failed.empty()) {
      if (c.chunk_index != a.next_chunk) {
        FailAssemblyLocked(c.command_id, &a, "out_of_order",
                           "chunk " + std::to_string(c.chunk_index) + ", expected " +
                               std::to_string(a.next_chunk));
      } else if (inventory_bytes_ + c.bytes > svc_->opt_.max_inventory_bytes) {
        FailAssemblyLocked(c.command_id, &a, "over_cap",
                           "the inventory replies this stream is joining would go over " +
                               std::to_string(svc_->opt_.max_inventory_bytes) +
                               " bytes (--inventory-max-bytes)");
      } else if (svc_->inventory_bytes_.load() + c.bytes > svc_->opt_.max_inventory_bytes_total) {
        FailAssemblyLocked(c.command_id, &a, "over_cap",
                           "the inventory replies all streams are joining would go over " +
                               std::to_string(svc_->opt_.max_inventory_bytes_total) +
                               " bytes (--inventory-max-bytes-total)");
      } else {
        return inventories_.extract(it);
      }
    } else {
      Discard(c.command_id, a.failed, "an earlier chunk of the reply was discarded");
    }
    if (c.last()) inventories_.erase(it);
    return std::nullopt;
  }

  // Read path, without mu_: adds the chunk to its assembly, and hands the reply on once
  // whole. Each entry is parsed (into one reused message) to check it, never kept parsed.
  void JoinChunk(const InventoryChunkScan& c, Assemblies::node_type node) {
    Assembly& a = node.mapped();
    const uint64_t before = a.size();  // counted in inventory_bytes_
    std::string header;
    uint64_t count = 0;
    auto walked = WalkInventory(
        msg_.parts, [&](uint64_t f, uint64_t wt, uint64_t, std::string_view sub,
                        std::string_view span) -> std::expected<void, std::string> {
          if (f != v1::InventoryReply::kEntriesFieldNumber || wt != 2) {
            header.append(span);
            return {};
          }
          if (!entry_.ParseFromArray(sub.data(), static_cast<int>(sub.size()))) {
            return std::unexpected("entry " + std::to_string(a.entry_count + count) +
                                   " does not parse as an InventoryEntry");
          }
          a.entries.append(span);
          ++count;
          return {};
        });
    v1::InventoryReply h;
    if (walked && !h.ParseFromString(header)) {
      walked = std::unexpected(std::string("its fields do not parse as an InventoryReply"));
    }
    std::lock_guard lk(mu_);
    auto [it, inserted, rest] = inventories_.insert(std::move(node));
    if (!inserted) {  // cannot be: command ids are unique (the chunk is lost, not memory)
      AddInventoryBytes(-static_cast<int64_t>(before));
      return;
    }
    Assembly& b = it->second;
    if (walked) {
      b.header = std::move(header);
      b.container_id = h.container_id();
      b.error = h.error();
      b.entry_count += count;
      ++b.next_chunk;
    }
    AddInventoryBytes(static_cast<int64_t>(b.size()) - static_cast<int64_t>(before));
    if (!walked) {
      FailAssemblyLocked(c.command_id, &b, "malformed", walked.error());
      if (c.last()) inventories_.erase(it);
      return;
    }
    if (!c.last()) return;
    AddInventoryBytes(-static_cast<int64_t>(b.size()));
    StoredInventory inv;
    inv.container_id = std::move(b.container_id);
    inv.error = std::move(b.error);
    inv.entries = b.entry_count;
    inv.reply = std::move(b.entries);
    inv.reply += b.header;  // field order does not matter: one message, entries and the rest
    inventories_.erase(it);
    ready_.emplace_back(c.command_id, std::move(inv));
  }

  // REQUIRES: mu_. This stream's share of the replies being joined, and the service's.
  void AddInventoryBytes(int64_t delta) {
    inventory_bytes_ += static_cast<uint64_t>(delta);
    svc_->inventory_bytes_ += static_cast<uint64_t>(delta);
  }

  // REQUIRES: mu_. The command's reply is discarded from here on (its later chunks too);
  // on_inventory hears why, so the command is a failure, not a wait for the timeout.
  void FailAssemblyLocked(uint64_t command_id, Assembly* a, const std::string& reason,
                          const std::string& why) {
    Discard(command_id, reason, why);
    a->failed = reason;
    AddInventoryBytes(-static_cast<int64_t>(a->size()));
    a->header = std::string();
    a->entries = std::string();
    StoredInventory inv;
    inv.container_id = a->container_id;
    inv.error = "the collector discarded the reply (" + reason + "): " + why;
    ready_.emplace_back(command_id, std::move(inv));
  }

  // REQUIRES: mu_. Commands asked longer than inventory_timeout ago are forgotten (detection
  // has given up on them too); a partly received reply is counted as incomplete.
  void ExpireInventoriesLocked(std::chrono::steady_clock::time_point now) {
    std::erase_if(inventories_, [&](const auto& kv) {
      const Assembly& a = kv.second;
      if (now - a.asked < svc_->opt_.inventory_timeout) return false;
      if (a.next_chunk > 0 && a.failed.empty()) {
        Discard(kv.first, "incomplete", "no last chunk within the inventory timeout");
      }
      AddInventoryBytes(-static_cast<int64_t>(a.size()));
      return true;
    });
  }

  // Counts a discarded chunk for the node; logs the 1st, 2nd, 4th, 8th, ... of a reason,
  // so that a flood costs no log volume. Takes only the service's leaf lock.
  void Discard(uint64_t command_id, const std::string& reason, const std::string& why) {
    const std::string& node = node_.empty() ? peer_ : node_;
    const uint64_t n = svc_->CountInventoryDiscard(node, reason);
    if ((n & (n - 1)) == 0) {
      LogWarn("node %s: inventory reply chunk to command %llu discarded (%s: %s); %llu %s "
              "discarded from this node\n",
              node.c_str(), static_cast<unsigned long long>(command_id), reason.c_str(),
              why.c_str(), static_cast<unsigned long long>(n), reason.c_str());
    }
  }

  // Read path, without mu_: hands on the replies (and failures) decided under it.
  void DeliverReady() {
    for (auto& [command_id, inv] : ready_) {
      if (svc_->opt_.on_inventory) svc_->opt_.on_inventory(node_, command_id, std::move(inv));
    }
    ready_.clear();
  }

  // Writer thread of the store.
  void OnCommitted(uint64_t batch_id, const CommitResult& r) {
    Actions a;
    bool cancel = false;
    {
      std::lock_guard lk(mu_);
      for (InFlight& f : inflight_) {
        if (f.batch_id == batch_id) {
          f.done = true;
          f.result = r;
        }
      }
      // Acks are cumulative and in order: one Ack for the leading run of committed batches.
      v1::Ack ack;
      bool any = false;
      while (!inflight_.empty() && inflight_.front().done) {
        const InFlight& f = inflight_.front();
        if (!f.result.error.empty()) {
          FailLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "store: " + f.result.error));
        } else if (!store_failed()) {
          ack.set_batch_id(f.batch_id);
          ack.set_stored(ack.stored() + f.result.stored);
          ack.set_duplicates(ack.duplicates() + f.result.duplicates);
          stored_ += f.result.stored;
          duplicates_ += f.result.duplicates;
          any = true;
        }
        inflight_.pop_front();
      }
      if (any && !cancelled_ && !write_failed_) {
        v1::CollectorMessage m;
        *m.mutable_ack() = ack;
        pending_writes_.push_back(Encode(m));
      }
      a = Decide(a);
      // A store failure with a read outstanding: cancel the call so the read returns.
      // cancelling_ keeps Finish (and so OnDone) away until TryCancel has returned.
      if (store_failed() && reading_ && !cancelling_ && !cancelled_) {
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
  bool store_failed() const {
    return finish_status_ && finish_status_->error_code() == grpc::StatusCode::UNAVAILABLE;
  }

  IngestService* const svc_;
  grpc::CallbackServerContext* const ctx_;
  const std::string peer_;
  std::string cert_node_;
  const uint64_t stream_token_ = svc_->next_stream_++;

  std::mutex mu_;
  grpc::ByteBuffer in_;        // owned by the outstanding read
  ScannedSensorMessage msg_;   // read path: the message walked (views into HandleMessage's copy)
  v1::InventoryEntry entry_;   // read path: each inventory entry is parsed here to check it
  // Read path: inventory replies and failures decided under mu_, handed on after it.
  std::vector<std::pair<uint64_t, StoredInventory>> ready_;
  grpc::ByteBuffer out_;       // owned by the outstanding write
  bool hello_ = false;         // written by the read path (under mu_), read there without
  std::string node_;
  bool oversize_logged_ = false;  // read path
  uint64_t last_batch_id_ = 0;
  std::deque<InFlight> inflight_;
  std::deque<grpc::ByteBuffer> pending_writes_;
  Assemblies inventories_;      // commands awaiting their reply; GUARDED_BY(mu_)
  uint64_t inventory_bytes_ = 0;  // their size(), taken ones included; GUARDED_BY(mu_)
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
  std::optional<grpc::Status> finish_status_;
  std::string finish_text_;
  uint64_t stored_ = 0;
  uint64_t duplicates_ = 0;
};

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* IngestService::Stream(
    grpc::CallbackServerContext* ctx) {
  return new StreamReactor(this, ctx);
}

uint64_t IngestService::CountInventoryDiscard(const std::string& node,
                                             const std::string& reason) {
  MutexLock lk(discards_mu_);
  return ++discards_[{node, reason}];
}

std::map<std::pair<std::string, std::string>, uint64_t> IngestService::InventoryDiscards() const {
  MutexLock lk(discards_mu_);
  return discards_;
}

void IngestService::Register(const std::string& node, StreamReactor* r) {
  MutexLock lk(streams_mu_);
  streams_.emplace(node, r);
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
