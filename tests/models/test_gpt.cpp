// Tests for models/gpt and the attention kernel: shapes, causality, KV-cache equivalence with
// full recomputation, bias=false, weight tying, context limits, config validation, and
// compat::attention against a hand-written masked softmax attention.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "core/compat.h"
#include "core/error.h"
#include "models/gpt.h"

namespace {

using imagine::GPT;
using imagine::GPTConfig;

GPTConfig tiny_config(bool bias = true) {
  GPTConfig c;
  c.vocab_size = 37;
  c.block_size = 16;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 32;
  c.dropout = 0.0;
  c.bias = bias;
  return c;
}

// A model in eval mode whose biases and LayerNorm parameters are randomised too (GPT-2
// initialisation zeroes biases, which would hide bugs that only show with non-zero ones).
GPT make_model(const GPTConfig& c, uint64_t seed = 1) {
  torch::manual_seed(seed);
  GPT m(c);
  torch::NoGradGuard ng;
  for (auto& p : m->named_parameters()) {
    if (p.value().dim() == 1) p.value().add_(torch::randn_like(p.value()) * 0.1);
  }
  m->eval();
  return m;
}

torch::Tensor random_tokens(int64_t B, int64_t T, int64_t vocab) {
  return torch::randint(vocab, {B, T}, torch::kLong);
}

class GptTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(2); }
};

}  // namespace

TEST_F(GptTest, OutputShapes) {
  auto c = tiny_config();
  auto m = make_model(c);
  torch::NoGradGuard ng;
  for (int64_t B : {1, 3}) {
    for (int64_t T : {1, 5, 16}) {
      auto logits = m->forward(random_tokens(B, T, c.vocab_size));
      ASSERT_EQ(logits.dim(), 3);
      EXPECT_EQ(logits.size(0), B);
      EXPECT_EQ(logits.size(1), T);
      EXPECT_EQ(logits.size(2), c.vocab_size);
      EXPECT_EQ(logits.scalar_type(), torch::kFloat);
      EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
    }
  }
  auto idx = random_tokens(2, 7, c.vocab_size);
  auto loss = m->loss(idx.slice(1, 0, 6), idx.slice(1, 1, 7));
  EXPECT_EQ(loss.dim(), 0);
  // Independent cross-entropy: mean of -log softmax at the targets.
  auto logits = m->forward(idx.slice(1, 0, 6));
  auto lp = torch::log_softmax(logits, -1).gather(2, idx.slice(1, 1, 7).unsqueeze(-1));
  EXPECT_NEAR(loss.item<double>(), -lp.mean().item<double>(), 1e-5);
}

TEST_F(GptTest, ParameterCountMatchesArchitecture) {
  for (bool bias : {true, false}) {
    auto c = tiny_config(bias);
    auto m = make_model(c);
    const int64_t C = c.n_embd, V = c.vocab_size, B = c.block_size;
    const int64_t b = bias ? 1 : 0;
    const int64_t per_layer = (C + b * C)                // ln_1
                              + (3 * C * C + b * 3 * C)  // c_attn
                              + (C * C + b * C)          // attn.c_proj
                              + (C + b * C)              // ln_2
                              + (4 * C * C + b * 4 * C)  // c_fc
                              + (4 * C * C + b * C);     // mlp.c_proj
    const int64_t total = V * C + B * C + c.n_layer * per_layer + (C + b * C);
    EXPECT_EQ(m->num_parameters(false), total) << "bias=" << bias;
    EXPECT_EQ(m->num_parameters(true), total - B * C) << "bias=" << bias;
  }
}

TEST_F(GptTest, CausalityLaterTokensNeverChangeEarlierLogits) {
  auto c = tiny_config();
  auto m = make_model(c, 3);
  torch::NoGradGuard ng;
  torch::manual_seed(11);
  auto idx = random_tokens(2, c.block_size, c.vocab_size);
  auto base = m->forward(idx);
  for (int64_t t : {0, 1, 5, 9, 15}) {
    auto changed = idx.clone();
    changed.index_put_({torch::indexing::Slice(), t},
                       (idx.index({torch::indexing::Slice(), t}) + 7) % c.vocab_size);
    auto out = m->forward(changed);
    if (t > 0) {
      auto before = base.slice(1, 0, t), after = out.slice(1, 0, t);
      EXPECT_TRUE(torch::allclose(before, after, 0.0, 1e-6))
          << "changing token " << t << " changed earlier logits by "
          << (before - after).abs().max().item<double>();
    }
    // ...while position t itself (and later ones) must react: the test is not vacuous.
    EXPECT_GT((base.slice(1, t) - out.slice(1, t)).abs().max().item<double>(), 1e-4) << "t=" << t;
  }
}

