// GPT model. See gpt.h. Initialisation follows GPT-2: N(0, 0.02), residual projections
// scaled by 1/sqrt(2 * n_layer), zero biases.
#include "models/gpt.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "core/safetensors.h"
#include "nn/weights.h"

namespace imagine {

nlohmann::json GPTConfig::to_json() const {
  return {{"vocab_size", vocab_size},
          {"block_size", block_size},
          {"n_layer", n_layer},
          {"n_head", n_head},
          {"n_embd", n_embd},
          {"dropout", dropout},
          {"bias", bias},
          {"pos", pos},
          {"rope_base", rope_base},
          {"norm", norm},
          {"qk_norm", qk_norm},
          {"mlp", mlp},
          {"tied_head", tied_head},
          {"zero_init", zero_init},
          {"logit_softcap", logit_softcap}};
}

std::string GPTConfig::describe_options() const {
  std::ostringstream os;
  os << (rotary() ? "rotary positions (base " : "learned positions");
  if (rotary()) os << rope_base << ")";
  os << ", " << (norm == "rmsnorm" ? "RMSNorm" : "LayerNorm") << (qk_norm ? ", QK-norm" : "") << ", "
     << (mlp == "relu2" ? "ReLU² MLP" : "GELU MLP") << ", " << (tied_head ? "tied head" : "untied head")
     << (zero_init ? ", zero-initialised projections" : "");
  if (logit_softcap > 0) os << ", logits soft-capped at " << logit_softcap;
  return os.str();
}

nn::BlockOptions GPTConfig::block_options() const {
  nn::BlockOptions o;
  o.n_embd = n_embd;
  o.n_head = n_head;
  o.dropout = dropout;
  o.bias = bias;
  o.rms_norm = norm == "rmsnorm";
  o.qk_norm = qk_norm;
  o.rope = rotary();
  o.rope_base = rope_base;
  o.relu2 = mlp == "relu2";
  return o;
}

GPTConfig GPTConfig::from_json(const nlohmann::json& j) {
  GPTConfig c;
  try {
    c.vocab_size = j.at("vocab_size").get<int64_t>();
    c.block_size = j.at("block_size").get<int64_t>();
    c.n_layer = j.at("n_layer").get<int64_t>();
    c.n_head = j.at("n_head").get<int64_t>();
    c.n_embd = j.at("n_embd").get<int64_t>();
    c.dropout = j.at("dropout").get<double>();
    c.bias = j.at("bias").get<bool>();
    c.pos = j.value("pos", c.pos);
    c.rope_base = j.value("rope_base", c.rope_base);
    c.norm = j.value("norm", c.norm);
    c.qk_norm = j.value("qk_norm", c.qk_norm);
    c.mlp = j.value("mlp", c.mlp);
    c.tied_head = j.value("tied_head", c.tied_head);
    c.zero_init = j.value("zero_init", c.zero_init);
    c.logit_softcap = j.value("logit_softcap", c.logit_softcap);
  } catch (const std::exception& e) {
    throw Error(std::string("invalid GPT architecture in config.json: ") + e.what(),
                "the model directory is damaged or was written by another tool");
  }
  c.validate();
  return c;
}

void GPTConfig::validate() const {
  const char* hint = "check the architecture options (see --help)";
  IMAGINE_CHECK(vocab_size > 0 && vocab_size <= (1 << 22), hint, "vocab_size ", vocab_size, " out of range");
  IMAGINE_CHECK(block_size > 0 && block_size <= 65536, hint, "block_size ", block_size, " out of range");
  IMAGINE_CHECK(n_layer > 0 && n_layer <= 256, hint, "n_layer ", n_layer, " out of range");
  IMAGINE_CHECK(n_head > 0 && n_embd > 0 && n_embd <= 65536, hint, "n_head/n_embd out of range");
  IMAGINE_CHECK(n_embd % n_head == 0, "choose n_embd as a multiple of n_head", "n_embd (", n_embd,
                ") is not divisible by n_head (", n_head, ")");
  IMAGINE_CHECK(dropout >= 0 && dropout < 1, hint, "dropout ", dropout, " must be in [0, 1)");
  IMAGINE_CHECK(pos == "learned" || pos == "rope", "use --pos learned or rope", "unknown position encoding '",
                pos, "'");
  IMAGINE_CHECK(!rotary() || (n_embd / n_head) % 2 == 0, "choose n_embd / n_head even",
                "RoPE needs an even head size; ", n_embd, " / ", n_head, " is odd");
  IMAGINE_CHECK(rope_base > 1 && rope_base <= 1e9, hint, "rope_base ", rope_base, " out of range");
  IMAGINE_CHECK(norm == "layernorm" || norm == "rmsnorm", "use --norm layernorm or rmsnorm", "unknown norm '",
                norm, "'");
  IMAGINE_CHECK(mlp == "gelu" || mlp == "relu2", "use --mlp gelu or relu2", "unknown MLP activation '", mlp,
                "'");
  IMAGINE_CHECK(logit_softcap >= 0 && logit_softcap <= 1e4, hint, "logit_softcap ", logit_softcap,
                " must be in [0, 10000] (0 = off)");
}

GPTImpl::GPTImpl(const GPTConfig& cfg) : config(cfg) {
  config.validate();
  wte = register_module("wte", torch::nn::Embedding(config.vocab_size, config.n_embd));
  if (config.pos == "learned")
    wpe = register_module("wpe", torch::nn::Embedding(config.block_size, config.n_embd));
  drop = register_module("drop", torch::nn::Dropout(config.dropout));
  h = register_module("h", torch::nn::ModuleList());
  const nn::BlockOptions bo = config.block_options();
  for (int64_t i = 0; i < config.n_layer; i++) {
    blocks.push_back(nn::Block(bo));
    h->push_back(blocks.back());
  }
  ln_f = register_module("ln_f", nn::LayerNorm(config.n_embd, config.bias, bo.rms_norm));
  if (!config.tied_head)
    lm_head = register_module(
        "lm_head", torch::nn::Linear(torch::nn::LinearOptions(config.n_embd, config.vocab_size).bias(false)));

  // The parameters are initialised in registration order from torch's generator, so a model
  // with the default options draws exactly what it always did.
  torch::NoGradGuard no_grad;
  const double proj_std = 0.02 / std::sqrt(2.0 * config.n_layer);
  auto ends_with = [](const std::string& s, const char* tail) {
    const size_t n = std::strlen(tail);
    return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
  };
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    auto& t = p.value();
    if (name.find("ln_") != std::string::npos) continue;  // norms keep ones / zeros
    const bool output = ends_with(name, "c_proj.weight") || name == "lm_head.weight";
    if (t.dim() == 1 || (config.zero_init && output))
      t.zero_();
    else if (ends_with(name, "c_proj.weight"))
      t.normal_(0.0, proj_std);
    else
      t.normal_(0.0, 0.02);
  }
}

