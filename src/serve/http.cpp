// See http.h.
#include "serve/http.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/utf8.h"

namespace imagine::serve {

nlohmann::json error_body(int status, const std::string& message, const std::string& hint) {
  const char* type = status == 401                    ? "authentication_error"
                     : status == 404                  ? "not_found_error"
                     : status == 413                  ? "request_too_large"
                     : status == 429 || status == 503 ? "overloaded_error"
                     : status >= 500                  ? "server_error"
                                                      : "invalid_request_error";
  return {{"error", {{"message", message}, {"hint", hint}, {"type", type}, {"code", status}}}};
}

std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Params Params::parse(const std::string& body) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    throw ApiError(400, str("the request body is not valid JSON (", e.what(), ")"),
                   "send a JSON object, e.g. {\"model\": \"NAME\", \"prompt\": \"...\"}");
  }
  if (!j.is_object())
    throw ApiError(400, "the request body must be a JSON object", "send {\"model\": ..., ...}");
  return Params(std::move(j));
}

std::string Params::text(const std::string& key, const std::string& def, size_t max_bytes) const {
  if (!has(key)) return def;
  const auto& v = j_[key];
  if (!v.is_string()) throw ApiError(400, "'" + key + "' must be a string");
  std::string s = v.get<std::string>();
  if (s.size() > max_bytes)
    throw ApiError(400, str("'", key, "' is ", s.size(), " bytes; at most ", max_bytes, " are accepted"));
  if (!is_valid_utf8(s)) throw ApiError(400, "'" + key + "' is not valid UTF-8");
  return s;
}

std::string Params::required_text(const std::string& key, size_t max_bytes) const {
  if (!has(key)) throw ApiError(400, "missing '" + key + "'", "add \"" + key + "\" to the request");
  return text(key, "", max_bytes);
}

int64_t Params::integer(const std::string& key, int64_t def, int64_t lo, int64_t hi) const {
  if (!has(key)) return def;
  const auto& v = j_[key];
  const ApiError out_of_range(400, str("'", key, "' must be between ", lo, " and ", hi));
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) throw out_of_range;
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) throw out_of_range;
    return x;
  }
  if (!v.is_number_float()) throw ApiError(400, "'" + key + "' must be an integer");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d != std::floor(d)) throw ApiError(400, "'" + key + "' must be an integer");
  if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) throw out_of_range;
  return static_cast<int64_t>(d);
}

double Params::real(const std::string& key, double def, double lo, double hi) const {
  if (!has(key)) return def;
  const auto& v = j_[key];
  if (!v.is_number()) throw ApiError(400, "'" + key + "' must be a number");
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    throw ApiError(400, str("'", key, "' must be between ", lo, " and ", hi));
  return d;
}

bool Params::boolean(const std::string& key, bool def) const {
  if (!has(key)) return def;
  if (!j_[key].is_boolean()) throw ApiError(400, "'" + key + "' must be true or false");
  return j_[key].get<bool>();
}

std::vector<std::string> Params::strings(const std::string& key, size_t max_count, size_t max_bytes) const {
  if (!has(key)) return {};
  const auto& v = j_[key];
  std::vector<std::string> out;
  auto add = [&](const nlohmann::json& s) {
    if (!s.is_string()) throw ApiError(400, "'" + key + "' must be a string or an array of strings");
    std::string t = s.get<std::string>();
    if (t.empty()) throw ApiError(400, "'" + key + "' holds an empty string");
    if (t.size() > max_bytes)
      throw ApiError(400, str("a '", key, "' string is longer than ", max_bytes, " bytes"));
    if (!is_valid_utf8(t)) throw ApiError(400, "'" + key + "' is not valid UTF-8");
    out.push_back(std::move(t));
  };
  if (v.is_array()) {
    for (auto& s : v) add(s);
  } else {
    add(v);
  }
  if (out.size() > max_count)
    throw ApiError(400, str("'", key, "' holds ", out.size(), " strings; at most ", max_count));
  return out;
}

std::optional<uint64_t> Params::seed(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  return static_cast<uint64_t>(integer(key, 0, 0, std::numeric_limits<int64_t>::max()));
}

}  // namespace imagine::serve
