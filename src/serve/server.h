// `imagine serve`: the HTTP API (docs/api.md) on cpp-httplib. JSON endpoints under /api/,
// OpenAI-compatible text endpoints under /v1/, /health and /metrics. Every output it returns
// leaves through the OutputWriter (watermark, manifest, signature), as on the CLI.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "provenance/output.h"

namespace imagine::serve {

struct ServeConfig {
  std::string models_dir;
  std::string host = "127.0.0.1";
  int port = 7860;             // 0 = any free port (tests)
  std::string api_key;         // "" = no key; required to bind beyond loopback
  int parallel = 2;            // image and music requests worked on at once
  int queue = 16;              // image and music requests waiting beyond those (then 503)
  int slots = 8;               // text sequences decoded together per model
  int text_queue = 32;         // text sequences waiting beyond the slots (then 503)
  int http_threads = 64;       // connections served at once
  int threads = 0;             // torch threads (0 = all cores)
  bool decode_bf16 = false;    // text decoding with bfloat16 step weights (--decode-precision bf16)
  size_t max_body = 16 << 20;  // bytes of a request body (then 413)
  double timeout = 300;        // seconds a request may take, queueing included
  int64_t max_tokens = 4096;   // bounds on request parameters
  int64_t max_count = 16;      // text samples (n) per request
  int64_t max_images = 64;
  double max_music_seconds = 120;
  OutputPolicy output;
  std::string trusted_keys;  // for verify ("" = the default trusted keys)
  std::string data_root;     // training jobs read data only inside this folder ("" = no jobs)
  int max_jobs = 1;          // training jobs at once (then 503)
  std::string binary;        // the imagine executable for training jobs ("" = this one)
  std::string studio_dir;    // serve the web studio from here ("" = the built-in copy)
  bool quiet = false;        // no request log on stderr
};

// Refuses (Error with a hint) to serve beyond loopback without an API key.
void check_bind_policy(const std::string& host, const std::string& api_key);

class Server {
 public:
  explicit Server(ServeConfig cfg);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the socket; returns the port (the chosen one when cfg.port is 0).
  int bind();
  // Serves until stop() (from another thread or a signal handler's watcher).
  void listen();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace imagine::serve