torch::Tensor GPTImpl::cap(const torch::Tensor& logits) const {
  if (config.logit_softcap <= 0) return logits;
  const double c = config.logit_softcap;
  return torch::tanh(logits.to(torch::kFloat) / c) * c;
}

// The RoPE angles of positions `pos` (a RoPE model; empty otherwise).
static nn::RopeAngles angles_for(const GPTConfig& c, const torch::Tensor& pos) {
  if (!c.rotary()) return {};
  return nn::rope_angles(pos, c.n_embd / c.n_head, c.rope_base);
}

torch::Tensor GPTImpl::forward(const torch::Tensor& idx, KVCache* cache) {
  const int64_t T = idx.size(1);
  const int64_t past = cache ? (*cache)[0].length() : 0;
  // A RoPE model reads a longer sequence without a cache as its ring cache decodes it: each
  // position attends over the last block_size (sliding-window attention).
  const bool slide = !cache && config.rotary() && T > config.block_size;
  IMAGINE_CHECK(slide || past + T <= config.block_size, "crop the input to the model's context",
                "sequence of ", past + T, " tokens exceeds the context of ", config.block_size);
  auto pos = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kLong).device(idx.device()));
  auto x = drop(wpe ? wte(idx) + wpe(pos) : wte(idx));  // (B, T, C)
  const nn::RopeAngles rope = angles_for(config, pos);
  const torch::Tensor band =
      slide ? nn::sliding_window_mask(T, config.block_size, x.options()) : torch::Tensor();
  for (size_t i = 0; i < blocks.size(); i++)
    x = blocks[i]->forward(x, cache ? &(*cache)[i] : nullptr, rope, band);
  x = ln_f(x);
  return cap(torch::nn::functional::linear(x, head_weight()));  // (B, T, vocab)
}