TEST_F(GptTest, KvCacheOneTokenAtATimeEqualsFullRecomputation) {
  auto c = tiny_config();
  auto m = make_model(c, 5);
  torch::NoGradGuard ng;
  torch::manual_seed(12);
  auto idx = random_tokens(2, c.block_size, c.vocab_size);
  auto full = m->forward(idx);
  auto cache = m->new_cache();
  ASSERT_EQ(static_cast<int64_t>(cache.size()), c.n_layer);
  for (int64_t t = 0; t < c.block_size; t++) {
    auto step = m->forward(idx.slice(1, t, t + 1), &cache);
    ASSERT_EQ(step.size(1), 1);
    EXPECT_EQ(cache[0].length(), t + 1);
    EXPECT_TRUE(torch::allclose(step.select(1, 0), full.select(1, t), 1e-5, 1e-5))
        << "position " << t << " differs by "
        << (step.select(1, 0) - full.select(1, t)).abs().max().item<double>();
  }
  for (auto& lc : cache) {
    EXPECT_EQ(lc.k.sizes(), (std::vector<int64_t>{2, c.n_head, c.block_size, c.n_embd / c.n_head}));
    EXPECT_EQ(lc.v.sizes(), lc.k.sizes());
  }
}

// Batched decoding (the server's slots): sequences of different lengths in one preallocated
// cache step together; every row equals that sequence decoded alone with its own cache and
// full recomputation, whether the rows are the cache's first ones (views) or any subset
// (gathered), and one row alone too.
TEST_F(GptTest, ForwardStepDecodesSequencesOfDifferentLengthsTogether) {
  auto c = tiny_config();
  auto m = make_model(c, 8);
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  const std::vector<int64_t> lengths = {1, 5, 9};
  imagine::BatchCache batch = m->new_batch_cache(4);
  ASSERT_EQ(batch.layers.size(), static_cast<size_t>(c.n_layer));
  EXPECT_EQ(batch.layers[0].k.sizes(),
            (std::vector<int64_t>{4, c.n_head, c.block_size, c.n_embd / c.n_head}));
  std::vector<imagine::KVCache> alone;
  std::vector<std::vector<int64_t>> seqs;
  for (size_t b = 0; b < lengths.size(); b++) {
    auto idx = random_tokens(1, lengths[b], c.vocab_size);
    seqs.push_back(std::vector<int64_t>(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + lengths[b]));
    auto first = m->prefill_row(seqs.back(), static_cast<int64_t>(b), batch);
    alone.push_back(m->new_cache());
    auto want = m->forward(idx, &alone.back()).index({0, -1});
    EXPECT_TRUE(torch::allclose(first, want, 1e-5, 1e-5)) << "prefill of row " << b;
  }
  EXPECT_EQ(batch.length, (std::vector<int64_t>{1, 5, 9, 0}));
  // Steps 0-3 use rows {0, 1, 2} (a prefix), steps 4-5 rows {2, 0} (gathered; row 1 waits).
  for (int step = 0; step < 6; step++) {
    const std::vector<int64_t> rows = step < 4 ? std::vector<int64_t>{0, 1, 2} : std::vector<int64_t>{2, 0};
    std::vector<int64_t> next;
    for (int64_t r : rows) next.push_back((step * 7 + r * 3) % c.vocab_size);
    auto logits = m->forward_step(next, rows, batch);
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{static_cast<int64_t>(rows.size()), c.vocab_size}));
    for (size_t i = 0; i < rows.size(); i++) {
      const auto r = static_cast<size_t>(rows[i]);
      auto one = m->forward(torch::full({1, 1}, next[i], torch::kLong), &alone[r]).index({0, -1});
      auto got = logits[static_cast<int64_t>(i)];
      EXPECT_TRUE(torch::allclose(got, one, 1e-5, 1e-5))
          << "row " << r << " step " << step << " differs by " << (got - one).abs().max().item<double>();
      EXPECT_EQ(batch.length[r], alone[r][0].length());
      seqs[r].push_back(next[i]);
      auto full = m->forward(torch::tensor(seqs[r], torch::kLong).unsqueeze(0)).index({0, -1});
      EXPECT_TRUE(torch::allclose(got, full, 1e-5, 1e-5)) << "row " << r << " step " << step;
    }
  }
  EXPECT_EQ(batch.length, (std::vector<int64_t>{7, 9, 15, 0}));
  // A sequence moved to another row carries on identically (the decoder compacts its rows).
  batch.move(2, 3);
  EXPECT_EQ(batch.length, (std::vector<int64_t>{7, 9, 0, 15}));
  {
    auto got = m->forward_step({5}, {3}, batch)[0];
    auto one = m->forward(torch::full({1, 1}, 5, torch::kLong), &alone[2]).index({0, -1});
    EXPECT_TRUE(torch::allclose(got, one, 1e-5, 1e-5))
        << "differs by " << (got - one).abs().max().item<double>();
  }
  // One row alone gives what the single-sequence path gives (up to rounding: the step
  // multiplies by transposed weight copies).
  auto single = m->new_batch_cache(1);
  auto reference = m->new_cache();
  single.length[0] = 3;  // what the row held before is replaced
  m->prefill_row(seqs[0], 0, single);
  EXPECT_EQ(single.length[0], static_cast<int64_t>(seqs[0].size()));
  m->forward(torch::tensor(seqs[0], torch::kLong).unsqueeze(0), &reference);
  auto a = m->forward_step({4}, {0}, single);
  auto b = m->forward(torch::full({1, 1}, 4, torch::kLong), &reference).index({0, -1});
  EXPECT_TRUE(torch::allclose(a[0], b, 1e-5, 1e-5)) << "differs by " << (a[0] - b).abs().max().item<double>();
  // A full row is refused rather than read past the position table, and so is a row the
  // cache does not have.
  m->prefill_row(std::vector<int64_t>(static_cast<size_t>(c.block_size), 1), 0, single);
  EXPECT_THROW(m->forward_step({1}, {0}, single), imagine::Error);
  EXPECT_THROW(m->prefill_row(std::vector<int64_t>(static_cast<size_t>(c.block_size) + 1, 1), 0, single),
               imagine::Error);
  EXPECT_THROW(m->prefill_row({}, 0, single), imagine::Error);
  EXPECT_THROW(m->forward_step({1}, {1}, single), imagine::Error);
  EXPECT_THROW(m->forward_step({1, 2}, {0}, single), imagine::Error);
}

