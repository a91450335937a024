// libFuzzer target: a SensorMessage as the collector receives it off the network (any
// client that gets through TLS, or any sensor with --insecure) through the ingest path:
// ScanSensorMessage walks it in the wire format (lib/event/wire_format.h) without a full parse,
// an inventory reply's routing fields are read the same way (ScanInventoryChunk), then a
// batch's events go through PrepareEncodedBatch (parse each on an arena, validate,
// strip id and container_id with the same wire walker) and DecodePreparedEvent, as
// detection reads them back. The scanned message is reused across inputs, as a stream
// reuses its own.
//
// Oracle: where protobuf's own parse of the whole message succeeds too, the scan must agree
// with it (body, batch_id, the events, a Hello's or a reply's bytes parsed in their parts,
// a reply's command, chunk and entry count); the walker may refuse more than protobuf does
// (groups), never less of what it returns.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <google/protobuf/util/message_differencer.h>

#include "collector/ingest_server.h"
#include "fuzz/fuzz_check.h"
#include "lib/store/event_store.h"

namespace dw = driftwatch;
namespace v1 = driftwatch::v1;
using google::protobuf::util::MessageDifferencer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto* scanned = new dw::ScannedSensorMessage();
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto ok = dw::ScanSensorMessage(bytes, scanned);
  if (!ok) {
    DW_FUZZ_CHECK(!ok.error().empty());
    return 0;
  }
  DW_FUZZ_CHECK(scanned->body == v1::SensorMessage::kBatch || scanned->events.empty());
  DW_FUZZ_CHECK(scanned->event_count == scanned->events.size());
  DW_FUZZ_CHECK(scanned->body != v1::SensorMessage::kBatch || scanned->parts.empty());
  for (std::string_view ev : scanned->events) {
    DW_FUZZ_CHECK(ev.data() >= bytes.data() && ev.data() + ev.size() <= bytes.data() + size);
  }
  dw::InventoryChunkScan chunk;
  const bool chunk_ok = scanned->body == v1::SensorMessage::kInventory &&
                        dw::ScanInventoryChunk(scanned->parts, &chunk).has_value();

  v1::SensorMessage full;
  if (full.ParseFromArray(data, static_cast<int>(size))) {
    DW_FUZZ_CHECK(static_cast<int>(full.body_case()) == static_cast<int>(scanned->body));
    if (scanned->body == v1::SensorMessage::kBatch) {
      DW_FUZZ_CHECK(full.batch().batch_id() == scanned->batch_id);
      DW_FUZZ_CHECK(static_cast<size_t>(full.batch().events_size()) == scanned->events.size());
      for (size_t i = 0; i < scanned->events.size(); ++i) {
        v1::Event ev;
        DW_FUZZ_CHECK(ev.ParseFromArray(scanned->events[i].data(),
                                        static_cast<int>(scanned->events[i].size())));
        DW_FUZZ_CHECK(MessageDifferencer::Equals(ev, full.batch().events(static_cast<int>(i))));
      }
    } else if (scanned->body != v1::SensorMessage::BODY_NOT_SET) {
      std::string joined;
      for (std::string_view p : scanned->parts) joined.append(p);
      const google::protobuf::Message& body = scanned->body == v1::SensorMessage::kHello
                                                  ? static_cast<const google::protobuf::Message&>(full.hello())
                                                  : full.inventory();
      std::unique_ptr<google::protobuf::Message> again(body.New());
      DW_FUZZ_CHECK(again->ParseFromString(joined));
      DW_FUZZ_CHECK(MessageDifferencer::Equals(*again, body));
    }
    // The walker refuses groups, which protobuf skips: compared only where it read them.
    if (chunk_ok) {
      const v1::InventoryReply& r = full.inventory();
      DW_FUZZ_CHECK(chunk.command_id == r.command_id());
      DW_FUZZ_CHECK(chunk.chunk_index == r.chunk_index());
      DW_FUZZ_CHECK(chunk.has_last_chunk == r.has_last_chunk());
      DW_FUZZ_CHECK(chunk.last_chunk == r.last_chunk());
      DW_FUZZ_CHECK(chunk.entries == static_cast<uint64_t>(r.entries_size()));
    }
  }

  if (scanned->body != v1::SensorMessage::kBatch) return 0;
  auto batch = dw::PrepareEncodedBatch(
      "fuzz-node", std::span<const std::string_view>(scanned->events.data(),
                                                     scanned->events.size()));
  if (!batch) {
    DW_FUZZ_CHECK(!batch.error().message().empty());
    return 0;
  }
  DW_FUZZ_CHECK(batch->events.size() == scanned->events.size());
  for (size_t i = 0; i < batch->events.size(); ++i) {
    v1::Event ev;
    DW_FUZZ_CHECK(dw::DecodePreparedEvent(*batch, i, &ev));
    v1::Event orig;
    DW_FUZZ_CHECK(orig.ParseFromArray(scanned->events[i].data(),
                                      static_cast<int>(scanned->events[i].size())));
    // What the store keeps and gives back is the event as sent, but for the node (the
    // stream's) and unknown fields (dropped with the id, which the store keeps as columns).
    orig.mutable_id()->set_node("fuzz-node");
    orig.DiscardUnknownFields();
    ev.DiscardUnknownFields();
    DW_FUZZ_CHECK(MessageDifferencer::Equals(ev, orig));
  }
  return 0;
}
