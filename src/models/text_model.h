// A text model as stored in a model directory: GPT weights + tokenizer + config.json.
// Used by generate, eval and info; training writes the same layout (train/train_text).
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "models/gpt.h"
#include "tokenize/tokenizer.h"

namespace imagine {

constexpr const char* kTextFamily = "gpt-text";

struct TextModel {
  nlohmann::json config;  // the whole config.json
  GPT gpt{nullptr};
  std::unique_ptr<Tokenizer> tokenizer;
  torch::Device device = torch::kCPU;
  std::string dir;
  // Context that generation starts from when the prompt is empty (never printed): the text
  // that precedes a document in the training data, "%\n" for fortune files, else "\n".
  std::string start_text = "\n";
};

// which: "best" (model.safetensors) or "latest" (checkpoint-latest/model.safetensors).
TextModel load_text_model(const std::string& dir, torch::Device device, const std::string& which = "best");

// config.json content for a text model (without the training record).
nlohmann::json text_model_config(const GPTConfig& arch, const nlohmann::json& tokenizer,
                                 const nlohmann::json& dataset);

}  // namespace imagine

namespace imagine {

struct TextScore {
  double loss = 0;          // mean nats per token
  double bits_per_byte = 0;
  int64_t tokens = 0;       // tokens scored
  int64_t bytes = 0;
};

// Scores every token of `text` (after the first) with the model, in consecutive windows of
// block_size + 1 tokens, `batch` windows at a time. Deterministic.
TextScore score_text(TextModel& m, const std::string& text, int64_t batch = 16);

}  // namespace imagine