void BatchCache::move(int64_t from, int64_t to) {
  if (from == to) return;
  torch::NoGradGuard no_grad;
  // A ring (RoPE) holds at most its size; its length goes on counting positions.
  const int64_t n = std::min(length[from], layers.empty() ? 0 : layers[0].k.size(2));
  for (auto& l : layers) {
    l.k[to].narrow(1, 0, n).copy_(l.k[from].narrow(1, 0, n));
    l.v[to].narrow(1, 0, n).copy_(l.v[from].narrow(1, 0, n));
  }
  length[to] = length[from];
  length[from] = 0;
}

BatchCache GPTImpl::new_batch_cache(int64_t rows, torch::ScalarType weights) const {
  IMAGINE_CHECK(rows > 0 && rows <= 4096, "use between 1 and 4096 rows", "a batch cache of ", rows, " rows");
  const int64_t hd = config.n_embd / config.n_head;
  const auto opts = wte->weight.options().requires_grad(false);
  BatchCache c;
  for (int64_t i = 0; i < config.n_layer; i++)
    c.layers.push_back({torch::zeros({rows, config.n_head, config.block_size, hd}, opts),
                        torch::zeros({rows, config.n_head, config.block_size, hd}, opts)});
  c.length.assign(static_cast<size_t>(rows), 0);
  torch::NoGradGuard no_grad;
  IMAGINE_CHECK(weights == torch::kFloat || weights == torch::kBFloat16, "use fp32 or bf16 decoding weights",
                "unsupported decoding weight type");
  // (to(kFloat) keeps float32 matrices as they are: no copies.)
  for (const auto& b : blocks) c.weights.push_back(b->step_weights().to(weights));
  c.head = nn::StepLinear::of(head_weight(), torch::Tensor()).to(weights);
  return c;
}

