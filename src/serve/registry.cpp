// See registry.h.
#include "serve/registry.h"

#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "serve/http.h"
#include "train/model_card.h"

namespace fs = std::filesystem;

namespace imagine::serve {

static bool plain_name(const std::string& n) {
  if (n.empty() || n.size() > 128 || n[0] == '.' || n[0] == '-') return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

ModelRegistry::ModelRegistry(const std::string& root, RegistryOptions opt) : opt_(opt) {
  std::error_code ec;
  const fs::path p = fs::canonical(root, ec);
  IMAGINE_CHECK(!ec && fs::is_directory(p), "pass --models DIR, a folder holding model directories",
                "models folder '", root, "' does not exist");
  root_ = p.string();
}

ModelRegistry::~ModelRegistry() = default;

std::string ModelRegistry::resolve(const std::string& name) const {
  if (!plain_name(name))
    throw ApiError(400, "invalid model name '" + name + "'",
                   "a model is named by its directory inside the server's models folder (GET /api/models)");
  std::error_code ec;
  const fs::path p = fs::canonical(fs::path(root_) / name, ec);
  // The canonical path must be a direct child of the root: a symlink out is not a model here.
  if (ec || p.parent_path() != fs::path(root_) || !fs::is_directory(p) || !fs::exists(p / "config.json"))
    throw ApiError(404, "unknown model '" + name + "'",
                   "GET /api/models lists the models this server offers");
  return p.string();
}

std::vector<std::string> ModelRegistry::names() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(root_, ec)) {
    const std::string n = e.path().filename().string();
    if (!plain_name(n)) continue;
    try {
      resolve(n);
      out.push_back(n);
    } catch (const ApiError&) {
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::shared_ptr<ServedModel> ModelRegistry::get(const std::string& name, const std::string& family) {
  const std::string dir = resolve(name);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(name);
  std::shared_ptr<ServedModel> m;
  if (it != models_.end()) {
    m = it->second;
  } else {
    m = std::make_shared<ServedModel>();
    m->name = name;
    m->dir = dir;
    m->family = read_model_config(dir).value("family", "");
    m->record = model_record(dir, "best");
    if (m->family == kTextFamily) {
      m->text = std::make_unique<TextModel>(load_text_model(dir, torch::kCPU, "best"));
      m->batcher =
          std::make_unique<TextBatcher>(*m->text, opt_.slots, opt_.queue, opt_.threads, opt_.bf16_weights);
    } else if (m->family == kMusicFamily) {
      m->music = std::make_unique<MusicModel>(load_music_model(dir, torch::kCPU, "best"));
    } else if (m->family == kImageFamily) {
      m->image = std::make_unique<ImageModel>(load_image_model(dir, torch::kCPU, "best"));
    } else {
      throw ApiError(400, "model '" + name + "' has an unknown family '" + m->family + "'");
    }
    models_[name] = m;
  }
  if (!family.empty() && m->family != family)
    throw ApiError(400, "model '" + name + "' is a " + m->family + " model, not " + family,
                   "pick a " + family + " model from GET /api/models");
  return m;
}

nlohmann::json ModelRegistry::describe(const std::string& name) const {
  const std::string dir = resolve(name);
  const nlohmann::json cfg = read_model_config(dir);
  const nlohmann::json training = cfg.value("training", nlohmann::json::object());
  nlohmann::json j = {{"name", name},
                      {"family", cfg.value("family", "")},
                      {"architecture", cfg.value("architecture", nlohmann::json(nullptr))},
                      {"dataset", cfg.value("dataset", nlohmann::json(nullptr))},
                      {"best_val_loss", training.value("best_val_loss", nlohmann::json(nullptr))},
                      {"steps", training.value("steps", nlohmann::json(nullptr))},
                      {"data_license", cfg.value("data_license", nlohmann::json(nullptr))}};
  if (cfg.contains("classes")) j["classes"] = cfg["classes"];
  const std::string card = join_path(dir, kModelCardFile);
  j["model_card"] = path_exists(card) ? nlohmann::json(read_file(card)) : nlohmann::json(nullptr);
  return j;
}

std::vector<std::shared_ptr<ServedModel>> ModelRegistry::loaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<ServedModel>> out;
  for (auto& [n, m] : models_) out.push_back(m);
  return out;
}

}  // namespace imagine::serve
