// The image verbs: `imagine generate|vary|blend|interpolate|reconstruct image`, and the
// image side of `imagine eval` / `imagine info`. Every PNG written carries its seed(s) and
// model in tEXt chunks.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "core/options.h"
#include "core/runtime.h"
#include "data/image_dataset.h"
#include "eval/image_eval.h"
#include "image/image.h"
#include "models/image_model.h"
#include "serve/image_verbs.h"

namespace fs = std::filesystem;

namespace imagine::cli {
namespace {

// Options every image verb shares.
OptionTable& common(OptionTable& t) {
  t.text("model", "", "model directory written by `imagine train image`", "DIR")
      .text("class", "", "class name or index (conditional models)", "C")
      .integer("seed", -1, -1, 9.2e18, "random seed (-1 = random; the seed used is printed)")
      .integer("upscale", 1, 1, 16, "enlarge every written image N times (nearest neighbour)")
      .choice("checkpoint", "best", {"best", "latest"}, "which weights to use")
      .text("device", "auto", "auto, cpu or cuda[:N]", "DEV")
      .integer("threads", 0, 0, 1024, "CPU threads (0 = all cores)")
      .flag("quiet", false, "no progress lines on stderr");
  return output_options(t, false);
}

// Verbs that take input images also search a GAN's latent space for them.
OptionTable& encoding(OptionTable& t) {
  t.integer("search-steps", 300, 1, 100000, "gan: optimisation steps to find an input image's latent");
  return common(t);
}

bool ends_with_png(const std::string& p) {
  std::string ext = fs::path(p).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".png";
}

struct Loaded {
  ImageModel model;
  uint64_t seed = 0;
  std::string cls;                       // --class
  std::unique_ptr<OutputWriter> writer;  // every PNG leaves through it
  ModelRecord record;
};

Loaded load(const Options& o) {
  if (o.s("model").empty())
    throw UsageError("missing --model", "pass --model MODEL_DIR (see imagine train image)");
  set_threads(static_cast<int>(o.i("threads")));
  Loaded l;
  l.writer = std::make_unique<OutputWriter>(output_policy(o));
  l.model = load_image_model(o.s("model"), resolve_device(o.s("device")), o.s("checkpoint"));
  l.record = model_record(o.s("model"), o.s("checkpoint"));
  l.seed = resolve_seed(o.i("seed"));
  l.cls = o.s("class");
  if (!l.cls.empty()) l.model.class_index(l.cls);  // an unknown class fails before any work
  return l;
}

torch::Tensor labels_for(const Loaded& l, int64_t n) { return output_labels(l.model, n, l.cls); }
torch::Tensor input_labels(const Loaded& l, int64_t n) { return imagine::input_labels(l.model, n, l.cls); }
Image to_image(const Options& o, const torch::Tensor& chw) { return output_image(chw, o.i("upscale")); }

// What the manifest records: the verb, the model, and its settings (`detail` in words).
struct Made {
  std::string verb;
  nlohmann::json settings;
  CheckRecord checks;  // --reject-copies / --provenance full
};

// Per output of a batch: its copy check, and what a grid of them records.
struct Checks {
  std::vector<CheckRecord> each;
  explicit Checks(size_t n) : each(n) {}
  void apply(size_t i, Made* m) const { m->checks = each[i]; }
  void apply_all(Made* m) const { m->checks = CheckRecord::combine(each); }
};

Made provenance(const Loaded& l, const std::string& what, const std::string& detail) {
  return {what, {{"detail", detail}}, {}};
}

// Every image verb writes through here: watermark, manifest, signature, atomic write.
void write_output(const Options& o, const Loaded& l, const std::string& path, const Image& img, Made made) {
  const ImageOutput out{made.verb, made.settings, made.checks.copy_check, made.checks.attribution};
  write_file_atomic(path, image_artifact(*l.writer, l.record, img, out, o.i("upscale"), l.cls, l.seed).bytes);
}

torch::Tensor read_input(const Loaded& l, const std::string& path) {
  return load_image_like(path, l.model.arch.channels, l.model.arch.size);
}

void say(const Options& o, const std::string& line) { note(o.b("quiet"), line); }

// A path for sample `seed` when the user named a file (x.png -> x-s42.png) or a folder.
std::string seeded_path(const std::string& out, const std::string& prefix, uint64_t seed) {
  if (ends_with_png(out)) {
    fs::path p(out);
    return (p.parent_path() / (p.stem().string() + "-s" + std::to_string(seed) + ".png")).string();
  }
  make_dirs(out);
  return join_path(out, prefix + "-s" + std::to_string(seed) + ".png");
}

void write_grid(const Options& o, const Loaded& l, const std::string& path, const std::vector<Image>& tiles,
                Made made, int columns = 0) {
  write_output(o, l, path, make_grid(tiles, columns), std::move(made));
}

// ---- generate ----
const OptionTable& generate_table() {
  static const OptionTable table = [] {
    OptionTable t("imagine generate image --model MODEL_DIR --count N --out FILE.png|DIR [options]",
                  "Sample new images. Sample i uses seed + i; single files carry their seed in the name.");
    t.integer("count", 16, 1, 100000, "images to generate")
        .text("out", "",
              "grid PNG (with --grid, or a .png name with --count > 1) or folder/prefix for single files",
              "PATH")
        .flag("grid", false, "write one contact sheet instead of single files")
        .integer("columns", 0, 0, 1000, "grid columns (0 = near square)")
        .real("truncation", 0, 0, 100,
              "redraw latent values beyond +-T (0 = off; ~0.7-1.0 trades variety for quality)");
    copy_check_options(t);
    return common(t);
  }();
  return table;
}

int generate_image(const Options& o) {
  if (o.s("out").empty()) throw UsageError("missing --out", "pass --out grid.png or --out DIR");
  Loaded l = load(o);
  const int64_t n = o.i("count");
  const double trunc = o.f("truncation");
  torch::Tensor labels = labels_for(l, n);
  const CliCopyCheck check = copy_check(o, o.s("model"));
  Checks checks(static_cast<size_t>(n));
  const std::vector<Image> images =
      sample_images(l.model, l.seed, n, trunc, labels, o.i("upscale"), check, &checks.each);
  const bool grid = o.b("grid") || (ends_with_png(o.s("out")) && n > 1);
  const std::string detail =
      str("seeds ", l.seed, "..", l.seed + n - 1, trunc > 0 ? str(", truncation ", trunc) : "",
          o.s("class").empty() ? "" : ", class " + o.s("class"));
  if (grid) {
    if (!ends_with_png(o.s("out"))) throw UsageError("--grid needs a .png file name", "pass --out grid.png");
    Made made = provenance(l, "generate", detail);
    made.settings["seed"] = l.seed;
    made.settings["count"] = n;
    made.settings["truncation"] = trunc;
    checks.apply_all(&made);
    write_grid(o, l, o.s("out"), images, made, static_cast<int>(o.i("columns")));
    std::printf("wrote %s (%lld images, %s)\n", o.s("out").c_str(), (long long)n, detail.c_str());
  } else {
    for (int64_t i = 0; i < n; i++) {
      const uint64_t s = l.seed + i;
      const std::string path =
          n == 1 && ends_with_png(o.s("out")) ? o.s("out") : seeded_path(o.s("out"), "sample", s);
      Made made = provenance(l, "generate", str("seed ", s));
      made.settings["seed"] = s;
      made.settings["truncation"] = trunc;
      checks.apply(static_cast<size_t>(i), &made);
      write_output(o, l, path, images[i], made);
      std::printf("wrote %s (seed %llu)\n", path.c_str(), (unsigned long long)s);
    }
  }
  return 0;
}

// ---- vary ----
const OptionTable& vary_table() {
  static const OptionTable table = [] {
    OptionTable t(
        "imagine vary image --model MODEL_DIR --input a.png --count N --strength S --out DIR|grid.png",
        "Variations of an image: encode it to a latent, then sample around it.");
    t.text("input", "", "PNG or JPEG to vary (resized like the training data)", "FILE")
        .integer("count", 8, 1, 10000, "variations")
        .real("strength", 0.5, 0.0, 1.0, "0 = the input's latent, 1 = an unrelated sample")
        .text("out", "", "grid PNG (input, reconstruction, variations) or a folder of single files", "PATH");
    copy_check_options(t);
    return encoding(t);
  }();
  return table;
}

int vary_image(const Options& o) {
  if (o.s("input").empty()) throw UsageError("missing --input", "pass --input a.png");
  if (o.s("out").empty()) throw UsageError("missing --out", "pass --out DIR or --out grid.png");
  Loaded l = load(o);
  auto x = read_input(l, o.s("input")).unsqueeze(0);
  auto y = input_labels(l, 1);
  Encoded enc =
      encode_images(l.model, x, y, o.i("search-steps"), l.seed, [&](const std::string& s) { say(o, s); });
  say(o, str("reconstruction error: mse ", enc.mse, " (PSNR ", std::round(enc.psnr * 100) / 100, " dB)",
             l.model.vae ? "" : " after latent search"));
  const double s = o.f("strength");
  const int64_t n = o.i("count");
  const CliCopyCheck check = copy_check(o, o.s("model"));
  Checks checks(static_cast<size_t>(n));
  const torch::Tensor imgs = vary_images(l.model, enc.z[0], s, l.seed, n, y, check, &checks.each);
  auto recon = l.model.decode(enc.z, y);
  const std::string detail = str("input ", o.s("input"), ", strength ", s, ", seeds ", l.seed, "..",
                                 l.seed + n - 1, ", reconstruction mse ", enc.mse);
  if (ends_with_png(o.s("out"))) {
    std::vector<Image> tiles = {to_image(o, x[0]), to_image(o, recon[0])};
    for (int64_t i = 0; i < n; i++) tiles.push_back(to_image(o, imgs[i]));
    Made made = provenance(l, "vary", detail);
    checks.apply_all(&made);
    write_grid(o, l, o.s("out"), tiles, made);
    std::printf("wrote %s (input, reconstruction, %lld variations; %s)\n", o.s("out").c_str(), (long long)n,
                detail.c_str());
  } else {
    make_dirs(o.s("out"));
    write_output(o, l, join_path(o.s("out"), "reconstruction.png"), to_image(o, recon[0]),
                 provenance(l, "vary", detail));
    for (int64_t i = 0; i < n; i++) {
      const std::string path = seeded_path(o.s("out"), "variation", l.seed + i);
      Made made = provenance(l, "vary", str("seed ", l.seed + i, ", strength ", s));
      checks.apply(static_cast<size_t>(i), &made);
      write_output(o, l, path, to_image(o, imgs[i]), made);
    }
    std::printf("wrote %s/reconstruction.png and %lld variations (%s)\n", o.s("out").c_str(), (long long)n,
                detail.c_str());
  }
  std::printf("reconstruction mse %.6f psnr %.2f dB\n", enc.mse, enc.psnr);
  return 0;
}

// ---- blend ----
const OptionTable& blend_table() {
  static const OptionTable table = [] {
    OptionTable t("imagine blend image --model MODEL_DIR --inputs a.png:0.3,b.png:0.7[,...] --out x.png",
                  "Blend images in latent space: the weighted mean of their latents, decoded.");
    t.text("inputs", "", "comma-separated FILE[:WEIGHT] (weights > 0, normalised to sum 1; default 1)",
           "LIST")
        .text("out", "", "PNG to write", "FILE");
    return encoding(t);
  }();
  return table;
}

}  // namespace

std::vector<std::pair<std::string, double>> parse_blend_inputs(const std::string& spec) {
  std::vector<std::pair<std::string, double>> out;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(start, end - start);
    start = end + 1;
    if (item.empty()) throw UsageError("empty entry in --inputs", "use --inputs a.png:0.3,b.png:0.7");
    double w = 1.0;
    const size_t colon = item.rfind(':');
    if (colon != std::string::npos) {
      const std::string ws = item.substr(colon + 1);
      char* endp = nullptr;
      w = std::strtod(ws.c_str(), &endp);
      if (ws.empty() || *endp != '\0')
        throw UsageError("bad weight '" + ws + "' for " + item.substr(0, colon),
                         "weights are numbers, e.g. a.png:0.3");
      item = item.substr(0, colon);
    }
    if (!std::isfinite(w) || w <= 0)
      throw UsageError(str("weight ", w, " for ", item, " must be positive"),
                       "use weights > 0, e.g. a.png:0.3,b.png:0.7");
    out.push_back({item, w});
    if (end == spec.size()) break;
  }
  if (out.size() < 2)
    throw UsageError("--inputs needs at least two images", "use --inputs a.png:0.3,b.png:0.7");
  double total = 0;
  for (auto& [p, w] : out) total += w;
  for (auto& [p, w] : out) w /= total;
  return out;
}

