// The kernel end of the live audit feed: one NETLINK_AUDIT socket (libmnl), either
//   observer: joined to the read-only multicast group AUDIT_NLGRP_READLOG, beside any
//             audit daemon (needs CAP_AUDIT_READ); or
//   owner:    registered as the audit daemon (records arrive unicast; needs
//             CAP_AUDIT_CONTROL).
//
// Thread-safety: Receive() and ReceiveMany() belong to one reader thread; SendGetStatus() may be called
// from another thread at the same time (a sendto on the socket). Everything else is for
// the owning thread before the reader starts or after it stopped.
#pragma once

#include <linux/audit.h>
#include <sys/socket.h>

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <vector>

struct mnl_socket;

namespace driftwatch::sensor {

enum class AuditMode { kAuto, kOwner, kObserver };
const char* AuditModeName(AuditMode m);

class AuditNetlink {
 public:
  ~AuditNetlink();
  AuditNetlink(const AuditNetlink&) = delete;
  AuditNetlink& operator=(const AuditNetlink&) = delete;

  // Opens a socket with a receive buffer of `rcvbuf` bytes. For kObserver it joins the
  // multicast group; for kOwner it does not register yet (see Register).
  static std::expected<std::unique_ptr<AuditNetlink>, std::string> Open(AuditMode mode,
                                                                        int rcvbuf);

  // Synchronous AUDIT_GET: only while no reader thread runs.
  std::expected<audit_status, std::string> GetStatus();
  // Synchronous AUDIT_SET of the fields in `s.mask`, acknowledged by the kernel.
  std::expected<void, std::string> SetStatus(const audit_status& s);

  // Asynchronous AUDIT_GET: the reply comes back through Receive() as a message of type
  // AUDIT_GET carrying an audit_status.
  bool SendGetStatus();

  // Waits up to timeout_ms for a datagram. Returns its length, 0 on timeout, or -errno
  // (-ENOBUFS when the kernel dropped messages because the receive buffer was full).
  long Receive(char* buf, size_t len, int timeout_ms);

  // Up to `count` datagrams at once (recvmmsg), into `count` slots of `slot` bytes each
  // at `bufs`; lens[i] gets each length. Waits up to timeout_ms only when none is ready.
  // Returns how many arrived, 0 on timeout, or -errno (-ENOBUFS as for Receive).
  int ReceiveMany(char* bufs, size_t slot, size_t* lens, int count, int timeout_ms);

  AuditMode mode() const { return mode_; }
  int fd() const;

 private:
  AuditNetlink(mnl_socket* nl, AuditMode mode) : nl_(nl), mode_(mode) {}
  std::expected<void, std::string> Request(uint16_t type, const void* data, size_t len,
                                           void* reply, size_t reply_len, uint16_t reply_type);

  mnl_socket* nl_;
  AuditMode mode_;
  uint32_t seq_ = 1;
  // ReceiveMany's headers, kept between calls: it runs for every batch of records.
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iov_;
};

}  // namespace driftwatch::sensor
