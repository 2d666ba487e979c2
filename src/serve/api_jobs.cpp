// Training jobs over the API: POST /api/jobs starts `imagine train` on a data folder inside
// --data-root, writing a new model into the models folder; GET /api/jobs[/ID] reports,
// GET /api/jobs/ID/events streams progress (SSE), DELETE /api/jobs/ID cancels.
#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/options.h"
#include "serve/routes.h"
#include "train/train_image.h"
#include "train/train_music.h"
#include "train/train_text.h"

namespace fs = std::filesystem;

namespace imagine::serve {

// A data path relative to the root, resolved without leaving it (no "..", no absolute path,
// no symlink out).
static std::string data_path(const std::string& root, const std::string& rel) {
  if (root.empty())
    throw ApiError(400, "this server runs no training jobs", "start it with --data-root DIR to allow them");
  if (rel.empty() || rel[0] == '/' || fs::path(rel).is_absolute())
    throw ApiError(400, "'data' must be a path inside the server's data root", "e.g. \"data\": \"poems\"");
  for (const auto& part : fs::path(rel))
    if (part == "..")
      throw ApiError(400, "'data' must not contain '..'", "name a folder inside the data root");
  std::error_code ec;
  const fs::path base = fs::canonical(root, ec);
  const fs::path p = fs::canonical(fs::path(root) / rel, ec);
  const std::string b = base.string() + "/";
  if (ec || p.string().compare(0, b.size(), b) != 0)
    throw ApiError(404, "no data '" + rel + "' in the server's data root",
                   "GET /api/jobs lists what ran; check the name");
  return p.string();
}

static std::string plain_option(const Params& p, const std::string& key, size_t max) {
  const std::string v = p.text(key, "", max);
  for (char c : v)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      throw ApiError(400, "'" + key + "' holds a character other than letters, digits, '-', '_' and '.'");
  return v;
}

static void start_job(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const Params p = Params::parse(req.body);
  JobSpec spec;
  spec.family = p.required_text("family", 16);
  if (spec.family != "text" && spec.family != "image" && spec.family != "music")
    throw ApiError(400, "unknown family '" + spec.family + "'", "family is text, image or music");
  spec.data_name = p.required_text("data", 1024);
  spec.data = data_path(ctx.cfg.data_root, spec.data_name);
  spec.name = plain_option(p, "name", 128);
  if (spec.name.empty() || spec.name[0] == '.' || spec.name[0] == '-')
    throw ApiError(400, "'name' must be a plain name for the new model", "e.g. \"name\": \"poems-1\"");
  spec.out = ctx.registry.root() + "/" + spec.name;
  if (fs::exists(spec.out))
    throw ApiError(409, "a model or folder '" + spec.name + "' exists already", "pick another name");
  auto add = [&](const std::string& flag, const std::string& value) {
    if (!value.empty()) spec.options.insert(spec.options.end(), {"--" + flag, value});
  };
  add("preset", plain_option(p, "preset", 64));
  if (p.has("steps")) add("steps", std::to_string(p.integer("steps", 0, 1, 10000000)));
  if (p.has("seed")) add("seed", std::to_string(*p.seed("seed")));
  if (spec.family == "image") {
    const std::string model = p.text("model", "vae", 8);
    if (model != "vae" && model != "gan") throw ApiError(400, "'model' is vae or gan");
    add("model", model);
    if (p.has("epochs")) add("epochs", std::to_string(p.integer("epochs", 0, 1, 10000)));
  }
  if (spec.family == "text" && p.has("tokenizer")) {
    const std::string t = p.text("tokenizer", "", 8);
    if (t != "byte" && t != "bpe") throw ApiError(400, "'tokenizer' is byte or bpe");
    add("tokenizer", t);
  }
  const std::string id = ctx.jobs.start(spec);
  if (id.empty()) throw ApiError(503, "a training job is running already", "wait for it, or cancel it");
  res.status = 202;
  res.set_content(dump(ctx.jobs.describe(id)), "application/json");
}

// What a file of training data looks like it is for, by its extension ("" = none of them).
static const char* data_kind(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".txt" || ext == ".md" || ext == ".text") return "text";
  if (ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".gz" || ext == ".idx") return "image";
  if (ext == ".mid" || ext == ".midi" || ext == ".json") return "music";
  return "";
}

// GET /api/data: the entries directly inside the data root, what to train on (the studio's
// data picker). Each: name, type (folder/file), files and bytes (counted up to 10,000 files),
// and kinds: how many files look like text, image or music data; and each family's presets.
static nlohmann::json presets_of(const OptionTable& t) {
  nlohmann::json list = nlohmann::json::array();
  for (const Preset& p : t.presets()) list.push_back({{"name", p.name}, {"help", p.help}});
  return list;
}

