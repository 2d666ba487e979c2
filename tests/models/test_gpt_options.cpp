// Tests for the GPT's options (gpt.h): rotary positions depend on relative positions only,
// the KV caches equal full recomputation with every option on, each option changes the
// model it says it does, and a config.json written before the options existed loads as the
// same model it always was.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/error.h"
#include "models/gpt.h"
#include "nn/attention.h"

namespace {

using imagine::GPT;
using imagine::GPTConfig;

GPTConfig all_options() {
  GPTConfig c;
  c.vocab_size = 41;
  c.block_size = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 32;
  c.pos = "rope";
  c.norm = "rmsnorm";
  c.qk_norm = true;
  c.mlp = "relu2";
  c.tied_head = false;
  c.logit_softcap = 5;
  return c;
}

// Eval mode, every parameter perturbed (zero-init and unit norm scales would hide bugs).
GPT make_model(const GPTConfig& c, uint64_t seed) {
  torch::manual_seed(seed);
  GPT m(c);
  torch::NoGradGuard ng;
  for (auto& p : m->parameters()) p.add_(torch::randn_like(p) * 0.1);
  m->eval();
  return m;
}

class GptOptions : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(2); }
};

}  // namespace

// Scores of a rotated query at p and key at q depend on p - q only: shifting every
// position by k gives the same attention output; a different spacing does not.
TEST_F(GptOptions, RopeAttentionDependsOnlyOnRelativePositions) {
  imagine::nn::BlockOptions o;
  o.n_embd = 32;
  o.n_head = 4;
  o.rope = true;
  o.qk_norm = true;
  torch::manual_seed(3);
  imagine::nn::CausalSelfAttention attn(o);
  attn->eval();
  torch::NoGradGuard ng;
  auto x = torch::randn({2, 10, 32});
  auto at = [&](const torch::Tensor& pos) {
    return attn->forward(x, nullptr, imagine::nn::rope_angles(pos, 32 / 4, o.rope_base));
  };
  auto base = at(torch::arange(10, torch::kLong));
  for (int64_t k : {1, 7, 1000}) {
    auto shifted = at(torch::arange(10, torch::kLong) + k);
    EXPECT_TRUE(torch::allclose(base, shifted, 1e-4, 1e-4))
        << "shift " << k << " changed the output by " << (base - shifted).abs().max().item<double>();
  }
  auto spread = at(torch::arange(10, torch::kLong) * 2);
  EXPECT_GT((base - spread).abs().max().item<double>(), 1e-3) << "positions had no effect at all";
  // The rotation itself keeps each pair's length and turns by the angle position x frequency.
  auto v = torch::randn({3, 8});
  auto a = imagine::nn::rope_angles(torch::tensor({0, 5, 9}, torch::kLong), 8, 10000);
  auto r = imagine::nn::rope_rotate(v, a.cos, a.sin);
  auto pair_norm = [](const torch::Tensor& t) {
    return (t.slice(-1, 0, 4).square() + t.slice(-1, 4, 8).square());
  };
  EXPECT_TRUE(torch::allclose(pair_norm(v), pair_norm(r), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(r[0], v[0]));  // position 0 is not rotated
  EXPECT_NEAR(a.cos[1][0].item<double>(), std::cos(5.0), 1e-6);
  EXPECT_NEAR(a.sin[2][1].item<double>(), std::sin(9.0 / std::pow(10000.0, 2.0 / 8)), 1e-6);
}

// With every option on, the incremental cache, the batched decoding cache and a prefill all
// give what recomputing the whole sequence gives.
TEST_F(GptOptions, KvCachesEqualFullRecomputationWithEveryOption) {
  auto c = all_options();
  auto m = make_model(c, 5);
  torch::NoGradGuard ng;
  torch::manual_seed(9);
  auto idx = torch::randint(c.vocab_size, {1, c.block_size}, torch::kLong);
  auto full = m->forward(idx);
  auto cache = m->new_cache();
  for (int64_t t = 0; t < c.block_size; t++) {
    auto step = m->forward(idx.slice(1, t, t + 1), &cache);
    EXPECT_TRUE(torch::allclose(step.select(1, 0), full.select(1, t), 1e-5, 1e-5))
        << "position " << t << " differs by "
        << (step.select(1, 0) - full.select(1, t)).abs().max().item<double>();
  }
  std::vector<int64_t> seq(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + 6);
  auto batch = m->new_batch_cache(2);
  auto first = m->prefill_row(seq, 1, batch);
  EXPECT_TRUE(torch::allclose(first, full[0][5], 1e-5, 1e-5));
  for (int64_t t = 6; t < c.block_size; t++) {
    auto got = m->forward_step({idx[0][t].item<int64_t>()}, {1}, batch)[0];
    EXPECT_TRUE(torch::allclose(got, full[0][t], 1e-4, 1e-4))
        << "step at " << t << " differs by " << (got - full[0][t]).abs().max().item<double>();
  }
  // Soft-capped: no logit reaches the cap.
  EXPECT_LT(full.abs().max().item<double>(), c.logit_softcap);
}

// Two rows of one RoPE batch cache step together far past the context, at different
// positions (so the step masks a row that is still filling): each row's logits equal one
// forward over its whole sequence (sliding-window attention, each position seeing the last
// block_size), and moving a row (a slot leaving) keeps them. The ring differs from
// re-encoding the last block_size tokens: deeper layers' cached keys saw further back.
TEST_F(GptOptions, RopeRingCacheSlidesRowsAtTheirOwnPositions) {
  auto c = all_options();
  auto m = make_model(c, 6);
  torch::NoGradGuard ng;
  torch::manual_seed(10);
  const int64_t total = 3 * c.block_size + 5;
  auto stream = torch::randint(c.vocab_size, {2, total}, torch::kLong);
  auto fresh = [&](int64_t r, int64_t end) {  // logits after stream[r][..end): the whole sequence at once
    return m->forward(stream[r].slice(0, 0, end).unsqueeze(0))[0][-1];
  };
  auto tok = [&](int64_t r, int64_t t) { return stream[r][t].item<int64_t>(); };
  auto batch = m->new_batch_cache(3);
  std::vector<int64_t> head0, head1;
  for (int64_t t = 0; t < 5; t++) head0.push_back(tok(0, t));
  for (int64_t t = 0; t < 2; t++) head1.push_back(tok(1, t));
  m->prefill_row(head0, 0, batch);
  m->prefill_row(head1, 2, batch);
  double worst = 0;
  int64_t n0 = 5, n1 = 2;
  for (int64_t round = 0; n0 < total; round++) {
    if (round == c.block_size) {  // row 2 moves into row 1, as when a slot leaves
      batch.move(2, 1);
      EXPECT_EQ(batch.length[1], n1);
    }
    const int64_t row1 = round < c.block_size ? 2 : 1;
    auto got = m->forward_step({tok(0, n0), tok(1, n1)}, {0, row1}, batch);
    n0++, n1++;
    worst = std::max(worst, (got[0] - fresh(0, n0)).abs().max().item<double>());
    worst = std::max(worst, (got[1] - fresh(1, n1)).abs().max().item<double>());
  }
  EXPECT_EQ(batch.length[0], total) << "a ring row counts every position it encoded";
  EXPECT_LT(worst, 1e-4) << "the ring cache differs from full recomputation";
  // ... and from re-encoding only the last block_size tokens (what a learned model's
  // window would see): the window mask matters.
  auto last = stream[0].slice(0, total - c.block_size, total).unsqueeze(0);
  EXPECT_GT((m->forward(last)[0][-1] - fresh(0, total)).abs().max().item<double>(), 1e-3);
  // Learned positions cannot ring: a full row is refused with a hint, not overwritten.
  auto l = all_options();
  l.pos = "learned";
  auto learned = make_model(l, 7);
  auto lb = learned->new_batch_cache(1);
  learned->prefill_row(std::vector<int64_t>(static_cast<size_t>(l.block_size), 1), 0, lb);
  EXPECT_THROW(learned->forward_step({2}, {0}, lb), imagine::Error);
}

TEST_F(GptOptions, EachOptionShapesTheModelItNames) {
  auto names = [](const GPT& m) {
    std::set<std::string> s;
    for (auto& p : m->named_parameters()) s.insert(p.key());
    return s;
  };
  GPTConfig base = all_options();
  base.pos = "learned";
  base.norm = "layernorm";
  base.tied_head = true;
  GPT plain(base);
  auto rope_cfg = base;
  rope_cfg.pos = "rope";
  GPT rope(rope_cfg);
  EXPECT_TRUE(names(plain).count("wpe.weight"));
  EXPECT_FALSE(names(rope).count("wpe.weight")) << "RoPE models have no position table";
  EXPECT_EQ(plain->num_parameters(false) - rope->num_parameters(false), base.block_size * base.n_embd);
  auto rms_cfg = base;
  rms_cfg.norm = "rmsnorm";
  EXPECT_FALSE(names(GPT(rms_cfg)).count("ln_f.bias")) << "RMSNorm has a scale only";
  auto untied_cfg = base;
  untied_cfg.tied_head = false;
  GPT untied(untied_cfg);
  EXPECT_TRUE(names(untied).count("lm_head.weight"));
  EXPECT_NE(untied->head_weight().data_ptr(), untied->wte->weight.data_ptr());
  EXPECT_EQ(plain->head_weight().data_ptr(), plain->wte->weight.data_ptr());
  auto zero_cfg = untied_cfg;
  zero_cfg.zero_init = true;
  GPT zero(zero_cfg);
  for (auto& p : zero->named_parameters()) {
    if (p.key().find("c_proj.weight") != std::string::npos || p.key() == "lm_head.weight") {
      EXPECT_EQ(p.value().abs().max().item<double>(), 0.0) << p.key();
    }
  }
  // A zero head predicts the uniform distribution.
  torch::NoGradGuard ng;
  zero->eval();
  auto logits = zero->forward(torch::zeros({1, 4}, torch::kLong));
  EXPECT_EQ(logits.abs().max().item<double>(), 0.0);
  // Bad values are refused with the option's name.
  auto bad = base;
  bad.pos = "absolute";
  EXPECT_THROW(bad.validate(), imagine::Error);
  bad = base;
  bad.mlp = "swish";
  EXPECT_THROW(bad.validate(), imagine::Error);
  bad = base;
  bad.logit_softcap = -1;
  EXPECT_THROW(bad.validate(), imagine::Error);
}

// A config.json from before the options (no keys) is the GPT-2 model it always was: it
// round-trips without gaining behaviour, and the same weights give the same logits.
TEST_F(GptOptions, OldConfigWithoutOptionKeysLoadsAsBefore) {
  nlohmann::json old = {{"vocab_size", 41}, {"block_size", 16}, {"n_layer", 2}, {"n_head", 2},
                        {"n_embd", 32},     {"dropout", 0.0},   {"bias", true}};
  auto c = GPTConfig::from_json(old);
  EXPECT_EQ(c.pos, "learned");
  EXPECT_EQ(c.norm, "layernorm");
  EXPECT_FALSE(c.qk_norm);
  EXPECT_EQ(c.mlp, "gelu");
  EXPECT_TRUE(c.tied_head);
  EXPECT_FALSE(c.zero_init);
  EXPECT_EQ(c.logit_softcap, 0);
  auto a = make_model(c, 2);
  GPT b(GPTConfig::from_json(c.to_json()));
  {
    torch::NoGradGuard ng;
    auto pa = a->named_parameters(), pb = b->named_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (auto& p : pa) pb[p.key()].copy_(p.value());
  }
  b->eval();
  torch::NoGradGuard ng;
  auto idx = torch::randint(41, {2, 16}, torch::kLong);
  EXPECT_TRUE(torch::equal(a->forward(idx), b->forward(idx)));
  // Every option survives the round trip.
  auto opts = all_options();
  auto back = GPTConfig::from_json(opts.to_json());
  EXPECT_EQ(back.to_json(), opts.to_json());
  EXPECT_NE(opts.describe_options().find("rotary"), std::string::npos);
}
