// See server.h. Routes: native API (this file, api_*.cpp later), OpenAI (openai.cpp).
#include "serve/server.h"

#include <httplib.h>
#include <sodium.h>

#include <cstdio>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "core/runtime.h"
#include "provenance/detect.h"
#include "provenance/verify.h"
#include "serve/http.h"
#include "serve/metrics.h"
#include "serve/registry.h"
#include "serve/routes.h"
#include "serve/verbs.h"
#include "serve/worker_pool.h"

namespace fs = std::filesystem;

namespace imagine::serve {

void check_bind_policy(const std::string& host, const std::string& api_key) {
  const bool loopback = host == "127.0.0.1" || host == "::1" || host == "localhost";
  IMAGINE_CHECK(
      loopback || !api_key.empty(),
      "pass --api-key KEY (clients then send 'Authorization: Bearer KEY'), or keep --host 127.0.0.1",
      "refusing to serve on ", host, " without an API key: anyone who can reach it could use the models");
}

// The route a request counts under in /metrics: the pattern of the route that answered it,
// with its captures as {id} (so that ids and model names do not make a label each); "other"
// for a request no route took. Set by the route's handler, read by the logger, one thread.
static thread_local std::string t_route;

static std::string route_label(const std::string& pattern) {
  return std::regex_replace(pattern, std::regex(R"(\([^)]*\))"), "{id}");
}

struct Server::Impl {
  ServeConfig cfg;
  httplib::Server http;
  ModelRegistry registry;
  Metrics metrics;
  OutputWriter writer;
  WorkerPool pool;
  JobManager jobs;
  int port = -1;

