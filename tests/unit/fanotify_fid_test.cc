// The walk over a FID-mode fanotify event's info records (sensor/fanotify_fid.h): events
// built byte by byte as the kernel lays them out, and hostile ones (lengths that overrun,
// zero lengths, truncated records, unknown types), each malformed one with its field named.
#include "sensor/fanotify_fid.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace driftwatch::sensor {
namespace {

template <typename T>
void Put(std::string* s, const T& v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof v);
}

// One info record: header, fsid, file_handle (handle_bytes as given, `handle` bytes of it
// present), then the name with its NUL, padded to 4 bytes. `len`: the header's length, or
// 0 for the real one.
std::string Record(uint8_t type, const std::string& name, uint32_t handle_bytes = 8,
                   size_t handle = 8, uint16_t len = 0, uint64_t fsid = 0x1234) {
  std::string body;
  Put(&body, fsid);
  Put(&body, handle_bytes);
  Put(&body, int32_t{1});  // handle_type
  body.append(handle, '\x07');
  body.append(name);
  body.push_back('\0');
  while ((sizeof(fanotify_event_info_header) + body.size()) % 4) body.push_back('\0');
  fanotify_event_info_header h{};
  h.info_type = type;
  h.len = len ? len : static_cast<uint16_t>(sizeof h + body.size());
  std::string out;
  Put(&out, h);
  return out + body;
}

// A bare info header.
std::string Header(uint8_t type, uint16_t len) {
  fanotify_event_info_header h{};
  h.info_type = type;
  h.len = len;
  std::string out;
  Put(&out, h);
  return out;
}

// A record of any type with `payload` bytes after its header.
std::string Opaque(uint8_t type, size_t payload, uint16_t len = 0) {
  return Header(type, len ? len : static_cast<uint16_t>(sizeof(fanotify_event_info_header) +
                                                        payload)) +
         std::string(payload, '\0');
}

// An event: metadata then `records`; `event_len`/`metadata_len` 0: the real ones.
std::string Event(const std::string& records, uint32_t event_len = 0, uint8_t metadata_len = 0) {
  fanotify_event_metadata md{};
  md.event_len = event_len ? event_len : static_cast<uint32_t>(sizeof md + records.size());
  md.vers = FANOTIFY_METADATA_VERSION;
  md.metadata_len = metadata_len ? metadata_len : sizeof md;
  md.mask = FAN_CLOSE_WRITE;
  md.fd = FAN_NOFD;
  std::string out;
  Put(&out, md);
  return out + records;
}

constexpr uint8_t kDfid = FAN_EVENT_INFO_TYPE_DFID_NAME;
constexpr uint8_t kOld = FAN_EVENT_INFO_TYPE_OLD_DFID_NAME;
constexpr uint8_t kNew = FAN_EVENT_INFO_TYPE_NEW_DFID_NAME;

struct Row {
  std::string name;
  std::string event;  // readable up to event_len at least (as FAN_EVENT_OK checks)
  std::string cur, old;  // names found; "-": no record
  std::string error;     // "" none, else a part of it
};

