// GPT model. See gpt.h. Initialisation follows GPT-2: N(0, 0.02), residual projections
// scaled by 1/sqrt(2 * n_layer), zero biases.
#include "models/gpt.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/safetensors.h"
#include "nn/weights.h"

namespace imagine {

nlohmann::json GPTConfig::to_json() const {
  return {{"vocab_size", vocab_size}, {"block_size", block_size}, {"n_layer", n_layer}, {"n_head", n_head},
          {"n_embd", n_embd},         {"dropout", dropout},       {"bias", bias}};
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
}

GPTImpl::GPTImpl(const GPTConfig& cfg) : config(cfg) {
  config.validate();
  wte = register_module("wte", torch::nn::Embedding(config.vocab_size, config.n_embd));
  wpe = register_module("wpe", torch::nn::Embedding(config.block_size, config.n_embd));
  drop = register_module("drop", torch::nn::Dropout(config.dropout));
  h = register_module("h", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.n_layer; i++) {
    blocks.push_back(nn::Block(config.n_embd, config.n_head, config.dropout, config.bias));
    h->push_back(blocks.back());
  }
  ln_f = register_module("ln_f", nn::LayerNorm(config.n_embd, config.bias));

  torch::NoGradGuard no_grad;
  const double proj_std = 0.02 / std::sqrt(2.0 * config.n_layer);
  for (auto& p : named_parameters()) {
    const std::string& name = p.key();
    auto& t = p.value();
    if (name.find("ln_") != std::string::npos) continue;  // LayerNorm keeps ones / zeros
    if (t.dim() == 1)
      t.zero_();
    else if (name.size() >= 13 && name.compare(name.size() - 13, 13, "c_proj.weight") == 0)
      t.normal_(0.0, proj_std);
    else
      t.normal_(0.0, 0.02);
  }
}

torch::Tensor GPTImpl::forward(const torch::Tensor& idx, KVCache* cache) {
  const int64_t T = idx.size(1);
  const int64_t past = cache ? (*cache)[0].length() : 0;
  IMAGINE_CHECK(past + T <= config.block_size, "crop the input to the model's context", "sequence of ",
                past + T, " tokens exceeds the context of ", config.block_size);
  auto pos = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kLong).device(idx.device()));
  auto x = drop(wte(idx) + wpe(pos));  // (B, T, C)
  for (size_t i = 0; i < blocks.size(); i++) x = blocks[i](x, cache ? &(*cache)[i] : nullptr);
  x = ln_f(x);
  return torch::nn::functional::linear(x, wte->weight);  // (B, T, vocab), head tied to wte
}

void BatchCache::move(int64_t from, int64_t to) {
  if (from == to) return;
  torch::NoGradGuard no_grad;
  const int64_t n = length[from];
  for (auto& l : layers) {
    l.k[to].narrow(1, 0, n).copy_(l.k[from].narrow(1, 0, n));
    l.v[to].narrow(1, 0, n).copy_(l.v[from].narrow(1, 0, n));
  }
  length[to] = n;
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
  c.head = nn::StepLinear::of(wte->weight, torch::Tensor()).to(weights);
  return c;
}

torch::Tensor GPTImpl::forward_step(const std::vector<int64_t>& tokens, const std::vector<int64_t>& rows,
                                    BatchCache& cache) {
  IMAGINE_CHECK(!tokens.empty() && tokens.size() == rows.size(), "pass one row per token",
                "forward_step: ", tokens.size(), " tokens for ", rows.size(), " rows");
  IMAGINE_CHECK(!is_training(), "call eval() before decoding", "forward_step decodes without dropout");
  const int64_t B = static_cast<int64_t>(tokens.size());
  std::vector<int64_t> positions;
  nn::RowsStep step;
  step.prefix = true;
  for (int64_t b = 0; b < B; b++) {
    const int64_t r = rows[static_cast<size_t>(b)];
    IMAGINE_CHECK(r >= 0 && r < cache.rows(), "pass rows of the cache", "row ", r, " of ", cache.rows());
    const int64_t past = cache.length[static_cast<size_t>(r)];
    IMAGINE_CHECK(past < config.block_size, "slide the window before the context fills", "row ", r, " holds ",
                  past, " tokens: the context (", config.block_size, ") is full");
    positions.push_back(past);
    step.prefix = step.prefix && r == b;
    step.span = std::max(step.span, past + 1);
  }
  const torch::Device device = wte->weight.device();
  const auto longs = torch::TensorOptions().dtype(torch::kLong);
  step.rows = torch::tensor(rows, longs).to(device);
  step.pos = torch::tensor(positions, longs).to(device);
  if (std::any_of(positions.begin(), positions.end(), [&](int64_t p) { return p != positions[0]; })) {
    // Row b sees positions 0..pos[b]; the rest of the span is another sequence's or stale.
    std::vector<float> mask(static_cast<size_t>(B * step.span), 0.0f);
    for (int64_t b = 0; b < B; b++)
      for (int64_t t = positions[static_cast<size_t>(b)] + 1; t < step.span; t++)
        mask[static_cast<size_t>(b * step.span + t)] = -std::numeric_limits<float>::infinity();
    step.mask = torch::tensor(mask).view({B, 1, 1, step.span}).to(wte->weight.options());
  }
  auto idx = torch::tensor(tokens, longs).to(device);
  auto x = wte(idx) + wpe(step.pos);  // (B, C)
  for (size_t i = 0; i < blocks.size(); i++)
    x = blocks[i]->forward_step(x, cache.layers[i], step, cache.weights[i]);
  for (int64_t r : rows) cache.length[static_cast<size_t>(r)]++;
  return cache.head(ln_f(x));  // (B, vocab)
}

torch::Tensor GPTImpl::prefill_row(const std::vector<int64_t>& tokens, int64_t row, BatchCache& cache) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  IMAGINE_CHECK(T > 0 && T <= config.block_size, "crop the input to the model's context", "a sequence of ", T,
                " tokens for a context of ", config.block_size);
  IMAGINE_CHECK(row >= 0 && row < cache.rows(), "pass a row of the cache", "row ", row, " of ", cache.rows());
  IMAGINE_CHECK(!is_training(), "call eval() before decoding", "prefill_row encodes without dropout");
  const torch::Device device = wte->weight.device();
  const auto longs = torch::TensorOptions().dtype(torch::kLong).device(device);
  auto x = wte(torch::tensor(tokens, torch::kLong).to(device)) + wpe(torch::arange(T, longs));  // (T, C)
  for (size_t i = 0; i < blocks.size(); i++) {
    const bool last = i + 1 == blocks.size();  // only the last position's output is needed there
    x = blocks[i]->forward_prefill(x, cache.layers[i], row, cache.weights[i], last);
  }
  cache.length[static_cast<size_t>(row)] = T;
  return cache.head(ln_f(x))[0];  // (vocab)
}

torch::Tensor GPTImpl::loss(const torch::Tensor& idx, const torch::Tensor& targets) {
  auto logits = forward(idx).to(torch::kFloat);  // float32 loss even under bf16 autocast
  return torch::nn::functional::cross_entropy(logits.view({-1, logits.size(-1)}), targets.reshape({-1}));
}

int64_t GPTImpl::num_parameters(bool exclude_positions) const {
  int64_t n = 0;
  for (auto& p : parameters()) n += p.numel();
  if (exclude_positions) n -= wpe->weight.numel();
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
