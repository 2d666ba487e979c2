// Images and music over the API: /api/generate/image, /api/vary|blend|interpolate|
// reconstruct/image, /api/generate/music, /api/continue/music. Requests and answers are
// JSON; files travel base64-encoded with their manifests. The work runs on the worker pool,
// one request at a time per model, through the same functions as the CLI verbs.
#include "core/error.h"
#include "core/runtime.h"
#include "data/image_dataset.h"
#include "generate/music_generate.h"
#include "music/midi.h"
#include "music/render.h"
#include "provenance/envelope.h"
#include "serve/image_verbs.h"
#include "serve/routes.h"
#include "serve/verbs.h"

namespace imagine::serve {

static void send(httplib::Response& res, const nlohmann::json& j) {
  res.set_content(dump(j), "application/json");
}

// ---- images ----

struct ImageParams {
  std::shared_ptr<ServedModel> model;
  uint64_t seed = 0;
  std::string cls;
  int64_t upscale = 1;
  int64_t search_steps = 300;
};

static ImageParams image_params(const Context& ctx, const Params& p) {
  ImageParams ip;
  ip.model = ctx.registry.get(p.required_text("model"), kImageFamily);
  ip.seed = p.seed("seed").value_or(random_seed());
  ip.cls = p.text("class", "", 64);
  if (!ip.cls.empty()) {
    try {
      ip.model->image->class_index(ip.cls);
    } catch (const Error& e) {
      throw ApiError(400, e.what(), e.hint());
    }
  }
  ip.upscale = p.integer("upscale", 1, 1, 8);
  ip.search_steps = p.integer("search_steps", 300, 1, 2000);
  return ip;
}

// An uploaded image (base64 PNG or JPEG in field `key`), prepared like the training data.
static torch::Tensor input_image(const Params& p, const std::string& key, const ImageModel& m) {
  const std::string b64 = p.required_text(key, 64 << 20);
  std::string bytes;
  if (!base64_decode(b64, bytes) || bytes.empty())
    throw ApiError(400, "'" + key + "' is not base64", "send the PNG or JPEG file's bytes base64-encoded");
  return image_like(decode_image(bytes, "'" + key + "'"), m.arch.channels, m.arch.size);
}

static nlohmann::json image_json(const Context& ctx, const ImageParams& ip, const Image& img,
                                 const ImageOutput& out) {
  nlohmann::json j =
      file_json(image_artifact(ctx.writer, ip.model->record, img, out, ip.upscale, ip.cls, ip.seed));
  if (out.settings.contains("seed")) j["seed"] = out.settings["seed"];
  return j;
}

static void generate_image(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const Params p = Params::parse(req.body);
  const ImageParams ip = image_params(ctx, p);
  const int64_t n = p.integer("count", 4, 1, ctx.cfg.max_images);
  const double trunc = p.real("truncation", 0, 0, 100);
  const bool grid = p.boolean("grid", false);
  const int64_t columns = p.integer("columns", 0, 0, 1000);
  CopyCheck check = copy_check(ctx, p);
  attach_auditor(check, *ip.model);
  nlohmann::json answer = {{"model", ip.model->name}, {"seed", ip.seed}};
  on_worker(ctx, *ip.model, [&] {
    ImageModel& m = *ip.model->image;
    std::vector<CheckRecord> checks;
    const std::vector<Image> images =
        sample_images(m, ip.seed, n, trunc, output_labels(m, n, ip.cls), ip.upscale, check, &checks);
    if (grid) {
      const std::string detail =
          str("seeds ", ip.seed, "..", ip.seed + n - 1, trunc > 0 ? str(", truncation ", trunc) : "",
              ip.cls.empty() ? "" : ", class " + ip.cls);
      const CheckRecord all = CheckRecord::combine(checks);
      ImageOutput out{"generate",
                      {{"detail", detail}, {"seed", ip.seed}, {"count", n}, {"truncation", trunc}},
                      all.copy_check,
                      all.attribution};
      answer["grid"] = image_json(ctx, ip, make_grid(images, static_cast<int>(columns)), out);
      add_check(answer["grid"], all);
    } else {
      answer["images"] = nlohmann::json::array();
      for (int64_t i = 0; i < n; i++) {
        const uint64_t s = ip.seed + static_cast<uint64_t>(i);
        const CheckRecord& c = checks[static_cast<size_t>(i)];
        ImageOutput out{"generate",
                        {{"detail", str("seed ", s)}, {"seed", s}, {"truncation", trunc}},
                        c.copy_check,
                        c.attribution};
        nlohmann::json j = image_json(ctx, ip, images[static_cast<size_t>(i)], out);
        add_check(j, c);
        answer["images"].push_back(j);
      }
    }
  });
  ctx.metrics.add_images(n);
  send(res, answer);
}

static void vary_image(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const Params p = Params::parse(req.body);
  const ImageParams ip = image_params(ctx, p);
  const int64_t n = p.integer("count", 4, 1, ctx.cfg.max_images);
  const double s = p.real("strength", 0.5, 0, 1);
  const std::string name = p.text("name", "upload", 256);
  CopyCheck check = copy_check(ctx, p);
  attach_auditor(check, *ip.model);
  nlohmann::json answer = {{"model", ip.model->name}, {"seed", ip.seed}};
  on_worker(ctx, *ip.model, [&] {
    ImageModel& m = *ip.model->image;
    auto x = input_image(p, "image", m).unsqueeze(0);
    auto y = input_labels(m, 1, ip.cls);
    const Encoded enc = encode_images(m, x, y, ip.search_steps, ip.seed);
    std::vector<CheckRecord> checks;
    auto imgs = vary_images(m, enc.z[0], s, ip.seed, n, y, check, &checks);
    torch::NoGradGuard no_grad;
    auto recon = m.decode(enc.z, y);
    const std::string detail = str("input ", name, ", strength ", s, ", seeds ", ip.seed, "..",
                                   ip.seed + n - 1, ", reconstruction mse ", enc.mse);
    answer["reconstruction"] =
        image_json(ctx, ip, output_image(recon[0], ip.upscale), {"vary", {{"detail", detail}}, {}, {}});
    answer["variations"] = nlohmann::json::array();
    for (int64_t i = 0; i < n; i++) {
      const uint64_t seed = ip.seed + static_cast<uint64_t>(i);
      const CheckRecord& c = checks[static_cast<size_t>(i)];
      ImageOutput out{
          "vary", {{"detail", str("seed ", seed, ", strength ", s)}}, c.copy_check, c.attribution};
      nlohmann::json v = image_json(ctx, ip, output_image(imgs[i], ip.upscale), out);
      v["seed"] = seed;
      add_check(v, c);
      answer["variations"].push_back(v);
    }
    answer["mse"] = enc.mse;
    answer["psnr"] = enc.psnr;
  });
  ctx.metrics.add_images(n + 1);
  send(res, answer);
}

static void blend_image(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const Params p = Params::parse(req.body);
  const ImageParams ip = image_params(ctx, p);
  const auto& items = p.raw().value("images", nlohmann::json());
  if (!items.is_array() || items.size() < 2 || items.size() > 16)
    throw ApiError(400, "'images' must be an array of 2 to 16 {\"image\": base64, \"weight\": w}",
                   "blend needs at least two images");
  std::vector<double> weights;
  double total = 0;
  for (const auto& it : items) {
    if (!it.is_object())
      throw ApiError(400, "each entry of 'images' must be an object {\"image\", \"weight\"}");
    const double w = Params(it).real("weight", 1.0, 1e-9, 1e9);
    weights.push_back(w);
    total += w;
  }
  for (double& w : weights) w /= total;
  nlohmann::json answer = {{"model", ip.model->name}, {"seed", ip.seed}};
  on_worker(ctx, *ip.model, [&] {
    ImageModel& m = *ip.model->image;
    std::vector<torch::Tensor> xs;
    std::string detail;
    for (size_t i = 0; i < items.size(); i++) {
      const Params item(items[i]);
      xs.push_back(input_image(item, "image", m));
      detail +=
          str(detail.empty() ? "" : ", ", item.text("name", str("upload", i + 1), 256), ":", weights[i]);
    }
    auto y = input_labels(m, static_cast<int64_t>(xs.size()), ip.cls);
    const Encoded enc = encode_images(m, torch::stack(xs), y, ip.search_steps, ip.seed);
    torch::NoGradGuard no_grad;
    auto img = m.decode(blend_latents(enc.z, weights).unsqueeze(0), y.defined() ? y.slice(0, 0, 1) : y);
    answer["image"] =
        image_json(ctx, ip, output_image(img[0], ip.upscale), {"blend", {{"detail", detail}}, {}, {}});
    answer["mse"] = enc.mse;
  });
  ctx.metrics.add_images(1);
  send(res, answer);
}

static void interpolate_image(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const Params p = Params::parse(req.body);
  const ImageParams ip = image_params(ctx, p);
  const int64_t k = p.integer("steps", 8, 2, 64);
  const nlohmann::json from = p.raw().value("from", nlohmann::json()),
                       to = p.raw().value("to", nlohmann::json());
  for (const auto* e : {&from, &to})
    if (!e->is_object() || (!e->contains("seed") && !e->contains("image")))
      throw ApiError(400, "'from' and 'to' must be {\"seed\": N} or {\"image\": base64}",
                     "e.g. {\"from\": {\"seed\": 3}, \"to\": {\"seed\": 11}}");
  nlohmann::json answer = {{"model", ip.model->name}, {"seed", ip.seed}};
  on_worker(ctx, *ip.model, [&] {
    ImageModel& m = *ip.model->image;
    auto endpoint = [&](const nlohmann::json& e, std::string* name) -> torch::Tensor {
      const Params q(e);
      if (q.has("seed")) {
        const uint64_t s = *q.seed("seed");
        *name = str("seed:", s);
        return seeded_latent(s, m.arch.latent_dim);
      }
      *name = q.text("name", "upload", 256);
      auto x = input_image(q, "image", m).unsqueeze(0);
      return encode_images(m, x, input_labels(m, 1, ip.cls), ip.search_steps, ip.seed).z[0];
    };
    std::string a_name, b_name;
    const auto a = endpoint(from, &a_name), b = endpoint(to, &b_name);
    torch::NoGradGuard no_grad;
    auto imgs = m.decode(torch::stack(interpolate_latents(a, b, k)), output_labels(m, k, ip.cls));
    const std::string detail = str("from ", a_name, " to ", b_name, ", ", k, " steps (slerp)");
    std::vector<Image> tiles;
    answer["frames"] = nlohmann::json::array();
    for (int64_t i = 0; i < k; i++) {
      tiles.push_back(output_image(imgs[i], ip.upscale));
      answer["frames"].push_back(image_json(
          ctx, ip, tiles.back(), {"interpolate", {{"detail", str(detail, ", frame ", i)}}, {}, {}}));
    }
    answer["strip"] = image_json(ctx, ip, make_grid(tiles, static_cast<int>(k)),
                                 {"interpolate", {{"detail", detail}}, {}, {}});
  });
  ctx.metrics.add_images(k);
  send(res, answer);
}

static void reconstruct_image(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const Params p = Params::parse(req.body);
  const ImageParams ip = image_params(ctx, p);
  const std::string name = p.text("name", "upload", 256);
  nlohmann::json answer = {{"model", ip.model->name}};
  on_worker(ctx, *ip.model, [&] {
    ImageModel& m = *ip.model->image;
    auto x = input_image(p, "image", m).unsqueeze(0);
    auto y = input_labels(m, 1, ip.cls);
    const Encoded enc = encode_images(m, x, y, ip.search_steps, ip.seed);
    torch::NoGradGuard no_grad;
    auto r = m.decode(enc.z, y);
    answer["image"] =
        image_json(ctx, ip, output_image(r[0], ip.upscale),
                   {"reconstruct", {{"detail", str("input ", name, ", mse ", enc.mse)}}, {}, {}});
    answer["mse"] = enc.mse;
    answer["psnr"] = enc.psnr;
  });
  ctx.metrics.add_images(1);
  send(res, answer);
}

// ---- music ----

static MusicRequest music_request(const Context& ctx, const Params& p, const MusicModel& m, uint64_t seed) {
  MusicRequest r;
  const double cap = p.real("max_note_seconds", -1, -1, 3600);
  r.max_note_seconds = cap >= 0 ? cap : default_note_cap(m);
  r.seconds = p.real("seconds", 20, 1, ctx.cfg.max_music_seconds);
  r.max_tokens = p.integer("max_tokens", 4096, 1, std::max<int64_t>(ctx.cfg.max_tokens, 4096));
  r.sampling.temperature = p.real("temperature", 1.0, 0, 100);
  r.sampling.top_k = p.integer("top_k", 0, 0, 1 << 20);
  r.sampling.top_p = p.real("top_p", 0.95, 0, 1);
  r.sampling.min_p = p.real("min_p", 0.0, 0, 1);
  r.sampling.repeat_penalty = 1.0;
  r.seed = seed;
  r.logit_hook = watermark_hook(ctx.writer);
  // Past the request's deadline the piece ends where it is, like a text request's.
  r.stop = [deadline = ctx.deadline()]() -> std::string { return Clock::now() > deadline ? "timeout" : ""; };
  return r;
}

// The piece as MIDI, and (when asked) its WAV and piano roll.
static nlohmann::json piece_json(const Context& ctx, const Params& p, const MusicResult& r,
                                 const GenerationRecord& rec) {
  const Artifact midi = ctx.writer.encode_midi(r.song, rec);
  nlohmann::json j = {{"notes", r.song.notes.size()}, {"seconds", r.song.duration()},
                      {"events", r.tokens},           {"stop_reason", r.stop_reason},
                      {"seed", rec.settings["seed"]}, {"midi", file_json(midi)}};
  if (p.boolean("wav", true)) j["wav"] = file_json(ctx.writer.encode_wav(r.song, audio_record(rec)));
  if (p.boolean("roll", true))
    j["roll"] = file_json(roll_artifact(ctx.writer, midi.bytes, "piece.mid",
                                        static_cast<int>(p.integer("pixels_per_second", 50, 1, 1000))));
  ctx.metrics.add_music_seconds(r.song.duration());
  return j;
}

static void generate_music_route(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const Params p = Params::parse(req.body);
  auto model = ctx.registry.get(p.required_text("model"), kMusicFamily);
  const uint64_t seed = p.seed("seed").value_or(random_seed());
  CopyCheck check = copy_check(ctx, p);
  attach_auditor(check, *model);
  nlohmann::json answer = {{"model", model->name}, {"seed", seed}};
  on_worker(ctx, *model, [&] {
    MusicModel& m = *model->music;
    MusicRequest mr = music_request(ctx, p, m, seed);
    CheckRecord checked;
    const MusicResult r = generate_music_checked(m, Song{}, mr, seed, check, &checked);
    GenerationRecord rec = music_record(model->record, m, mr, "generate");
    checked.apply_to(&rec);
    answer.update(piece_json(ctx, p, r, rec));
    add_check(answer, checked);
  });
  send(res, answer);
}

static void continue_music_route(const Context& ctx, const httplib::Request& req, httplib::Response& res) {
  const Params p = Params::parse(req.body);
  auto model = ctx.registry.get(p.required_text("model"), kMusicFamily);
  const uint64_t seed = p.seed("seed").value_or(random_seed());
  const int64_t count = p.integer("count", 1, 1, 8);
  std::string bytes;
  if (!base64_decode(p.required_text("primer", 16 << 20), bytes) || bytes.empty())
    throw ApiError(400, "'primer' is not base64", "send the MIDI file's bytes base64-encoded");
  const std::string name = p.text("name", "primer.mid", 256);
  const Song primer = trim_primer(parse_midi(bytes, "'primer'"), p.real("primer_seconds", 0, 0, 3600), name);
  CopyCheck check = copy_check(ctx, p);
  attach_auditor(check, *model);
  nlohmann::json answer = {
      {"model", model->name}, {"seed", seed}, {"continuations", nlohmann::json::array()}};
  on_worker(ctx, *model, [&] {
    MusicModel& m = *model->music;
    MusicRequest mr = music_request(ctx, p, m, seed);
    const double primer_end = primer.duration();
    mr.seconds += primer_end;  // `seconds` counts the new part
    for (int64_t i = 0; i < count; i++) {
      CheckRecord checked;  // the audit looks at the new part only: the primer is the user's
      const MusicResult r =
          generate_music_checked(m, primer, mr, seed + static_cast<uint64_t>(i), check, &checked);
      GenerationRecord rec = music_record(model->record, m, mr, "continue");
      checked.apply_to(&rec);
      rec.settings["primer"] = name;
      rec.settings["primer_seconds"] = primer_end;
      nlohmann::json piece = piece_json(ctx, p, r, rec);
      add_check(piece, checked);
      answer["continuations"].push_back(piece);
    }
  });
  send(res, answer);
}

std::vector<Route> media_routes(Context ctx) {
  auto bind = [&ctx](RouteFn f) { return bound(ctx, f); };
  return {
      {"POST", "/api/generate/image", bind(generate_image)},
      {"POST", "/api/vary/image", bind(vary_image)},
      {"POST", "/api/blend/image", bind(blend_image)},
      {"POST", "/api/interpolate/image", bind(interpolate_image)},
      {"POST", "/api/reconstruct/image", bind(reconstruct_image)},
      {"POST", "/api/generate/music", bind(generate_music_route)},
      {"POST", "/api/continue/music", bind(continue_music_route)},
  };
}

}  // namespace imagine::serve
