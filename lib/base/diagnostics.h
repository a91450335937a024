// Bad input is reported, never fatal: each problem is named with where it was found
// (file:line, or "netlink"), printed up to a cap, and counted for the closing summary.
// Reasons quote the input (audit records a process in a container wrote into): printed
// escaped (lib/base/terminal_text.h).
// Thread-compatible: one Diagnostics per pipeline thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "lib/base/terminal_text.h"

namespace driftwatch {

class Diagnostics {
 public:
  explicit Diagnostics(std::FILE* out = stderr, uint64_t max_printed = 1000)
      : out_(out), max_printed_(max_printed) {}

  void Report(const std::string* source, uint64_t line, std::string_view reason) {
    ++count_;
    if (out_ == nullptr) return;
    if (count_ <= max_printed_) {
      std::fprintf(out_, "%s:%llu: %s\n",
                   source ? TerminalEscape(*source).c_str() : "input",
                   static_cast<unsigned long long>(line), TerminalEscape(reason).c_str());
    } else if (count_ == max_printed_ + 1) {
      std::fprintf(out_, "(further input errors are counted, not printed)\n");
    }
  }
  uint64_t count() const { return count_; }

 private:
  std::FILE* out_;
  uint64_t max_printed_;
  uint64_t count_ = 0;
};

}  // namespace driftwatch
