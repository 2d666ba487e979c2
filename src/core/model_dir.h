// The model directory, Hugging Face-like and readable from Python:
//   config.json            format name + version, family, architecture, tokenizer, training
//                          recipe, dataset record, best validation loss
//   model.safetensors      best weights (by validation loss)
//   checkpoint-latest/     model.safetensors, trainer_state.safetensors (optimizer moments,
//                          RNG state), trainer_state.json (step, schedule, data RNG) for --resume
//   metrics.jsonl          one JSON object per logged step / evaluation
//   tokenizer.model        (bpe only)
//   copy-index.bin         text / music: the copy audit's index of the training data (provenance/audit.h)
//   README.md              the model card (train/model_card.h)
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace imagine {

constexpr const char* kModelFormat = "imagine.model";
constexpr int kModelFormatVersion = 1;

std::string join_path(const std::string& dir, const std::string& name);
void make_dirs(const std::string& dir);  // like mkdir -p; throws imagine::Error
bool path_exists(const std::string& path);

// Reads and checks config.json: present, valid JSON, our format name, a version we read.
nlohmann::json read_model_config(const std::string& model_dir);
// read_model_config, and the model must be of `family` (`noun` names it in the error, e.g.
// "a text model"); otherwise an error pointing at the right command.
nlohmann::json read_model_config(const std::string& model_dir, const std::string& family, const std::string& noun);
void write_model_config(const std::string& model_dir, const nlohmann::json& config);

// The weights file of a model directory: which = "best" (model.safetensors) or "latest"
// (checkpoint-latest/model.safetensors). Throws imagine::Error when it does not exist.
std::string weights_file(const std::string& model_dir, const std::string& which);

// JSON helpers that turn a missing or mistyped field into imagine::Error.
const nlohmann::json& json_field(const nlohmann::json& j, const std::string& key, const std::string& what);

}  // namespace imagine