TEST(WalkFidRecords, Table) {
  const std::string big(200, 'n');
  const std::vector<Row> rows = {
      {"one DFID_NAME", Event(Record(kDfid, "passwd")), "passwd", "-", ""},
      {"rename: OLD and NEW", Event(Record(kOld, "a") + Record(kNew, "b")), "b", "a", ""},
      {"a long name", Event(Record(kDfid, big)), big, "-", ""},
      {"no records", Event(""), "-", "-", ""},
      {"unknown types skipped", Event(Opaque(99, 4) + Opaque(FAN_EVENT_INFO_TYPE_PIDFD, 4) +
                                      Record(kDfid, "x")),
       "x", "-", ""},
      {"many unknown records", Event([] {
         std::string r;
         for (int i = 0; i < 1000; ++i) r += Opaque(200, 0);
         return r;
       }() + Record(kDfid, "y")),
       "y", "-", ""},
      {"a name with no NUL runs to the record's end", [] {
         std::string r = Record(kDfid, "abc");  // "abc\0" ends the record: no padding
         r.back() = 'z';
         return Event(r);
       }(),
       "abcz", "-", ""},
      // Hostile
      {"zero length", Event(Header(kDfid, 0) + Record(kDfid, "x")), "-", "-",
       "fanotify_event_info_header.len is below the header's size"},
      {"length below the header", Event(Opaque(kDfid, 0, 2) + Record(kDfid, "x")), "-", "-",
       "fanotify_event_info_header.len is below the header's size"},
      {"length past event_len", Event(Record(kDfid, "x", 8, 8, 400)), "-", "-",
       "fanotify_event_info_header.len runs past the event's event_len"},
      {"a good record, then one that overruns",
       Event(Record(kDfid, "ok") + Opaque(kNew, 4, 64)), "ok", "-",
       "fanotify_event_info_header.len runs past"},
      {"record too short for a file_handle", Event(Opaque(kDfid, 12) + Record(kDfid, "x")), "x",
       "-", "fanotify_event_info_header.len of a name record is too short for its file_handle"},
      {"handle_bytes over MAX_HANDLE_SZ", Event(Record(kDfid, "x", MAX_HANDLE_SZ + 1)), "-", "-",
       "file_handle.handle_bytes is over MAX_HANDLE_SZ"},
      {"huge handle_bytes", Event(Record(kOld, "x", 0xffffffffu)), "-", "-",
       "file_handle.handle_bytes is over MAX_HANDLE_SZ"},
      {"handle_bytes leave no room for the name", Event(Record(kDfid, "x", 64, 8)), "-", "-",
       "file_handle.handle_bytes leaves no room for the name"},
      {"metadata_len past event_len", Event(Record(kDfid, "x"), 0, 255), "-", "-",
       "fanotify_event_metadata.metadata_len"},
      {"metadata_len below the metadata", Event(Record(kDfid, "x"), 0, 8), "-", "-",
       "fanotify_event_metadata.metadata_len"},
      {"truncated: event_len ends inside a record",
       Event(Record(kDfid, "x") + Record(kNew, "y"), sizeof(fanotify_event_metadata) +
                                                          Record(kDfid, "x").size() + 6),
       "x", "-", "fanotify_event_info_header.len runs past"},
      {"truncated: event_len ends inside a header",
       Event(Record(kDfid, "x") + Record(kNew, "y"), sizeof(fanotify_event_metadata) +
                                                          Record(kDfid, "x").size() + 2),
       "x", "-", "bytes after the last record"},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(r.name);
    // Copied to a block of its own at an offset of 4 (the kernel pads FID events to 4 bytes
    // only): the walk must not need alignment.
    std::vector<char> block(r.event.size() + 4);
    std::memcpy(block.data() + 4, r.event.data(), r.event.size());
    const FidNames n = WalkFidRecords(block.data() + 4);
    auto name = [](const FidName& f) {
      return f.handle ? std::string(f.name) : std::string("-");
    };
    EXPECT_EQ(name(n.cur), r.cur);
    EXPECT_EQ(name(n.old), r.old);
    if (r.error.empty()) {
      EXPECT_EQ(n.error, nullptr) << n.error;
    } else {
      ASSERT_NE(n.error, nullptr);
      EXPECT_NE(std::string(n.error).find(r.error), std::string::npos) << n.error;
    }
    for (const FidName* f : {&n.cur, &n.old}) {
      if (!f->handle) continue;
      EXPECT_EQ(f->fsid, 0x1234u);
      EXPECT_EQ(f->handle_len, sizeof(file_handle) + 8);
      EXPECT_LE(f->name.data() + f->name.size(), block.data() + 4 + r.event.size());
    }
  }
}

TEST(ResolveFidEvent, Table) {
  struct R {
    std::string name;
    uint64_t mask;
    std::string event;
    std::string entry, cur, old;  // "-": unset
    bool usable;
    std::string error;
  };
  const std::vector<R> rows = {
      {"a write", FAN_CLOSE_WRITE, Event(Record(kDfid, "f")), "f", "f", "-", true, ""},
      {"a rename", FAN_RENAME, Event(Record(kOld, "a") + Record(kNew, "b")), "b", "b", "a",
       true, ""},
      {"moved from (pre-5.17: the old side as DFID_NAME)", FAN_MOVED_FROM,
       Event(Record(kDfid, "gone")), "gone", "-", "gone", true, ""},
      {"no name record", FAN_CLOSE_WRITE, Event(Opaque(99, 4)), "-", "-", "-", false,
       "no DFID_NAME, NEW_DFID_NAME or OLD_DFID_NAME record"},
      {"an empty name", FAN_CREATE, Event(Record(kDfid, "")), "", "", "-", false,
       "the name record's name is empty"},
      {"malformed, yet a name: kept, the error counted", FAN_CREATE,
       Event(Opaque(kDfid, 12) + Record(kDfid, "x")), "x", "x", "-", true,
       "too short for its file_handle"},
      {"malformed, no name: dropped", FAN_CREATE, Event(Opaque(kDfid, 0, 1)), "-", "-", "-",
       false, "below the header's size"},
  };
  for (const R& r : rows) {
    SCOPED_TRACE(r.name);
    std::vector<char> block(r.event.begin(), r.event.end());
    const FidEvent e = ResolveFidEvent(r.mask, WalkFidRecords(block.data()));
    auto name = [](const FidName& f) {
      return f.handle ? std::string(f.name) : std::string("-");
    };
    EXPECT_EQ(name(e.entry), r.entry);
    EXPECT_EQ(name(e.cur), r.cur);
    EXPECT_EQ(name(e.old), r.old);
    EXPECT_EQ(e.usable(), r.usable);
    if (r.error.empty()) {
      EXPECT_EQ(e.error, nullptr) << e.error;
    } else {
      ASSERT_NE(e.error, nullptr);
      EXPECT_NE(std::string(e.error).find(r.error), std::string::npos) << e.error;
    }
  }
}

}  // namespace
}  // namespace driftwatch::sensor
