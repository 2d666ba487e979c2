// Request and response helpers of the HTTP API: the JSON error shape, a request body read
// as bounded parameters, and JSON that never throws on the invalid UTF-8 a byte-level
// model can produce.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace imagine::serve {

// An answer other than 200: {"error": {"message", "hint", "type", "code"}} with `status`.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string hint = "")
      : std::runtime_error(std::move(message)), status_(status), hint_(std::move(hint)) {}
  int status() const { return status_; }
  const std::string& hint() const { return hint_; }

 private:
  int status_;
  std::string hint_;
};

// The error body (OpenAI's shape, with our hint): type from the status.
nlohmann::json error_body(int status, const std::string& message, const std::string& hint);

// JSON text for a response: invalid UTF-8 in strings becomes U+FFFD instead of throwing.
std::string dump(const nlohmann::json& j);

// A request body: a JSON object whose fields are read with bounds. A field of the wrong
// type or out of range is a 400 that names it.
class Params {
 public:
  // Parses `body` (400 when it is not a JSON object).
  static Params parse(const std::string& body);
  explicit Params(nlohmann::json j) : j_(std::move(j)) {}

  bool has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }
  const nlohmann::json& raw() const { return j_; }
  std::string text(const std::string& key, const std::string& def, size_t max_bytes = 1 << 20) const;
  std::string required_text(const std::string& key, size_t max_bytes = 256) const;
  int64_t integer(const std::string& key, int64_t def, int64_t lo, int64_t hi) const;
  double real(const std::string& key, double def, double lo, double hi) const;
  bool boolean(const std::string& key, bool def) const;
  // A string or an array of strings (OpenAI's `stop`), at most max_count of max_bytes each.
  std::vector<std::string> strings(const std::string& key, size_t max_count, size_t max_bytes) const;
  // A seed: absent or null -> nullopt; else an integer in [0, 2^63).
  std::optional<uint64_t> seed(const std::string& key) const;

 private:
  nlohmann::json j_;
};

}  // namespace imagine::serve
