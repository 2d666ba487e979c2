// OpenAI-compatible text endpoints: GET /v1/models, POST /v1/completions and
// /v1/chat/completions (streaming and not), so that existing clients work unchanged. Our
// models are base models: chat messages become one prompt (chat_prompt, docs/api.md).
#include <ctime>

#include "core/error.h"
#include "core/runtime.h"
#include "serve/routes.h"
#include "serve/verbs.h"

namespace imagine::serve {

// OpenAI's defaults: plain sampling at temperature 1, no top-k / min-p / penalty.
static SamplingParams openai_defaults() {
  SamplingParams d;
  d.temperature = 1.0;
  d.top_k = 0;
  d.top_p = 1.0;
  d.min_p = 0.0;
  d.repeat_penalty = 1.0;
  return d;
}

static TextJob openai_job(const Context& ctx, const Params& p, const std::string& prompt,
                          int64_t max_tokens_def) {
  TextJob job;
  job.model = ctx.registry.get(p.required_text("model"), kTextFamily);
  const SamplingParams d = openai_defaults();
  job.req.prompt = prompt;
  // OpenAI's max_tokens; newer clients send max_completion_tokens.
  const char* key = p.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  job.req.max_tokens = p.integer(key, max_tokens_def, 0, ctx.cfg.max_tokens);
  job.req.sampling = d;
  job.req.sampling.temperature = p.real("temperature", d.temperature, 0, 2);
  job.req.sampling.top_p = p.real("top_p", d.top_p, 0, 1);
  job.req.sampling.top_k =
      p.integer("top_k", d.top_k, 0, 1 << 20);  // an extension llama.cpp's server has too
  job.req.sampling.min_p = p.real("min_p", d.min_p, 0, 1);
  job.req.stop = p.strings("stop", 4, 256);
  job.count = p.integer("n", 1, 1, ctx.cfg.max_count);
  job.seed = p.seed("seed").value_or(random_seed());
  return job;
}

static std::string finish_reason(const TextResult& r) {
  return r.stop_reason == "max_tokens" ? "length" : r.stop_reason == "stop" ? "stop" : r.stop_reason;
}

static nlohmann::json usage(const std::vector<TextResult>& rs) {
  int64_t completion = 0;
  for (auto& r : rs) completion += r.tokens;
  const int64_t prompt = rs.empty() ? 0 : rs[0].prompt_tokens;
  return {
      {"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
}

// The provenance of the answer: the manifest of the text `generate text --out` would write.
// The manifest of the samples, as `generate text --out` writes it; at --provenance full
// with the nearest training items (OpenAI requests take no reject_copies: they stream).
static nlohmann::json provenance(const Context& ctx, const TextJob& job, const std::vector<TextResult>& rs) {
  CopyCheck check;
  check.attribute = ctx.cfg.output.level == ProvenanceLevel::Full;
  attach_auditor(check, *job.model);
  return text_artifact(ctx, job, rs, attribute_text(check, rs)).manifest;
}

static std::string new_id(const char* prefix) {
  static const char* hex = "0123456789abcdef";
  std::string id = prefix;
  uint64_t r = random_seed();
  for (int i = 0; i < 16; i++, r >>= 4) id += hex[r & 15];
  return id;
}

static void list_models(const Context& ctx, const httplib::Request&, httplib::Response& res) {
  nlohmann::json data = nlohmann::json::array();
  for (const std::string& n : ctx.registry.names()) {
    try {
      if (ctx.registry.describe(n).value("family", "") != kTextFamily) continue;
    } catch (const Error&) {
      continue;
    }
    data.push_back({{"id", n}, {"object", "model"}, {"created", 0}, {"owned_by", "imagine"}});
  }
  res.set_content(dump({{"object", "list"}, {"data", data}}), "application/json");
}

static void show_model(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const std::string n = req.matches[1].str();
  if (ctx.registry.describe(n).value("family", "") != kTextFamily)
    throw ApiError(404, "model '" + n + "' is not a text model", "GET /v1/models lists the text models");
  res.set_content(dump({{"id", n}, {"object", "model"}, {"created", 0}, {"owned_by", "imagine"}}),
                  "application/json");
}

// One request's streaming, OpenAI style: `data: {chunk}` lines, then `data: [DONE]`.
static void stream_openai(const Context& ctx, httplib::Response& res, std::shared_ptr<TextMailbox> box,
                          std::shared_ptr<TextJob> job, bool chat) {
  const std::string id = new_id(chat ? "chatcmpl-" : "cmpl-");
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  const std::string object = chat ? "chat.completion.chunk" : "text_completion";
  auto chunk = [=](nlohmann::json choice) {
    return dump({{"id", id},
                 {"object", object},
                 {"created", created},
                 {"model", job->model->name},
                 {"choices", nlohmann::json::array({choice})}});
  };
  auto first = std::make_shared<std::vector<bool>>(static_cast<size_t>(job->count), true);
  const Context c = ctx;
  stream_text(
      ctx, res, box, job->count,
      [=](httplib::DataSink& sink, const TextEvent& e) {
        nlohmann::json choice = {{"index", e.index}, {"finish_reason", nullptr}};
        if (chat) {
          choice["delta"] = {{"content", e.text}};
          if ((*first)[static_cast<size_t>(e.index)]) choice["delta"]["role"] = "assistant";
          (*first)[static_cast<size_t>(e.index)] = false;
        } else {
          choice["text"] = e.text;
          choice["logprobs"] = nullptr;
        }
        return sse(sink, "", chunk(choice));
      },
      [=](httplib::DataSink& sink, const std::vector<TextResult>& rs) {
        for (size_t i = 0; i < rs.size(); i++) {
          nlohmann::json choice = {{"index", i}, {"finish_reason", finish_reason(rs[i])}};
          if (chat)
            choice["delta"] = nlohmann::json::object();
          else
            choice["text"] = "", choice["logprobs"] = nullptr;
          if (!sse(sink, "", chunk(choice))) return;
        }
        nlohmann::json last = {{"id", id},
                               {"object", object},
                               {"created", created},
                               {"model", job->model->name},
                               {"choices", nlohmann::json::array()},
                               {"usage", usage(rs)},
                               {"provenance", provenance(c, *job, rs)}};
        sse(sink, "", dump(last));
        sse(sink, "", "[DONE]");
      },
      [](httplib::DataSink& sink, const TextEvent& e) {
        sse(sink, "", dump(error_body(400, e.error, e.hint)));
      });
}

// Runs a completion (chat or plain) and answers it, streamed or whole.
static void complete(const Context& ctx, const Params& p, std::shared_ptr<TextJob> job, bool chat,
                     httplib::Response& res) {
  const bool stream = p.boolean("stream", false);
  auto box = submit_text(ctx, *job, stream);
  if (stream) return stream_openai(ctx, res, box, job, chat);
  const std::vector<TextResult> rs = wait_text(ctx, *box, job->count);
  nlohmann::json choices = nlohmann::json::array();
  for (size_t i = 0; i < rs.size(); i++) {
    nlohmann::json c = {{"index", i}, {"logprobs", nullptr}, {"finish_reason", finish_reason(rs[i])}};
    if (chat)
      c["message"] = {{"role", "assistant"}, {"content", rs[i].text}};
    else
      c["text"] = rs[i].text;
    choices.push_back(c);
  }
  res.set_content(dump({{"id", new_id(chat ? "chatcmpl-" : "cmpl-")},
                        {"object", chat ? "chat.completion" : "text_completion"},
                        {"created", static_cast<int64_t>(std::time(nullptr))},
                        {"model", job->model->name},
                        {"choices", choices},
                        {"usage", usage(rs)},
                        {"provenance", provenance(ctx, *job, rs)}}),
                  "application/json");
}

static void completions(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const Params p = Params::parse(req.body);
  std::string prompt;
  if (p.has("prompt") && p.raw()["prompt"].is_array()) {
    const auto& a = p.raw()["prompt"];
    if (a.size() != 1 || !a[0].is_string())
      throw ApiError(400, "'prompt' must be a string or an array of one string",
                     "send one prompt per request");
    prompt = Params(nlohmann::json{{"prompt", a[0]}}).text("prompt", "", 1 << 20);
  } else {
    prompt = p.text("prompt", "", 1 << 20);
  }
  complete(ctx, p, std::make_shared<TextJob>(openai_job(ctx, p, prompt, 16)), false, res);
}

// Chat messages as one prompt for a base model (docs/api.md): "Role: content" paragraphs,
// then "Assistant:" for the model to continue; "\nUser:" is added to the stop strings.
std::string chat_prompt(const nlohmann::json& messages) {
  if (!messages.is_array() || messages.empty())
    throw ApiError(400, "'messages' must be a non-empty array",
                   "send [{\"role\": \"user\", \"content\": \"...\"}]");
  std::string prompt;
  for (const auto& m : messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw ApiError(400, "every message needs a 'role'", "roles: system, user, assistant");
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant")
      throw ApiError(400, "unknown message role '" + role + "'", "roles: system, user, assistant");
    std::string content;
    const auto c = m.value("content", nlohmann::json(""));
    if (c.is_string()) {
      content = c.get<std::string>();
    } else if (c.is_array()) {
      for (const auto& part : c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string())
          throw ApiError(400, "only text content parts are supported",
                         "send {\"type\": \"text\", \"text\": ...}");
        content += part["text"].get<std::string>();
      }
    } else if (!c.is_null()) {
      throw ApiError(400, "a message's 'content' must be a string or an array of text parts");
    }
    role[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(role[0])));
    prompt += role + ": " + content + "\n\n";
  }
  return prompt + "Assistant:";
}

static void chat_completions(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const Params p = Params::parse(req.body);
  const std::string prompt =
      Params(nlohmann::json{{"prompt", chat_prompt(p.raw().value("messages", nlohmann::json()))}})
          .text("prompt", "", 1 << 20);
  auto job = std::make_shared<TextJob>(openai_job(ctx, p, prompt, 256));
  if (job->req.stop.size() < 5) job->req.stop.push_back("\nUser:");
  complete(ctx, p, job, true, res);
}

std::vector<Route> openai_routes(Context ctx) {
  auto bind = [&ctx](RouteFn f) { return bound(ctx, f); };
  return {
      {"GET", "/v1/models", bind(list_models)},
      {"GET", R"(/v1/models/([^/]+))", bind(show_model)},
      {"POST", "/v1/completions", bind(completions)},
      {"POST", "/v1/chat/completions", bind(chat_completions)},
  };
}

}  // namespace imagine::serve
