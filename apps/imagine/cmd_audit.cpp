// `imagine audit --model DIR FILE... | --generate N`: did the model copy its training data?
// Text and music: the longest verbatim / melodic run shared with the training data; images:
// the nearest training images and the ratio test. The comparison lives in
// src/provenance/audit.h; this file parses arguments, makes the samples of --generate and
// prints.
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "core/runtime.h"
#include "data/image_dataset.h"
#include "eval/image_eval.h"
#include "generate/music_generate.h"
#include "generate/text_generate.h"
#include "music/midi.h"
#include "provenance/carriers.h"
#include "serve/verbs.h"

namespace fs = std::filesystem;

namespace imagine::cli {

namespace {

const OptionTable& audit_table() {
  static const OptionTable table = [] {
    AuditOptions d;
    OptionTable t(
        "imagine audit --model MODEL_DIR FILE... | --generate N [--json]",
        "Audit outputs for copies of the model's training data: text and music by the longest verbatim "
        "(melodic) run shared with a training file, images by the nearest training images in pixel and "
        "feature space (ratio test). Names the training item. Exit status 0 whatever the verdict.");
    t.text("model", "", "model directory the outputs came from", "DIR")
        .integer("generate", 0, 0, 100000,
                 "audit N fresh samples of the model instead of files (sample i: seed + i)")
        .integer("seed", 1, 0, 9.2e18, "first seed of --generate")
        .text("prompt", "", "text models: prompt of the --generate samples", "S")
        .integer("max-tokens", 256, 1, 1e6, "text models: new tokens per --generate sample")
        .real("seconds", 20, 1, 3600, "music models: length of each --generate sample")
        .real("temperature", SamplingParams{}.temperature, 0.0, 100.0, "sampling temperature of --generate")
        .integer("min-tokens", 0, 0, 1e9,
                 "text: flag a verbatim run of this many tokens (0 = 50 for BPE, 200 for bytes)")
        .integer("min-melody-notes", d.min_melody_notes, 3, 1e6,
                 "music: flag a shared melody of this many notes")
        .real("ratio", d.neighbours.threshold, 0.0, 1.0,
              "images: flag when nearest / mean of the k nearest < this")
        .integer("k", static_cast<int64_t>(d.neighbours.k), 2, 10000, "images: neighbours of the ratio test")
        .text("out", "",
              "images: folder for the side-by-side PNGs (default: FILE.audit.png beside each file; "
              "none for --generate)",
              "DIR")
        .text("feature-cache", "", "images: where the feature network is cached", "DIR")
        .flag("json", false, "print one JSON object")
        .integer("threads", 0, 0, 1024, "CPU threads (0 = all cores)")
        .flag("quiet", false, "no progress lines on stderr");
    return output_options(t, false);
  }();
  return table;
}

struct Item {
  std::string name;
  AuditReport report;
  std::string picture;  // side-by-side PNG written, if any
};

// One side-by-side picture: it shows generated content, so it leaves through the writer.
std::string write_picture(const CopyAuditor& a, const OutputWriter& w, const ModelRecord& model,
                          const Image& img, const AuditReport& report, const std::string& path) {
  write_file_atomic(path, audit_picture(a, w, model, img, report).bytes);
  return path;
}

std::vector<Item> audit_files(const Options& o, const CopyAuditor& a, const OutputWriter* w,
                              const ModelRecord* model) {
  std::vector<Item> items;
  for (const std::string& path : o.positional) {
    const std::string bytes = read_file(path);
    Item it;
    it.name = path;
    Image img;
    it.report = audit_file_bytes(a, bytes, path, &img);
    if (w && img.width > 0) {
      const std::string pic = o.s("out").empty()
                                  ? path + ".audit.png"
                                  : join_path(o.s("out"), fs::path(path).stem().string() + ".audit.png");
      it.picture = write_picture(a, *w, *model, img, it.report, pic);
    }
    items.push_back(std::move(it));
  }
  return items;
}

std::vector<Item> audit_samples(const Options& o, const CopyAuditor& a, const OutputWriter* w,
                                const ModelRecord* model) {
  const std::string dir = o.s("model");
  const int64_t n = o.i("generate");
  const uint64_t seed = static_cast<uint64_t>(o.i("seed"));
  std::vector<Item> items;
  const std::string family = model_family(dir);
  SamplingParams sp;
  sp.temperature = o.f("temperature");
  if (family == "gpt-text") {
    TextModel m = load_text_model(dir, torch::kCPU);
    TextRequest req;
    req.prompt = o.s("prompt");
    req.max_tokens = o.i("max-tokens");
    req.sampling = sp;
    for (int64_t i = 0; i < n; i++) {
      req.seed = seed + static_cast<uint64_t>(i);
      const TextResult r = generate_text(m, req);
      items.push_back({str("sample seed ", req.seed), a.audit_text(r.text), ""});
    }
  } else if (family == "gpt-music") {
    MusicModel m = load_music_model(dir, torch::kCPU);
    MusicRequest req;
    req.seconds = o.f("seconds");
    req.sampling = sp;
    req.sampling.repeat_penalty = 1.0;
    req.max_note_seconds = default_note_cap(m);
    for (int64_t i = 0; i < n; i++) {
      req.seed = seed + static_cast<uint64_t>(i);
      items.push_back({str("sample seed ", req.seed), a.audit_song(generate_music(m, Song{}, req).song), ""});
    }
  } else {
    ImageModel m = load_image_model(dir, torch::kCPU);
    const torch::Tensor x = generate_images(m, n, seed);
    for (int64_t i = 0; i < n; i++) {
      const Image img = tensor_to_image(x[i]);
      Item it{str("sample seed ", seed + static_cast<uint64_t>(i)), a.audit_image(img), ""};
      if (w && !o.s("out").empty())
        it.picture = write_picture(a, *w, *model, img, it.report,
                                   join_path(o.s("out"), str("sample-s", seed + i, ".audit.png")));
      items.push_back(std::move(it));
    }
  }
  return items;
}

int run_audit(const Options& o) {
  if (o.s("model").empty())
    throw UsageError("missing --model", "pass --model MODEL_DIR (the model the outputs came from)");
  const bool generate = o.i("generate") > 0;
  if (!generate && o.positional.empty())
    throw UsageError("nothing to audit", "pass FILE... (outputs of the model) or --generate N");
  if (generate && !o.positional.empty())
    throw UsageError("both FILEs and --generate given", "audit files or fresh samples, not both");
  const bool quiet = o.b("quiet");
  set_threads(static_cast<int>(o.i("threads")));
  AuditOptions opt;
  opt.min_tokens = o.i("min-tokens");
  opt.min_melody_notes = o.i("min-melody-notes");
  opt.neighbours.threshold = o.f("ratio");
  opt.neighbours.k = static_cast<size_t>(o.i("k"));
  opt.feature_cache = o.s("feature-cache");
  std::unique_ptr<CopyAuditor> a =
      open_copy_auditor(o.s("model"), opt, [&](const std::string& s) { note(quiet, s); });
  // Only image audits write (their side-by-side pictures).
  std::unique_ptr<OutputWriter> writer;
  ModelRecord model;
  if (a->kind() == "image" && (!generate || !o.s("out").empty())) {
    writer = std::make_unique<OutputWriter>(output_policy(o));
    model = model_record(o.s("model"));
    if (!o.s("out").empty()) make_dirs(o.s("out"));
  }
  const std::vector<Item> items =
      generate ? audit_samples(o, *a, writer.get(), &model) : audit_files(o, *a, writer.get(), &model);
  size_t flagged = 0;
  for (const Item& it : items) flagged += it.report.flagged;
  if (o.b("json")) {
    nlohmann::json arr = nlohmann::json::array();
    for (const Item& it : items) {
      nlohmann::json j = {{"name", it.name},
                          {"kind", it.report.kind},
                          {"flagged", it.report.flagged},
                          {"summary", it.report.summary},
                          {"detail", it.report.detail}};
      if (!it.picture.empty()) j["side_by_side"] = it.picture;
      arr.push_back(j);
    }
    std::printf("%s\n",
                nlohmann::json{
                    {"model", o.s("model")}, {"audited", items.size()}, {"flagged", flagged}, {"items", arr}}
                    .dump(2)
                    .c_str());
    return 0;
  }
  for (const Item& it : items) {
    std::printf("%s: %s\n  %s\n", it.name.c_str(), it.report.flagged ? "LIKELY COPY" : "original",
                it.report.summary.c_str());
    if (!it.picture.empty()) std::printf("  side by side: %s\n", it.picture.c_str());
  }
  std::printf("audited %zu %s: %zu flagged as likely copies of the training data\n", items.size(),
              items.size() == 1 ? "output" : "outputs", flagged);
  return 0;
}

}  // namespace

int audit(const Args& args) {
  const OptionTable& table = audit_table();
  Options o = table.parse(args);
  if (o.help_requested) return std::fputs(table.help_text().c_str(), stdout), 0;
  return run_audit(o);
}

}  // namespace imagine::cli
