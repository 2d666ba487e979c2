// Errors: the library throws imagine::Error (a message plus a hint for the user);
// the CLI and the HTTP server catch it once at the boundary. No error codes.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace imagine {

class Error : public std::runtime_error {
 public:
  Error(std::string what, std::string hint = "") : std::runtime_error(std::move(what)), hint_(std::move(hint)) {}
  const std::string& hint() const { return hint_; }

 private:
  std::string hint_;
};

// A usage error: bad flags or arguments. The CLI exits 2 instead of 1.
class UsageError : public Error {
 public:
  using Error::Error;
};

namespace detail {
inline void concat(std::ostringstream&) {}
template <typename T, typename... Rest>
void concat(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  concat(os, rest...);
}
}  // namespace detail

template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  detail::concat(os, args...);
  return os.str();
}

}  // namespace imagine

// IMAGINE_CHECK(cond, hint, message parts...): throws imagine::Error when cond is false.
#define IMAGINE_CHECK(cond, hint, ...)                                   \
  do {                                                                   \
    if (!(cond)) throw ::imagine::Error(::imagine::str(__VA_ARGS__), hint); \
  } while (0)
