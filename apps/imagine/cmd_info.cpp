// `imagine info MODEL_DIR` and `imagine eval MODEL_DIR --data PATH`.
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "core/options.h"
#include "core/runtime.h"
#include "data/text_corpus.h"
#include "models/image_model.h"
#include "models/music_model.h"
#include "models/text_model.h"
#include "train/model_card.h"

namespace imagine::cli {

static const OptionTable& info_table() {
  static const OptionTable table = [] {
    OptionTable t(
        "imagine info MODEL_DIR [--json]",
        "Show a model's architecture, parameters, tokenizer, training record and best validation loss.");
    t.flag("json", false, "print one JSON object");
    return t;
  }();
  return table;
}

static const OptionTable& eval_table() {
  static const OptionTable table = [] {
    OptionTable t("imagine eval MODEL_DIR --data PATH [--json]",
                  "Score a text file (or folder) with a model: mean loss in nats/token and bits per byte.");
    t.text("data", "", "text file or folder to score", "PATH")
        .choice("checkpoint", "best", {"best", "latest"}, "which weights to use")
        .integer("batch-size", 16, 1, 4096, "windows per forward pass")
        .flag("json", false, "print one JSON object")
        .text("device", "auto", "auto, cpu or cuda[:N]", "DEV")
        .integer("threads", 0, 0, 1024, "CPU threads (0 = all cores)");
    return t;
  }();
  return table;
}

static std::string one_model_dir(const Options& o, const char* usage) {
  if (o.positional.size() != 1)
    throw UsageError(o.positional.empty() ? "missing MODEL_DIR" : "too many arguments",
                     std::string("usage: ") + usage);
  return o.positional[0];
}

nlohmann::json model_card_fields(const std::string& dir) {
  const std::string card = join_path(dir, kModelCardFile);
  const nlohmann::json cfg = read_model_config(dir);
  return {{"model_card", path_exists(card) ? nlohmann::json(read_file(card)) : nlohmann::json(nullptr)},
          {"data_license", cfg.value("data_license", nlohmann::json(nullptr))}};
}

// The card after the summary lines of `imagine info`.
static void print_model_card(const std::string& dir) {
  const std::string card = join_path(dir, kModelCardFile);
  if (!path_exists(card)) {
    std::printf("model card:   none (the model was trained before model cards were written)\n");
    return;
  }
  std::printf("model card:   %s\n\n%s", card.c_str(), read_file(card).c_str());
}

std::string model_family(const std::string& dir) {
  try {
    return read_model_config(dir).value("family", "");
  } catch (const Error&) {
    return "";
  }
}

// The training record's recipe lines (text and music models share the trainer).
static void print_training(const nlohmann::json& training) {
  const auto r = training.value("recipe", nlohmann::json::object());
  std::printf(
      "training:     %lld of %lld steps, batch %lld x %lld, lr %g -> %g, AdamW betas (%g, %g), "
      "weight decay %g, seed %llu, device %s\n",
      (long long)training.value("step", int64_t{0}), (long long)r.value("steps", int64_t{0}),
      (long long)r.value("batch_size", int64_t{0}), (long long)r.value("grad_accum", int64_t{1}),
      r.value("lr", 0.0), r.value("min_lr", 0.0), r.value("beta1", 0.0), r.value("beta2", 0.0),
      r.value("weight_decay", 0.0), (unsigned long long)training.value("seed", uint64_t{0}),
      training.value("device", std::string("?")).c_str());
  const std::string optimizer = r.value("optimizer", std::string("adamw"));
  const std::string schedule = r.value("schedule", std::string("cosine"));
  if (optimizer == "muon" || schedule != "cosine") {
    char muon[128] = "AdamW";
    if (optimizer == "muon")
      std::snprintf(
          muon, sizeof muon,
          "Muon (lr %g, momentum %g, %d Newton-Schulz steps) for hidden matrices, AdamW for the rest",
          r.value("muon_lr", 0.0), r.value("muon_momentum", 0.0), r.value("muon_ns_steps", 5));
    std::printf("recipe:       %s; %s schedule", muon, schedule.c_str());
    if (schedule == "trapezoid") std::printf(", cooldown %g", r.value("cooldown", 0.0));
    std::printf("\n");
  }
}

int info(const Args& args) {
  Options o = info_table().parse(args);
  if (o.help_requested) return std::fputs(info_table().help_text().c_str(), stdout), 0;
  const std::string dir = one_model_dir(o, "imagine info MODEL_DIR [--json]");
  if (model_family(dir) == kImageFamily) {
    print_image_info(dir, o.b("json"));
    if (!o.b("json")) print_model_card(dir);
    return 0;
  }
  if (model_family(dir) == kMusicFamily) {
    MusicModel m = load_music_model(dir, torch::kCPU);
    const nlohmann::json training = m.config.value("training", nlohmann::json::object());
    nlohmann::json j = {{"model_dir", dir},
                        {"family", m.config["family"]},
                        {"architecture", m.config["architecture"]},
                        {"parameters", m.gpt->num_parameters(false)},
                        {"events", m.config["events"]},
                        {"dataset", m.config.value("dataset", nlohmann::json::object())},
                        {"training", training},
                        {"best_val_loss", training.value("best_val_loss", nlohmann::json(nullptr))}};
    j.update(model_card_fields(dir));
    if (o.b("json")) {
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      const auto& a = m.config["architecture"];
      std::printf(
          "model:        %s (music GPT, %lld layers, %lld wide, context %lld events, %lld parameters)\n",
          dir.c_str(), (long long)a["n_layer"].get<int64_t>(), (long long)a["n_embd"].get<int64_t>(),
          (long long)a["block_size"].get<int64_t>(), (long long)m.gpt->num_parameters(false));
      std::printf("options:      %s\n", m.gpt->config.describe_options().c_str());
      std::printf("events:       %d tokens, %.0f ms grid, %d velocity levels\n", m.vocab.size(),
                  m.vocab.step_seconds * 1000, m.vocab.velocity_bins);
      if (!training.empty()) print_training(training);
      const auto best = training.value("best_val_loss", nlohmann::json(nullptr));
      if (best.is_number())
        std::printf("best val:     %.4f nats/event at step %lld\n", best.get<double>(),
                    (long long)training.value("best_step", int64_t{0}));
      print_model_card(dir);
    }
    return 0;
  }
  TextModel m = load_text_model(dir, torch::kCPU);
  const auto& cfg = m.config;
  const nlohmann::json training = cfg.value("training", nlohmann::json::object());
  const nlohmann::json dataset = cfg.value("dataset", nlohmann::json::object());
  nlohmann::json j = {{"model_dir", dir},
                      {"format", cfg["format"]},
                      {"format_version", cfg["format_version"]},
                      {"family", cfg["family"]},
                      {"architecture", cfg["architecture"]},
                      {"parameters", m.gpt->num_parameters(false)},
                      {"parameters_excluding_positions", m.gpt->num_parameters(true)},
                      {"tokenizer", cfg["tokenizer"]},
                      {"training", training},
                      {"dataset", dataset},
                      {"best_val_loss", training.value("best_val_loss", nlohmann::json(nullptr))}};
  j.update(model_card_fields(dir));
  if (o.b("json")) {
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  const auto& a = cfg["architecture"];
  std::printf("model:        %s (%s, format %s v%d)\n", dir.c_str(), cfg["family"].get<std::string>().c_str(),
              cfg["format"].get<std::string>().c_str(), cfg["format_version"].get<int>());
  std::printf("architecture: GPT, %lld layers, %lld heads, %lld wide, context %lld, dropout %g, bias %s\n",
              (long long)a["n_layer"].get<int64_t>(), (long long)a["n_head"].get<int64_t>(),
              (long long)a["n_embd"].get<int64_t>(), (long long)a["block_size"].get<int64_t>(),
              a["dropout"].get<double>(), a["bias"].get<bool>() ? "yes" : "no");
  std::printf("options:      %s\n", m.gpt->config.describe_options().c_str());
  std::printf("parameters:   %lld (%lld without position embeddings)\n",
              (long long)m.gpt->num_parameters(false), (long long)m.gpt->num_parameters(true));
  std::printf("tokenizer:    %s, %d tokens\n", m.tokenizer->kind().c_str(), m.tokenizer->vocab_size());
  if (!training.empty()) {
    print_training(training);
    const auto best = training.value("best_val_loss", nlohmann::json(nullptr));
    if (best.is_number())
      std::printf("best val:     %.4f nats/token at step %lld\n", best.get<double>(),
                  (long long)training.value("best_step", int64_t{0}));
  }
  if (!dataset.empty()) {
    std::printf("dataset:      %s: %zu file(s), %lld bytes, %lld documents; %lld train / %lld val tokens\n",
                dataset.value("path", std::string("?")).c_str(),
                dataset.value("files", nlohmann::json::array()).size(),
                (long long)dataset.value("bytes", int64_t{0}),
                (long long)dataset.value("documents", int64_t{0}),
                (long long)dataset.value("train_tokens", int64_t{0}),
                (long long)dataset.value("val_tokens", int64_t{0}));
    const auto skipped = dataset.value("skipped", nlohmann::json::array());
    if (!skipped.empty())
      std::printf("              %zu file(s) skipped (see config.json)\n", skipped.size());
  }
  print_model_card(dir);
  return 0;
}

int eval(const Args& args) {
  // The model's family picks the option table: image models are scored differently.
  if (!args.empty() && args[0][0] != '-' && model_family(args[0]) == kImageFamily) return eval_image(args);
  if (!args.empty() && args[0][0] != '-' && model_family(args[0]) == kMusicFamily) return eval_music(args);
  Options o = eval_table().parse(args);
  if (o.help_requested) return std::fputs(eval_table().help_text().c_str(), stdout), 0;
  const std::string dir = one_model_dir(o, "imagine eval MODEL_DIR --data PATH [--json]");
  if (o.s("data").empty())
    throw UsageError("missing --data", "pass --data PATH (a text file or folder to score)");
  set_threads(static_cast<int>(o.i("threads")));
  TextModel m = load_text_model(dir, resolve_device(o.s("device")), o.s("checkpoint"));
  TextCorpus corpus = load_text_corpus(o.s("data"));
  TextScore s = score_text(m, corpus.text, o.i("batch-size"));
  if (o.b("json")) {
    nlohmann::json j = {{"model_dir", dir},
                        {"data", o.s("data")},
                        {"loss", s.loss},
                        {"bits_per_byte", s.bits_per_byte},
                        {"tokens", s.tokens},
                        {"bytes", s.bytes},
                        {"perplexity", std::exp(s.loss)}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("loss %.4f nats/token, %.4f bits/byte, perplexity %.2f over %lld tokens (%lld bytes)\n",
                s.loss, s.bits_per_byte, std::exp(s.loss), (long long)s.tokens, (long long)s.bytes);
  }
  return 0;
}

}  // namespace imagine::cli
