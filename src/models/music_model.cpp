// See music_model.h.
#include "models/music_model.h"

#include "core/error.h"
#include "core/model_dir.h"
#include "core/safetensors.h"
#include "nn/weights.h"

namespace imagine {

nlohmann::json music_model_config(const GPTConfig& arch, const EventVocab& vocab, const nlohmann::json& dataset) {
  return {{"format", kModelFormat}, {"format_version", kModelFormatVersion}, {"family", kMusicFamily},
          {"architecture", arch.to_json()}, {"events", vocab.to_json()},  {"dataset", dataset}};
}

MusicModel load_music_model(const std::string& dir, torch::Device device, const std::string& which) {
  MusicModel m;
  m.dir = dir;
  m.device = device;
  m.config = read_model_config(dir, kMusicFamily, "a music model");
  GPTConfig arch = GPTConfig::from_json(json_field(m.config, "architecture", dir + "/config.json"));
  m.vocab = EventVocab::from_json(json_field(m.config, "events", dir + "/config.json"));
  IMAGINE_CHECK(m.vocab.size() == arch.vocab_size, "the model directory is damaged", "the event vocabulary has ",
                m.vocab.size(), " tokens but the model expects ", arch.vocab_size);
  const std::string weights = weights_file(dir, which);
  m.gpt = load_gpt(arch, weights, device);
  return m;
}

double default_note_cap(const MusicModel& m) {
  return m.config.value("dataset", nlohmann::json::object()).value("note_seconds_p99", 0.0);
}

}  // namespace imagine
