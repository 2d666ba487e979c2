// Training the image families (VAE, GAN): the option table of `imagine train image` (with
// its presets) and the pipeline data -> feature space -> model -> the one Trainer.
#pragma once
#include <functional>
#include <string>

#include "core/options.h"
#include "train/trainer.h"

namespace imagine {

const OptionTable& image_train_table();

struct ImageTrainResult {
  TrainOutcome outcome;
  std::string out_dir;
  std::string family;  // "vae" or "gan"
  uint64_t seed = 0;
  int64_t parameters = 0;
};

ImageTrainResult train_image(const Options& o, const std::function<void(const std::string&)>& log);

}  // namespace imagine
