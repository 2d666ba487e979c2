// The native JSON API: /api/models, /api/generate/text, /api/detect, /api/verify (the text
// plumbing shared with openai.cpp is here too).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/runtime.h"
#include "provenance/audit.h"
#include "provenance/detect.h"
#include "provenance/envelope.h"
#include "provenance/verify.h"
#include "serve/routes.h"
#include "serve/verbs.h"

namespace fs = std::filesystem;

namespace imagine::serve {

nlohmann::json file_json(const Artifact& a) {
  return {{"base64", base64_encode(a.bytes)},
          {"mime", a.mime},
          {"bytes", a.bytes.size()},
          {"manifest", a.manifest}};
}

// ---- text plumbing ----

std::shared_ptr<TextMailbox> submit_text(const Context& ctx, TextJob& job, bool stream) {
  job.req.logit_hook = watermark_hook(ctx.writer);
  std::vector<TextRequest> reqs;
  for (int64_t i = 0; i < job.count; i++) {
    reqs.push_back(job.req);
    reqs.back().seed = job.seed + static_cast<uint64_t>(i);
  }
  auto box = std::make_shared<TextMailbox>();
  if (!job.model->batcher->submit(std::move(reqs), stream, box, ctx.deadline()))
    throw ApiError(503, "the server is busy: every text slot and queue place is taken",
                   "retry after a moment");
  return box;
}

// The deadline of a wait: the request's own, plus time to finish the last round.
static Clock::time_point wait_limit(const Context& ctx) { return ctx.deadline() + std::chrono::seconds(30); }

std::vector<TextResult> wait_text(const Context& ctx, TextMailbox& box, int64_t count) {
  std::vector<TextResult> out(static_cast<size_t>(count));
  const auto limit = wait_limit(ctx);
  for (int64_t done = 0; done < count;) {
    TextEvent e;
    if (!box.pop(&e, std::chrono::milliseconds(500))) {
      if (Clock::now() > limit) {
        box.cancelled = true;
        throw ApiError(504, "the text request timed out", "ask for fewer tokens");
      }
      continue;
    }
    if (!e.done) continue;
    if (!e.error.empty()) {
      box.cancelled = true;
      throw ApiError(400, e.error, e.hint);
    }
    ctx.metrics.add_tokens(e.result.tokens);
    out[static_cast<size_t>(e.index)] = std::move(e.result);
    done++;
  }
  return out;
}

bool sse(httplib::DataSink& sink, const std::string& event, const std::string& data) {
  std::string msg;
  if (!event.empty()) msg += "event: " + event + "\n";
  msg += "data: " + data + "\n\n";
  return sink.write(msg.data(), msg.size());
}

void stream_text(const Context& ctx, httplib::Response& res, std::shared_ptr<TextMailbox> box, int64_t count,
                 std::function<bool(httplib::DataSink&, const TextEvent&)> piece,
                 std::function<void(httplib::DataSink&, const std::vector<TextResult>&)> end,
                 std::function<void(httplib::DataSink&, const TextEvent&)> fail) {
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  Metrics* m = &ctx.metrics;
  const auto limit = wait_limit(ctx);
  res.set_chunked_content_provider(
      "text/event-stream",
      [box, count, piece, end, fail, m, limit](size_t, httplib::DataSink& sink) {
        std::vector<TextResult> results(static_cast<size_t>(count));
        for (int64_t done = 0; done < count;) {
          TextEvent e;
          if (!box->pop(&e, std::chrono::milliseconds(250))) {
            if (!sink.is_writable() || Clock::now() > limit) {
              box->cancelled = true;
              return false;
            }
            continue;
          }
          if (!e.done) {
            if (!piece(sink, e)) {
              box->cancelled = true;
              return false;
            }
            continue;
          }
          if (!e.error.empty()) {
            box->cancelled = true;
            fail(sink, e);
            sink.done();
            return true;
          }
          m->add_tokens(e.result.tokens);
          results[static_cast<size_t>(e.index)] = std::move(e.result);
          done++;
        }
        end(sink, results);
        sink.done();
        return true;
      },
      [box](bool) { box->cancelled = true; });  // finished or aborted: nothing left to decode
}

// ---- /api/models ----

static void list_models(const Context& ctx, const httplib::Request&, httplib::Response& res) {
  nlohmann::json models = nlohmann::json::array();
  for (const std::string& n : ctx.registry.names()) {
    try {
      models.push_back(ctx.registry.describe(n));
    } catch (const Error& e) {
      models.push_back({{"name", n}, {"error", e.what()}});
    }
  }
  res.set_content(dump({{"models", models}}), "application/json");
}

static void show_model(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  res.set_content(dump(ctx.registry.describe(req.matches[1].str())), "application/json");
}

// ---- /api/generate/text ----

// The sampling fields both APIs read, with the native API's defaults (the CLI's).
static TextRequest text_request(const Context& ctx, const Params& p, const SamplingParams& d,
                                int64_t max_tokens_def) {
  TextRequest r;
  r.prompt = p.text("prompt", "", 1 << 20);
  r.max_tokens = p.integer("max_tokens", max_tokens_def, 0, ctx.cfg.max_tokens);
  r.sampling.temperature = p.real("temperature", d.temperature, 0, 100);
  r.sampling.top_k = p.integer("top_k", d.top_k, 0, 1 << 20);
  r.sampling.top_p = p.real("top_p", d.top_p, 0, 1);
  r.sampling.min_p = p.real("min_p", d.min_p, 0, 1);
  r.sampling.repeat_penalty = p.real("repeat_penalty", d.repeat_penalty, 0, 100);
  r.sampling.repeat_last_n = p.integer("repeat_last_n", d.repeat_last_n, -1, 1 << 20);
  r.stop = p.strings("stop", 16, 256);
  r.bf16_weights = ctx.cfg.decode_bf16;  // the server's decoder; recorded in the manifest
  return r;
}

static nlohmann::json sample_json(const TextResult& r, uint64_t seed) {
  return {{"seed", seed},
          {"text", r.text},
          {"tokens", r.tokens},
          {"prompt_tokens", r.prompt_tokens},
          {"prompt_cropped", r.prompt_cropped},
          {"stop_reason", r.stop_reason},
          {"seconds", r.seconds}};
}

CopyCheck copy_check(const Context& ctx, const Params& p) {
  CopyCheck c;
  c.reject = p.boolean("reject_copies", false);
  c.tries = static_cast<int>(p.integer("reject_copies_tries", 4, 1, 100));
  c.attribute = p.boolean("attribution", ctx.cfg.output.level == ProvenanceLevel::Full);
  return c;
}

void attach_auditor(CopyCheck& c, ServedModel& m) {
  if (!c.reject && !c.attribute) return;
  std::lock_guard<std::mutex> lock(m.mu);
  c.auditor = &m.copy_auditor();
}

void add_check(nlohmann::json& j, const CheckRecord& r) {
  if (!r.copy_check.is_null()) j["copy_check"] = r.copy_check;
  if (!r.attribution.is_null()) j["attribution"] = r.attribution;
}

TextChecks attribute_text(const CopyCheck& c, const std::vector<TextResult>& results) {
  TextChecks checks;
  if (!c.auditor) return checks;
  for (const TextResult& r : results)
    checks.each.push_back(
        check_made(c, r, [&](const TextResult& t) { return c.auditor->audit_text(t.text); }));
  return checks;
}

static uint64_t seed_of(const TextJob& job, const TextChecks& checks, size_t i) {
  return i < checks.seeds.size() ? checks.seeds[i] : job.seed + i;
}

Artifact text_artifact(const Context& ctx, const TextJob& job, const std::vector<TextResult>& results,
                       const TextChecks& checks) {
  std::vector<std::string> bodies;
  nlohmann::json seeds_used = nlohmann::json::array();
  for (size_t i = 0; i < results.size(); i++) {
    bodies.push_back(job.req.prompt + results[i].text);
    seeds_used.push_back(seed_of(job, checks, i));
  }
  GenerationRecord rec =
      text_record(job.model->record, job.req, job.seed, job.count, job.model->text->tokenizer->kind());
  apply_text_checks(&rec, checks.each, seeds_used);
  return ctx.writer.encode_text(text_file(bodies, job.seed), rec);
}

// The whole answer: samples (with their checks), the file `generate text --out` writes, and
// its manifest.
static nlohmann::json text_answer(const Context& ctx, const TextJob& job,
                                  const std::vector<TextResult>& results, const TextChecks& checks = {}) {
  nlohmann::json samples = nlohmann::json::array();
  for (size_t i = 0; i < results.size(); i++) {
    nlohmann::json sample = sample_json(results[i], seed_of(job, checks, i));
    if (i < checks.each.size()) add_check(sample, checks.each[i]);
    samples.push_back(sample);
  }
  const Artifact a = text_artifact(ctx, job, results, checks);
  return {{"model", job.model->name},
          {"seed", job.seed},
          {"samples", samples},
          {"file", a.bytes},
          {"file_base64", base64_encode(a.bytes)},
          {"manifest", a.manifest}};
}

static void generate_text_route(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const Params p = Params::parse(req.body);
  TextJob job;
  job.model = ctx.registry.get(p.required_text("model"), kTextFamily);
  job.req = text_request(ctx, p, SamplingParams{}, 256);
  job.count = p.integer("count", 1, 1, ctx.cfg.max_count);
  job.seed = p.seed("seed").value_or(random_seed());
  const bool stream = p.boolean("stream", false);
  CopyCheck check = copy_check(ctx, p);
  if (check.reject && stream)
    throw ApiError(400, "reject_copies cannot stream: a sample is sent only once it passed the copy audit",
                   "drop 'stream' or 'reject_copies'");
  attach_auditor(check, *job.model);
  auto audit = [check](const TextResult& t) { return check.auditor->audit_text(t.text); };
  if (check.reject) {
    // As `generate text --reject-copies`: one sample at a time, a flagged one re-made from
    // retry seeds (each attempt decoded beside other requests on the model's batcher).
    std::vector<TextResult> results;
    TextChecks checks;
    checks.each.resize(static_cast<size_t>(job.count));
    for (int64_t i = 0; i < job.count; i++) {
      uint64_t used = 0;
      results.push_back(make_checked<TextResult>(
          check, &checks.each[static_cast<size_t>(i)],
          [&](int attempt) {
            TextJob one = job;
            one.count = 1;
            one.seed = used = retry_seed(job.seed + static_cast<uint64_t>(i), attempt);
            auto b = submit_text(ctx, one, false);
            return wait_text(ctx, *b, 1)[0];
          },
          audit));
      checks.seeds.push_back(used);
    }
    res.set_content(dump(text_answer(ctx, job, results, checks)), "application/json");
    return;
  }
  // Attribution alone audits the samples once they are made (streamed or not).
  auto attribute = [check](const std::vector<TextResult>& results) { return attribute_text(check, results); };
  auto box = submit_text(ctx, job, stream);
  if (!stream) {
    const std::vector<TextResult> results = wait_text(ctx, *box, job.count);
    res.set_content(dump(text_answer(ctx, job, results, attribute(results))), "application/json");
    return;
  }
  auto shared = std::make_shared<TextJob>(job);
  const Context c = ctx;
  stream_text(
      ctx, res, box, job.count,
      [](httplib::DataSink& sink, const TextEvent& e) {
        return sse(sink, "token", dump({{"index", e.index}, {"text", e.text}}));
      },
      [c, shared, attribute](httplib::DataSink& sink, const std::vector<TextResult>& results) {
        sse(sink, "done", dump(text_answer(c, *shared, results, attribute(results))));
      },
      [](httplib::DataSink& sink, const TextEvent& e) {
        sse(sink, "error", dump(error_body(400, e.error, e.hint)));
      });
}

// ---- /api/detect and /api/verify: an uploaded file (multipart "file", or the raw body) ----

// A private folder for one upload, removed when it goes out of scope.
struct Upload {
  std::string dir, path;
  std::string bytes;  // the file
  Upload(const httplib::Request& req, size_t max_bytes) {
    std::string name = "upload", sidecar;
    if (req.is_multipart_form_data()) {
      if (!req.has_file("file"))
        throw ApiError(400, "no 'file' part in the upload",
                       "send multipart/form-data with the file as 'file'");
      const auto f = req.get_file_value("file");
      bytes = f.content;
      name = f.filename;
      if (req.has_file("manifest")) sidecar = req.get_file_value("manifest").content;
    } else {
      bytes = req.body;
      if (req.has_param("name")) name = req.get_param_value("name");
    }
    if (bytes.empty()) throw ApiError(400, "the uploaded file is empty", "send the file's bytes");
    if (bytes.size() > max_bytes) throw ApiError(413, "the uploaded file is too large");
    // Only the extension of the client's name is kept (it tells a text file's sidecar apart).
    std::string ext = fs::path(name).extension().string();
    if (ext.size() > 10 ||
        ext.find_first_not_of(".abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") !=
            std::string::npos)
      ext = "";
    char tmpl[] = "/tmp/imagine-upload-XXXXXX";
    if (!mkdtemp(tmpl)) throw Error("cannot create a temporary folder for the upload", "check /tmp");
    dir = tmpl;
    path = dir + "/upload" + ext;
    write_file_atomic(path, bytes);
    if (!sidecar.empty()) write_file_atomic(path + ".provenance.json", sidecar);
  }
  ~Upload() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

static void detect_route(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  Upload up(req, ctx.cfg.max_body);
  DetectOptions opt;
  opt.watermark_key = ctx.cfg.output.watermark_key;
  if (req.has_param("model")) opt.model_dir = ctx.registry.resolve(req.get_param_value("model"));
  DetectReport r = detect_file(up.path, opt);
  r.path = "upload";
  res.set_content(dump(r.to_json()), "application/json");
}

static void verify_route(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  Upload up(req, ctx.cfg.max_body);
  VerifyReport r = verify_file(up.path, load_default_trusted_keys(ctx.cfg.trusted_keys));
  r.path = "upload";
  nlohmann::json j = r.to_json();
  j["intact"] = r.intact();
  j["summary"] = r.summary();
  res.set_content(dump(j), "application/json");
}

// The copy audit of an upload against the model's training data (imagine audit --json); an
// image also gets its side-by-side picture with the nearest training images.
static void audit_route(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  if (!req.has_param("model"))
    throw ApiError(400, "missing ?model=NAME", "name the model whose training data to check");
  auto model = ctx.registry.get(req.get_param_value("model"));
  const Upload up(req, ctx.cfg.max_body);
  nlohmann::json answer;
  on_worker(ctx, *model, [&] {
    CopyAuditor& auditor = model->copy_auditor();
    Image img;
    const AuditReport r = audit_file_bytes(auditor, up.bytes, "the upload", &img);
    answer = {{"kind", r.kind}, {"flagged", r.flagged}, {"summary", r.summary}, {"detail", r.detail}};
    if (img.width > 0)
      answer["picture"] = file_json(audit_picture(auditor, ctx.writer, model->record, img, r));
  });
  res.set_content(dump(answer), "application/json");
}

std::vector<Route> api_routes(Context ctx) {
  auto bind = [&ctx](RouteFn f) { return bound(ctx, f); };
  std::vector<Route> routes = {
      {"GET", "/api/models", bind(list_models)},
      {"GET", R"(/api/models/([^/]+))", bind(show_model)},
      {"POST", "/api/generate/text", bind(generate_text_route)},
      {"POST", "/api/detect", bind(detect_route)},
      {"POST", "/api/verify", bind(verify_route)},
      {"POST", "/api/audit", bind(audit_route)},
  };
  for (Route& r : media_routes(ctx)) routes.push_back(std::move(r));
  for (Route& r : job_routes(ctx)) routes.push_back(std::move(r));
  for (Route& r : studio_routes(ctx)) routes.push_back(std::move(r));
  for (Route& r : openai_routes(ctx)) routes.push_back(std::move(r));
  return routes;
}

}  // namespace imagine::serve
