// A music model as stored in a model directory: the GPT of the text family over the event
// vocabulary (music/events.h), plus config.json. Used by generate/continue/eval; training
// writes the same layout (train/train_music).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "models/gpt.h"
#include "music/events.h"

namespace imagine {

constexpr const char* kMusicFamily = "gpt-music";

struct MusicModel {
  nlohmann::json config;
  GPT gpt{nullptr};
  EventVocab vocab;
  torch::Device device = torch::kCPU;
  std::string dir;
};

// The note-length cap the model's training data suggests (config.json's dataset
// note_seconds_p99: the 99th percentile of its note lengths; 0 when not recorded).
double default_note_cap(const MusicModel& m);

MusicModel load_music_model(const std::string& dir, torch::Device device, const std::string& which = "best");
nlohmann::json music_model_config(const GPTConfig& arch, const EventVocab& vocab, const nlohmann::json& dataset);

}  // namespace imagine
