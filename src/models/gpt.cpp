// GPT model. See gpt.h. Initialisation follows GPT-2: N(0, 0.02), residual projections
// scaled by 1/sqrt(2 * n_layer), zero biases.
#include "models/gpt.h"

#include <cmath>

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
  IMAGINE_CHECK(n_embd % n_head == 0, "choose n_embd as a multiple of n_head",
                "n_embd (", n_embd, ") is not divisible by n_head (", n_head, ")");
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
    if (t.dim() == 1) t.zero_();
    else if (name.size() >= 13 && name.compare(name.size() - 13, 13, "c_proj.weight") == 0) t.normal_(0.0, proj_std);
    else t.normal_(0.0, 0.02);
  }
}

torch::Tensor GPTImpl::forward(const torch::Tensor& idx, KVCache* cache) {
  const int64_t T = idx.size(1);
  const int64_t past = cache ? (*cache)[0].length() : 0;
  IMAGINE_CHECK(past + T <= config.block_size, "crop the input to the model's context",
                "sequence of ", past + T, " tokens exceeds the context of ", config.block_size);
  auto pos = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kLong).device(idx.device()));
  auto x = drop(wte(idx) + wpe(pos));  // (B, T, C)
  for (size_t i = 0; i < blocks.size(); i++) x = blocks[i](x, cache ? &(*cache)[i] : nullptr);
  x = ln_f(x);
  return torch::nn::functional::linear(x, wte->weight);  // (B, T, vocab), head tied to wte
}

torch::Tensor GPTImpl::forward_rows(const std::vector<int64_t>& tokens, const std::vector<KVCache*>& caches) {
  IMAGINE_CHECK(!tokens.empty() && tokens.size() == caches.size(), "pass one cache per token",
                "forward_rows: ", tokens.size(), " tokens for ", caches.size(), " caches");
  const torch::Device device = wte->weight.device();
  if (tokens.size() == 1) {
    auto idx = torch::full({1, 1}, tokens[0], torch::TensorOptions().dtype(torch::kLong).device(device));
    return forward(idx, caches[0]).index({0, -1}).unsqueeze(0);
  }
  const int64_t B = static_cast<int64_t>(tokens.size());
  std::vector<int64_t> positions;
  for (KVCache* c : caches) {
    const int64_t past = (*c)[0].length();
    IMAGINE_CHECK(past < config.block_size, "slide the window before the context fills",
                  "a cache of ", past, " tokens is full (context ", config.block_size, ")");
    positions.push_back(past);
  }
  auto idx = torch::tensor(tokens, torch::kLong).to(device).view({B, 1});
  auto pos = torch::tensor(positions, torch::kLong).to(device).view({B, 1});
  auto x = drop(wte(idx) + wpe(pos));  // (B, 1, C)
  std::vector<nn::LayerCache*> layer(caches.size());
  for (size_t i = 0; i < blocks.size(); i++) {
    for (size_t b = 0; b < caches.size(); b++) layer[b] = &(*caches[b])[i];
    x = blocks[i]->forward_rows(x, layer);
  }
  x = ln_f(x);
  return torch::nn::functional::linear(x, wte->weight).index({torch::indexing::Slice(), 0});  // (B, vocab)
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
