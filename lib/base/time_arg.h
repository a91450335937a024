// time_arg: the times the query commands take (--since, --until): absolute or relative.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include "lib/base/result.h"

namespace driftwatch {

// A time argument: ISO 8601 ("2026-11-28T09:06:20Z", "2026-11-28T09:06:20.5+01:00",
// "2026-11-28" = midnight UTC) or relative to `now_ns` ("30s", "10m", "2h", "7d" ago).
[[nodiscard]] Result<int64_t> ParseTimeArg(std::string_view text,
                                                               int64_t now_ns);
// --since and --until as the query commands take them: each "" (no bound: left unset) or a
// ParseTimeArg text.
[[nodiscard]] Result<> ParseTimeRange(
    std::string_view since, std::string_view until, int64_t now_ns,
    std::optional<int64_t>* since_ns, std::optional<int64_t>* until_ns);

}  // namespace driftwatch
