// Load and batching benchmark for `imagine serve` (docs/benchmarks.md), run by
// bench/serve/bench_serve.sh against a server it started:
//   serve_bench batch PORT TEXT_MODEL SECONDS MAX_TOKENS      -> 1 client, then 8, aggregate tokens/s
//   serve_bench load PORT TEXT IMAGE MUSIC CLIENTS SECONDS PID -> mixed requests, latency, statuses, RSS
// Prints one JSON object.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../../tests/support/http_client.h"

using imagine::testing::http;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

static double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// k clients each sending text requests back to back for `seconds`.
static json text_clients(int port, const std::string& model, int k, double seconds, int max_tokens) {
  std::atomic<int64_t> tokens{0}, requests{0}, errors{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int c = 0; c < k; c++)
    ts.emplace_back([&, c] {
      for (int i = 0; secs(t0, Clock::now()) < seconds; i++) {
        const json body = {
            {"model", model}, {"prompt", "ROMEO:"}, {"max_tokens", max_tokens}, {"seed", c * 100000 + i}};
        auto r = http(port, "POST", "/api/generate/text", body.dump(), {}, 600);
        if (r.status != 200) {
          errors++;
          continue;
        }
        tokens += json::parse(r.body)["samples"][0]["tokens"].get<int64_t>();
        requests++;
      }
    });
  for (auto& t : ts) t.join();
  const double wall = secs(t0, Clock::now());
  return {{"clients", k},
          {"requests", requests.load()},
          {"errors", errors.load()},
          {"tokens", tokens.load()},
          {"seconds", wall},
          {"tokens_per_s", tokens.load() / wall}};
}

static double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

static int64_t rss_kb(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  return -1;
}

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 5 && a[0] == "batch") {
    const int port = std::stoi(a[1]);
    const double seconds = std::stod(a[3]);
    const int max_tokens = std::stoi(a[4]);
    const json one = text_clients(port, a[2], 1, seconds, max_tokens);
    const json eight = text_clients(port, a[2], 8, seconds, max_tokens);
    std::printf("%s\n",
                json({{"one_client", one},
                      {"eight_clients", eight},
                      {"speedup", eight["tokens_per_s"].get<double>() / one["tokens_per_s"].get<double>()}})
                    .dump(2)
                    .c_str());
    return 0;
  }
  if (a.size() == 8 && a[0] == "load") {
    const int port = std::stoi(a[1]);
    const int clients = std::stoi(a[5]);
    const double seconds = std::stod(a[6]);
    const int pid = std::stoi(a[7]);
    std::mutex mu;
    std::map<std::string, std::vector<double>> latency;  // by kind, successful requests
    std::map<std::string, std::map<int, int>> statuses;
    std::atomic<int64_t> malformed{0}, tokens{0}, images{0};
    std::atomic<double> music_seconds{0};
    std::atomic<int64_t> peak_rss{0};
    std::atomic<bool> done{false};
    std::thread sampler([&] {
      while (!done) {
        peak_rss = std::max<int64_t>(peak_rss, rss_kb(pid));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    });
    const int64_t rss_start = rss_kb(pid);
    const auto t0 = Clock::now();
    std::vector<std::thread> ts;
    for (int c = 0; c < clients; c++)
      ts.emplace_back([&, c] {
        std::mt19937 rng(c);
        for (int i = 0; secs(t0, Clock::now()) < seconds; i++) {
          const int pick = static_cast<int>(rng() % 20);
          std::string kind, path;
          json body;
          if (pick < 12) {
            kind = "text";
            path = "/api/generate/text";
            body = {{"model", a[2]}, {"prompt", "KING:"}, {"max_tokens", 64}, {"seed", i}};
          } else if (pick < 17) {
            kind = "image";
            path = "/api/generate/image";
            body = {{"model", a[3]}, {"count", 4}, {"seed", i}};
          } else {
            kind = "music";
            path = "/api/generate/music";
            body = {{"model", a[4]}, {"seconds", 4}, {"seed", i}, {"wav", false}};
          }
          const auto s = Clock::now();
          auto r = http(port, "POST", path, body.dump(), {}, 600);
          const double l = secs(s, Clock::now());
          if (!r.well_formed) malformed++;
          {
            std::lock_guard<std::mutex> lock(mu);
            statuses[kind][r.status]++;
            if (r.status == 200) latency[kind].push_back(l);
          }
          if (r.status == 200) {
            const json j = json::parse(r.body);
            if (kind == "text") tokens += j["samples"][0]["tokens"].get<int64_t>();
            if (kind == "image") images += 4;
            if (kind == "music") music_seconds = music_seconds + j["seconds"].get<double>();
          } else if (r.status == 503) {
            std::this_thread::sleep_for(std::chrono::milliseconds(200));  // what Retry-After asks, shortened
          }
        }
      });
    for (auto& t : ts) t.join();
    const double wall = secs(t0, Clock::now());
    done = true;
    sampler.join();
    json out = {{"clients", clients},
                {"seconds", wall},
                {"malformed", malformed.load()},
                {"tokens_per_s", tokens.load() / wall},
                {"images_per_s", images.load() / wall},
                {"music_seconds_per_s", music_seconds.load() / wall},
                {"rss_start_mb", rss_start / 1024.0},
                {"rss_peak_mb", peak_rss.load() / 1024.0},
                {"rss_end_mb", rss_kb(pid) / 1024.0}};
    for (auto& [kind, v] : latency)
      out["latency_s"][kind] = {{"ok", v.size()}, {"p50", percentile(v, 0.5)}, {"p95", percentile(v, 0.95)}};
    for (auto& [kind, m] : statuses)
      for (auto& [st, n] : m) out["statuses"][kind][std::to_string(st)] = n;
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::fprintf(stderr,
               "usage: serve_bench batch PORT TEXT_MODEL SECONDS MAX_TOKENS\n"
               "       serve_bench load PORT TEXT IMAGE MUSIC CLIENTS SECONDS SERVER_PID\n");
  return 2;
}