static void list_data(const Context& ctx, const httplib::Request&, httplib::Response& res) {
  nlohmann::json entries = nlohmann::json::array();
  const nlohmann::json presets = {{"text", presets_of(text_train_table())},
                                  {"image", presets_of(image_train_table())},
                                  {"music", presets_of(music_train_table())}};
  const std::string& root = ctx.cfg.data_root;
  if (root.empty()) {
    res.set_content(dump({{"enabled", false}, {"entries", entries}, {"presets", presets}}),
                    "application/json");
    return;
  }
  std::vector<fs::directory_entry> top;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) top.push_back(e);
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.path() < b.path(); });
  for (const auto& e : top) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::map<std::string, int64_t> kinds;
    int64_t files = 0, bytes = 0;
    auto count = [&](const fs::path& p) {
      std::error_code fec;
      if (!fs::is_regular_file(p, fec)) return;
      files++;
      bytes += static_cast<int64_t>(fs::file_size(p, fec));
      if (const char* k = data_kind(p); *k) kinds[k]++;
    };
    const bool folder = e.is_directory(ec);
    if (folder) {
      for (auto it =
               fs::recursive_directory_iterator(e.path(), fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator() && files < 10000; it.increment(ec))
        count(it->path());
    } else {
      count(e.path());
    }
    entries.push_back({{"name", name},
                       {"type", folder ? "folder" : "file"},
                       {"files", files},
                       {"bytes", bytes},
                       {"kinds", kinds}});
  }
  res.set_content(dump({{"enabled", true}, {"entries", entries}, {"presets", presets}}), "application/json");
}

static nlohmann::json job_or_404(const Context& ctx, const std::string& id) {
  nlohmann::json j = ctx.jobs.describe(id);
  if (j.is_null()) throw ApiError(404, "no job '" + id + "'", "GET /api/jobs lists the jobs");
  return j;
}

static void list_jobs(const Context& ctx, const httplib::Request&, httplib::Response& res) {
  nlohmann::json jobs = nlohmann::json::array();
  for (const std::string& id : ctx.jobs.ids()) jobs.push_back(ctx.jobs.describe(id));
  res.set_content(dump({{"jobs", jobs}}), "application/json");
}

static void show_job(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  res.set_content(dump(job_or_404(ctx, req.matches[1].str())), "application/json");
}

static void cancel_job(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1].str();
  if (!ctx.jobs.cancel(id)) throw ApiError(404, "no job '" + id + "'", "GET /api/jobs lists the jobs");
  res.set_content(dump(ctx.jobs.describe(id)), "application/json");
}

// SSE: `progress` for every logged step (step, total, loss, ETA), `eval` for evaluations,
// and `end` with the job's final state.
static void job_events(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const std::string id = req.matches[1].str();
  job_or_404(ctx, id);
  JobManager* jobs = &ctx.jobs;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream", [jobs, id, offset = size_t{0}](size_t, httplib::DataSink& sink) mutable {
        for (;;) {
          const bool done = jobs->finished(id);  // read before the metrics: nothing logged after it is missed
          const int64_t total = jobs->total_steps(id);
          for (nlohmann::json& m : jobs->metrics_since(id, &offset)) {
            const bool eval = m.value("event", "") == "eval";
            if (!eval) {
              m["total_steps"] = total > 0 ? nlohmann::json(total) : nlohmann::json(nullptr);
              const nlohmann::json eta =
                  JobManager::eta_seconds(m.value("step", int64_t{0}), total, m.value("elapsed_s", 0.0));
              if (!eta.is_null()) m["eta_seconds"] = eta;
            }
            if (!sse(sink, eval ? "eval" : "progress", dump(m))) return false;
          }
          if (done) {
            sse(sink, "end", dump(jobs->describe(id)));
            sink.done();
            return true;
          }
          if (!sink.is_writable()) return false;
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
        }
      });
}

std::vector<Route> job_routes(Context ctx) {
  auto bind = [&ctx](RouteFn f) { return bound(ctx, f); };
  return {
      {"POST", "/api/jobs", bind(start_job)},
      {"GET", "/api/jobs", bind(list_jobs)},
      {"GET", "/api/data", bind(list_data)},
      {"GET", R"(/api/jobs/([A-Za-z0-9-]+))", bind(show_job)},
      {"GET", R"(/api/jobs/([A-Za-z0-9-]+)/events)", bind(job_events)},
      {"DELETE", R"(/api/jobs/([A-Za-z0-9-]+))", bind(cancel_job)},
      {"POST", R"(/api/jobs/([A-Za-z0-9-]+)/cancel)", bind(cancel_job)},
  };
}

}  // namespace imagine::serve