namespace {

int blend_image(const Options& o) {
  if (o.s("inputs").empty()) throw UsageError("missing --inputs", "use --inputs a.png:0.3,b.png:0.7");
  if (o.s("out").empty() || !ends_with_png(o.s("out")))
    throw UsageError("missing --out FILE.png", "pass --out x.png");
  const auto inputs = parse_blend_inputs(o.s("inputs"));
  Loaded l = load(o);
  std::vector<torch::Tensor> xs;
  for (auto& [p, w] : inputs) xs.push_back(read_input(l, p));
  auto y = input_labels(l, static_cast<int64_t>(xs.size()));
  Encoded enc = encode_images(l.model, torch::stack(xs), y, o.i("search-steps"), l.seed,
                              [&](const std::string& s) { say(o, s); });
  std::vector<double> weights;
  std::string detail;
  for (size_t i = 0; i < inputs.size(); i++) {
    weights.push_back(inputs[i].second);
    detail += str(detail.empty() ? "" : ", ", inputs[i].first, ":", inputs[i].second);
  }
  auto z = blend_latents(enc.z, weights);
  auto img = l.model.decode(z.unsqueeze(0), y.defined() ? y.slice(0, 0, 1) : y);
  write_output(o, l, o.s("out"), to_image(o, img[0]), provenance(l, "blend", detail));
  std::printf("wrote %s (blend of %s; reconstruction mse of the inputs %.6f)\n", o.s("out").c_str(),
              detail.c_str(), enc.mse);
  return 0;
}

// ---- interpolate ----
const OptionTable& interpolate_table() {
  static const OptionTable table = [] {
    OptionTable t(
        "imagine interpolate image --model MODEL_DIR --from a.png|seed:N --to b.png|seed:M --steps K --out "
        "strip.png",
        "Walk the latent space between two images or seeds (spherical interpolation, both ends included). "
        "Frames go to <strip>-frames/.");
    t.text("from", "", "start: an image file or seed:N", "A")
        .text("to", "", "end: an image file or seed:N", "B")
        .integer("steps", 8, 2, 10000, "frames including both endpoints")
        .text("out", "", "strip PNG; the frames are written next to it in <name>-frames/", "FILE");
    return encoding(t);
  }();
  return table;
}

int interpolate_image(const Options& o) {
  if (o.s("from").empty() || o.s("to").empty())
    throw UsageError("missing --from or --to", "pass --from a.png|seed:N --to b.png|seed:M");
  if (o.s("out").empty() || !ends_with_png(o.s("out")))
    throw UsageError("missing --out FILE.png", "pass --out strip.png");
  Loaded l = load(o);
  auto endpoint = [&](const std::string& spec) -> torch::Tensor {
    if (spec.rfind("seed:", 0) == 0) {
      const std::string v = spec.substr(5);
      char* end = nullptr;
      const unsigned long long s = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || v[0] == '-')
        throw UsageError("bad seed in '" + spec + "'", "use seed:N with N a non-negative integer");
      return seeded_latent(s, l.model.arch.latent_dim);
    }
    auto x = read_input(l, spec).unsqueeze(0);
    auto enc = encode_images(l.model, x, input_labels(l, 1), o.i("search-steps"), l.seed,
                             [&](const std::string& s) { say(o, s); });
    say(o, str(spec, ": reconstruction mse ", enc.mse));
    return enc.z[0];
  };
  auto a = endpoint(o.s("from")), b = endpoint(o.s("to"));
  const int64_t k = o.i("steps");
  const std::vector<torch::Tensor> zs = interpolate_latents(a, b, k);
  auto imgs = l.model.decode(torch::stack(zs), labels_for(l, k));
  fs::path strip(o.s("out"));
  const std::string frames = (strip.parent_path() / (strip.stem().string() + "-frames")).string();
  make_dirs(frames);
  std::vector<Image> tiles;
  const std::string detail = str("from ", o.s("from"), " to ", o.s("to"), ", ", k, " steps (slerp)");
  for (int64_t i = 0; i < k; i++) {
    tiles.push_back(to_image(o, imgs[i]));
    char name[32];
    std::snprintf(name, sizeof name, "frame-%04lld.png", static_cast<long long>(i));
    write_output(o, l, join_path(frames, name), tiles.back(),
                 provenance(l, "interpolate", str(detail, ", frame ", i)));
  }
  write_grid(o, l, o.s("out"), tiles, provenance(l, "interpolate", detail), static_cast<int>(k));
  std::printf("wrote %s and %lld frames in %s\n", o.s("out").c_str(), (long long)k, frames.c_str());
  return 0;
}

