// Loading a text model directory, checking format, family, tokenizer and every tensor.
#include "models/text_model.h"

#include "core/error.h"
#include "core/model_dir.h"
#include "core/safetensors.h"
#include "nn/weights.h"

namespace imagine {

nlohmann::json text_model_config(const GPTConfig& arch, const nlohmann::json& tokenizer,
                                 const nlohmann::json& dataset) {
  return {{"format", kModelFormat}, {"format_version", kModelFormatVersion}, {"family", kTextFamily},
          {"architecture", arch.to_json()}, {"tokenizer", tokenizer},     {"dataset", dataset}};
}

TextModel load_text_model(const std::string& dir, torch::Device device, const std::string& which) {
  TextModel m;
  m.dir = dir;
  m.device = device;
  m.config = read_model_config(dir, kTextFamily, "a text model");
  GPTConfig arch = GPTConfig::from_json(json_field(m.config, "architecture", dir + "/config.json"));
  m.tokenizer = load_tokenizer(json_field(m.config, "tokenizer", dir + "/config.json"), dir);
  IMAGINE_CHECK(m.tokenizer->vocab_size() == arch.vocab_size, "the model directory is damaged",
                "tokenizer has ", m.tokenizer->vocab_size(), " tokens but the model expects ", arch.vocab_size);
  const std::string weights = weights_file(dir, which);
  const auto& dataset = m.config.value("dataset", nlohmann::json::object());
  if (dataset.contains("start_text") && dataset["start_text"].is_string() && !dataset["start_text"].get<std::string>().empty())
    m.start_text = dataset["start_text"].get<std::string>();
  m.gpt = load_gpt(arch, weights, device);
  return m;
}

}  // namespace imagine

namespace imagine {

TextScore score_text(TextModel& m, const std::string& text, int64_t batch) {
  torch::NoGradGuard no_grad;
  m.gpt->eval();
  const auto tokens = m.tokenizer->encode(text);
  IMAGINE_CHECK(tokens.size() >= 2, "pass a longer text", "need at least 2 tokens to evaluate, got ", tokens.size());
  const int64_t block = m.gpt->config.block_size;
  const int64_t n = static_cast<int64_t>(tokens.size());
  auto all = torch::tensor(tokens, torch::kLong);
  double total = 0;
  int64_t counted = 0;
  // Windows overlap by one token so that every token after the first is a target once.
  std::vector<int64_t> starts;
  for (int64_t s = 0; s + 1 < n; s += block) starts.push_back(s);
  for (size_t i = 0; i < starts.size(); i += batch) {
    const size_t j = std::min(starts.size(), i + static_cast<size_t>(batch));
    // Windows in one batch share a length; the last window of the text may be shorter.
    std::vector<torch::Tensor> xs, ys;
    for (size_t w = i; w < j; w++) {
      const int64_t s = starts[w], len = std::min(block, n - 1 - s);
      auto x = all.slice(0, s, s + len), y = all.slice(0, s + 1, s + 1 + len);
      if (len == block) {
        xs.push_back(x);
        ys.push_back(y);
      } else {
        auto logits = m.gpt->forward(x.unsqueeze(0).to(m.device));
        total += torch::nn::functional::cross_entropy(logits.view({-1, logits.size(-1)}), y.to(m.device),
                                                      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                     .item<double>();
        counted += len;
      }
    }
    if (!xs.empty()) {
      auto x = torch::stack(xs).to(m.device), y = torch::stack(ys).to(m.device);
      auto logits = m.gpt->forward(x);
      total += torch::nn::functional::cross_entropy(logits.view({-1, logits.size(-1)}), y.view({-1}),
                                                    torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                   .item<double>();
      counted += y.numel();
    }
  }
  TextScore s;
  s.tokens = counted;
  s.bytes = static_cast<int64_t>(text.size());
  s.loss = total / static_cast<double>(counted);
  s.bits_per_byte = total / std::log(2.0) / static_cast<double>(text.size());
  return s;
}

}  // namespace imagine
