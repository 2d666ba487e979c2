// `imagine generate text`: streams tokens to stdout as they are sampled.
#include <cstdio>

#include "commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/options.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "generate/text_generate.h"
#include "serve/verbs.h"

namespace imagine::cli {

static const OptionTable& generate_text_table() {
  static const OptionTable table = [] {
    SamplingParams d;
    OptionTable t("imagine generate text --model MODEL_DIR [--prompt S] [options]",
                  "Generate text from a trained model, streaming it to stdout.");
    t.text("model", "", "model directory written by `imagine train text`", "DIR")
        .text("prompt", "", "text to continue (default: start of a new line)", "S")
        .text("prompt-file", "", "read the prompt from a file", "FILE")
        .integer("max-tokens", 256, 0, 1e7, "new tokens per sample at most")
        .integer("count", 1, 1, 10000, "number of samples (sample i uses seed + i)")
        .real("temperature", d.temperature, 0.0, 100.0, "softmax temperature; 0 = greedy (argmax)")
        .integer("top-k", d.top_k, 0, 1e9, "keep the k most likely tokens (0 = off)")
        .real("top-p", d.top_p, 0.0, 1.0, "nucleus: smallest set with this probability (1 = off)")
        .real("min-p", d.min_p, 0.0, 1.0, "drop tokens below min-p x p(most likely) (0 = off)")
        .real("repeat-penalty", d.repeat_penalty, 0.0, 100.0, "penalise recent tokens (1 = off)")
        .integer("repeat-last-n", d.repeat_last_n, -1, 1e9, "tokens the penalty looks back (-1 = all)")
        .list("stop", "stop before this string")
        .integer("seed", -1, -1, 9.2e18, "random seed (-1 = random; the seed used is printed)")
        .text("out", "", "also write the output to this file", "FILE")
        .choice("checkpoint", "best", {"best", "latest"}, "which weights to use")
        .flag("kv-cache", true, "reuse keys/values of past tokens (--no-kv-cache recomputes everything)")
        .choice("decode-precision", "fp32", {"fp32", "bf16"},
                "weights of the cached decoding step: bf16 halves the bytes read per token (faster on "
                "AVX512-BF16/AMX CPUs for wide models; docs/benchmarks.md)")
        .text("device", "auto", "auto, cpu or cuda[:N]", "DEV")
        .integer("threads", 0, 0, 1024, "CPU threads (0 = all cores)")
        .flag("quiet", false, "only the generated text (no seed/speed lines)");
    copy_check_options(t);
    return output_options(t, true);
  }();
  return table;
}

static std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char c = s[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

int generate(const Args& args) {
  if (!args.empty() && args[0] == "image") return generate_image(args);
  if (!args.empty() && args[0] == "music") return generate_music(args);
  if (args.empty() || args[0] != "text") {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
      std::printf(
          "usage: imagine generate text|image|music [options]   (see imagine generate text --help)\n");
      return 0;
    }
    throw UsageError(
        args.empty() ? "missing model family" : "unknown model family '" + args[0] + "' for generate",
        "usage: imagine generate text|image|music --model MODEL_DIR ...");
  }
  // Ctrl-C ends the sample being written and keeps what was made (the file included).
  CooperativeInterrupts coop("stopping after this token");
  const OptionTable& table = generate_text_table();
  Options o = table.parse(Args(args.begin() + 1, args.end()));
  if (o.help_requested) {
    std::fputs(table.help_text().c_str(), stdout);
    return 0;
  }
  if (!o.positional.empty())
    throw UsageError("unexpected argument '" + o.positional[0] + "'", "pass the model with --model DIR");
  if (o.s("model").empty())
    throw UsageError("missing --model", "pass --model MODEL_DIR (see imagine train text)");
  if (o.given("prompt") && o.given("prompt-file"))
    throw UsageError("--prompt and --prompt-file both given", "use one of them");
  const bool quiet = o.b("quiet");

  set_threads(static_cast<int>(o.i("threads")));
  const OutputWriter writer(output_policy(o));
  TextModel model = load_text_model(o.s("model"), resolve_device(o.s("device")), o.s("checkpoint"));
  TextRequest req;
  req.prompt = o.given("prompt-file") ? read_file(o.s("prompt-file")) : o.s("prompt");
  req.max_tokens = o.i("max-tokens");
  for (auto& s : o.list("stop")) req.stop.push_back(unescape(s));
  req.sampling.temperature = o.f("temperature");
  req.sampling.top_k = o.i("top-k");
  req.sampling.top_p = o.f("top-p");
  req.sampling.min_p = o.f("min-p");
  req.sampling.repeat_penalty = o.f("repeat-penalty");
  req.sampling.repeat_last_n = o.i("repeat-last-n");
  req.kv_cache = o.b("kv-cache");
  req.bf16_weights = o.s("decode-precision") == "bf16";
  const uint64_t seed = resolve_seed(o.i("seed"));
  req.logit_hook = watermark_hook(writer);

  // With --reject-copies a sample is printed only once it passed the audit (no streaming).
  const CliCopyCheck check = copy_check(o, o.s("model"));
  const bool stream = !check.reject;
  std::vector<std::string> samples;
  std::vector<CheckRecord> checks;
  nlohmann::json seeds_used = nlohmann::json::array();
  const int64_t count = o.i("count");
  auto print = [](const std::string& piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  };
  // Several samples without --reject-copies decode together in one batch: the first streams,
  // the others are printed in order when the batch ends.
  std::vector<TextResult> batch;
  if (count > 1 && !check.reject) {
    std::fputs(text_sample_header(0, count, seed).c_str(), stdout);
    if (!quiet) std::fprintf(stderr, "seed %llu\n", (unsigned long long)seed);
    print(req.prompt);
    req.seed = seed;
    batch = generate_texts(
        model, req, count,
        [&](int64_t i, const std::string& piece) {
          if (i == 0) print(piece);
        },
        [] { return interrupt_requested(); });
  }
  for (int64_t i = 0; i < count; i++) {
    const uint64_t sample_seed = seed + static_cast<uint64_t>(i);
    CheckRecord sample_check;
    TextResult r;
    auto audit = [&](const TextResult& t) { return check.auditor->audit_text(t.text); };
    if (!batch.empty()) {
      r = batch[static_cast<size_t>(i)];
      sample_check = check_made(check, r, audit);
      if (i > 0) std::fputs((text_sample_header(i, count, seed) + req.prompt + r.text).c_str(), stdout);
      req.seed = sample_seed;
    } else {
      std::fputs(text_sample_header(i, count, seed).c_str(), stdout);
      if (i == 0 && !quiet) std::fprintf(stderr, "seed %llu\n", (unsigned long long)seed);
      if (stream) print(req.prompt);
      r = make_checked<TextResult>(
          check, &sample_check,
          [&](int attempt) {
            req.seed = retry_seed(sample_seed, attempt);
            const auto stop = [] { return interrupt_requested(); };
            if (!stream) return generate_text(model, req, nullptr, stop);
            return generate_text(model, req, print, stop);
          },
          audit);
      if (!stream) std::fputs((req.prompt + r.text).c_str(), stdout);
    }
    seeds_used.push_back(req.seed);
    checks.push_back(sample_check);
    if (i == 0 && r.prompt_cropped)
      note(quiet, str("warning: the prompt was cropped to its last ", r.prompt_tokens,
                      " tokens (the model's context)"));
    samples.push_back(req.prompt + r.text);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    note(quiet, str("[", r.tokens, " tokens in ", r.seconds, " s, ",
                    r.tokens / (r.seconds > 0 ? r.seconds : 1e-9), " tokens/s, stop: ", r.stop_reason, "]"));
    if (batch.empty() && interrupt_requested()) break;
  }
  if (!o.s("out").empty()) {
    GenerationRecord rec =
        text_record(model_record(o.s("model"), o.s("checkpoint")), req, seed, count, model.tokenizer->kind());
    apply_text_checks(&rec, checks, seeds_used);
    writer.write_text(o.s("out"), text_file(samples, seed), rec);
    note(quiet, "wrote " + o.s("out") +
                    (o.s("provenance") == "none" ? "" : " and " + o.s("out") + ".provenance.json"));
  }
  return interrupt_requested() ? 128 + interrupt_signal() : 0;  // as train: the work so far is kept
}

}  // namespace imagine::cli
