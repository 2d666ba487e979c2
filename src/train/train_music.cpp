// `imagine train music`: options, presets and the music pipeline around the one Trainer.
#include "train/train_music.h"

#include <cmath>
#include <set>

#include "core/error.h"
#include "core/model_dir.h"
#include "core/runtime.h"
#include "data/music_dataset.h"
#include "data/token_dataset.h"
#include "models/music_model.h"
#include "provenance/audit.h"
#include "train/token_task.h"
#include "train/train_text.h"

namespace imagine {

const OptionTable& music_train_table() {
  static const OptionTable table = [] {
    OptionTable t(
        "imagine train music [--data PATH] --out MODEL_DIR [--preset NAME] [options]",
        "Train a GPT on music: a folder of MIDI files (default: the openttd-openmsx songs) or the JSB "
        "chorales JSON, encoded as performance events.");
    // The architecture and recipe flags are the text family's (one Transformer, one loop).
    const std::set<std::string> text_only = {"data",    "tokenizer",  "vocab-size", "val-fraction",
                                             "samples", "block-size", "batch-size", "dropout",
                                             "steps",   "n-layer"};
    t.text("data", kDefaultMusicData, "folder of .mid files (recursive), a .mid file, or jsb-chorales-*.json",
           "PATH")
        .integer("n-layer", 4, 1, 256, "Transformer blocks")
        .integer("block-size", 256, 2, 65536, "context length in events")
        .integer("batch-size", 16, 1, 65536, "sequences per micro-batch")
        .integer("steps", 2000, 0, 1e9, "optimizer steps in total")
        .real("dropout", 0.1, 0.0, 0.95, "dropout probability while training")
        .real(
            "time-step", 0, 0, 1,
            "event time grid in seconds (0 = 10 ms for MIDI; chorales: half the first piece's shortest note)")
        .integer("max-shift", 100, 1, 10000, "longest single time shift, in grid steps")
        .integer("velocity-bins", 32, 1, 128, "velocity levels")
        .integer("transpose", 3, 0, 24, "augmentation: every transposition within +-N semitones (0 = off)")
        .real("stretch", -1, -1, 0.5,
              "augmentation: tempo factors 1-s, 1, 1+s (0 = off; -1 = 0.1 for MIDI, off for chorales)")
        .real("val-fraction", 0.1, 0.001, 0.5, "MIDI folders: share of the files held out (by path hash)");
    for (const OptSpec& s : text_train_table().specs())
      if (!text_only.count(s.name) && !t.find(s.name)) t.add(s);
    t.preset({"tiny",
              "2 layers, 32 wide, context 64, 60 steps, GPT-2's architecture and AdamW: seconds on a CPU "
              "(tests)",
              classic({{"n-layer", "2"},
                       {"n-head", "2"},
                       {"n-embd", "32"},
                       {"block-size", "64"},
                       {"batch-size", "8"},
                       {"steps", "60"},
                       {"lr", "3e-3"},
                       {"min-lr", "3e-4"},
                       {"warmup-steps", "10"},
                       {"eval-every", "30"},
                       {"eval-iters", "4"},
                       {"log-every", "10"},
                       {"dropout", "0"}})});
    t.preset({"chorales-cpu",
              "4 layers, 128 wide, context 128, 1000 steps of 16: the demo's and benchmark's budget "
              "(about 2.5 minutes on 2 cores)",
              {{"n-layer", "4"},
               {"n-head", "4"},
               {"n-embd", "128"},
               {"block-size", "128"},
               {"batch-size", "16"},
               {"steps", "1000"},
               {"decay-steps", "1000"},
               {"lr", "2e-3"},
               {"min-lr", "2e-4"},
               {"warmup-steps", "100"},
               {"eval-every", "250"},
               {"eval-iters", "20"},
               {"dropout", "0.1"}}});
    return t;
  }();
  return table;
}

MusicTrainResult train_music(const Options& given, const std::function<void(const std::string&)>& log) {
  const RunSetup run = start_run(given, with_gpt_keys({"n-layer", "n-head", "n-embd", "block-size", "bias",
                                                       "time-step", "max-shift", "velocity-bins"}));
  const Options& o = run.options;
  const std::string& out = run.out;
  const bool resume = run.resume;
  const nlohmann::json& previous = run.previous;
  const int threads = run.threads;
  const torch::Device device = run.device;
  MusicTrainResult result;
  result.out_dir = out;
  result.seed = run.seed;

  MusicData data = load_music_data(o.s("data"), o.f("val-fraction"));
  {
    std::string msg = str("data: ", data.format == "chorales" ? "JSB chorales" : "MIDI", " from ", data.path,
                          ": ", data.train.size(), " training + ", data.valid.size(), " held-out pieces");
    if (!data.test.empty()) msg += str(" (+ ", data.test.size(), " test)");
    if (data.format == "midi") msg += str("; used ", data.files_used, " file(s)");
    if (!data.skipped.empty())
      msg += str("; skipped ", data.skipped.size(), ": ", summarize_skips(data.skipped));
    log(msg);
  }
  EventVocab vocab;
  if (resume) {
    vocab = EventVocab::from_json(json_field(previous, "events", out + "/config.json"));
  } else {
    vocab.step_seconds =
        o.f("time-step") > 0 ? o.f("time-step") : (data.grid_seconds > 0 ? data.grid_seconds / 2 : 0.01);
    vocab.max_shift_steps = static_cast<int>(o.i("max-shift"));
    vocab.velocity_bins = static_cast<int>(o.i("velocity-bins"));
    vocab.validate();
  }
  Augmentation aug;
  aug.transpose = static_cast<int>(o.i("transpose"));
  aug.stretch = o.f("stretch") >= 0 ? o.f("stretch") : (data.format == "chorales" ? 0.0 : 0.1);
  const auto train_tokens = encode_songs(data.train, vocab, &aug);
  const auto val_tokens = encode_songs(data.valid, vocab);
  GPTConfig arch;
  if (resume) {
    arch = GPTConfig::from_json(previous.at("architecture"));
  } else {
    arch.vocab_size = vocab.size();
    arch.block_size = o.i("block-size");
    arch.n_layer = o.i("n-layer");
    arch.n_head = o.i("n-head");
    arch.n_embd = o.i("n-embd");
    arch.bias = o.b("bias");
    read_gpt_options(o, arch);
  }
  arch.dropout = o.f("dropout");
  arch.validate();
  IMAGINE_CHECK(static_cast<int64_t>(train_tokens.size()) > arch.block_size + 1,
                "use more music or a smaller --block-size", "the training pieces encode to ",
                train_tokens.size(), " events, too few for a context of ", arch.block_size);
  IMAGINE_CHECK(static_cast<int64_t>(val_tokens.size()) > 2, "use more music (a held-out piece is needed)",
                "the held-out pieces encode to only ", val_tokens.size(), " events");
  const int variants = (2 * aug.transpose + 1) * (aug.stretch > 0 ? 3 : 1);
  log(str("events: ", vocab.size(), "-token vocabulary (", vocab.step_seconds * 1000, " ms grid, ",
          vocab.velocity_bins, " velocity levels); ", train_tokens.size(), " training events (", variants,
          " augmented variants per piece: transpose +-", aug.transpose, ", stretch ", aug.stretch, "), ",
          val_tokens.size(), " held-out events"));

  make_dirs(out);
  nlohmann::json skipped = nlohmann::json::array();
  for (auto& s : data.skipped) skipped.push_back({{"path", s.path}, {"reason", s.reason}});
  nlohmann::json dataset = {{"path", data.path},
                            {"format", data.format},
                            {"train_pieces", data.train.size()},
                            {"valid_pieces", data.valid.size()},
                            {"test_pieces", data.test.size()},
                            {"files_used", data.files_used},
                            {"skipped", skipped},
                            {"train_events", train_tokens.size()},
                            {"valid_events", val_tokens.size()},
                            {"note_seconds_p99", note_length_quantile(data.train, 0.99)},
                            {"augmentation", {{"transpose", aug.transpose}, {"stretch", aug.stretch}}}};
  // The copy audit's melody index over the training pieces (imagine audit, --reject-copies).
  dataset["copy_index"] = save_copy_index(build_music_copy_index(data.train), out);

  torch::manual_seed(result.seed);
  MusicModel model;
  model.gpt = GPT(arch);
  model.gpt->to(device);
  model.vocab = vocab;
  model.device = device;
  result.parameters = model.gpt->num_parameters();
  const std::string precision = resolve_precision(o.s("precision"), device);
  log(str("model: GPT ", arch.n_layer, " layers, ", arch.n_head, " heads, ", arch.n_embd, " wide, context ",
          arch.block_size, " events, ", result.parameters, " parameters; device ", device.str(), ", ",
          threads, " threads, precision ", precision, ", seed ", result.seed));
  TrainRecipe recipe = recipe_from_options(o);
  recipe.precision = precision;
  TokenStreamTask task(model.gpt, TokenDataset(train_tokens, device), TokenDataset(val_tokens, device),
                       recipe.batch_size, result.seed, music_model_config(arch, vocab, dataset), nullptr,
                       nullptr, "ev");
  task.set_train_batch(run.rank_batch(recipe.batch_size));
  result.outcome = run_trainer(task, recipe, run, log);
  return result;
}

}  // namespace imagine