TEST_F(GptTest, KvCachePromptThenChunksEqualsFullRecomputation) {
  auto c = tiny_config(false);
  auto m = make_model(c, 6);
  torch::NoGradGuard ng;
  torch::manual_seed(13);
  auto idx = random_tokens(1, c.block_size, c.vocab_size);
  auto full = m->forward(idx);
  // prompt of 6, then 1, then a chunk of 4, then 1 at a time to the end
  std::vector<std::pair<int64_t, int64_t>> pieces = {{0, 6}, {6, 7}, {7, 11}};
  for (int64_t t = 11; t < c.block_size; t++) pieces.push_back({t, t + 1});
  auto cache = m->new_cache();
  for (auto [a, b] : pieces) {
    auto out = m->forward(idx.slice(1, a, b), &cache);
    ASSERT_EQ(out.size(1), b - a);
    EXPECT_TRUE(torch::allclose(out, full.slice(1, a, b), 1e-5, 1e-5))
        << "chunk [" << a << ", " << b << ") differs by "
        << (out - full.slice(1, a, b)).abs().max().item<double>();
  }
  EXPECT_EQ(cache.back().length(), c.block_size);
}

TEST_F(GptTest, BiasFalseHasNoBiasParameters) {
  auto m = make_model(tiny_config(false));
  int n = 0;
  for (auto& p : m->named_parameters()) {
    EXPECT_EQ(p.key().find("bias"), std::string::npos) << p.key();
    n++;
  }
  EXPECT_GT(n, 0);
  // and the bias=true model does have them, in every Linear and LayerNorm
  auto mb = make_model(tiny_config(true));
  std::set<std::string> biases;
  for (auto& p : mb->named_parameters())
    if (p.key().find("bias") != std::string::npos) biases.insert(p.key());
  // per block: ln_1, c_attn, attn.c_proj, ln_2, c_fc, mlp.c_proj; plus ln_f
  EXPECT_EQ(biases.size(), 2u * 6u + 1u);
  EXPECT_TRUE(biases.count("ln_f.bias"));
}

