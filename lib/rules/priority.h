// priority: Falco's rule priorities, as rule files spell them and alerts print them.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string_view>

namespace driftwatch {

// Falco's priorities, most severe first: a smaller value is more severe.
enum class Priority {
  kEmergency = 0,
  kAlert = 1,
  kCritical = 2,
  kError = 3,
  kWarning = 4,
  kNotice = 5,
  kInformational = 6,
  kDebug = 7,
};

// "Emergency", ..., "Informational", "Debug": as Falco prints them in JSON.
std::string_view PriorityName(Priority p);

// Case-insensitive, as Falco reads rule files: "critical", "WARNING", "info" and
// "informational". nullopt for anything else.
std::optional<Priority> ParsePriority(std::string_view text);

}  // namespace driftwatch
