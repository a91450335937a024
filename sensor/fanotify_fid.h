// fanotify_fid: the events of one read() of a fanotify group, and the information records of
// one event in FID mode (FAN_REPORT_DFID_NAME), walked from the bytes the kernel returned.
// Kept apart from the watcher so that it can be fuzzed (fuzz/fanotify_fid_fuzz.cc).
//
// The kernel pads FID events to 4 bytes only, so an event's fanotify_event_metadata (8-byte
// aligned: it holds a __u64) and its info headers may sit misaligned in the read buffer:
// reading them through a struct pointer (FAN_EVENT_OK / FAN_EVENT_NEXT do) is undefined
// behaviour. Everything here is copied out with memcpy instead.
//
// Thread-safety: pure functions; they read only the bytes given.
#pragma once

#include <fcntl.h>  // struct file_handle, MAX_HANDLE_SZ
#include <sys/fanotify.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace driftwatch::sensor {

// The event at `*off` in the `len` bytes of `buf`: its metadata copied into `*md`, `*ev` set
// to its first byte and `*off` advanced past it. False (nothing changed) when no whole event
// starts there (FAN_EVENT_OK's checks: room for the metadata, event_len at least that and
// within the buffer).
inline bool NextFanotifyEvent(const char* buf, size_t len, size_t* off,
                              fanotify_event_metadata* md, const char** ev) {
  if (*off > len || len - *off < FAN_EVENT_METADATA_LEN) return false;
  fanotify_event_metadata m;
  std::memcpy(&m, buf + *off, sizeof m);
  if (m.event_len < FAN_EVENT_METADATA_LEN || m.event_len > len - *off) return false;
  *md = m;
  *ev = buf + *off;
  *off += m.event_len;
  return true;
}

// A directory handle and an entry name, from a DFID_NAME, OLD_DFID_NAME or NEW_DFID_NAME
// record. Pointers and the name are views into the event.
struct FidName {
  uint64_t fsid = 0;             // the record's fsid, as statfs f_fsid packs it
  const char* handle = nullptr;  // struct file_handle, possibly unaligned; null: no record
  size_t handle_len = 0;         // sizeof(file_handle) + its handle_bytes (<= MAX_HANDLE_SZ)
  std::string_view name;
};

struct FidNames {
  FidName cur;  // the last DFID_NAME or NEW_DFID_NAME record
  FidName old;  // the last OLD_DFID_NAME record (FAN_RENAME)
  // The first malformed field met in the event's records, named; null when none. The kernel
  // writes these bytes, so this is a kernel (or sensor) bug to count, never to trust.
  const char* error = nullptr;
};

// The name records of the event that starts at `ev` (its fanotify_event_metadata), whose
// event_len bytes must be readable (FAN_EVENT_OK). The event may be only 4-byte aligned (the
// kernel pads FID events to 4 bytes), so nothing is read through a struct pointer. Records
// of other types (FID, PIDFD, ERROR, types to come) are skipped. A name record too short for
// its handle, or whose handle_bytes leave no room for a name, is skipped with `error` set; a
// record length that is below a header or runs past the event, or bytes too few for a header
// left at the end, end the walk with `error` set.
inline FidNames WalkFidRecords(const char* ev) {
  FidNames out;
  auto fail = [&out](const char* why) {
    if (!out.error) out.error = why;
  };
  fanotify_event_metadata md;
  std::memcpy(&md, ev, sizeof md);
  const size_t end = md.event_len;
  size_t pos = md.metadata_len;
  if (pos < FAN_EVENT_METADATA_LEN || pos > end) {
    fail("fanotify_event_metadata.metadata_len is below the metadata's size or past event_len");
    return out;
  }
  while (pos + sizeof(fanotify_event_info_header) <= end) {
    const char* const p = ev + pos;
    fanotify_event_info_header hdr;
    std::memcpy(&hdr, p, sizeof hdr);
    if (hdr.len < sizeof hdr) {
      fail("fanotify_event_info_header.len is below the header's size");
      break;
    }
    if (hdr.len > end - pos) {
      fail("fanotify_event_info_header.len runs past the event's event_len");
      break;
    }
    pos += hdr.len;
    if (hdr.info_type != FAN_EVENT_INFO_TYPE_DFID_NAME &&
        hdr.info_type != FAN_EVENT_INFO_TYPE_OLD_DFID_NAME &&
        hdr.info_type != FAN_EVENT_INFO_TYPE_NEW_DFID_NAME) {
      continue;
    }
    if (hdr.len < sizeof(fanotify_event_info_fid) + sizeof(file_handle)) {
      fail("fanotify_event_info_header.len of a name record is too short for its file_handle");
      continue;
    }
    FidName n;
    std::memcpy(&n.fsid, p + offsetof(fanotify_event_info_fid, fsid), sizeof n.fsid);
    n.handle = p + sizeof(fanotify_event_info_fid);
    unsigned int hbytes = 0;
    std::memcpy(&hbytes, n.handle + offsetof(file_handle, handle_bytes), sizeof hbytes);
    if (hbytes > MAX_HANDLE_SZ) {
      fail("file_handle.handle_bytes is over MAX_HANDLE_SZ");
      continue;
    }
    const size_t name_at = sizeof(fanotify_event_info_fid) + sizeof(file_handle) + hbytes;
    if (name_at >= hdr.len) {
      fail("file_handle.handle_bytes leaves no room for the name in the record");
      continue;
    }
    const char* name = p + name_at;
    n.handle_len = sizeof(file_handle) + hbytes;
    n.name = std::string_view(name, strnlen(name, hdr.len - name_at));
    (hdr.info_type == FAN_EVENT_INFO_TYPE_OLD_DFID_NAME ? out.old : out.cur) = n;
  }
  // Records are padded to 4 bytes and fill the event: anything left is a cut record.
  if (!out.error && pos < end) fail("bytes after the last record, fewer than an info header");
  return out;
}

// What an event of `mask` is about, from its records: `entry` is the name it reports (the
// new side of a rename, else the old), `old` the old side of a rename; `cur` the new side,
// unset for FAN_MOVED_FROM (pre-5.17 kernels report its old side alone, as DFID_NAME).
// `error`: the walk's, else why no entry can be used (no name record, an empty name); the
// event is dropped (and counted) when `entry` is unusable, counted but kept otherwise.
struct FidEvent {
  FidName cur, old, entry;
  const char* error = nullptr;
  bool usable() const { return entry.handle && !entry.name.empty(); }
};
inline FidEvent ResolveFidEvent(uint64_t mask, const FidNames& names) {
  FidEvent e;
  e.cur = names.cur;
  e.old = names.old;
  if (mask & FAN_MOVED_FROM) {
    e.old = e.cur;
    e.cur = FidName{};
  }
  e.entry = e.cur.handle ? e.cur : e.old;
  e.error = names.error;
  if (!e.error && !e.entry.handle) e.error = "no DFID_NAME, NEW_DFID_NAME or OLD_DFID_NAME record";
  if (!e.error && e.entry.name.empty()) e.error = "the name record's name is empty";
  return e;
}

}  // namespace driftwatch::sensor
