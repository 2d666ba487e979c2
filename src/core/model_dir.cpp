// Model directory helpers. See model_dir.h.
#include "core/model_dir.h"

#include <filesystem>

#include "core/error.h"
#include "core/files.h"

namespace fs = std::filesystem;

namespace imagine {

std::string join_path(const std::string& dir, const std::string& name) {
  return (fs::path(dir) / name).string();
}

void make_dirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  IMAGINE_CHECK(!ec, "check the path and its permissions", "cannot create directory ", dir, ": ", ec.message());
}

bool path_exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

nlohmann::json read_model_config(const std::string& dir) {
  IMAGINE_CHECK(fs::is_directory(dir), "pass a model directory written by `imagine train`",
                "no model directory at ", dir);
  const std::string path = join_path(dir, "config.json");
  IMAGINE_CHECK(path_exists(path), "pass a model directory written by `imagine train`", dir,
                " is not a model directory (no config.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + " is not valid JSON (" + e.what() + ")", "the model directory is damaged; retrain or restore it");
  }
  IMAGINE_CHECK(j.is_object() && j.contains("format") && j["format"] == kModelFormat,
                "pass a model directory written by `imagine train`", path, " is not an imagine model config");
  IMAGINE_CHECK(j.contains("format_version") && j["format_version"].is_number_integer(),
                "the model directory is damaged", path, " has no format_version");
  const int v = j["format_version"].get<int>();
  IMAGINE_CHECK(v <= kModelFormatVersion, "upgrade imagine to read this model", path, " has format version ", v,
                "; this build reads up to ", kModelFormatVersion);
  IMAGINE_CHECK(v >= 1, "the model directory is damaged", path, " has invalid format version ", v);
  return j;
}

nlohmann::json read_model_config(const std::string& dir, const std::string& family, const std::string& noun) {
  nlohmann::json j = read_model_config(dir);
  const std::string found = j.value("family", "");
  IMAGINE_CHECK(found == family, "use the command for that family (imagine generate text|image|music ...)", dir,
                " holds a '", found, "' model, not ", noun);
  return j;
}

void write_model_config(const std::string& dir, const nlohmann::json& config) {
  write_file_atomic(join_path(dir, "config.json"), config.dump(2) + "\n");
}

std::string weights_file(const std::string& dir, const std::string& which) {
  IMAGINE_CHECK(which == "best" || which == "latest", "use best or latest", "unknown checkpoint '", which, "'");
  const std::string path = which == "best" ? join_path(dir, "model.safetensors")
                                           : join_path(join_path(dir, "checkpoint-latest"), "model.safetensors");
  IMAGINE_CHECK(path_exists(path), "train the model first, or pass the right directory", "missing weights file ", path);
  return path;
}

const nlohmann::json& json_field(const nlohmann::json& j, const std::string& key, const std::string& what) {
  IMAGINE_CHECK(j.is_object() && j.contains(key), "the file is damaged or from another tool", what,
                " lacks the field '", key, "'");
  return j.at(key);
}

}  // namespace imagine
