// `imagine serve`: the HTTP API over a folder of model directories (docs/api.md).
#include <chrono>
#include <cstdio>
#include <thread>

#include "commands.h"
#include "core/error.h"
#include "core/options.h"
#include "core/signals.h"
#include "serve/server.h"

namespace imagine::cli {

static const OptionTable& serve_table() {
  static const OptionTable table = [] {
    serve::ServeConfig d;
    OptionTable t(
        "imagine serve --models DIR [--host 127.0.0.1] [--port 7860] [--api-key KEY] [--parallel N]",
        "Serve the models in DIR over HTTP: a JSON API under /api/, OpenAI-compatible text endpoints "
        "under /v1/, /health and /metrics (see docs/api.md).");
    t.text("models", "", "folder whose model directories are served (by directory name)", "DIR")
        .text("host", d.host, "address to listen on (beyond loopback only with --api-key)", "ADDR")
        .integer("port", d.port, 0, 65535, "TCP port (0 = any free port, printed)")
        .text("api-key", "", "require 'Authorization: Bearer KEY' on every request but /health", "KEY")
        .integer("parallel", d.parallel, 1, 64, "image and music requests worked on at once")
        .integer("queue", d.queue, 0, 10000, "image and music requests waiting beyond those (then 503)")
        .integer("slots", d.slots, 1, 64, "text sequences decoded together per model (batched decoding)")
        .integer("text-queue", d.text_queue, 0, 10000, "text sequences waiting beyond the slots (then 503)")
        .integer("http-threads", d.http_threads, 4, 1024, "connections served at once")
        .integer("max-body", static_cast<int64_t>(d.max_body >> 20), 1, 4096,
                 "largest request body, MiB (then 413)")
        .real("timeout", d.timeout, 1, 86400, "seconds a request may take, queueing included")
        .integer("max-tokens", d.max_tokens, 1, 1 << 20, "largest max_tokens a request may ask for")
        .real("max-music-seconds", d.max_music_seconds, 1, 3600, "longest piece a music request may ask for")
        .choice("decode-precision", "fp32", {"fp32", "bf16"},
                "text models' decoding step weights (bf16: faster batches of wide models on AVX512-BF16/AMX)")
        .text("trusted-keys", "", "public keys /api/verify trusts (default: the user's trusted.keys)", "FILE")
        .text("data-root", "",
              "training jobs (POST /api/jobs) may read data only inside this folder (default: no jobs)",
              "DIR")
        .integer("max-jobs", d.max_jobs, 1, 64, "training jobs at once")
        .integer("threads", 0, 0, 1024, "torch threads (0 = all cores)")
        .text("studio-dir", "", "serve the web studio from DIR instead of the built-in copy (to work on it)",
              "DIR")
        .flag("quiet", false, "no request log on stderr");
    return output_options(t, true);
  }();
  return table;
}

int serve(const Args& args) {
  const OptionTable& table = serve_table();
  Options o = table.parse(args);
  if (o.help_requested) return std::fputs(table.help_text().c_str(), stdout), 0;
  if (!o.positional.empty())
    throw UsageError("unexpected argument '" + o.positional[0] + "'", "pass --models DIR");
  if (o.s("models").empty())
    throw UsageError("missing --models", "pass --models DIR, a folder of model directories");
  serve::ServeConfig c;
  c.models_dir = o.s("models");
  c.host = o.s("host");
  c.port = static_cast<int>(o.i("port"));
  c.api_key = o.s("api-key");
  c.parallel = static_cast<int>(o.i("parallel"));
  c.queue = static_cast<int>(o.i("queue"));
  c.slots = static_cast<int>(o.i("slots"));
  c.text_queue = static_cast<int>(o.i("text-queue"));
  c.http_threads = static_cast<int>(o.i("http-threads"));
  c.max_body = static_cast<size_t>(o.i("max-body")) << 20;
  c.timeout = o.f("timeout");
  c.max_tokens = o.i("max-tokens");
  c.max_music_seconds = o.f("max-music-seconds");
  c.decode_bf16 = o.s("decode-precision") == "bf16";
  c.trusted_keys = o.s("trusted-keys");
  c.data_root = o.s("data-root");
  c.max_jobs = static_cast<int>(o.i("max-jobs"));
  c.threads = static_cast<int>(o.i("threads"));
  c.studio_dir = o.s("studio-dir");
  c.quiet = o.b("quiet");
  c.output = output_policy(o);
  serve::check_bind_policy(c.host, c.api_key);
  CooperativeInterrupts coop("stopping the server");
  serve::Server server(c);
  const int port = server.bind();
  std::printf("imagine serve: http://%s:%d/ (models from %s; Ctrl-C stops)\n", c.host.c_str(), port,
              c.models_dir.c_str());
  std::printf("studio: open http://%s:%d/ in a browser\n", c.host == "::1" ? "[::1]" : c.host.c_str(), port);
  std::fflush(stdout);
  // Ctrl-C / SIGTERM: the handler only sets a flag; this watcher stops the server.
  std::thread watcher([&server] {
    while (!interrupt_requested()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  });
  server.listen();
  if (!interrupt_requested()) request_interrupt();
  watcher.join();
  note(c.quiet, "imagine serve: stopped");
  return 0;
}

}  // namespace imagine::cli
