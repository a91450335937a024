#pragma once

namespace driftwatch {
inline constexpr const char* kVersion = "0.1.0";
}
