#include "collector/session.h"

#include <google/protobuf/io/coded_stream.h>

#include "lib/base/log.h"
#include "lib/base/version.h"
#include "lib/daemon/node_name.h"

namespace driftwatch {

namespace {

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

IngestSession::IngestSession(SessionStore* store, const IngestOptions* opt, std::string peer,
                             std::string cert_node)
    : store_(store), opt_(opt), peer_(std::move(peer)), cert_node_(std::move(cert_node)) {
  if (!opt_->insecure && cert_node_.empty()) {
    Fail(SessionCode::kUnauthenticated, "no node name in the client certificate (SAN DNS or CN)");
  }
}

void IngestSession::Fail(SessionCode code, std::string message) {
  if (failure_) return;
  Log("stream from %s%s%s: %s", peer_.c_str(), node_.empty() ? "" : " node ", node_.c_str(),
      message.c_str());
  failure_ = SessionStatus{code, std::move(message)};
}

IngestSession::Inbound IngestSession::Inspect(const std::expected<void, std::string>& scanned,
                                              const ScannedSensorMessage& msg) const {
  using M = v1::SensorMessage;
  Inbound in;
  if (!scanned) {
    in.refused = scanned.error();
    return in;
  }
  in.body = msg.body;
  in.batch_id = msg.batch_id;
  in.event_count = msg.event_count;
  // Hello first: nothing else is looked at before it, and only a Hello is parsed whole.
  if (msg.body == M::BODY_NOT_SET) {
    in.refused = "SensorMessage without a body (hello, batch or inventory)";
  } else if (!hello_ && msg.body != M::kHello) {
    in.refused = std::string(msg.body == M::kBatch ? "EventBatch" : "InventoryReply") +
                 " before Hello: the first message must be Hello";
  } else if (hello_ && msg.body == M::kHello) {
    in.refused = "second Hello on the stream";
  } else if (msg.body == M::kHello) {
    in.hello.emplace();
    if (!ParseParts(msg.parts, &*in.hello)) in.refused = "malformed Hello";
  } else if (msg.body == M::kInventory) {
    if (auto c = ScanInventoryChunk(msg.parts, &in.chunk); !c) in.refused = c.error();
  }
  return in;
}

IngestSession::Step IngestSession::Apply(const Inbound& in, Clock::time_point now) {
  Step step;
  if (failure_) return step;
  if (!in.refused.empty()) {
    Fail(SessionCode::kInvalidArgument, in.refused);
    return step;
  }
  switch (in.body) {
    case v1::SensorMessage::kHello:
      OnHello(*in.hello);
      step.registered = hello_ && !failure_;
      break;
    case v1::SensorMessage::kBatch:
      if (CheckBatch(in.batch_id, in.event_count)) step.batch_id = in.batch_id;
      break;
    case v1::SensorMessage::kInventory:
      step.joining = TakeAssembly(in.chunk, now);
      break;
    case v1::SensorMessage::BODY_NOT_SET:
      break;  // refused by Inspect
  }
  return step;
}

void IngestSession::OnHello(const v1::Hello& h) {
  if (opt_->insecure) {
    // No certificate: the sensor names itself, and the name must be one a certificate
    // could carry (lib/daemon/node_name.h). Fail's log line names the peer.
    if (auto ok = CheckNodeNameFrom("Hello.node", h.node()); !ok) {
      Fail(SessionCode::kInvalidArgument,
           ok.error().message() + " (--insecure files events under Hello.node)");
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
  store_->NodeConnected(node_, nh);
  auto n = store_->Node(node_);
  Log("node %s connected from %s (sensor %s, boot %s; node streams %u, stored %llu)",
      node_.c_str(), peer_.c_str(), h.sensor_version().c_str(), h.boot_id().c_str(),
      n ? n->connected_streams : 1, static_cast<unsigned long long>(n ? n->events_stored : 0));
  v1::CollectorMessage& m = outbox_.emplace_back();
  v1::Welcome* w = m.mutable_welcome();
  w->set_node(node_);
  w->set_collector_version(kVersion);
  w->set_max_batch_events(opt_->max_batch_events);
}

bool IngestSession::CheckBatch(uint64_t batch_id, uint64_t event_count) {
  if (batch_id <= last_batch_id_) {
    Fail(SessionCode::kInvalidArgument, "batch_id " + std::to_string(batch_id) +
                                            " does not increase (previous " +
                                            std::to_string(last_batch_id_) + ")");
    return false;
  }
  if (event_count > opt_->max_batch_events) {
    Fail(SessionCode::kInvalidArgument,
         "batch " + std::to_string(batch_id) + " has " + std::to_string(event_count) +
             " events, more than max_batch_events " + std::to_string(opt_->max_batch_events));
    return false;
  }
  last_batch_id_ = batch_id;
  return true;
}

void IngestSession::BatchRefused(uint64_t batch_id, const std::string& error) {
  Fail(SessionCode::kInvalidArgument, "batch " + std::to_string(batch_id) + ": " + error);
}

void IngestSession::Committed(uint64_t batch_id, const CommitResult& r) {
  for (InFlight& f : inflight_) {
    if (f.batch_id == batch_id) {
      f.done = true;
      f.result = r;
    }
  }
  v1::Ack ack;
  bool any = false;
  while (!inflight_.empty() && inflight_.front().done) {
    const InFlight& f = inflight_.front();
    if (!f.result.error.empty()) {
      Fail(SessionCode::kUnavailable, "store: " + f.result.error);
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
  if (any) *outbox_.emplace_back().mutable_ack() = ack;
}

bool IngestSession::AddCommand(uint64_t command_id, Clock::time_point now) {
  ExpireInventories(now);
  if (inventories_.size() >= opt_->max_inventory_commands) return false;
  inventories_[command_id].asked = now;
  return true;
}

// The assembly `c` continues, taken out of inventories_ for JoinChunk; nullopt when the
// chunk is discarded (counted and logged here). AddCommand only adds commands and expires
// old ones meanwhile, so nothing else touches a taken assembly.
std::optional<IngestSession::Assemblies::node_type> IngestSession::TakeAssembly(
    const InventoryChunkScan& c, Clock::time_point now) {
  ExpireInventories(now);
  auto it = inventories_.find(c.command_id);
  if (it == inventories_.end()) {
    Discard(c.command_id, "unsolicited", "no such command outstanding on this stream");
    return std::nullopt;
  }
  Assembly& a = it->second;
  if (a.failed.empty()) {
    if (c.chunk_index != a.next_chunk) {
      FailAssembly(c.command_id, &a, "out_of_order",
                   "chunk " + std::to_string(c.chunk_index) + ", expected " +
                       std::to_string(a.next_chunk));
    } else if (inventory_bytes_ + c.bytes > opt_->max_inventory_bytes) {
      FailAssembly(c.command_id, &a, "over_cap",
                   "the inventory replies this stream is joining would go over " +
                       std::to_string(opt_->max_inventory_bytes) +
                       " bytes (--inventory-max-bytes)");
    } else if (store_->InventoryBytes() + c.bytes > opt_->max_inventory_bytes_total) {
      FailAssembly(c.command_id, &a, "over_cap",
                   "the inventory replies all streams are joining would go over " +
                       std::to_string(opt_->max_inventory_bytes_total) +
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

IngestSession::ChunkWalk IngestSession::WalkChunk(const std::vector<std::string_view>& parts,
                                                  Assembly* a) {
  ChunkWalk w;
  w.size_before = a->size();
  w.ok = WalkInventory(parts, [&](uint64_t f, uint64_t wt, uint64_t, std::string_view sub,
                                  std::string_view span) -> std::expected<void, std::string> {
    if (f != v1::InventoryReply::kEntriesFieldNumber || wt != 2) {
      w.header.append(span);
      return {};
    }
    if (!entry_.ParseFromArray(sub.data(), static_cast<int>(sub.size()))) {
      return std::unexpected("entry " + std::to_string(a->entry_count + w.entries) +
                             " does not parse as an InventoryEntry");
    }
    a->entries.append(span);
    ++w.entries;
    return {};
  });
  v1::InventoryReply h;
  if (w.ok && !h.ParseFromString(w.header)) {
    w.ok = std::unexpected(std::string("its fields do not parse as an InventoryReply"));
  }
  w.container_id = h.container_id();
  w.error = h.error();
  return w;
}

void IngestSession::JoinChunk(const InventoryChunkScan& c, Assemblies::node_type node,
                              ChunkWalk w) {
  const uint64_t size_before = w.size_before;  // counted in inventory_bytes_
  auto [it, inserted, rest] = inventories_.insert(std::move(node));
  if (!inserted) {  // cannot be: command ids are unique (the chunk is lost, not memory)
    AddInventoryBytes(-static_cast<int64_t>(size_before));
    return;
  }
  Assembly& b = it->second;
  if (w.ok) {
    b.header = std::move(w.header);
    b.container_id = std::move(w.container_id);
    b.error = std::move(w.error);
    b.entry_count += w.entries;
    ++b.next_chunk;
  }
  AddInventoryBytes(static_cast<int64_t>(b.size()) - static_cast<int64_t>(size_before));
  if (!w.ok) {
    FailAssembly(c.command_id, &b, "malformed", w.ok.error());
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

// This stream's share of the replies being joined, and all streams'.
void IngestSession::AddInventoryBytes(int64_t delta) {
  inventory_bytes_ += static_cast<uint64_t>(delta);
  store_->AddInventoryBytes(delta);
}

// The command's reply is discarded from here on (its later chunks too); on_inventory hears
// why, so the command is a failure, not a wait for the timeout.
void IngestSession::FailAssembly(uint64_t command_id, Assembly* a, const std::string& reason,
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

// Commands asked longer than inventory_timeout ago are forgotten (detection has given up on
// them too); a partly received reply is counted as incomplete.
void IngestSession::ExpireInventories(Clock::time_point now) {
  std::erase_if(inventories_, [&](const auto& kv) {
    const Assembly& a = kv.second;
    if (now - a.asked < opt_->inventory_timeout) return false;
    if (a.next_chunk > 0 && a.failed.empty()) {
      Discard(kv.first, "incomplete", "no last chunk within the inventory timeout");
    }
    AddInventoryBytes(-static_cast<int64_t>(a.size()));
    return true;
  });
}

// Counts a discarded chunk for the node; logs the 1st, 2nd, 4th, 8th, ... of a reason, so
// that a flood costs no log volume.
void IngestSession::Discard(uint64_t command_id, const std::string& reason,
                            const std::string& why) {
  const std::string& node = node_.empty() ? peer_ : node_;
  const uint64_t n = store_->CountInventoryDiscard(node, reason);
  if ((n & (n - 1)) == 0) {
    LogWarn("node %s: inventory reply chunk to command %llu discarded (%s: %s); %llu %s "
            "discarded from this node\n",
            node.c_str(), static_cast<unsigned long long>(command_id), reason.c_str(),
            why.c_str(), static_cast<unsigned long long>(n), reason.c_str());
  }
}

void IngestSession::DeliverReady() {
  for (auto& [command_id, inv] : ready_) store_->OnInventory(node_, command_id, std::move(inv));
  ready_.clear();
}

void IngestSession::End(bool cancelled, const std::string& finish_text) {
  for (const auto& [command_id, a] : inventories_) {
    if (a.next_chunk > 0 && a.failed.empty()) {
      Discard(command_id, "incomplete", "the stream ended before its last chunk");
    }
  }
  AddInventoryBytes(-static_cast<int64_t>(inventory_bytes_));
  if (hello_) {
    store_->NodeDisconnected(node_);
    auto n = store_->Node(node_);
    Log("node %s disconnected (%s): stream stored %llu, duplicates %llu; node streams %u, "
        "stored %llu",
        node_.c_str(), cancelled ? "cancelled" : finish_text.c_str(), static_cast<unsigned long long>(stored_),
        static_cast<unsigned long long>(duplicates_), n ? n->connected_streams : 0,
        static_cast<unsigned long long>(n ? n->events_stored : 0));
  } else if (!finish_text.empty() && finish_text != "OK") {
    Log("stream from %s ended before Hello: %s", peer_.c_str(), finish_text.c_str());
  }
}

}  // namespace driftwatch
