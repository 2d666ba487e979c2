// A small HTTP/1.1 client for the server tests: one request per connection (Connection:
// close), the whole answer read and parsed strictly, so that a malformed response fails the
// test instead of being papered over.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace imagine::testing {

struct HttpResponse {
  bool well_formed = false;  // a status line, headers and a body that matches its framing
  std::string problem;       // why not
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

inline std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Sends raw bytes to 127.0.0.1:port and reads until the server closes (or timeout).
inline std::string raw_exchange(int port, const std::string& request, double timeout_s, bool* connected) {
  *connected = false;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  *connected = true;
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer (413) before reading everything
    sent += static_cast<size_t>(n);
  }
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  char buf[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

inline HttpResponse parse_response(const std::string& raw) {
  HttpResponse r;
  const size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) {
    r.problem = "no HTTP/1.1 status line and header block (" + std::to_string(raw.size()) + " bytes)";
    return r;
  }
  r.status = std::atoi(raw.c_str() + 9);
  size_t pos = raw.find("\r\n") + 2;
  while (pos < head_end) {
    const size_t eol = raw.find("\r\n", pos);
    const std::string line = raw.substr(pos, eol - pos);
    const size_t colon = line.find(':');
    if (colon == std::string::npos) {
      r.problem = "header line without a colon: " + line;
      return r;
    }
    std::string v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(' '));
    r.headers[lower(line.substr(0, colon))] = v;
    pos = eol + 2;
  }
  std::string rest = raw.substr(head_end + 4);
  if (lower(r.header("transfer-encoding")) == "chunked") {
    size_t p = 0;
    for (;;) {
      const size_t eol = rest.find("\r\n", p);
      if (eol == std::string::npos) {
        r.problem = "chunked body ends without the last chunk";
        return r;
      }
      const size_t len = std::stoul(rest.substr(p, eol - p), nullptr, 16);
      if (len == 0) break;
      if (eol + 2 + len + 2 > rest.size()) {
        r.problem = "chunk longer than the body";
        return r;
      }
      r.body += rest.substr(eol + 2, len);
      p = eol + 2 + len + 2;
    }
  } else if (!r.header("content-length").empty()) {
    const size_t len = std::stoul(r.header("content-length"));
    if (rest.size() != len) {
      r.problem =
          "Content-Length " + std::to_string(len) + " but " + std::to_string(rest.size()) + " body bytes";
      return r;
    }
    r.body = rest;
  } else {
    r.body = rest;
  }
  r.well_formed = true;
  return r;
}

inline HttpResponse http(int port, const std::string& method, const std::string& path,
                         const std::string& body = "", const std::vector<std::string>& headers = {},
                         double timeout_s = 120) {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  bool has_type = false;
  for (auto& h : headers) {
    req += h + "\r\n";
    if (lower(h).rfind("content-type:", 0) == 0) has_type = true;
  }
  if (!body.empty() && !has_type) req += "Content-Type: application/json\r\n";
  if (method == "POST" || !body.empty()) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  bool connected = false;
  const std::string raw = raw_exchange(port, req, timeout_s, &connected);
  HttpResponse r = parse_response(raw);
  if (!connected) r.problem = "cannot connect to port " + std::to_string(port);
  return r;
}

// The data lines of Server-Sent Events: (event name, data).
inline std::vector<std::pair<std::string, std::string>> sse_events(const std::string& body) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t p = 0;
  while (p < body.size()) {
    size_t end = body.find("\n\n", p);
    if (end == std::string::npos) end = body.size();
    const std::string block = body.substr(p, end - p);
    std::string event, data;
    size_t q = 0;
    while (q < block.size()) {
      size_t eol = block.find('\n', q);
      if (eol == std::string::npos) eol = block.size();
      const std::string line = block.substr(q, eol - q);
      if (line.rfind("event: ", 0) == 0) event = line.substr(7);
      if (line.rfind("data: ", 0) == 0) data += line.substr(6);
      q = eol + 1;
    }
    if (!data.empty()) out.push_back({event, data});
    p = end + 2;
  }
  return out;
}

}  // namespace imagine::testing