TEST_F(GptTest, OutputHeadIsTiedToTokenEmbedding) {
  auto c = tiny_config();
  auto m = make_model(c, 7);
  // No separate head parameter: the only (vocab x n_embd) matrix is wte.weight.
  for (auto& p : m->named_parameters()) {
    EXPECT_EQ(p.key().find("head"), std::string::npos) << p.key();
    if (p.value().dim() == 2 && p.value().size(0) == c.vocab_size) {
      EXPECT_EQ(p.key(), "wte.weight");
    }
  }
  torch::NoGradGuard ng;
  torch::manual_seed(14);
  auto idx = random_tokens(2, 9, c.vocab_size);
  // Independent forward: embeddings + blocks + ln_f, then the transposed embedding matrix.
  auto x = m->wte->weight.index({idx}) + m->wpe->weight.slice(0, 0, 9);
  for (auto& b : m->blocks) x = b->forward(x);
  auto h = torch::layer_norm(x, {c.n_embd}, m->ln_f->weight, m->ln_f->bias, 1e-5);
  auto expected = torch::matmul(h, m->wte->weight.t());
  auto logits = m->forward(idx);
  EXPECT_TRUE(torch::allclose(logits, expected, 1e-5, 1e-5));
  // Changing the embedding matrix changes the head: for inputs without token 3 the hidden
  // states do not depend on wte[3], so doubling that row doubles exactly logit column 3.
  auto idx2 = idx.masked_fill(idx == 3, 4);
  auto before = m->forward(idx2);
  m->wte->weight[3].mul_(2.0);
  auto after = m->forward(idx2);
  EXPECT_TRUE(torch::allclose(after.select(2, 3), 2.0 * before.select(2, 3), 1e-5, 1e-5));
  auto others = torch::ones({c.vocab_size}, torch::kBool);
  others[3] = false;
  EXPECT_TRUE(torch::allclose(after.index({"...", others}), before.index({"...", others}), 0.0, 1e-5));
}

TEST_F(GptTest, TiedHeadReceivesGradientFromBothUses) {
  auto c = tiny_config();
  auto m = make_model(c, 8);
  m->train();
  auto idx = torch::zeros({1, 4}, torch::kLong);  // only token 0 as input
  auto tgt = torch::ones({1, 4}, torch::kLong);
  m->loss(idx, tgt).backward();
  auto g = m->wte->weight.grad();
  ASSERT_TRUE(g.defined());
  // Token 5 never appears as input, so its row gets gradient only through the head.
  EXPECT_GT(g[5].abs().sum().item<double>(), 0.0);
  EXPECT_GT(g[0].abs().sum().item<double>(), 0.0);
}

TEST_F(GptTest, ExceedingBlockSizeThrows) {
  auto c = tiny_config();
  auto m = make_model(c);
  torch::NoGradGuard ng;
  EXPECT_THROW(m->forward(random_tokens(1, c.block_size + 1, c.vocab_size)), imagine::Error);
  EXPECT_NO_THROW(m->forward(random_tokens(1, c.block_size, c.vocab_size)));
  auto cache = m->new_cache();
  m->forward(random_tokens(1, c.block_size - 2, c.vocab_size), &cache);
  EXPECT_THROW(m->forward(random_tokens(1, 3, c.vocab_size), &cache), imagine::Error);
  try {
    m->forward(random_tokens(1, c.block_size + 5, c.vocab_size));
    FAIL() << "expected imagine::Error";
  } catch (const imagine::Error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(c.block_size)), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
}

