// atomic_file: a small file replaced whole or not at all.
#pragma once

#include <string>
#include <string_view>

#include "lib/base/result.h"

namespace driftwatch {

// Writes `text` to PATH.tmp (mode 0600 whatever was there: keys and state are written with
// it), fsyncs it and renames it over `path`, then fsyncs the directory: after a crash `path`
// is the old file or the new one, never half of either. A symlink at PATH.tmp is not
// followed. Errors name the file and the call.
Result<> WriteFileAtomic(const std::string& path, std::string_view text);

}  // namespace driftwatch