// ---- reconstruct ----
const OptionTable& reconstruct_table() {
  static const OptionTable table = [] {
    OptionTable t("imagine reconstruct image --model MODEL_DIR --input a.png --out r.png",
                  "Encode and decode an image (VAE; a GAN searches for the latent) and report the error.");
    t.text("input", "", "PNG or JPEG", "FILE").text("out", "", "PNG to write", "FILE");
    return encoding(t);
  }();
  return table;
}

int reconstruct_image(const Options& o) {
  if (o.s("input").empty()) throw UsageError("missing --input", "pass --input a.png");
  if (o.s("out").empty() || !ends_with_png(o.s("out")))
    throw UsageError("missing --out FILE.png", "pass --out r.png");
  Loaded l = load(o);
  auto x = read_input(l, o.s("input")).unsqueeze(0);
  auto y = input_labels(l, 1);
  Encoded enc =
      encode_images(l.model, x, y, o.i("search-steps"), l.seed, [&](const std::string& s) { say(o, s); });
  auto r = l.model.decode(enc.z, y);
  write_output(o, l, o.s("out"), to_image(o, r[0]),
               provenance(l, "reconstruct", str("input ", o.s("input"), ", mse ", enc.mse)));
  std::printf("wrote %s: mse %.6f, psnr %.2f dB\n", o.s("out").c_str(), enc.mse, enc.psnr);
  return 0;
}

