// The models a server offers: the model directories directly inside --models DIR, found by
// name only (no path separators, no dot names, nothing a symlink leads out of the folder),
// loaded on first use and kept. Text models get their batcher.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/image_model.h"
#include "models/music_model.h"
#include "models/text_model.h"
#include "provenance/audit.h"
#include "provenance/output.h"
#include "serve/text_batcher.h"

namespace imagine::serve {

struct ServedModel {
  std::string name, dir, family;  // family: gpt-text, gpt-music, image (config.json)
  ModelRecord record;             // what manifests name (hash of the best weights)
  std::unique_ptr<TextModel> text;
  std::unique_ptr<TextBatcher> batcher;
  std::unique_ptr<MusicModel> music;
  std::unique_ptr<ImageModel> image;
  std::unique_ptr<CopyAuditor> auditor;  // see copy_auditor()
  std::mutex mu;                         // image and music work on this model runs one request at a time
  // The copy auditor of this model's training data, opened on first use. Call under mu.
  CopyAuditor& copy_auditor() {
    if (!auditor) auditor = open_copy_auditor(dir, AuditOptions{}, nullptr);
    return *auditor;
  }
};

struct RegistryOptions {
  int slots = 8;              // text sequences decoded together per model
  int queue = 32;             // text requests waiting beyond the slots
  int threads = 0;            // torch threads of a model's decoding thread (0 = all cores)
  bool bf16_weights = false;  // text models decode with bfloat16 step weights
};

class ModelRegistry {
 public:
  ModelRegistry(const std::string& root, RegistryOptions opt);
  ~ModelRegistry();

  // Name -> model directory inside the root. ApiError 400 for a name that is not a plain
  // directory name, 404 for one that is not a model here.
  std::string resolve(const std::string& name) const;
  // Names of the model directories (those with a config.json), sorted.
  std::vector<std::string> names() const;
  // Loaded on first use; `family` ("" = any) must match (else 400).
  std::shared_ptr<ServedModel> get(const std::string& name, const std::string& family = "");
  // What GET /api/models shows of one model (config.json summary and model card).
  nlohmann::json describe(const std::string& name) const;
  // Every loaded text model's batcher (for the metrics' gauges).
  std::vector<std::shared_ptr<ServedModel>> loaded() const;

  const std::string& root() const { return root_; }

 private:
  std::string root_;
  RegistryOptions opt_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<ServedModel>> models_;
};

}  // namespace imagine::serve
