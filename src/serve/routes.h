// Inside the server: what route handlers share, the route tables of the native API and
// the OpenAI one, and the text plumbing both use (submit to the batcher, wait, stream SSE).
#pragma once
#include <httplib.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "serve/http.h"
#include "serve/jobs.h"
#include "serve/metrics.h"
#include "serve/registry.h"
#include "serve/server.h"
#include "serve/verbs.h"
#include "serve/worker_pool.h"

namespace imagine::serve {

using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

struct Context {
  const ServeConfig& cfg;
  ModelRegistry& registry;
  Metrics& metrics;
  const OutputWriter& writer;
  WorkerPool& pool;
  JobManager& jobs;
  Clock::time_point deadline() const {
    return Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(cfg.timeout * 1000));
  }
};

struct Route {
  std::string method, pattern;
  Handler handler;
};
// A route function with the context bound.
using RouteFn = void (*)(const Context&, const httplib::Request&, httplib::Response&);
inline Handler bound(const Context& ctx, RouteFn f) {
  return [ctx, f](const httplib::Request& q, httplib::Response& r) { f(ctx, q, r); };
}

std::vector<Route> api_routes(Context ctx);  // /api/... (api.cpp) and /v1/... (openai.cpp)
std::vector<Route> openai_routes(Context ctx);
std::vector<Route> media_routes(Context ctx);   // images and music (api_media.cpp)
std::vector<Route> job_routes(Context ctx);     // training jobs (api_jobs.cpp)
std::vector<Route> studio_routes(Context ctx);  // the web studio at / (studio.cpp)

// Runs `f` on a worker of the pool holding the model's lock (503 when the queue is full):
// how every image, music and audit request is worked on.
template <class F>
void on_worker(const Context& ctx, ServedModel& m, F f) {
  const bool ran = ctx.pool.run(
      [&] {
        std::lock_guard<std::mutex> lock(m.mu);
        f();
      },
      ctx.deadline());
  if (!ran)
    throw ApiError(503, "the server is busy: every worker and queue place is taken", "retry after a moment");
}

// The copy check a request asks for (as the CLI's --reject-copies, --provenance full):
// `reject_copies` (false) re-makes outputs the copy audit flags, up to `reject_copies_tries`
// (4) attempts; `attribution` (on when the server runs with --provenance full) records the
// nearest training items. The auditor is attached by attach_auditor.
CopyCheck copy_check(const Context& ctx, const Params& p);
// The model's copy auditor into `c` when the check is on (takes the model's lock to open it;
// audits are const and may run outside it).
void attach_auditor(CopyCheck& c, ServedModel& m);
// An output's check in its answer too (it is also in the manifest).
void add_check(nlohmann::json& j, const CheckRecord& r);

// What the copy check found for each text sample (empty when it is off), and the seed each
// sample was finally made with (seed + i unless a flagged one was re-made).
struct TextChecks {
  std::vector<CheckRecord> each;
  std::vector<uint64_t> seeds;
};

// A file in an answer: {"base64", "mime", "bytes", "manifest"}.
nlohmann::json file_json(const Artifact& a);

// ---- text, shared by /api/generate/text and /v1/*completions ----
struct TextJob {
  std::shared_ptr<ServedModel> model;
  TextRequest req;  // req.seed is ignored: sample i uses seed + i
  uint64_t seed = 0;
  int64_t count = 1;
};
// Audits samples already made (attribution; nothing is re-made): empty when the check is off.
TextChecks attribute_text(const CopyCheck& c, const std::vector<TextResult>& results);
// The text file of a job's samples and its manifest, checks recorded as `generate text`
// records them: what `generate text --out` writes.
Artifact text_artifact(const Context& ctx, const TextJob& job, const std::vector<TextResult>& results,
                       const TextChecks& checks);
// Queues the job's samples on the model's batcher with the watermark's bias (503 when full).
std::shared_ptr<TextMailbox> submit_text(const Context& ctx, TextJob& job, bool stream);
// Waits for every sample; ApiError when one failed. Results by sample index.
std::vector<TextResult> wait_text(const Context& ctx, TextMailbox& box, int64_t count);
// Streams Server-Sent Events: `piece` writes a streamed piece, `end` the closing events once
// every sample is done (results by index). A client that goes away cancels the samples.
void stream_text(const Context& ctx, httplib::Response& res, std::shared_ptr<TextMailbox> box, int64_t count,
                 std::function<bool(httplib::DataSink&, const TextEvent&)> piece,
                 std::function<void(httplib::DataSink&, const std::vector<TextResult>&)> end,
                 std::function<void(httplib::DataSink&, const TextEvent&)> fail);
// Chat messages joined into one prompt for a base model (openai.cpp; docs/api.md).
std::string chat_prompt(const nlohmann::json& messages);

// One SSE event ("" event = data only); false when the client is gone.
bool sse(httplib::DataSink& sink, const std::string& event, const std::string& data);

}  // namespace imagine::serve
