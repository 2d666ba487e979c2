// `imagine eval MODEL_DIR` and `imagine info MODEL_DIR` for image models.
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "core/error.h"
#include "core/model_dir.h"
#include "core/options.h"
#include "core/runtime.h"
#include "data/image_dataset.h"
#include "eval/image_eval.h"
#include "models/image_model.h"

namespace imagine::cli {
namespace {

const OptionTable& eval_table() {
  static const OptionTable table = [] {
    OptionTable t("imagine eval MODEL_DIR [--data PATH] [--json]",
                  "Score an image model on held-out images: FID/KID-style distances and precision/recall in the "
                  "feature space of the project's own classifier, the VAE's ELBO and importance-weighted NLL, and "
                  "each sample's distance to its nearest training image.");
    t.text("data", "", "dataset (default: the one the model was trained on)", "PATH")
        .integer("samples", 5000, 16, 1e6, "generated images (sample i uses seed + i)")
        .integer("real", 0, 0, 1e9, "held-out images to compare with (0 = all)")
        .integer("iw-k", 100, 0, 1e5, "vae: importance samples per image for the NLL estimate (0 = skip)")
        .integer("iw-images", 1000, 1, 1e9, "vae: held-out images the NLL averages over")
        .flag("nearest", true, "distance of every sample to its nearest training image (pixels)")
        .flag("floor", true, "also score real training images in place of samples (the best reachable score)")
        .integer("limit", 0, 0, 1e9, "use at most N training images (0 = all)")
        .integer("seed", 0, 0, 9.2e18, "first sample seed")
        .text("feature-cache", "", "folder caching the feature network", "DIR")
        .choice("checkpoint", "best", {"best", "latest"}, "which weights to use")
        .flag("json", false, "print one JSON object (per-sample nearest distances included)")
        .text("device", "auto", "auto, cpu or cuda[:N]", "DEV")
        .integer("threads", 0, 0, 1024, "CPU threads (0 = all cores)")
        .flag("quiet", false, "no progress lines on stderr");
    return t;
  }();
  return table;
}

std::string fixed(double v, int prec) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

}  // namespace

int eval_image(const Args& args) {
  Options o = eval_table().parse(args);
  if (o.help_requested) return std::fputs(eval_table().help_text().c_str(), stdout), 0;
  if (o.positional.size() != 1) throw UsageError("expected one MODEL_DIR", "usage: " + eval_table().usage());
  const std::string dir = o.positional[0];
  const bool quiet = o.b("quiet");
  set_threads(static_cast<int>(o.i("threads")));
  ImageModel m = load_image_model(dir, resolve_device(o.s("device")), o.s("checkpoint"));
  std::string data_path = o.s("data");
  if (data_path.empty()) data_path = m.config.value("dataset", nlohmann::json::object()).value("path", std::string());
  if (data_path.empty()) throw UsageError("missing --data", "pass --data PATH (the held-out images to compare with)");
  ImageDataOptions dopt;
  dopt.size = m.arch.size;
  dopt.channels = m.arch.channels;
  dopt.limit = o.i("limit");
  const ImageData data = load_image_data(data_path, dopt);
  note(quiet, str("data: ", data.train.size(), " training + ", data.test.size(), " held-out images from ", data_path));
  FeatureSpace fs = prepare_feature_space(data, feature_cache_dir(o.s("feature-cache")),
                                          [&](const std::string& s) { note(quiet, s); });
  if (m.gan) m.gan->refresh_ema_statistics(8, 64, 0);
  ImageEvalOptions opt;
  opt.samples = o.i("samples");
  opt.real = o.i("real");
  opt.iw_samples = m.vae ? o.i("iw-k") : 0;
  opt.iw_images = o.i("iw-images");
  opt.nearest = o.b("nearest");
  opt.floor = o.b("floor");
  opt.seed = static_cast<uint64_t>(o.i("seed"));
  ImageEvalReport r = evaluate_image_model(m, data, fs.net, fs.real_features, opt);
  auto& mt = r.metrics;
  if (o.b("json")) {
    nlohmann::json j = r.to_json();
    j["model_dir"] = dir;
    j["family"] = m.arch.family;
    j["data"] = data_path;
    j["feature_net"] = {{"path", fs.info.path}, {"trained", fs.info.trained}, {"test_accuracy", fs.info.test_accuracy}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("model %s (%s %lldx%lldx%lld); %lld samples vs %lld held-out images; features: %s\n", dir.c_str(),
              m.arch.family.c_str(), (long long)m.arch.size, (long long)m.arch.size, (long long)m.arch.channels,
              (long long)mt["samples"], (long long)mt["real_images"],
              fs.info.trained ? str("own classifier, held-out accuracy ", fixed(100 * fs.info.test_accuracy, 1), "%").c_str()
                              : "untrained fixed network (no labels)");
  std::printf("fid %s  kid %s +- %s  precision %s  recall %s\n", fixed(mt["fid"], 3).c_str(),
              fixed(mt["kid"], 5).c_str(), fixed(mt["kid_std"], 5).c_str(), fixed(mt["precision"], 3).c_str(),
              fixed(mt["recall"], 3).c_str());
  if (mt.count("fid_floor"))
    std::printf("floor (real training images as samples): fid %s  kid %s\n", fixed(mt["fid_floor"], 3).c_str(),
                fixed(mt["kid_floor"], 5).c_str());
  if (mt.count("elbo_nll"))
    std::printf("elbo: %s nats/image (reconstruction %s + kl %s)\n", fixed(mt["elbo_nll"], 2).c_str(),
                fixed(mt["recon_nll"], 2).c_str(), fixed(mt["kl"], 2).c_str());
  if (mt.count("iw_nll"))
    std::printf("nll (importance-weighted, k=%lld, %lld images): %s nats/image\n", (long long)mt["iw_k"],
                (long long)mt["iw_images"], fixed(mt["iw_nll"], 2).c_str());
  if (mt.count("nearest_train_rms_mean"))
    std::printf("nearest training image (RMS pixel distance): mean %s, min %s\n",
                fixed(mt["nearest_train_rms_mean"], 4).c_str(), fixed(mt["nearest_train_rms_min"], 4).c_str());
  return 0;
}

void print_image_info(const std::string& dir, bool json) {
  ImageModel m = load_image_model(dir, torch::kCPU);
  const auto& cfg = m.config;
  const nlohmann::json training = cfg.value("training", nlohmann::json::object());
  const nlohmann::json dataset = cfg.value("dataset", nlohmann::json::object());
  torch::nn::Module& net = m.vae ? static_cast<torch::nn::Module&>(*m.vae) : static_cast<torch::nn::Module&>(*m.gan->g);
  int64_t params = 0;
  for (auto& p : net.parameters()) params += p.numel();
  if (json) {
    nlohmann::json j = {{"model_dir", dir}, {"format", cfg["format"]}, {"format_version", cfg["format_version"]},
                        {"family", cfg["family"]}, {"architecture", cfg["architecture"]},
                        {"sampling_parameters", params}, {"classes", m.classes}, {"training", training},
                        {"dataset", dataset},
                        {"best_val_loss", training.value("best_val_loss", nlohmann::json(nullptr))}};
    j.update(model_card_fields(dir));
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  const auto& a = m.arch;
  std::printf("model:        %s (image %s, format %s v%d)\n", dir.c_str(), a.family.c_str(),
              cfg["format"].get<std::string>().c_str(), cfg["format_version"].get<int>());
  std::printf("architecture: %s %lldx%lldx%lld, latent %lld, width %lld, %lld stages%s\n",
              a.family == "vae" ? ("VAE, " + a.likelihood + " likelihood,").c_str()
                                : ("DCGAN" + std::string(a.spectral_norm ? " (spectral norm)" : "") + ",").c_str(),
              (long long)a.size, (long long)a.size, (long long)a.channels, (long long)a.latent_dim, (long long)a.width,
              (long long)a.stages(), a.classes ? str(", conditional on ", a.classes, " classes").c_str() : "");
  std::printf("parameters:   %lld (%s)\n", (long long)params, m.vae ? "encoder + decoder" : "generator");
  if (!training.empty()) {
    const auto r = training.value("recipe", nlohmann::json::object());
    std::printf("training:     %lld of %lld steps, batch %lld, lr %g, Adam betas (%g, %g), seed %llu, device %s\n",
                (long long)training.value("step", int64_t{0}), (long long)r.value("steps", int64_t{0}),
                (long long)r.value("batch_size", int64_t{0}), r.value("lr", 0.0), r.value("beta1", 0.0),
                r.value("beta2", 0.0), (unsigned long long)training.value("seed", uint64_t{0}),
                training.value("device", std::string("?")).c_str());
    const auto best = training.value("best_val_loss", nlohmann::json(nullptr));
    if (best.is_number())
      std::printf("best:         %s %.4f at step %lld\n", m.vae ? "held-out loss (nats/image)" : "fid",
                  best.get<double>(), (long long)training.value("best_step", int64_t{0}));
  }
  if (!dataset.empty())
    std::printf("dataset:      %s: %lld training + %lld held-out images, %zu classes, %lld skipped\n",
                dataset.value("path", std::string("?")).c_str(), (long long)dataset.value("train_images", int64_t{0}),
                (long long)dataset.value("test_images", int64_t{0}),
                dataset.value("classes", nlohmann::json::array()).size(),
                (long long)dataset.value("skipped_count", int64_t{0}));
}

}  // namespace imagine::cli
