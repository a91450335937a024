// result: the one way a function of lib/ says "failed, because". A Result<T> holds a T or an
// Error; an Error has a code a caller can branch on and a message a person can read, which
// already names what failed (the file and line, the field, the peer):
//
//   Result<Config> LoadConfig(const std::string& path);
//   auto c = LoadConfig(path);
//   if (!c && c.error().code() == ErrorCode::kNotFound) ...  // defaults
//   if (!c) return std::unexpected(c.error().Prefix("--config"));
//
// Result is std::expected<T, Error> marked [[nodiscard]]: a failure cannot be dropped by
// forgetting to look. Exceptions thrown by libraries (yaml-cpp, protobuf) stop at the
// function that called the library and become an Error there.
//
// Thread-safety: values; thread-compatible.
#pragma once

#include <cstdint>
#include <expected>
#include <iosfwd>
#include <string>
#include <string_view>
#include <utility>

namespace driftwatch {

enum class ErrorCode : uint8_t {
  kInvalidInput,  // the input (a file, a flag, a message, a peer's data) is wrong: fix it
  kNotFound,      // what was asked for does not exist (a file, a container, a run)
  kIo,            // the system refused (open, read, write, a syscall): see the message
  kUnavailable,   // a server or resource is not there now: trying again later may work
  kCorruption,    // stored data does not read back as it was written
};

// "invalid input", "not found", "I/O", "unavailable", "corruption".
std::string_view ErrorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Error InvalidInput(std::string m) { return {ErrorCode::kInvalidInput, std::move(m)}; }
  static Error NotFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
  static Error Io(std::string m) { return {ErrorCode::kIo, std::move(m)}; }
  static Error Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
  static Error Corruption(std::string m) { return {ErrorCode::kCorruption, std::move(m)}; }
  // "what: strerror(err)", with the code errno implies (ENOENT: not found; EAGAIN, EBUSY,
  // ECONNREFUSED...: unavailable; EINVAL: invalid input; anything else: I/O).
  static Error FromErrno(int err, std::string_view what);

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  const char* c_str() const { return message_.c_str(); }  // for printf-style logs
  // The same error with "context: " in front of its message.
  Error Prefix(std::string_view context) const& {
    return {code_, std::string(context) + ": " + message_};
  }
  Error Prefix(std::string_view context) && {
    message_.insert(0, std::string(context) + ": ");
    return std::move(*this);
  }

 private:
  ErrorCode code_;
  std::string message_;
};

// "message" (tests and streams print errors as people read them).
std::ostream& operator<<(std::ostream& os, const Error& e);

template <class T = void>
class [[nodiscard]] Result : public std::expected<T, Error> {
 public:
  using std::expected<T, Error>::expected;
  Result(std::expected<T, Error> e) : std::expected<T, Error>(std::move(e)) {}  // NOLINT
};

}  // namespace driftwatch
