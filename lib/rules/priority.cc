#include "lib/rules/priority.h"

#include <algorithm>
#include <cctype>

namespace driftwatch {
namespace {

constexpr std::string_view kNames[] = {"Emergency", "Alert",  "Critical",      "Error",
                                       "Warning",   "Notice", "Informational", "Debug"};

bool EqualsNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::string_view PriorityName(Priority p) {
  const auto i = static_cast<size_t>(p);
  return i < std::size(kNames) ? kNames[i] : "Debug";
}

std::optional<Priority> ParsePriority(std::string_view text) {
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (EqualsNoCase(text, kNames[i])) return static_cast<Priority>(i);
  }
  if (EqualsNoCase(text, "info")) return Priority::kInformational;
  return std::nullopt;
}

}  // namespace driftwatch
