// The decoding loop's slots: several sequences decoded together in rounds give what each
// gives alone, including past a full context (the window slides); and streamed text is
// held back inside a UTF-8 character.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/utf8.h"
#include "generate/token_generate.h"

namespace {

imagine::GPT tiny_gpt(const std::string& pos = "learned") {
  imagine::GPTConfig c;
  c.pos = pos;
  c.vocab_size = 29;
  c.block_size = 12;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 24;
  c.dropout = 0.0;
  torch::manual_seed(4);
  imagine::GPT m(c);
  m->eval();
  return m;
}

}  // namespace

TEST(Decode, SlotsDecodedTogetherMatchEachDecodedAlone) {
  torch::set_num_threads(1);
  auto gpt = tiny_gpt();
  const std::vector<std::vector<int64_t>> prompts = {{1}, {2, 3, 4, 5}, {6, 7, 8, 9, 10, 11, 12}};
  for (double temperature : {0.0, 0.9}) {
    imagine::TokenSampling opt;
    opt.max_tokens = 30;  // beyond the 12-token context: the window slides
    opt.sampling.temperature = temperature;
    std::vector<std::vector<int64_t>> alone;
    for (size_t i = 0; i < prompts.size(); i++) {
      imagine::Rng rng(50 + i);
      alone.push_back(imagine::sample_continuation(gpt, torch::kCPU, prompts[i], opt, rng, nullptr));
      EXPECT_EQ(alone.back().size(), 30u);
    }
    std::vector<std::unique_ptr<imagine::DecodeSlot>> slots;
    imagine::BatchDecoder decoder(gpt, torch::kCPU, 3);
    for (size_t i = 0; i < prompts.size(); i++) {
      imagine::TokenSampling o = opt;
      o.max_tokens = 30 - static_cast<int64_t>(i) * 7;  // they finish at different rounds
      slots.push_back(std::make_unique<imagine::DecodeSlot>(prompts[i], o, imagine::Rng(50 + i), nullptr));
      decoder.add(*slots.back());
    }
    EXPECT_TRUE(decoder.full());
    int rounds = 0;
    while (decoder.live() > 0) {
      decoder.round();
      rounds++;
    }
    EXPECT_EQ(rounds, 30);
    for (size_t i = 0; i < prompts.size(); i++) {
      const std::vector<int64_t> want(alone[i].begin(), alone[i].begin() + (30 - static_cast<long>(i) * 7));
      EXPECT_EQ(slots[i]->out, want) << "slot " << i << " at temperature " << temperature;
      EXPECT_TRUE(slots[i]->done);
    }
  }
}

// The uncached path (--no-kv-cache) slides the same window at the same steps as the cache,
// so past many full contexts both see the same logits (to float rounding) and write the same
// tokens, greedy and sampled, from a prompt shorter and one longer than the context. RoPE
// models slide by one token and never re-encode (each layer's ring cache overwrites its
// oldest keys): past the context the cached logits equal one sliding-window forward over the
// whole sequence (the full recomputation), though the uncached path reads only the last
// n_layer * (block - 1) + 1 tokens.
TEST(Decode, CachedAndUncachedWriteTheSameTextBeyondTheWindow) {
  torch::set_num_threads(1);
  for (const std::string pos : {"learned", "rope"}) {
    auto gpt = tiny_gpt(pos);
    const size_t block = static_cast<size_t>(gpt->config.block_size);
    std::vector<int64_t> long_prompt;
    for (int64_t i = 0; i < 20; i++) long_prompt.push_back((i * 7) % 29);
    for (const auto& prompt : {std::vector<int64_t>{3, 1, 4}, long_prompt}) {
      for (double temperature : {0.0, 0.9}) {
        std::vector<std::vector<int64_t>> out(2);
        std::vector<std::vector<std::vector<float>>> seen(2);
        float worst_window = 0;
        size_t full_windows = 0;
        const size_t first = prompt.size() > block ? prompt.size() - block : 0;
        for (int cached = 0; cached < 2; cached++) {
          imagine::TokenSampling opt;
          opt.max_tokens = 70;  // the 12-token window slides 10 times (learned) or 58+ (RoPE)
          opt.sampling.temperature = temperature;
          opt.kv_cache = cached == 1;
          opt.logit_hook = [&, cached](std::vector<float>& logits, const std::vector<int64_t>& ctx) {
            seen[cached].push_back(logits);
            if (pos != "rope" || cached == 0 || ctx.size() < block + 2) return;
            // The whole sequence since the window the prompt filled, in one forward.
            auto fresh = imagine::window_logits(gpt, ctx, first, torch::kCPU);
            full_windows++;
            for (size_t v = 0; v < logits.size(); v++)
              worst_window =
                  std::max(worst_window, std::abs(logits[v] - fresh[static_cast<int64_t>(v)].item<float>()));
          };
          imagine::Rng rng(9);
          out[cached] = imagine::sample_continuation(gpt, torch::kCPU, prompt, opt, rng, nullptr);
        }
        const std::string what = pos + ", prompt of " + std::to_string(prompt.size()) + ", temperature " +
                                 std::to_string(temperature);
        ASSERT_EQ(out[0].size(), 70u);
        EXPECT_EQ(out[0], out[1]) << what;
        ASSERT_EQ(seen[0].size(), seen[1].size());
        float worst = 0;
        for (size_t t = 0; t < seen[0].size(); t++)
          for (size_t v = 0; v < seen[0][t].size(); v++)
            worst = std::max(worst, std::abs(seen[0][t][v] - seen[1][t][v]));
        EXPECT_LT(worst, 1e-4) << "the same window gives the same logits: " << what;
        if (pos == "rope") {
          EXPECT_GT(full_windows, 55u) << what;
          EXPECT_LT(worst_window, 1e-4) << "the ring cache equals full recomputation: " << what;
        }
      }
    }
  }
}