TEST_F(GptTest, ConfigValidation) {
  auto c = tiny_config();
  EXPECT_NO_THROW(c.validate());
  auto bad = c;
  bad.n_embd = 30;
  bad.n_head = 4;
  EXPECT_THROW(bad.validate(), imagine::Error);
  EXPECT_THROW(GPT{bad}, imagine::Error);
  try {
    bad.validate();
  } catch (const imagine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("divisible"), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
  for (auto mutate : std::vector<std::function<void(GPTConfig&)>>{
           [](GPTConfig& x) { x.vocab_size = 0; }, [](GPTConfig& x) { x.block_size = 0; },
           [](GPTConfig& x) { x.n_layer = 0; }, [](GPTConfig& x) { x.n_head = 0; },
           [](GPTConfig& x) { x.dropout = 1.0; }, [](GPTConfig& x) { x.dropout = -0.1; }}) {
    auto b = c;
    mutate(b);
    EXPECT_THROW(b.validate(), imagine::Error);
  }
  // JSON round trip, and from_json validates too
  auto back = GPTConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  auto j = c.to_json();
  j["n_embd"] = 33;
  EXPECT_THROW(GPTConfig::from_json(j), imagine::Error);
  j = c.to_json();
  j.erase("n_head");
  EXPECT_THROW(GPTConfig::from_json(j), imagine::Error);
  j = c.to_json();
  j["bias"] = "yes";
  EXPECT_THROW(GPTConfig::from_json(j), imagine::Error);
}

TEST_F(GptTest, DropoutOnlyInTrainingMode) {
  auto c = tiny_config();
  c.dropout = 0.5;
  auto m = make_model(c, 9);
  torch::NoGradGuard ng;
  auto idx = random_tokens(1, 8, c.vocab_size);
  m->eval();
  auto a = m->forward(idx), b = m->forward(idx);
  EXPECT_TRUE(torch::equal(a, b));
  m->train();
  auto t1 = m->forward(idx), t2 = m->forward(idx);
  EXPECT_FALSE(torch::allclose(t1, t2));
}

// ---- compat::attention ----

namespace {

// Plain loops: out[b,h,i] = sum_j softmax_j(q_i . k_j / sqrt(D) masked) v_j, where query i
// sits at absolute position tk - tq + i and sees keys 0..tk - tq + i when causal.
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  bool causal) {
  auto qa = q.to(torch::kDouble), ka = k.to(torch::kDouble), va = v.to(torch::kDouble);
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), Tk = k.size(2), D = q.size(3);
  auto out = torch::zeros({B, H, Tq, D}, torch::kDouble);
  auto qa_ = qa.accessor<double, 4>(), ka_ = ka.accessor<double, 4>(), va_ = va.accessor<double, 4>();
  auto o_ = out.accessor<double, 4>();
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Tq; i++) {
        const int64_t last = causal ? Tk - Tq + i : Tk - 1;
        std::vector<double> s(last + 1);
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j <= last; j++) {
          double dot = 0;
          for (int64_t d = 0; d < D; d++) dot += qa_[b][h][i][d] * ka_[b][h][j][d];
          s[j] = dot / std::sqrt(static_cast<double>(D));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (auto& x : s) z += x = std::exp(x - mx);
        for (int64_t j = 0; j <= last; j++)
          for (int64_t d = 0; d < D; d++) o_[b][h][i][d] += s[j] / z * va_[b][h][j][d];
      }
  return out.to(torch::kFloat);
}

}  // namespace

TEST(CompatAttention, MatchesHandWrittenMaskedSoftmax) {
  torch::manual_seed(21);
  struct Case {
    int64_t tq, tk;
    bool causal;
  };
  for (auto cs : {Case{7, 7, true}, Case{7, 7, false}, Case{1, 9, true}, Case{3, 9, true}, Case{5, 6, true},
                  Case{1, 1, true}, Case{4, 10, false}}) {
    auto q = torch::randn({2, 3, cs.tq, 8}), k = torch::randn({2, 3, cs.tk, 8}),
         v = torch::randn({2, 3, cs.tk, 8});
    auto got = imagine::compat::attention(q, k, v, cs.causal, 0.0, false);
    auto want = reference_attention(q, k, v, cs.causal);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5))
        << "tq=" << cs.tq << " tk=" << cs.tk << " causal=" << cs.causal << " max diff "
        << (got - want).abs().max().item<double>();
  }
}

TEST(CompatAttention, DropoutOnlyWhenTraining) {
  torch::manual_seed(22);
  auto q = torch::randn({1, 2, 6, 4}), k = torch::randn({1, 2, 6, 4}), v = torch::randn({1, 2, 6, 4});
  auto ref = reference_attention(q, k, v, true);
  EXPECT_TRUE(torch::allclose(imagine::compat::attention(q, k, v, true, 0.5, false), ref, 1e-5, 1e-5));
  auto a = imagine::compat::attention(q, k, v, true, 0.5, true);
  EXPECT_FALSE(torch::allclose(a, ref, 1e-3, 1e-3));
}
