#include "lib/base/result.h"

#include <cerrno>
#include <cstring>
#include <ostream>

namespace driftwatch {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidInput: return "invalid input";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kIo: return "I/O";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kCorruption: return "corruption";
  }
  return "unknown";
}

std::ostream& operator<<(std::ostream& os, const Error& e) { return os << e.message(); }

Error Error::FromErrno(int err, std::string_view what) {
  ErrorCode code = ErrorCode::kIo;
  switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ESRCH:
      code = ErrorCode::kNotFound;
      break;
    case EAGAIN:
    case EBUSY:
    case ECONNREFUSED:
    case ECONNRESET:
    case ETIMEDOUT:
    case EINTR:
      code = ErrorCode::kUnavailable;
      break;
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
      code = ErrorCode::kInvalidInput;
      break;
    default:
      break;
  }
  return {code, std::string(what) + ": " + std::strerror(err)};
}

}  // namespace driftwatch
