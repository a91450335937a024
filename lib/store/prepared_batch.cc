#include "lib/store/prepared_batch.h"

#include <climits>

#include "lib/event/event_view.h"
#include "lib/event/wire_format.h"

namespace driftwatch {
namespace {

// Appends `msg` without its top-level fields `drop_a` and `drop_b`, bytes otherwise as they
// are. False for wire data it does not walk (groups, truncation): the caller re-serializes.
bool AppendWithoutFields(std::string_view msg, uint32_t drop_a, uint32_t drop_b,
                         std::string* out) {
  const size_t start = out->size();
  while (!msg.empty()) {
    const char* field_begin = msg.data();
    uint64_t field = 0, wire_type = 0, value = 0;
    std::string_view bytes;
    if (!wire::NextField(&msg, &field, &wire_type, &value, &bytes))
      return out->resize(start), false;
    if (field != drop_a && field != drop_b) {
      out->append(field_begin, static_cast<size_t>(msg.data() - field_begin));
    }
  }
  return true;
}

}  // namespace

std::string_view EventKind(const v1::Event& ev) { return KindName(KindOf(ev)); }

Result<> ValidateEvent(const v1::Event& ev) {
  if (!ev.has_id()) return std::unexpected(Error::InvalidInput("id missing"));
  if (ev.id().seq() == 0) return std::unexpected(Error::InvalidInput("id.seq is 0 (sequence numbers start at 1)"));
  if (ev.id().seq() > static_cast<uint64_t>(INT64_MAX)) {
    return std::unexpected(Error::InvalidInput("id.seq is larger than 2^63-1"));
  }
  if (ev.id().boot_id().size() > 128) return std::unexpected(Error::InvalidInput("id.boot_id longer than 128 bytes"));
  if (ev.time_ns() < 0) return std::unexpected(Error::InvalidInput("time_ns is negative"));
  if (ev.container_id().size() > 256) {
    return std::unexpected(Error::InvalidInput("container_id longer than 256 bytes"));
  }
  if (KindOf(ev) == Kind::kNone) return std::unexpected(Error::InvalidInput("body missing (none of " + KindNames() + ")"));
  if (ev.has_container() && ev.container().id().empty()) {
    return std::unexpected(Error::InvalidInput("container.id is empty"));
  }
  return {};
}

int EventKindNumber(std::string_view kind) {
  std::optional<Kind> k = ParseKind(kind);
  return k ? KindFieldNumber(*k) : 0;
}

Result<PreparedBatch> PrepareEncodedBatch(
    const std::string& node, std::span<const std::string_view> events) {
  PreparedBatch b;
  b.node = node;
  b.events.reserve(events.size());
  size_t total = 0;
  for (std::string_view e : events) total += e.size();
  b.data.reserve(total);
  // Parsed into an arena reset per event: validation costs no malloc per field.
  constexpr size_t kBlock = 16384;
  std::unique_ptr<char[]> block(new char[kBlock]);
  google::protobuf::ArenaOptions ao;
  ao.initial_block = block.get();
  ao.initial_block_size = kBlock;
  google::protobuf::Arena arena(ao);
  for (size_t i = 0; i < events.size(); ++i) {
    const std::string_view raw = events[i];
    arena.Reset();
    auto* ev = google::protobuf::Arena::CreateMessage<v1::Event>(&arena);
    if (raw.size() > INT32_MAX || !ev->ParseFromArray(raw.data(), static_cast<int>(raw.size()))) {
      return std::unexpected(Error::InvalidInput("event " + std::to_string(i) +
                                                 ": does not parse as driftwatch.v1.Event"));
    }
    if (auto ok = ValidateEvent(*ev); !ok) {
      return std::unexpected(ok.error().Prefix("event " + std::to_string(i)));
    }
    if (b.data.size() + raw.size() + 4096 > UINT32_MAX) {
      return std::unexpected(
          Error::InvalidInput("event " + std::to_string(i) + ": batch larger than 4 GiB"));
    }
    PreparedEvent& p = b.events.emplace_back();
    const v1::EventId& id = ev->id();
    // Runs and containers: a batch usually has one of each; the last one is checked first.
    auto run = std::find_if(b.runs.rbegin(), b.runs.rend(), [&](const PreparedRun& r) {
      return r.sensor_start_ns == id.sensor_start_ns() && r.boot_id == id.boot_id();
    });
    if (run == b.runs.rend()) {
      b.runs.push_back(PreparedRun{id.boot_id(), id.sensor_start_ns()});
      p.run = static_cast<uint32_t>(b.runs.size() - 1);
    } else {
      p.run = static_cast<uint32_t>(b.runs.rend() - run - 1);
    }
    auto c = std::find(b.containers.rbegin(), b.containers.rend(), ev->container_id());
    if (c == b.containers.rend()) {
      b.containers.push_back(ev->container_id());
      p.container = static_cast<uint32_t>(b.containers.size() - 1);
    } else {
      p.container = static_cast<uint32_t>(b.containers.rend() - c - 1);
    }
    p.seq = id.seq();
    p.time_ns = ev->time_ns();
    p.kind = KindFieldNumber(KindOf(*ev));
    p.payload_offset = static_cast<uint32_t>(b.data.size());
    if (!AppendWithoutFields(raw, v1::Event::kIdFieldNumber, v1::Event::kContainerIdFieldNumber,
                             &b.data)) {
      ev->clear_id();
      ev->clear_container_id();
      ev->AppendToString(&b.data);
    }
    p.payload_size = static_cast<uint32_t>(b.data.size() - p.payload_offset);
    if (ev->has_container()) {
      p.has_info = true;
      p.info_offset = static_cast<uint32_t>(b.data.size());
      ev->container().AppendToString(&b.data);
      p.info_size = static_cast<uint32_t>(b.data.size() - p.info_offset);
    }
  }
  return b;
}

size_t PreparedBatch::MemoryBytes() const {
  size_t n = sizeof(PreparedBatch) + node.capacity() + data.capacity() +
             events.capacity() * sizeof(PreparedEvent);
  for (const std::string& c : containers) n += sizeof(std::string) + c.capacity();
  for (const PreparedRun& r : runs) n += sizeof(PreparedRun) + r.boot_id.capacity();
  return n;
}

bool DecodePreparedEvent(const PreparedBatch& b, size_t i, v1::Event* out) {
  if (i >= b.events.size()) return false;
  const PreparedEvent& e = b.events[i];
  const std::string_view p = b.payload(e);
  if (!out->ParseFromArray(p.data(), static_cast<int>(p.size()))) return false;
  v1::EventId* id = out->mutable_id();
  id->set_node(b.node);
  id->set_boot_id(b.runs[e.run].boot_id);
  id->set_sensor_start_ns(b.runs[e.run].sensor_start_ns);
  id->set_seq(e.seq);
  out->set_container_id(b.containers[e.container]);
  return true;
}

Result<PreparedBatch> PrepareBatch(
    const std::string& node, google::protobuf::RepeatedPtrField<v1::Event>* events) {
  std::vector<std::string> bytes;
  bytes.reserve(static_cast<size_t>(events->size()));
  for (const v1::Event& ev : *events) bytes.push_back(ev.SerializeAsString());
  std::vector<std::string_view> views(bytes.begin(), bytes.end());
  return PrepareEncodedBatch(node, views);
}

}  // namespace driftwatch
