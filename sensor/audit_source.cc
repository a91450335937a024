#include "sensor/audit_source.h"
#include "lib/base/clock.h"
#include "lib/base/log.h"

#include <linux/audit.h>
#include <linux/netlink.h>

#include <pthread.h>
#include <time.h>

#include <chrono>
#include <cerrno>
#include <cstring>

namespace driftwatch::sensor {
namespace {

const std::string kNetlinkSource = "netlink";

}  // namespace

AuditSource::AuditSource(AuditNetlink* nl, Options options, Sink sink, BatchBegin batch_begin)
    : nl_(nl), options_(options), sink_(std::move(sink)), batch_begin_(std::move(batch_begin)) {}

AuditSource::~AuditSource() { Stop(); }

void AuditSource::Start() {
  stop_ = false;
  reader_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "dw-audit-read");
    ReadLoop();
  });
  parser_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "dw-audit-parse");
    ParseLoop();
  });
}

void AuditSource::Stop() {
  stop_ = true;
  bool was_running = reader_.joinable();
  if (reader_.joinable()) reader_.join();
  if (parser_.joinable()) parser_.join();
  // A last reading of the kernel's lost counter, now that nobody else reads the socket.
  if (was_running) {
    if (auto st = nl_->GetStatus()) NoteKernelStatus(*st);
  }
}

void AuditSource::NoteKernelStatus(const audit_status& st) {
  uint64_t lost = st.lost, expected = UINT64_MAX;  // the first reading is the baseline
  if (counters_.kernel_lost_start.compare_exchange_strong(expected, lost)) {
    counters_.kernel_lost_now = lost;
    return;
  }
  uint64_t prev = counters_.kernel_lost_now.exchange(lost);
  // Lower than before: reset (or wrapped), counting from 0 again since.
  counters_.kernel_lost_growth += lost >= prev ? lost - prev : lost;
}

void AuditSource::Publish(Batch* b) {
  if (b->recs.empty()) return;
  {
    MutexLock lock(mu_);
    if (queued_records_ + b->recs.size() > options_.queue_records) {
      counters_.queue_drops += b->recs.size();  // parser behind: drop, count, go on
    } else {
      queued_records_ += b->recs.size();
      queue_.push_back(std::move(*b));
    }
  }
  cv_.NotifyOne();
  *b = Batch();
  b->bytes.reserve(256 << 10);
}

void AuditSource::ReadLoop() {
  // One datagram holds one audit record (at most ~9 KB): 16 KB slots, 64 at a time.
  constexpr size_t kSlot = 16 << 10;
  constexpr int kSlots = 64;
  std::vector<char> bufs(kSlot * kSlots);
  size_t lens[kSlots];
  Batch batch;
  batch.bytes.reserve(256 << 10);
  auto last_poll = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto batch_start = last_poll;  // when the batch's first record arrived
  const auto publish_after = std::chrono::milliseconds(options_.publish_ms);
  while (!stop_) {
    auto now = std::chrono::steady_clock::now();
    if (now - last_poll >= std::chrono::milliseconds(options_.status_poll_ms)) {
      nl_->SendGetStatus();
      last_poll = now;
    }
    // Block only when idle; with a batch pending, just look.
    int n = nl_->ReceiveMany(bufs.data(), kSlot, lens, kSlots, batch.recs.empty() ? 100 : 0);
    if (n == -ENOBUFS) {
      ++counters_.socket_enobufs;
      continue;
    }
    if (n < 0) {
      LogWarn("netlink receive: %s\n", strerror(-n));
      continue;
    }
    if (n > 0 && batch.recs.empty()) batch_start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) {
      const char* dgram = bufs.data() + static_cast<size_t>(i) * kSlot;
      if (lens[i] < NLMSG_HDRLEN) continue;
      const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(dgram);
      // One record per datagram. Its nlmsg_len cannot be trusted: for unicast delivery the
      // kernel leaves the header out of it (multicast copies get it fixed up), so the
      // datagram's own length is the record's.
      size_t len = lens[i] - NLMSG_HDRLEN;
      const char* payload = dgram + NLMSG_HDRLEN;
      if (h->nlmsg_type == AUDIT_GET) {
        audit_status st{};
        std::memcpy(&st, payload, len < sizeof st ? len : sizeof st);
        NoteKernelStatus(st);
        continue;
      }
      if (h->nlmsg_type < AUDIT_FIRST_USER_MSG) continue;  // acks, errors, control replies
      batch.recs.push_back({h->nlmsg_type, {static_cast<uint32_t>(batch.bytes.size()),
                                            static_cast<uint32_t>(len)}});
      batch.bytes.append(payload, len);
    }
    if (batch.recs.empty()) continue;
    if (batch.recs.size() >= 1024 || batch.bytes.size() >= (1u << 20) ||
        std::chrono::steady_clock::now() - batch_start >= publish_after) {
      Publish(&batch);
    } else if (n < kSlots) {
      // Drained: let records pile up in the socket buffer until the batch is due.
      auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
          batch_start + publish_after - std::chrono::steady_clock::now());
      if (left.count() > 0) {
        const timespec nap{0, static_cast<long>(left.count())};
        nanosleep(&nap, nullptr);
      }
    }
  }
  Publish(&batch);
  {
    MutexLock lock(mu_);
    reader_done_ = true;
  }
  cv_.NotifyOne();
}

void AuditSource::ParseLoop() {
  AuditReassembler reassembler(
      options_.reassembly,
      [this](v1::Event& ev) {
        ++counters_.events;
        sink_(ev);
      },
      &diag_);
  // The parser's counts, for readers on other threads.
  auto publish = [&] {
    counters_.evictions = reassembler.stats().evictions;
    counters_.parse_errors = diag_.count();
    counters_.args_capped = reassembler.stats().args_capped;
    counters_.args_dropped_bytes = reassembler.stats().args_dropped_bytes;
  };
  auto last_tick = std::chrono::steady_clock::now();
  for (;;) {
    Batch b;
    bool done = false;
    {
      MutexLock lock(mu_);
      cv_.WaitFor(lock, std::chrono::milliseconds(100),
                  [this]() DW_REQUIRES(mu_) { return !queue_.empty() || reader_done_; });
      if (!queue_.empty()) {
        b = std::move(queue_.front());
        queue_.pop_front();
        queued_records_ -= b.recs.size();
      } else {
        done = reader_done_;
      }
    }
    if (!b.recs.empty()) batch_begin_();
    for (const auto& [type, span] : b.recs) {
      AuditRecord r;
      std::string_view payload(b.bytes.data() + span.first, span.second);
      if (const char* err = ParseNetlinkRecord(type, payload, &r)) {
        diag_.Report(&kNetlinkSource, 0, err);
        continue;
      }
      r.source = &kNetlinkSource;
      reassembler.Push(r);
    }
    counters_.records = reassembler.stats().records;
    auto now = std::chrono::steady_clock::now();
    if (now - last_tick >= std::chrono::milliseconds(100) || done) {
      reassembler.Expire(static_cast<uint64_t>(NowNs() / 1'000'000));
      publish();
      last_tick = now;
    }
    if (done) break;
  }
  reassembler.Flush();
  publish();
}

}  // namespace driftwatch::sensor
