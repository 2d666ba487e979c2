// `imagine train <family>`: parses the family's option table and runs its pipeline.
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/signals.h"
#include "train/train_image.h"
#include "train/train_text.h"

namespace imagine::cli {

void note(bool quiet, const std::string& line) {
  if (!quiet) std::fprintf(stderr, "%s\n", line.c_str());
}

static int train_image_cmd(const Args& args) {
  const OptionTable& table = image_train_table();
  Options o = table.parse(args);
  if (o.help_requested) {
    std::fputs(table.help_text().c_str(), stdout);
    return 0;
  }
  if (!o.positional.empty())
    throw UsageError("unexpected argument '" + o.positional[0] + "'", "pass the data with --data PATH");
  const bool quiet = o.b("quiet");
  auto r = train_image(o, [&](const std::string& line) { note(quiet, line); });
  const auto& oc = r.outcome;
  const std::string what = r.family == "gan" ? "fid" : "held-out loss";
  std::string best = std::isfinite(oc.best_val_loss) ? str(oc.best_val_loss) : std::string("n/a");
  std::printf("trained %lld steps in %s (%.0f images/s); best %s %s at step %lld; seed %llu\n", (long long)oc.step,
              format_duration(oc.seconds).c_str(), oc.units_per_second, what.c_str(), best.c_str(),
              (long long)oc.best_step, (unsigned long long)r.seed);
  std::printf("model: %s (best weights: model.safetensors, sample grids: samples/, resume state: checkpoint-latest/)\n",
              r.out_dir.c_str());
  if (oc.interrupted) return 128 + interrupt_signal();
  return 0;
}

int train(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::printf("usage: imagine train text|image [options]   (see imagine train text --help)\n");
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "image") return train_image_cmd(Args(args.begin() + 1, args.end()));
  if (args[0] != "text")
    throw UsageError("unknown model family '" + args[0] + "' for train", "available: text, image");
  const OptionTable& table = text_train_table();
  Options o = table.parse(Args(args.begin() + 1, args.end()));
  if (o.help_requested) {
    std::fputs(table.help_text().c_str(), stdout);
    return 0;
  }
  if (!o.positional.empty())
    throw UsageError("unexpected argument '" + o.positional[0] + "'", "pass the data with --data PATH");
  const bool quiet = o.b("quiet");
  auto r = train_text(o, [&](const std::string& line) { note(quiet, line); });
  const auto& oc = r.outcome;
  std::string best = std::isfinite(oc.best_val_loss) ? str(oc.best_val_loss) : std::string("n/a");
  // The summary goes to stdout even with --quiet: it is the command's result.
  std::printf("trained %lld steps in %s (%.0f tokens/s); best validation loss %s at step %lld; seed %llu\n",
              (long long)oc.step, format_duration(oc.seconds).c_str(), oc.units_per_second, best.c_str(),
              (long long)oc.best_step, (unsigned long long)r.seed);
  std::printf("model: %s (best weights: model.safetensors, resume state: checkpoint-latest/)\n", r.out_dir.c_str());
  if (oc.interrupted) return 128 + interrupt_signal();
  return 0;
}

}  // namespace imagine::cli