// Slots come and go as requests do: one joins while others run, one is taken out early
// (a cancelled request; the last row moves into its place) and a new one takes the freed
// row. Each still gives exactly what it gives alone.
TEST(Decode, SlotsJoiningAndLeavingKeepTheirSequences) {
  torch::set_num_threads(1);
  auto gpt = tiny_gpt();
  imagine::TokenSampling opt;
  opt.max_tokens = 20;
  opt.sampling.temperature = 0.9;
  auto alone = [&](const std::vector<int64_t>& prompt, uint64_t seed) {
    imagine::Rng rng(seed);
    return imagine::sample_continuation(gpt, torch::kCPU, prompt, opt, rng, nullptr);
  };
  imagine::DecodeSlot a({1, 2}, opt, imagine::Rng(7), nullptr), b({3}, opt, imagine::Rng(8), nullptr),
      c({4, 5, 6}, opt, imagine::Rng(9), nullptr), d({7}, opt, imagine::Rng(10), nullptr);
  imagine::BatchDecoder decoder(gpt, torch::kCPU, 3);
  decoder.add(a);
  decoder.add(b);
  for (int i = 0; i < 4; i++) decoder.round();
  decoder.add(c);  // row 2
  EXPECT_THROW(decoder.add(d), imagine::Error) << "every row is taken";
  for (int i = 0; i < 3; i++) decoder.round();
  decoder.remove(a);  // row 0 frees; c moves into it
  EXPECT_EQ(a.row, -1);
  EXPECT_EQ(c.row, 0);
  EXPECT_FALSE(a.done);
  decoder.remove(a);  // not live any more: nothing happens
  decoder.add(d);
  while (decoder.live() > 0) decoder.round();
  const auto want_a = alone({1, 2}, 7);
  EXPECT_EQ(a.out, std::vector<int64_t>(want_a.begin(), want_a.begin() + 7));
  EXPECT_EQ(b.out, alone({3}, 8));
  EXPECT_EQ(c.out, alone({4, 5, 6}, 9));
  EXPECT_EQ(d.out, alone({7}, 10));
}

TEST(Decode, OnTokenFalseStopsOnlyItsSlot) {
  auto gpt = tiny_gpt();
  imagine::TokenSampling opt;
  opt.max_tokens = 10;
  int seen = 0;
  imagine::DecodeSlot a({1, 2}, opt, imagine::Rng(1), [&](int64_t) { return ++seen < 3; });
  imagine::DecodeSlot b({3}, opt, imagine::Rng(2), nullptr);
  imagine::BatchDecoder decoder(gpt, torch::kCPU, 2);
  decoder.add(a);
  decoder.add(b);
  while (decoder.live() > 0) decoder.round();
  EXPECT_EQ(a.out.size(), 3u);
  EXPECT_EQ(b.out.size(), 10u);
  opt.max_tokens = 0;
  imagine::DecodeSlot none({1}, opt, imagine::Rng(3), nullptr);
  decoder.add(none);
  EXPECT_TRUE(none.done);
  EXPECT_EQ(decoder.live(), 0u) << "a slot with nothing to do takes no row";
}

