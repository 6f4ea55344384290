#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace sluice {

/// The short set of failure kinds. Whether a failure is worth retrying is a property of the
/// code (see IsRetryable), so the engine's retry policy, not each connector, decides.
enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,    ///< Bad data or a bad call: permanent.
  kConfigError,        ///< Bad pipeline configuration or usage: permanent, exit code 2.
  kNotFound,           ///< A file, table, key or node that does not exist: permanent.
  kAlreadyExists,      ///< Permanent.
  kPermissionDenied,   ///< Auth or filesystem permissions: permanent.
  kIOError,            ///< A local I/O failure: permanent unless the caller knows better.
  kUnavailable,        ///< Server down, connection lost, throttled: retryable.
  kTimeout,            ///< Deadline exceeded: retryable.
  kResourceExhausted,  ///< Backpressure or a full budget: retryable.
  kDataLoss,           ///< A check that protects data failed (e.g. deleted != archived).
  kCancelled,          ///< The run was cancelled (signal or an earlier error).
  kNotImplemented,
  kInternal,  ///< A bug in sluice.
};

/// Return the lower-case name of `code`, e.g. "unavailable".
std::string_view StatusCodeName(StatusCode code);

/// Return true when a failure with `code` may succeed if tried again.
constexpr bool IsRetryable(StatusCode code) {
  return code == StatusCode::kUnavailable || code == StatusCode::kTimeout ||
         code == StatusCode::kResourceExhausted;
}

/// The outcome of an operation: OK, or a code with a message. Cheap to copy when OK.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message);

  static Status OK() { return Status(); }
  template <typename... Args>
  static Status Invalid(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kInvalidArgument, fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  static Status ConfigError(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kConfigError, fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  static Status NotFound(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kNotFound, fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  static Status IOError(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kIOError, fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  static Status Unavailable(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kUnavailable, fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  static Status Timeout(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kTimeout, fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  static Status DataLoss(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kDataLoss, fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  static Status Cancelled(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kCancelled, fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  static Status NotImplemented(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kNotImplemented, fmt::format(f, std::forward<Args>(args)...));
  }
  template <typename... Args>
  static Status Internal(fmt::format_string<Args...> f, Args&&... args) {
    return Status(StatusCode::kInternal, fmt::format(f, std::forward<Args>(args)...));
  }

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  /// Return the message without the code name; empty when OK.
  const std::string& message() const;
  bool IsRetryable() const { return sluice::IsRetryable(code()); }

  /// Return a copy whose message is prefixed with the given context: "context: message".
  template <typename... Args>
  Status WithContext(fmt::format_string<Args...> f, Args&&... args) const {
    if (ok()) return *this;
    return Status(code(), fmt::format(f, std::forward<Args>(args)...) + ": " + message());
  }

  /// Return "code: message", or "OK".
  std::string ToString() const;

  bool operator==(const Status& other) const {
    return code() == other.code() && message() == other.message();
  }

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const State> state_;
};

#define SLUICE_CONCAT_INNER(a, b) a##b
#define SLUICE_CONCAT(a, b) SLUICE_CONCAT_INNER(a, b)

/// Evaluate `expr` (a Status); return it from the current function if it is not OK.
#define SLUICE_RETURN_NOT_OK(expr)           \
  do {                                       \
    ::sluice::Status _sluice_st = (expr);    \
    if (!_sluice_st.ok()) return _sluice_st; \
  } while (false)

}  // namespace sluice
