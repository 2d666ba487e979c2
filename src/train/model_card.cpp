// Writing the model card from what training recorded.
#include "train/model_card.h"

#include <cctype>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "core/utf8.h"

namespace imagine {

namespace {

constexpr size_t kMaxLicenseBytes = 64 * 1024;

std::string first_line(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  std::string line =
      s.substr(b, s.find('\n', b) == std::string::npos ? std::string::npos : s.find('\n', b) - b);
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.size() > 200) line = std::string(utf8_prefix(line, 200)) + "...";
  return line;
}

// A licence that reads like an SPDX identifier ("MIT", "CC-BY-4.0") goes into the front
// matter as Hugging Face spells them (lower case); anything else is "other".
std::string license_id(const std::string& summary) {
  if (summary.empty() || summary.size() > 40) return "other";
  std::string id;
  for (char c : summary) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '+')) return "other";
    id += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return id;
}

std::string value_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    std::ostringstream s;
    s.precision(6);
    s << v.get<double>();
    return s.str();
  }
  return v.dump();
}

// "- key: value" lines of the scalar members of an object, in key order.
std::string bullet_list(const nlohmann::json& obj) {
  std::string out;
  if (!obj.is_object()) return out;
  for (auto& [k, v] : obj.items())
    if (v.is_primitive() && !v.is_null()) out += "- " + k + ": " + value_text(v) + "\n";
  return out;
}

std::string yaml_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s)
    out += c == '"' ? std::string("\\\"") : c == '\\' ? std::string("\\\\") : std::string(1, c);
  return out + "\"";
}

}  // namespace

nlohmann::json resolve_data_license(const std::string& flag, const nlohmann::json& previous) {
  if (flag.empty()) {
    if (previous.is_object() && previous.contains("data_license")) return previous["data_license"];
    return nullptr;
  }
  std::string text = flag, source = "flag";
  if (path_exists(flag)) {
    text = read_file(flag);
    source = flag;
    IMAGINE_CHECK(text.size() <= kMaxLicenseBytes,
                  "pass the licence's name or a shorter file (at most 64 KiB)", "--data-license file ", flag,
                  " has ", text.size(), " bytes");
  }
  IMAGINE_CHECK(is_valid_utf8(text), "save the licence as UTF-8 text", "--data-license ",
                source == "flag" ? std::string("text") : flag, " is not valid UTF-8");
  IMAGINE_CHECK(!first_line(text).empty(),
                "pass the licence's name (e.g. CC-BY-4.0) or a file holding its text",
                "--data-license is empty");
  return {{"text", text}, {"summary", first_line(text)}, {"sha256", sha256_hex(text)}, {"source", source}};
}

