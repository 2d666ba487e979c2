// Training the music family: the GPT of the text family on performance events. The option
// table of `imagine train music` (derived from the text table: same architecture and recipe
// flags) and the pipeline MIDI/chorales -> events (+ augmentation) -> the one Trainer.
#pragma once
#include <functional>
#include <string>

#include "core/options.h"
#include "train/trainer.h"

namespace imagine {

const OptionTable& music_train_table();

struct MusicTrainResult {
  TrainOutcome outcome;
  std::string out_dir;
  uint64_t seed = 0;
  int64_t parameters = 0;
};

MusicTrainResult train_music(const Options& o, const std::function<void(const std::string&)>& log);

}  // namespace imagine
