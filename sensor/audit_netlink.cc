#include "sensor/audit_netlink.h"

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace driftwatch::sensor {

const char* AuditModeName(AuditMode m) {
  switch (m) {
    case AuditMode::kAuto: return "auto";
    case AuditMode::kOwner: return "owner";
    case AuditMode::kObserver: return "observer";
  }
  return "?";
}

AuditNetlink::~AuditNetlink() {
  if (nl_ != nullptr) mnl_socket_close(nl_);
}

int AuditNetlink::fd() const { return mnl_socket_get_fd(nl_); }

std::expected<std::unique_ptr<AuditNetlink>, std::string> AuditNetlink::Open(AuditMode mode,
                                                                             int rcvbuf) {
  mnl_socket* nl = mnl_socket_open(NETLINK_AUDIT);
  if (nl == nullptr) return std::unexpected(std::string("netlink audit socket: ") + strerror(errno));
  std::unique_ptr<AuditNetlink> self(new AuditNetlink(nl, mode));
  int fd = mnl_socket_get_fd(nl);
  // SO_RCVBUFFORCE passes net.core.rmem_max as root; fall back to what we may set.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  unsigned groups = mode == AuditMode::kObserver ? (1u << (AUDIT_NLGRP_READLOG - 1)) : 0;
  if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0) {
    std::string why = strerror(errno);
    if (mode == AuditMode::kObserver) {
      return std::unexpected("cannot join the audit multicast group (needs CAP_AUDIT_READ): " +
                             why);
    }
    return std::unexpected("netlink bind: " + why);
  }
  return self;
}

std::expected<void, std::string> AuditNetlink::Request(uint16_t type, const void* data,
                                                       size_t len, void* reply,
                                                       size_t reply_len, uint16_t reply_type) {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = ++seq_;
  if (len > 0) std::memcpy(mnl_nlmsg_put_extra_header(nlh, len), data, len);
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) {
    return std::unexpected(std::string("netlink send: ") + strerror(errno));
  }
  // Wait for the ack (and the reply, for AUDIT_GET). Records that arrive meanwhile, in
  // owner or observer mode, are not ours to read here: a reader thread is not running,
  // and these exchanges happen before it starts or after it stopped.
  bool got_reply = reply == nullptr, got_ack = false;
  for (int tries = 0; tries < 1000 && !(got_reply && got_ack); ++tries) {
    char rbuf[MNL_SOCKET_BUFFER_SIZE * 2];
    long n = Receive(rbuf, sizeof rbuf, 2000);
    if (n == 0) return std::unexpected("no answer from the kernel's audit subsystem");
    if (n == -ENOBUFS) continue;
    if (n < 0) return std::unexpected(std::string("netlink receive: ") + strerror(static_cast<int>(-n)));
    auto* r = reinterpret_cast<nlmsghdr*>(rbuf);
    if (!mnl_nlmsg_ok(r, static_cast<int>(n)) || r->nlmsg_seq != seq_) continue;
    if (r->nlmsg_type == NLMSG_ERROR) {
      auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(r));
      if (err->error != 0) return std::unexpected(std::string(strerror(-err->error)));
      got_ack = true;
    } else if (r->nlmsg_type == reply_type && reply != nullptr) {
      size_t have = mnl_nlmsg_get_payload_len(r);
      std::memset(reply, 0, reply_len);
      std::memcpy(reply, mnl_nlmsg_get_payload(r), have < reply_len ? have : reply_len);
      got_reply = true;
    }
  }
  if (!(got_reply && got_ack)) return std::unexpected("no answer from the kernel's audit subsystem");
  return {};
}

std::expected<audit_status, std::string> AuditNetlink::GetStatus() {
  audit_status s{};
  auto r = Request(AUDIT_GET, nullptr, 0, &s, sizeof s, AUDIT_GET);
  if (!r) return std::unexpected("AUDIT_GET: " + r.error());
  return s;
}

std::expected<void, std::string> AuditNetlink::SetStatus(const audit_status& s) {
  auto r = Request(AUDIT_SET, &s, sizeof s, nullptr, 0, 0);
  if (!r) return std::unexpected("AUDIT_SET: " + r.error());
  return {};
}

bool AuditNetlink::SendGetStatus() {
  char buf[MNL_SOCKET_BUFFER_SIZE];
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = AUDIT_GET;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_seq = 0;
  return mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) >= 0;
}

long AuditNetlink::Receive(char* buf, size_t len, int timeout_ms) {
  pollfd p{fd(), POLLIN, 0};
  int pr = poll(&p, 1, timeout_ms);
  if (pr == 0) return 0;
  if (pr < 0) return errno == EINTR ? 0 : -errno;
  ssize_t n = recv(fd(), buf, len, MSG_DONTWAIT);
  if (n < 0) return (errno == EAGAIN || errno == EINTR) ? 0 : -errno;
  return n;
}

}  // namespace driftwatch::sensor

namespace driftwatch::sensor {

int AuditNetlink::ReceiveMany(char* bufs, size_t slot, size_t* lens, int count, int timeout_ms) {
  // One syscall for many records: the reader's cost per record is what the host pays for.
  if (msgs_.size() < static_cast<size_t>(count)) {
    msgs_.resize(static_cast<size_t>(count));
    iov_.resize(static_cast<size_t>(count));
  }
  for (int i = 0; i < count; ++i) {
    iov_[i] = {bufs + static_cast<size_t>(i) * slot, slot};
    msgs_[i] = {};
    msgs_[i].msg_hdr.msg_iov = &iov_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    int n = recvmmsg(fd(), msgs_.data(), static_cast<unsigned>(count), MSG_DONTWAIT, nullptr);
    if (n > 0) {
      for (int i = 0; i < n; ++i) lens[i] = msgs_[i].msg_len;
      return n;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return -errno;
    if (attempt == 1) break;
    pollfd p{fd(), POLLIN, 0};
    int pr = poll(&p, 1, timeout_ms);
    if (pr <= 0) return pr < 0 && errno != EINTR ? -errno : 0;
  }
  return 0;
}

}  // namespace driftwatch::sensor