std::string model_card(const nlohmann::json& cfg, const std::string& metrics_jsonl, const std::string& name) {
  const std::string family = cfg.value("family", std::string());
  const nlohmann::json arch = cfg.value("architecture", nlohmann::json::object());
  const nlohmann::json ds = cfg.value("dataset", nlohmann::json::object());
  const nlohmann::json tr = cfg.value("training", nlohmann::json::object());
  const nlohmann::json lic = cfg.value("data_license", nlohmann::json());
  const std::string image_kind = arch.value("family", std::string());  // vae | gan
  const bool text = family == "gpt-text", music = family == "gpt-music", image = family == "image";
  const std::string what = text    ? "GPT-style Transformer text model"
                           : music ? "GPT-style Transformer music model (performance events)"
                           : image ? (image_kind == "gan" ? "DCGAN image model" : "VAE image model")
                                   : "model";
  const std::string summary = lic.is_object() ? lic.value("summary", std::string()) : "";

  std::ostringstream md;
  md << "---\n";
  const std::string id = license_id(summary);
  md << "license: " << (summary.empty() ? "unknown" : id) << "\n";
  if (!summary.empty() && id == "other") md << "license_name: " << yaml_quote(summary) << "\n";
  md << "library_name: imagine\n";
  md << "tags:\n  - imagine\n  - " << (family.empty() ? "unknown" : family) << "\n";
  if (image) md << "  - " << image_kind << "\n";
  md << "  - watermarked\n";
  if (text) md << "pipeline_tag: text-generation\n";
  if (image) md << "pipeline_tag: unconditional-image-generation\n";
  md << "---\n\n";

  md << "# " << name << "\n\n";
  md << "A " << what
     << " trained with imagine on the data below. Every output imagine writes from it is watermarked and "
        "carries a provenance manifest (see \"Watermark and provenance\").\n\n";

  md << "## Training data\n\n";
  md << "- path: " << ds.value("path", std::string("(not recorded)")) << "\n";
  for (const char* key :
       {"format", "bytes", "documents", "train_bytes", "val_bytes", "train_tokens", "train_pieces",
        "valid_pieces", "train_events", "train_images", "test_images", "fingerprint"})
    if (ds.contains(key) && ds[key].is_primitive()) md << "- " << key << ": " << value_text(ds[key]) << "\n";
  if (ds.contains("files") && ds["files"].is_array()) {
    md << "- files: " << ds["files"].size() << " (path, size and sha256 of each in config.json)\n";
    size_t shown = 0;
    for (const auto& f : ds["files"]) {
      if (shown++ == 10) {
        md << "  - ... and " << ds["files"].size() - 10 << " more\n";
        break;
      }
      md << "  - " << f.value("path", std::string()) << " (" << f.value("bytes", uint64_t{0})
         << " bytes, sha256 " << f.value("sha256", std::string()).substr(0, 16) << "...)\n";
    }
  }
  if (ds.contains("skipped") && ds["skipped"].is_array() && !ds["skipped"].empty())
    md << "- skipped: " << ds["skipped"].size() << " file(s), with reasons in config.json\n";
  md << "\n### Licence of the training data\n\n";
  if (summary.empty()) {
    md << "Not declared. Whoever trained this model did not pass `--data-license`; find out under which "
          "terms the data may be used before sharing the model or its outputs.\n\n";
  } else {
    md << "Declared by the trainer (`--data-license`"
       << (lic.value("source", std::string()) == "flag" ? "" : " " + lic.value("source", std::string()))
       << "): **" << summary << "** (sha256 " << lic.value("sha256", std::string()).substr(0, 16)
       << "...)\n\n";
    const std::string full = lic.value("text", std::string());
    if (full.find('\n') != std::string::npos || full.size() > summary.size()) {
      md << "```text\n"
         << (full.size() > 4000 ? full.substr(0, 4000) + "\n[... the full text is in config.json]" : full);
      if (full.empty() || full.back() != '\n') md << "\n";
      md << "```\n\n";
    }
  }
  if (ds.contains("copy_index"))
    md << "The training " << (music ? "melodies are" : "tokens are") << " indexed in `"
       << ds["copy_index"].value("file", std::string()) << "` for the copy audit.\n\n";

  md << "## Model\n\n" << bullet_list(arch) << "\n";

  md << "## Training recipe\n\n";
  md << bullet_list(tr.value("recipe", nlohmann::json::object()));
  for (const char* key : {"seed", "step", "device", "threads"})
    if (tr.contains(key) && tr[key].is_primitive()) md << "- " << key << ": " << value_text(tr[key]) << "\n";
  if (tr.contains("options") && tr["options"].contains("preset") && tr["options"]["preset"].is_string() &&
      !tr["options"]["preset"].get<std::string>().empty())
    md << "- preset: " << tr["options"]["preset"].get<std::string>() << "\n";
  md << "\n";

  md << "## Evaluation\n\n";
  if (tr.contains("best_val_loss") && tr["best_val_loss"].is_number())
    md << "- best validation loss: " << value_text(tr["best_val_loss"]) << " at step "
       << tr.value("best_step", int64_t{0})
       << (text    ? " (nats per token)"
           : music ? " (nats per event)"
                   : "")
       << "\n";
  // The last evaluation in metrics.jsonl, all its numbers.
  nlohmann::json last;
  std::istringstream lines(metrics_jsonl);
  for (std::string line; std::getline(lines, line);) {
    try {
      nlohmann::json j = nlohmann::json::parse(line);
      if (j.value("event", std::string()) == "eval") last = j;
    } catch (...) {
    }
  }
  if (last.is_object()) {
    md << "- last evaluation (step " << last.value("step", int64_t{0}) << "):";
    for (auto& [k, v] : last.items())
      if (v.is_number() && k != "step" && k != "elapsed_s") md << " " << k << " " << value_text(v) << ";";
    md << "\n";
    if (last.contains("elapsed_s")) md << "- training time: " << value_text(last["elapsed_s"]) << " s\n";
  } else {
    md << "- no evaluation recorded\n";
  }
  md << "\n";

  md << "## Intended use\n\n";
  if (text)
    md << "Drafting, exploring and continuing text in the style of the training data, for people who may use "
          "that data: prompts, variations and continuations from the CLI, the library or the local "
          "server.\n\n";
  else if (music)
    md << "Sketching and continuing music in the style of the training pieces: generate or continue a primer "
          "MIDI, render to WAV, look at the piano roll.\n\n";
  else
    md << "Sampling, varying, blending and interpolating small images like the training set, for exploration "
          "and study.\n\n";
  md << "Not for: passing generated content off as human-made or as real, impersonating people, or producing "
        "material that misleads.\n\n";

  md << "## Limitations\n\n";
  md << "- A small model trained on one dataset on ordinary hardware: it knows only that data, repeats its "
        "biases and makes errors a larger model would not.\n";
  if (text) md << "- Text is not checked for facts; it can be fluent and wrong.\n";
  if (music)
    md << "- Pieces are short and lose long-range structure; the melody audit ignores inner voices.\n";
  if (image)
    md << "- Images are at most " << arch.value("size", 0)
       << " px and may show artefacts; evaluation scores use the project's own feature network, not "
          "Inception.\n";
  md << "- It can reproduce passages of its training data. `imagine audit --model DIR FILE` measures how "
        "much of an output is copied and names the training item; `--reject-copies` re-samples flagged "
        "outputs.\n\n";

  md << "## Watermark and provenance\n\n";
  md << "Outputs written by imagine carry an invisible watermark keyed by the generating user's watermark "
        "key ("
     << (image ? "a keyed DCT quantisation pattern" : "a keyed green-list bias on the sampled tokens")
     << "), unless `--no-watermark` is given, and a provenance manifest naming this model (the sha256 of its "
        "weights), the settings and seeds, the training-data fingerprint and licence, and the IPTC digital "
        "source type `trainedAlgorithmicMedia`; manifests are signed when a signing key is configured. Check "
        "a file with `imagine detect FILE` and `imagine verify FILE`.\n";
  return md.str();
}

void write_model_card(const std::string& model_dir) {
  const nlohmann::json cfg = read_model_config(model_dir);
  const std::string metrics_path = join_path(model_dir, "metrics.jsonl");
  const std::string metrics = path_exists(metrics_path) ? read_file(metrics_path) : "";
  std::string name = model_dir;
  while (name.size() > 1 && name.back() == '/') name.pop_back();
  name = name.substr(name.find_last_of('/') == std::string::npos ? 0 : name.find_last_of('/') + 1);
  write_file_atomic(join_path(model_dir, kModelCardFile), model_card(cfg, metrics, name));
}

}  // namespace imagine