  explicit Impl(ServeConfig c)
      : cfg(std::move(c)),
        registry(cfg.models_dir, RegistryOptions{cfg.slots, cfg.text_queue, cfg.threads, cfg.decode_bf16}),
        writer(cfg.output),
        pool(cfg.parallel, cfg.queue, cfg.threads),
        jobs(cfg.binary.empty() ? self_binary() : cfg.binary, cfg.max_jobs, cfg.threads) {}
  static std::string self_binary() {
    std::error_code ec;
    const fs::path p = fs::read_symlink("/proc/self/exe", ec);
    IMAGINE_CHECK(!ec, "pass the imagine binary in ServeConfig::binary", "cannot find this program's path");
    return p.string();
  }
};

static thread_local Clock::time_point t_request_start;

static void send_error(httplib::Response& res, int status, const std::string& message,
                       const std::string& hint) {
  res.status = status;
  if (status == 503) res.set_header("Retry-After", "2");
  res.set_content(dump(error_body(status, message, hint)), "application/json");
}

Server::Server(ServeConfig cfg) {
  check_bind_policy(cfg.host, cfg.api_key);
  if (sodium_init() < 0) throw Error("libsodium failed to initialise");
  impl_ = std::make_unique<Impl>(std::move(cfg));
  Impl& s = *impl_;
  httplib::Server& http = s.http;
  const int http_threads = std::max(4, s.cfg.http_threads);
  http.new_task_queue = [http_threads] { return new httplib::ThreadPool(static_cast<size_t>(http_threads)); };
  http.set_payload_max_length(s.cfg.max_body);
  http.set_read_timeout(30);
  http.set_write_timeout(30);
  http.set_keep_alive_max_count(1000);

  http.set_pre_routing_handler([&s](const httplib::Request& req, httplib::Response& res) {
    t_request_start = Clock::now();
    t_route = "other";
    // The studio's static files hold no secrets: the page itself asks for the key.
    const bool open = req.path == "/health" || req.path == "/" || req.path.rfind("/studio/", 0) == 0;
    if (s.cfg.api_key.empty() || open) return httplib::Server::HandlerResponse::Unhandled;
    std::string given = req.get_header_value("Authorization");
    if (given.rfind("Bearer ", 0) == 0)
      given = given.substr(7);
    else
      given = req.get_header_value("X-API-Key");
    const std::string& want = s.cfg.api_key;
    const bool ok = given.size() == want.size() && sodium_memcmp(given.data(), want.data(), want.size()) == 0;
    if (ok) return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, 401, given.empty() ? "missing API key" : "wrong API key",
               "send the server's --api-key as 'Authorization: Bearer KEY'");
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404)
      send_error(res, 404, "no route " + req.method + " " + req.path, "see docs/api.md");
    else if (res.status == 413)
      send_error(res, 413, "the request body is too large", "the server accepts bodies up to its --max-body");
    else if (res.status == 405)
      send_error(res, 405, "method not allowed", "see docs/api.md");
    else
      send_error(res, res.status, "the request could not be handled", "see docs/api.md");
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      send_error(res, 500, std::string("internal error: ") + e.what(), "please report it");
    } catch (...) {
      send_error(res, 500, "internal error", "please report it");
    }
  });
  http.set_logger([&s](const httplib::Request& req, const httplib::Response& res) {
    const double secs = std::chrono::duration<double>(Clock::now() - t_request_start).count();
    s.metrics.request(t_route, res.status, secs);
    if (!s.cfg.quiet)
      std::fprintf(stderr, "%s %s -> %d (%.3f s)\n", req.method.c_str(), req.path.c_str(), res.status, secs);
  });

  Context ctx{s.cfg, s.registry, s.metrics, s.writer, s.pool, s.jobs};
  auto wrap = [](const std::string& pattern, Handler h) {
    return [label = route_label(pattern), h](const httplib::Request& req, httplib::Response& res) {
      t_route = label;
      try {
        h(req, res);
      } catch (const ApiError& e) {
        send_error(res, e.status(), e.what(), e.hint());
      } catch (const Error& e) {
        send_error(res, 400, e.what(), e.hint());
      } catch (const std::bad_alloc&) {
        send_error(res, 503, "out of memory", "retry with a smaller request");
      } catch (const std::exception& e) {
        send_error(res, 500, std::string("internal error: ") + e.what(), "please report it");
      }
    };
  };
  for (const Route& r : api_routes(ctx)) {
    if (r.method == "GET")
      http.Get(r.pattern, wrap(r.pattern, r.handler));
    else if (r.method == "POST")
      http.Post(r.pattern, wrap(r.pattern, r.handler));
    else if (r.method == "DELETE")
      http.Delete(r.pattern, wrap(r.pattern, r.handler));
  }
  http.Get("/health", wrap("/health", [&s](const httplib::Request&, httplib::Response& res) {
             nlohmann::json j = {{"status", "ok"},
                                 {"models", s.registry.names().size()},
                                 {"workers_busy", s.pool.busy()},
                                 {"queued", s.pool.waiting()}};
             res.set_content(dump(j), "application/json");
           }));
  http.Get(
      "/metrics", wrap("/metrics", [&s](const httplib::Request&, httplib::Response& res) {
        double text_active = 0, text_waiting = 0, max_batch = 0;
        for (auto& m : s.registry.loaded())
          if (m->batcher) {
            text_active += m->batcher->active();
            text_waiting += m->batcher->waiting();
            max_batch = std::max(max_batch, static_cast<double>(m->batcher->max_batch_seen()));
          }
        const std::vector<std::tuple<std::string, std::string, double>> gauges = {
            {"imagine_queue_depth", "Requests waiting for a worker or a text slot.",
             text_waiting + s.pool.waiting()},
            {"imagine_text_slots_active", "Text sequences being decoded.", text_active},
            {"imagine_text_max_batch", "Most text sequences decoded in one round so far.", max_batch},
            {"imagine_workers_busy", "Image and music requests being worked on.",
             static_cast<double>(s.pool.busy())},
            {"imagine_models_loaded", "Models in memory.", static_cast<double>(s.registry.loaded().size())}};
        res.set_content(s.metrics.render(gauges), "text/plain; version=0.0.4");
      }));
}

Server::~Server() {
  if (impl_) impl_->http.stop();
}

int Server::bind() {
  Impl& s = *impl_;
  if (s.cfg.port == 0)
    s.port = s.http.bind_to_any_port(s.cfg.host);
  else
    s.port = s.http.bind_to_port(s.cfg.host, s.cfg.port) ? s.cfg.port : -1;
  IMAGINE_CHECK(s.port > 0, "pick another --port, or stop the program that holds this one",
                "cannot listen on ", s.cfg.host, ":", s.cfg.port);
  return s.port;
}

void Server::listen() { impl_->http.listen_after_bind(); }

void Server::stop() { impl_->http.stop(); }

}  // namespace imagine::serve
