// The model card: README.md in the model directory, in the Hugging Face layout (YAML front
// matter, then sections), written at the end of every training run from config.json and
// metrics.jsonl. It says what the model learned from and under which licence, how it was
// trained, how well it did, what it is for and not for, and that its outputs are
// watermarked and carry provenance. `imagine info` prints it.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace imagine {

constexpr const char* kModelCardFile = "README.md";
// The help text of the --data-license option every `imagine train` table declares.
constexpr const char* kDataLicenseHelp =
    "licence of the training data: its name (e.g. CC-BY-4.0) or a file holding its text; recorded in config.json, "
    "the model card (README.md) and every output's manifest";

// The licence of the training data from --data-license: text, or a file whose contents
// are the licence (UTF-8, at most 64 KiB). "" keeps the licence recorded in `previous`
// (config.json of a run being resumed; null when none). Returns null when there is none,
// else {"text", "summary" (first line, <= 200 bytes), "sha256", "source" ("flag" or the file)}.
nlohmann::json resolve_data_license(const std::string& flag, const nlohmann::json& previous);

// The card's Markdown for a model directory's config.json and metrics.jsonl lines.
std::string model_card(const nlohmann::json& config, const std::string& metrics_jsonl,
                       const std::string& model_name);

// Writes MODEL_DIR/README.md atomically from its config.json and metrics.jsonl.
void write_model_card(const std::string& model_dir);

}  // namespace imagine