// ---- export ----
const OptionTable& export_table() {
  static const OptionTable table = [] {
    OptionTable t(
        "imagine export image [--data PATH] --out DIR [--split train|test] [--count N] [--first I]",
        "Write dataset images as PNG files, prepared exactly as training sees them (size, channels), "
        "named <split>-<index>-<class>.png.");
    t.text("data", kDefaultImageData, "IDX folder/file or a folder of PNG/JPEG images", "PATH")
        .text("out", "", "folder to write", "DIR")
        .choice("split", "test", {"train", "test"}, "which part of the data")
        .integer("first", 0, 0, 1e9, "index of the first image")
        .integer("count", 16, 1, 1e7, "images to write")
        .integer("size", 0, 0, 128, "28, 32, 64 or 128 (0 = the data's default)")
        .integer("channels", 0, 0, 3, "1 or 3 (0 = the data's default)")
        .flag("quiet", false, "no progress lines on stderr");
    return t;
  }();
  return table;
}

int export_images(const Options& o) {
  if (o.s("out").empty()) throw UsageError("missing --out", "pass --out DIR");
  ImageDataOptions dopt;
  dopt.size = o.i("size");
  dopt.channels = o.i("channels");
  const ImageData data = load_image_data(o.s("data"), dopt);
  const ImageSet& set = o.s("split") == "train" ? data.train : data.test;
  const int64_t first = o.i("first");
  if (first >= set.size())
    throw UsageError(str("--first ", first, " is beyond the ", set.size(), " ", o.s("split"), " images"),
                     str("use --first below ", set.size()));
  const int64_t end = std::min(set.size(), first + o.i("count"));
  make_dirs(o.s("out"));
  for (int64_t i = first; i < end; i++) {
    std::string label;
    if (set.labels.defined()) {
      label = data.classes.at(set.labels[i].item<int64_t>());
      for (auto& c : label)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    const std::string path =
        join_path(o.s("out"), str(o.s("split"), "-", i, label.empty() ? "" : "-" + label, ".png"));
    write_png(path, tensor_to_image(images_to_float(set.images[i])),
              {{"Software", "imagine"}, {"imagine:source", str(o.s("data"), " ", o.s("split"), " #", i)}});
    std::printf("%s\n", path.c_str());
  }
  return 0;
}

}  // namespace

int generate_image(const Args& args) {
  return run_family_verb("image", "generate", args, generate_table(), generate_image);
}
int vary(const Args& args) { return run_family_verb("image", "vary", args, vary_table(), vary_image); }
int blend(const Args& args) { return run_family_verb("image", "blend", args, blend_table(), blend_image); }
int interpolate(const Args& args) {
  return run_family_verb("image", "interpolate", args, interpolate_table(), interpolate_image);
}
int reconstruct(const Args& args) {
  return run_family_verb("image", "reconstruct", args, reconstruct_table(), reconstruct_image);
}
int export_data(const Args& args) {
  if (!args.empty() && args[0] == "music") return export_music(args);
  return run_family_verb("image", "export", args, export_table(), export_images);
}

}  // namespace imagine::cli