// bf16 decoding weights: the step's logits stay within bf16 rounding of float32's (the
// matrices and activations are rounded to 8 significant bits, products accumulate in
// float32), greedy decoding mostly picks the same tokens, and the caches hold float32.
TEST(Decode, Bf16WeightsStayCloseToFloat32) {
  torch::set_num_threads(1);
  torch::NoGradGuard no_grad;
  auto gpt = tiny_gpt();
  auto f32 = gpt->new_batch_cache(2);
  auto b16 = gpt->new_batch_cache(2, torch::kBFloat16);
  EXPECT_EQ(b16.weights[0].attn.t.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(b16.weights[0].attn.w.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(b16.head.t.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(f32.weights[0].attn.w.data_ptr(), gpt->blocks[0]->attn->c_attn->weight.data_ptr())
      << "shares the weights";
  EXPECT_EQ(b16.layers[0].k.scalar_type(), torch::kFloat);
  const std::vector<int64_t> prompt = {1, 5, 9, 2, 7};
  auto a = gpt->prefill_row(prompt, 0, f32), b = gpt->prefill_row(prompt, 0, b16);
  const double scale = a.abs().max().item<double>();
  EXPECT_LT((a - b).abs().max().item<double>(), 0.05 * scale);
  EXPECT_GT((a - b).abs().max().item<double>(), 0.0) << "bf16 weights were not used";
  for (int i = 0; i < 5; i++) {
    a = gpt->forward_step({3, 4}, {0, 1}, f32);
    b = gpt->forward_step({3, 4}, {0, 1}, b16);
    EXPECT_EQ(a.scalar_type(), torch::kFloat);
    EXPECT_EQ(b.scalar_type(), torch::kFloat);
    EXPECT_LT((a - b).abs().max().item<double>(), 0.05 * a.abs().max().item<double>()) << "step " << i;
  }
  // Greedy continuations of 40 tokens: mostly the same (identical until a near tie flips).
  imagine::TokenSampling opt;
  opt.max_tokens = 40;
  opt.sampling.temperature = 0;
  imagine::Rng r1(1), r2(1);
  const auto want = imagine::sample_continuation(gpt, torch::kCPU, prompt, opt, r1, nullptr);
  std::vector<std::unique_ptr<imagine::DecodeSlot>> slots;
  imagine::BatchDecoder decoder(gpt, torch::kCPU, 1, torch::kBFloat16);
  slots.push_back(std::make_unique<imagine::DecodeSlot>(prompt, opt, r2, nullptr));
  decoder.add(*slots.back());
  while (decoder.live() > 0) decoder.round();
  ASSERT_EQ(slots[0]->out.size(), want.size());
  size_t same_prefix = 0;
  while (same_prefix < want.size() && slots[0]->out[same_prefix] == want[same_prefix]) same_prefix++;
  EXPECT_GE(same_prefix, 10u);
}

TEST(Utf8, UnfinishedTailHoldsOnlyIncompleteCharacters) {
  using imagine::utf8_unfinished_tail;
  EXPECT_EQ(utf8_unfinished_tail(""), 0u);
  EXPECT_EQ(utf8_unfinished_tail("abc"), 0u);
  EXPECT_EQ(utf8_unfinished_tail("caf\xc3"), 1u);        // é's first byte
  EXPECT_EQ(utf8_unfinished_tail("caf\xc3\xa9"), 0u);    // é complete
  EXPECT_EQ(utf8_unfinished_tail("\xe2\x82"), 2u);       // € missing its last byte
  EXPECT_EQ(utf8_unfinished_tail("\xe2\x82\xac"), 0u);   // € complete
  EXPECT_EQ(utf8_unfinished_tail("x\xf0\x9f\x98"), 3u);  // an emoji missing one byte
  EXPECT_EQ(utf8_unfinished_tail("x\xf0\x9f\x98\x80"), 0u);
  EXPECT_EQ(utf8_unfinished_tail("\x80\x80\x80\x80"), 0u);  // stray continuation bytes: nothing to wait for
  EXPECT_EQ(utf8_unfinished_tail("a\xff"), 0u);             // never valid: passed on
  // Holding the tail back and releasing the rest never splits a character: every prefix
  // cut this way ends on a boundary of the valid text.
  const std::string text = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z";
  for (size_t n = 0; n <= text.size(); n++) {
    const std::string_view head(text.data(), n);
    EXPECT_TRUE(imagine::is_valid_utf8(head.substr(0, n - utf8_unfinished_tail(head)))) << n;
  }
}