torch::Tensor GPTImpl::forward_step(const std::vector<int64_t>& tokens, const std::vector<int64_t>& rows,
                                    BatchCache& cache) {
  IMAGINE_CHECK(!tokens.empty() && tokens.size() == rows.size(), "pass one row per token",
                "forward_step: ", tokens.size(), " tokens for ", rows.size(), " rows");
  IMAGINE_CHECK(!is_training(), "call eval() before decoding", "forward_step decodes without dropout");
  const int64_t B = static_cast<int64_t>(tokens.size());
  const bool ring = config.rotary();  // see RowsStep: a RoPE row's cache is a ring
  std::vector<int64_t> positions, slots, seen;
  nn::RowsStep step;
  step.prefix = true;
  for (int64_t b = 0; b < B; b++) {
    const int64_t r = rows[static_cast<size_t>(b)];
    IMAGINE_CHECK(r >= 0 && r < cache.rows(), "pass rows of the cache", "row ", r, " of ", cache.rows());
    const int64_t past = cache.length[static_cast<size_t>(r)];
    IMAGINE_CHECK(ring || past < config.block_size, "slide the window before the context fills", "row ", r,
                  " holds ", past, " tokens: the context (", config.block_size, ") is full");
    positions.push_back(past);
    slots.push_back(past % config.block_size);
    seen.push_back(std::min(past + 1, config.block_size));
    step.prefix = step.prefix && r == b;
    step.span = std::max(step.span, seen.back());
  }
  const torch::Device device = wte->weight.device();
  const auto longs = torch::TensorOptions().dtype(torch::kLong);
  step.rows = torch::tensor(rows, longs).to(device);
  step.pos = torch::tensor(positions, longs).to(device);
  step.slot = torch::tensor(slots, longs).to(device);
  if (std::any_of(seen.begin(), seen.end(), [&](int64_t n) { return n != step.span; })) {
    // Row b reads slots 0..seen[b]-1; the rest of the span is another sequence's or stale.
    std::vector<float> mask(static_cast<size_t>(B * step.span), 0.0f);
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = seen[static_cast<size_t>(b)]; t < step.span; t++)
        mask[static_cast<size_t>(b * step.span + t)] = -std::numeric_limits<float>::infinity();
    step.mask = torch::tensor(mask).view({B, 1, 1, step.span}).to(wte->weight.options());
  }
  auto idx = torch::tensor(tokens, longs).to(device);
  auto x = wpe ? wte(idx) + wpe(step.pos) : wte(idx);  // (B, C)
  step.rope = angles_for(config, step.pos);
  for (size_t i = 0; i < blocks.size(); i++)
    x = blocks[i]->forward_step(x, cache.layers[i], step, cache.weights[i]);
  for (int64_t r : rows) cache.length[static_cast<size_t>(r)]++;
  return cap(cache.head(ln_f(x)));  // (B, vocab)
}

torch::Tensor GPTImpl::prefill_row(const std::vector<int64_t>& tokens, int64_t row, BatchCache& cache) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  IMAGINE_CHECK(T > 0 && T <= config.block_size, "crop the input to the model's context", "a sequence of ", T,
                " tokens for a context of ", config.block_size);
  IMAGINE_CHECK(row >= 0 && row < cache.rows(), "pass a row of the cache", "row ", row, " of ", cache.rows());
  IMAGINE_CHECK(!is_training(), "call eval() before decoding", "prefill_row encodes without dropout");
  const torch::Device device = wte->weight.device();
  const auto longs = torch::TensorOptions().dtype(torch::kLong).device(device);
  const auto pos = torch::arange(T, longs);
  auto x = wte(torch::tensor(tokens, torch::kLong).to(device));  // (T, C)
  if (wpe) x = x + wpe(pos);
  const nn::RopeAngles rope = angles_for(config, pos);
  for (size_t i = 0; i < blocks.size(); i++) {
    const bool last = i + 1 == blocks.size();  // only the last position's output is needed there
    x = blocks[i]->forward_prefill(x, cache.layers[i], row, cache.weights[i], last, rope);
  }
  cache.length[static_cast<size_t>(row)] = T;
  return cap(cache.head(ln_f(x)))[0];  // (vocab)
}

torch::Tensor GPTImpl::loss(const torch::Tensor& idx, const torch::Tensor& targets) {
  auto logits = forward(idx).to(torch::kFloat);  // float32 loss even under bf16 autocast
  return torch::nn::functional::cross_entropy(logits.view({-1, logits.size(-1)}), targets.reshape({-1}));
}

int64_t GPTImpl::num_parameters(bool exclude_positions) const {
  int64_t n = 0;
  for (auto& p : parameters()) n += p.numel();
  if (exclude_positions && wpe) n -= wpe->weight.numel();
  return n;
}

GPT load_gpt(const GPTConfig& config, const std::string& weights_path, torch::Device device) {
  GPT gpt(config);
  load_module_weights(*gpt, load_safetensors(weights_path).tensors, weights_path);
  gpt->to(device);
  gpt->eval();
  return gpt;
}

}  // namespace imagine
