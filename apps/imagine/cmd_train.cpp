// `imagine train <family>`: parses the family's option table and runs its pipeline.
#include <cmath>
#include <csignal>
#include <cstdio>
#include <functional>

#include "commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/signals.h"
#include "train/distributed.h"
#include "train/train_image.h"
#include "train/train_music.h"
#include "train/train_text.h"

namespace imagine::cli {

void note(bool quiet, const std::string& line) {
  if (!quiet) std::fprintf(stderr, "%s\n", line.c_str());
}

namespace {

// What every family's pipeline reports back for the summary lines.
struct Trained {
  TrainOutcome outcome;
  std::string out_dir;
  uint64_t seed = 0;
  std::string rate_unit;  // "tokens", "images"
  std::string best_what;  // "validation loss", "fid", ...
  std::string extras;     // extra folders worth naming in the summary
};

using Pipeline = std::function<Trained(const Options&, const std::function<void(const std::string&)>&)>;

int run_training(const char* family, const OptionTable& table, const Args& args, const Pipeline& pipeline) {
  Options o = table.parse(args);
  if (o.help_requested) {
    std::fputs(table.help_text().c_str(), stdout);
    return 0;
  }
  if (!o.positional.empty())
    throw UsageError("unexpected argument '" + o.positional[0] + "'", "pass the data with --data PATH");
  // --nproc N: this process starts N ranks of the same command and waits for them.
  if (const int n = local_ranks_to_launch(o); n > 1) {
    std::vector<std::string> argv = {"imagine", "train", family};
    argv.insert(argv.end(), args.begin(), args.end());
    return launch_local_ranks(n, argv, o.f("dist-timeout"));
  }
  const bool main_rank = DistConfig::from_environment("gloo", 0).rank == 0;  // rank 0 reports for all
  const bool quiet = o.b("quiet") || !main_rank;
  // Stopped by Ctrl-C on this rank, or on another one (which this rank agreed to): 130 then.
  auto interrupted_status = [] { return 128 + (interrupt_signal() ? interrupt_signal() : SIGINT); };
  const Trained r = pipeline(o, [&](const std::string& line) { note(quiet, line); });
  if (!main_rank) return r.outcome.interrupted ? interrupted_status() : 0;
  const auto& oc = r.outcome;
  std::string best = std::isfinite(oc.best_val_loss) ? str(oc.best_val_loss) : std::string("n/a");
  // The summary goes to stdout even with --quiet: it is the command's result.
  std::printf("trained %lld steps in %s (%.0f %s/s); best %s %s at step %lld; seed %llu\n",
              (long long)oc.step, format_duration(oc.seconds).c_str(), oc.units_per_second,
              r.rate_unit.c_str(), r.best_what.c_str(), best.c_str(), (long long)oc.best_step,
              (unsigned long long)r.seed);
  std::printf("model: %s (best weights: model.safetensors, %sresume state: checkpoint-latest/)\n",
              r.out_dir.c_str(), r.extras.c_str());
  if (oc.interrupted) return interrupted_status();
  return 0;
}

Trained text_pipeline(const Options& o, const std::function<void(const std::string&)>& log) {
  auto r = train_text(o, log);
  return {r.outcome, r.out_dir, r.seed, "tokens", "validation loss", ""};
}

Trained music_pipeline(const Options& o, const std::function<void(const std::string&)>& log) {
  auto r = train_music(o, log);
  return {r.outcome, r.out_dir, r.seed, "events", "validation loss", ""};
}

Trained image_pipeline(const Options& o, const std::function<void(const std::string&)>& log) {
  auto r = train_image(o, log);
  return {r.outcome,
          r.out_dir,
          r.seed,
          "images",
          r.family == "gan" ? "fid" : "held-out loss",
          "sample grids: samples/, "};
}

}  // namespace

int train(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::printf("usage: imagine train text|image|music [options]   (see imagine train text --help)\n");
    return args.empty() ? 2 : 0;
  }
  const Args rest(args.begin() + 1, args.end());
  if (args[0] == "text") return run_training("text", text_train_table(), rest, text_pipeline);
  if (args[0] == "image") return run_training("image", image_train_table(), rest, image_pipeline);
  if (args[0] == "music") return run_training("music", music_train_table(), rest, music_pipeline);
  throw UsageError("unknown model family '" + args[0] + "' for train", "available: text, image, music");
}

}  // namespace imagine::cli
