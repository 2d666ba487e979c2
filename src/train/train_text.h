// Training a GPT on text: the option table of `imagine train text` (with its presets) and
// the pipeline corpus -> tokenizer -> token splits -> Trainer.
#pragma once
#include <functional>
#include <string>

#include "core/options.h"
#include "train/trainer.h"

namespace imagine {

// The declarative options of `imagine train text`, presets included.
const OptionTable& text_train_table();

struct TextTrainResult {
  TrainOutcome outcome;
  std::string out_dir;
  uint64_t seed = 0;
  int64_t parameters = 0;
};

// Runs the whole pipeline; `log` receives human-readable lines (data report, model size).
TextTrainResult train_text(const Options& o, const std::function<void(const std::string&)>& log);

}  // namespace imagine
