// Batched decoding of one text model without the server around it (docs/benchmarks.md):
// B sequences decoded together in a BatchDecoder, for B = 1, 2, 4, 8, with and without the
// token watermark's logit hook; and the parts of a step: the batched forward per B, one
// row's sampling and watermark bias, one window slide; and one sequence with the KV cache
// against recomputing the window every token. Prints one JSON object.
//   decode_bench MODEL_DIR [TOKENS] [THREADS]
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/runtime.h"
#include "generate/token_generate.h"
#include "models/text_model.h"
#include "provenance/token_watermark.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: decode_bench MODEL_DIR [TOKENS] [THREADS]\n");
    return 2;
  }
  const int64_t tokens = argc > 2 ? std::stoll(argv[2]) : 256;
  imagine::set_threads(argc > 3 ? std::stoi(argv[3]) : 1);
  imagine::TextModel model = imagine::load_text_model(argv[1], torch::kCPU);
  const imagine::TokenWatermark wm(std::string(32, 'k'), imagine::TokenWatermarkParams{});
  const std::vector<int64_t> prompt = model.tokenizer->encode("ROMEO:");
  nlohmann::json out = {{"model", argv[1]}, {"tokens_per_sequence", tokens}};
  {
    // The batched forward alone: B rows at position 32, rewound after each step.
    torch::NoGradGuard no_grad;
    for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
      nlohmann::json rows;
      for (int64_t B : {1, 2, 4, 8}) {
        imagine::BatchCache cache = model.gpt->new_batch_cache(B, dtype);
        std::vector<int64_t> toks(static_cast<size_t>(B), 1), ids;
        for (int64_t b = 0; b < B; b++) ids.push_back(b);
        const int n = 400;
        const auto t0 = Clock::now();
        for (int i = 0; i < n; i++) {
          std::fill(cache.length.begin(), cache.length.end(), 32);
          model.gpt->forward_step(toks, ids, cache);
        }
        rows[std::to_string(B)] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / n;
      }
      out[dtype == torch::kFloat ? "forward_step_us" : "forward_step_us_bf16_weights"] = rows;
    }
  }
  {
    // One row's per-token work beside the forward: sampling and the watermark's bias.
    torch::NoGradGuard no_grad;
    auto idx = torch::tensor(prompt, torch::kLong).unsqueeze(0);
    auto l = model.gpt->forward(idx).index({0, -1}).contiguous();
    const std::vector<float> logits(l.data_ptr<float>(), l.data_ptr<float>() + l.numel());
    std::vector<int64_t> ctx = prompt;
    for (int i = 0; i < 60; i++) ctx.push_back(i % 50 + 40);
    imagine::Rng rng(1);
    const int n = 5000;
    int64_t sink = 0;
    auto t0 = Clock::now();
    for (int i = 0; i < n; i++) sink += imagine::sample_token(logits, ctx, imagine::SamplingParams{}, rng);
    out["sample_token_us"] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / n;
    t0 = Clock::now();
    for (int i = 0; i < n; i++) {
      std::vector<float> row = logits;
      ctx.back() = i % 50 + 40;
      wm.bias(row, ctx);
      sink += row[0] > 0;
    }
    out["watermark_bias_us"] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / n;
    imagine::TokenWatermark::Cache cache;
    t0 = Clock::now();
    for (int i = 0; i < n; i++) {
      std::vector<float> row = logits;
      ctx.back() = i % 50 + 40;
      wm.bias(row, ctx, &cache);
      sink += row[0] > 0;
    }
    out["watermark_bias_cached_us"] =
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / n;
    out["sink"] = sink % 2;
    // Re-encoding half a context when a row's window slides (learned positions).
    const int64_t half = model.gpt->config.block_size / 2 + 1;
    const std::vector<int64_t> window(static_cast<size_t>(half), 65);
    imagine::BatchCache slide = model.gpt->new_batch_cache(1);
    t0 = Clock::now();
    for (int i = 0; i < 200; i++) model.gpt->prefill_row(window, 0, slide);
    out["slide_encode_us"] = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / 200;
  }
  for (int variant : {0, 1, 2}) {  // plain, watermarked, bf16 weights
    const bool marked = variant == 1;
    nlohmann::json rows;
    for (int64_t B : {1, 2, 4, 8}) {
      imagine::TokenSampling opt;
      opt.max_tokens = tokens;
      std::vector<std::unique_ptr<imagine::DecodeSlot>> slots;
      imagine::BatchDecoder decoder(model.gpt, torch::kCPU, B,
                                    variant == 2 ? torch::kBFloat16 : torch::kFloat);
      const auto t0 = Clock::now();
      for (int64_t b = 0; b < B; b++) {
        if (marked) {  // as the server does: a hook with its own cache per request
          auto cache = std::make_shared<imagine::TokenWatermark::Cache>();
          opt.logit_hook = [&wm, cache](std::vector<float>& l, const std::vector<int64_t>& t) {
            wm.bias(l, t, cache.get());
          };
        }
        slots.push_back(std::make_unique<imagine::DecodeSlot>(prompt, opt, imagine::Rng(100 + b), nullptr));
        decoder.add(*slots.back());
      }
      while (decoder.live() > 0) decoder.round();
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      rows[std::to_string(B)] = B * tokens / s;
    }
    out[variant == 0   ? "tokens_per_s"
        : variant == 1 ? "tokens_per_s_watermarked"
                       : "tokens_per_s_bf16_weights"] = rows;
  }
  {
    // The KV cache against full recomputation of the window (--no-kv-cache), one sequence of
    // `tokens` new tokens after the prompt: the same tokens either way (tested).
    nlohmann::json rows;
    for (bool cached : {true, false}) {
      imagine::TokenSampling opt;
      opt.max_tokens = tokens;
      opt.kv_cache = cached;
      imagine::Rng rng(7);
      const auto t0 = Clock::now();
      imagine::sample_continuation(model.gpt, torch::kCPU, prompt, opt, rng, nullptr);
      rows[cached ? "cached" : "recomputed"] =
          tokens / std::chrono::duration<double>(Clock::now() - t0).count();
    }
    rows["ratio"] = rows["cached"].get<double>() / rows["recomputed"].get<double>();
    out["kv_cache_vs_recompute_tokens_per_s"] = rows;
  }
  std::printf("%s\n", out.dump(2).c_str());
}
