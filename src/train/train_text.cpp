// `imagine train text`: options, presets and the text pipeline around the one Trainer.
#include "train/train_text.h"

#include <cmath>
#include <map>

#include "core/error.h"
#include "core/model_dir.h"
#include "core/runtime.h"
#include "data/text_corpus.h"
#include "data/token_dataset.h"
#include "generate/text_generate.h"
#include "models/text_model.h"
#include "provenance/audit.h"
#include "train/model_card.h"
#include "train/token_task.h"

namespace imagine {

const OptionTable& text_train_table() {
  static const OptionTable table = [] {
    OptionTable t("imagine train text --data PATH --out MODEL_DIR [options]",
                  "Train a GPT-style Transformer on a text file or a folder of text files.");
    t.text("data", "", "text file or folder of text files (recursive; binary files are skipped)", "PATH")
        .text("out", "", "model directory to write (refuses to overwrite an existing model)", "DIR")
        .text("data-license", "", kDataLicenseHelp, "TEXT|FILE")
        .flag("resume", false, "continue the run in --out from checkpoint-latest exactly")
        .integer("steps", 600, 0, 1e9, "optimizer steps in total")
        .integer("batch-size", 32, 1, 65536, "sequences per micro-batch")
        .integer("grad-accum", 1, 1, 4096, "micro-batches per optimizer step")
        .integer("block-size", 64, 2, 65536, "context length in tokens")
        .integer("n-layer", 2, 1, 256,
                 "Transformer blocks (2: the fastest to a given loss on a CPU; docs/benchmarks.md)")
        .integer("n-head", 4, 1, 256, "attention heads")
        .integer("n-embd", 128, 8, 65536, "embedding width (a multiple of n-head)")
        .real("dropout", 0.0, 0.0, 0.95, "dropout probability while training")
        .flag("bias", false, "biases in Linear and LayerNorm layers")
        .choice("tokenizer", "byte", {"byte", "bpe"},
                "byte (256 symbols) or SentencePiece BPE trained on the data")
        .integer("vocab-size", 2048, 273, 1 << 20, "BPE vocabulary size (with --tokenizer bpe)")
        .real("val-fraction", 0.1, 0.001, 0.5, "last fraction of the data held out for validation")
        .real("lr", 2e-3, 1e-7, 1.0, "peak learning rate (AdamW)")
        .real("min-lr", 2e-4, 0.0, 1.0,
              "learning rate at the end of the decay (Muon's: the same fraction of --muon-lr)")
        .integer("warmup-steps", 30, 0, 1e9, "linear warm-up steps")
        .integer("decay-steps", 0, 0, 1e9, "step where the decay ends (0 = --steps)")
        .real("beta1", 0.9, 0.0, 0.999999, "AdamW beta1")
        .real("beta2", 0.99, 0.0, 0.999999, "AdamW beta2")
        .real("weight-decay", 0.1, 0.0, 10.0, "AdamW decoupled weight decay (matrices and embeddings)")
        .real("grad-clip", 1.0, 0.0, 1e6, "clip the global gradient norm (0 = off)")
        .choice("optimizer", "muon", {"adamw", "muon"},
                "adamw, or muon: Muon for hidden matrices, AdamW (--lr) for embeddings, head, norms")
        .real("muon-lr", 0.02, 1e-6, 10.0, "Muon's peak learning rate (the schedule scales it like --lr)")
        .real("muon-momentum", 0.95, 0.0, 0.9999, "Muon's (Nesterov) momentum")
        .integer("muon-ns-steps", 5, 1, 20, "Muon's Newton-Schulz iterations per step")
        .choice("schedule", "trapezoid", {"cosine", "trapezoid"},
                "after warm-up: cosine decay, or trapezoid (stable, then linear decay over --cooldown)")
        .real("cooldown", 0.3, 0.0, 1.0, "trapezoid: the final fraction of the schedule that decays")
        .integer("eval-every", 250, 0, 1e9, "evaluate and checkpoint every N steps (0 = at the end)")
        .integer("eval-iters", 20, 1, 1e6, "batches per evaluation")
        .integer("log-every", 10, 1, 1e9, "metrics / plain progress line every N steps")
        .real("stop-at-loss", 0.0, 0.0, 100.0, "stop once validation loss <= this (0 = off)")
        .text("time-limit", "", kTimeLimitHelp, "DURATION")
        .flag("samples", true, "print a short sample at each evaluation")
        .choice("precision", "auto", {"auto", "fp32", "bf16"},
                "bf16 = bfloat16 matmuls with float32 weights (auto: where the hardware has fast bf16)")
        .integer("seed", 1337, -1, 9.2e18, "random seed (-1 = random; the seed used is recorded)")
        .text("device", "auto", "auto, cpu or cuda[:N]", "DEV")
        .flag("cuda-graph", false,
              "capture each training step as one CUDA graph (GPU, LibTorch 2.2+, one process)")
        .integer("threads", 0, 0, 1024, "CPU threads (0 = all cores)")
        .flag("quiet", false, "no progress output");
    add_gpt_options(t);
    add_distributed_options(t);
    t.preset({"tiny",
              "2 layers, 32 wide, context 32, GPT-2's architecture and AdamW: seconds on a CPU (tests)",
              classic({{"n-layer", "2"},
                       {"n-head", "2"},
                       {"n-embd", "32"},
                       {"block-size", "32"},
                       {"batch-size", "8"},
                       {"steps", "100"},
                       {"lr", "3e-3"},
                       {"min-lr", "3e-4"},
                       {"warmup-steps", "10"},
                       {"eval-every", "50"},
                       {"eval-iters", "4"},
                       {"log-every", "10"}})});
    const std::map<std::string, std::string> nanogpt_cpu = {
        {"n-layer", "4"},      {"n-head", "4"},      {"n-embd", "128"},       {"block-size", "64"},
        {"batch-size", "12"},  {"steps", "2000"},    {"decay-steps", "2000"}, {"lr", "1e-3"},
        {"min-lr", "1e-4"},    {"beta2", "0.99"},    {"warmup-steps", "100"}, {"dropout", "0"},
        {"eval-every", "250"}, {"eval-iters", "20"}, {"bias", "false"},       {"cooldown", "0.2"}};
    t.preset({"shakespeare-cpu",
              "nanoGPT's CPU benchmark, its architecture and AdamW: 4 layers, 4 heads, 128 wide, context 64, "
              "batch 12",
              classic(nanogpt_cpu)});
    std::map<std::string, std::string> fast = nanogpt_cpu;
    fast["lr"] = "2e-3";
    fast["min-lr"] = "2e-4";
    t.preset({"shakespeare-cpu-fast",
              "shakespeare-cpu with a 2x learning rate (2e-3 -> 2e-4): reaches 1.84 in 2000 steps",
              classic(fast)});
    t.preset(
        {"shakespeare",
         "nanoGPT's GPU benchmark, its architecture and AdamW: 6 layers, 6 heads, 384 wide, context 256, "
         "batch 64",
         classic({{"n-layer", "6"},
                  {"n-head", "6"},
                  {"n-embd", "384"},
                  {"block-size", "256"},
                  {"batch-size", "64"},
                  {"steps", "5000"},
                  {"decay-steps", "5000"},
                  {"lr", "1e-3"},
                  {"min-lr", "1e-4"},
                  {"beta2", "0.99"},
                  {"warmup-steps", "100"},
                  {"dropout", "0.2"},
                  {"eval-every", "250"},
                  {"eval-iters", "200"},
                  {"bias", "false"}})});
    return t;
  }();
  return table;
}

TextTrainResult train_text(const Options& given, const std::function<void(const std::string&)>& log) {
  const RunSetup run = start_run(
      given, with_gpt_keys({"n-layer", "n-head", "n-embd", "block-size", "tokenizer", "vocab-size", "bias"}));
  const Options& o = run.options;
  const std::string& out = run.out;
  const bool resume = run.resume;
  const nlohmann::json& previous = run.previous;
  const int threads = run.threads;
  const torch::Device device = run.device;
  IMAGINE_CHECK(!o.s("data").empty(), "pass --data PATH (a text file or folder)", "missing --data");
  TextTrainResult result;
  result.out_dir = out;
  result.seed = run.seed;

  // Data
  TextCorpus corpus = load_text_corpus(o.s("data"));
  {
    std::string msg = str("data: ", corpus.files.size(), " file(s), ", corpus.text.size(), " bytes, ",
                          corpus.documents, " document(s) from ", o.s("data"));
    if (!corpus.skipped.empty())
      msg += str("; skipped ", corpus.skipped.size(), ": ", summarize_skips(corpus.skipped));
    log(msg);
  }
  const double val_fraction = o.f("val-fraction");
  const size_t split = static_cast<size_t>(std::floor(corpus.text.size() * (1.0 - val_fraction)));
  const std::string train_text_s = corpus.text.substr(0, split), val_text = corpus.text.substr(split);

  // Tokenizer and architecture (from the checkpoint when resuming)
  TextModel model;
  model.device = device;
  model.dir = out;
  GPTConfig arch;
  if (resume) {
    arch = GPTConfig::from_json(previous.at("architecture"));
    model.tokenizer = load_tokenizer(previous.at("tokenizer"), out);
  } else {
    if (o.s("tokenizer") == "bpe") {
      log(str("training a BPE tokenizer (", o.i("vocab-size"), " tokens) on the training split..."));
      model.tokenizer = train_bpe_tokenizer(train_text_s, static_cast<int>(o.i("vocab-size")));
    } else {
      model.tokenizer = make_byte_tokenizer();
    }
    arch.vocab_size = model.tokenizer->vocab_size();
    arch.block_size = o.i("block-size");
    arch.n_layer = o.i("n-layer");
    arch.n_head = o.i("n-head");
    arch.n_embd = o.i("n-embd");
    arch.bias = o.b("bias");
    read_gpt_options(o, arch);
  }
  arch.dropout = o.f("dropout");
  arch.validate();
  const auto train_tokens = model.tokenizer->encode(train_text_s);
  const auto val_tokens = model.tokenizer->encode(val_text);
  IMAGINE_CHECK(static_cast<int64_t>(train_tokens.size()) > arch.block_size + 1,
                "use more data or a smaller --block-size", "the training split has ", train_tokens.size(),
                " tokens, too few for a context of ", arch.block_size);
  IMAGINE_CHECK(val_tokens.size() >= 2, "use more data or a larger --val-fraction",
                "the validation split has only ", val_tokens.size(), " token(s)");
  log(str("split: ", train_tokens.size(), " training tokens, ", val_tokens.size(),
          " validation tokens (last ", val_fraction * 100, "%), tokenizer ", model.tokenizer->kind(), " (",
          model.tokenizer->vocab_size(), " tokens)"));

  make_dirs(out);
  nlohmann::json tokenizer_entry = resume ? previous.at("tokenizer") : model.tokenizer->save(out);
  nlohmann::json files = nlohmann::json::array();
  for (auto& f : corpus.files)
    files.push_back({{"path", f.path},
                     {"bytes", f.bytes},
                     {"sha256", f.sha256},
                     {"format", f.format},
                     {"documents", f.documents}});
  nlohmann::json skipped = nlohmann::json::array();
  for (auto& s : corpus.skipped) skipped.push_back({{"path", s.path}, {"reason", s.reason}});
  // Where a new document starts: fortune files put each entry after a "%" line.
  bool all_fortunes = !corpus.files.empty();
  for (auto& f : corpus.files) all_fortunes = all_fortunes && f.format == "fortune";
  model.start_text = all_fortunes ? "%\n" : "\n";
  nlohmann::json dataset = {{"path", o.s("data")},
                            {"files", files},
                            {"start_text", model.start_text},
                            {"skipped", skipped},
                            {"bytes", corpus.text.size()},
                            {"documents", corpus.documents},
                            {"val_fraction", val_fraction},
                            {"train_bytes", train_text_s.size()},
                            {"val_bytes", val_text.size()},
                            {"train_tokens", train_tokens.size()},
                            {"val_tokens", val_tokens.size()}};
  // The copy audit's suffix array over the training split (imagine audit, --reject-copies).
  dataset["copy_index"] =
      save_copy_index(build_text_copy_index(corpus, train_text_s.size(), *model.tokenizer), out);
  if (resume && previous.contains("dataset")) {
    const auto& old_files = previous["dataset"].value("files", nlohmann::json::array());
    if (old_files != files) log("warning: the data differs from the run being resumed");
  }

  torch::manual_seed(result.seed);  // weight initialisation depends only on the seed
  model.gpt = GPT(arch);
  model.gpt->to(device);
  result.parameters = model.gpt->num_parameters();
  const std::string precision = resolve_precision(o.s("precision"), device);
  log(str("model: GPT ", arch.n_layer, " layers, ", arch.n_head, " heads, ", arch.n_embd, " wide, context ",
          arch.block_size, ", ", result.parameters, " parameters; device ", device.str(), ", ", threads,
          " threads, precision ", precision, ", seed ", result.seed));

  TrainRecipe recipe = recipe_from_options(o);
  recipe.precision = precision;

  const double val_tpb = static_cast<double>(val_tokens.size()) / static_cast<double>(val_text.size());
  const bool samples = o.b("samples");
  auto sample = [&]() -> std::string {
    if (!samples) return "";
    TextRequest req;
    req.max_tokens = 96;
    req.seed = result.seed;
    std::string shown;
    for (char c : generate_text(model, req).text) shown += c == '\n' ? std::string("\\n") : std::string(1, c);
    return "  sample: " + shown;
  };
  auto bits_per_byte = [&](double val) {
    return std::map<std::string, double>{{"val_bpb", val / std::log(2.0) * val_tpb}};
  };
  TokenStreamTask task(model.gpt, TokenDataset(train_tokens, device), TokenDataset(val_tokens, device),
                       recipe.batch_size, result.seed, text_model_config(arch, tokenizer_entry, dataset),
                       bits_per_byte, sample);
  task.set_train_batch(run.rank_batch(recipe.batch_size));
  result.outcome = run_trainer(task, recipe, run, log);
  return result;
}

}  // namespace imagine
