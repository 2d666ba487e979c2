// `imagine train image`: options, presets and the image pipeline around the one Trainer.
#include "train/train_image.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/model_dir.h"
#include "core/runtime.h"
#include "data/image_dataset.h"
#include "eval/image_eval.h"
#include "image/image.h"
#include "models/image_model.h"
#include "provenance/output.h"
#include "train/model_card.h"

namespace imagine {

const OptionTable& image_train_table() {
  static const OptionTable table = [] {
    OptionTable t(
        "imagine train image --model vae|gan [--data PATH] --out MODEL_DIR [options]",
        "Train a VAE or a DCGAN on IDX files (MNIST / Fashion-MNIST) or a folder of PNG/JPEG images.");
    t.choice("model", "vae", {"vae", "gan"}, "family: variational autoencoder or DCGAN")
        .text("data", kDefaultImageData,
              "IDX folder/file, or a folder of PNG/JPEG images (first-level subfolders = classes)", "PATH")
        .text("out", "", "model directory to write (refuses to overwrite an existing model)", "DIR")
        .text("data-license", "", kDataLicenseHelp, "TEXT|FILE")
        .flag("resume", false, "continue the run in --out from checkpoint-latest exactly")
        .integer("size", 0, 0, 128, "image size: 28, 32, 64 or 128 (0 = 28 for IDX, 64 for folders)")
        .integer("channels", 0, 0, 3,
                 "1 (grey) or 3 (RGB; alpha composited on white) (0 = 1 for IDX, 3 for folders)")
        .integer("limit", 0, 0, 1e9, "use at most N training images (0 = all)")
        .integer("test-limit", 0, 0, 1e9, "use at most N held-out images (0 = all)")
        .flag("conditional", false, "class-conditional model (needs labels: IDX labels or class subfolders)")
        .real("epochs", 0, 0, 1e6,
              "passes over the training images (sets --steps; batches are drawn at random)")
        .integer("steps", 3000, 0, 1e9, "training steps in total (ignored when --epochs is given)")
        .integer("batch-size", 64, 1, 65536, "images per micro-batch")
        .integer("grad-accum", 1, 1, 4096, "micro-batches per optimizer step")
        .integer("latent-dim", 0, 0, 4096, "latent size (0 = 32 for vae, 64 for gan)")
        .integer("width", 32, 4, 1024,
                 "channels of the full-resolution layers (doubling per stage, at most 8x)")
        .real("beta", 1.0, 0.0, 1000.0, "vae: weight of the KL term (1 = the ELBO)")
        .choice("likelihood", "auto", {"auto", "bernoulli", "gaussian"},
                "vae: decoder likelihood (auto: bernoulli for 1 channel, discretised gaussian for colour)")
        .choice("loss", "ns", {"ns", "hinge", "wgan-gp"}, "gan: non-saturating, hinge or WGAN-GP")
        .flag("spectral-norm", false, "gan: spectral normalisation in the discriminator")
        .choice("d-norm", "auto", {"auto", "batch", "none"},
                "gan: discriminator normalisation (auto: batch, none with wgan-gp or spectral norm)")
        .real("gp-weight", 10.0, 0.0, 1e4, "gan: gradient-penalty weight (wgan-gp)")
        .integer("n-critic", 0, 0, 100,
                 "gan: discriminator steps per generator step (0 = 5 for wgan-gp, else 1)")
        .real("ema", 0.999, 0.0, 0.999999,
              "gan: decay of the generator's weight average used for sampling (0 = off)")
        .real("lr", 0, 0, 1.0, "peak learning rate (0 = 1e-3 for vae, 2e-4 for gan)")
        .real("d-lr", 0, 0, 1.0, "gan: discriminator learning rate (0 = --lr)")
        .real("min-lr", -1, -1, 1.0, "learning rate at the end of the cosine decay (-1 = --lr: constant)")
        .integer("warmup-steps", 0, 0, 1e9, "linear warm-up steps")
        .integer("decay-steps", 0, 0, 1e9, "step where the cosine decay ends (0 = --steps)")
        .real("beta1", -1, -1, 0.999999, "Adam beta1 (-1 = 0.5 for gan as in DCGAN, 0.9 for vae)")
        .real("beta2", 0.999, 0.0, 0.999999, "Adam beta2")
        .real("weight-decay", 0.0, 0.0, 10.0, "AdamW decoupled weight decay")
        .real("grad-clip", 0.0, 0.0, 1e6, "clip the gradient norm per network (0 = off)")
        .integer("eval-every", 500, 0, 1e9,
                 "evaluate (FID/KID, ELBO) and checkpoint every N steps (0 = at the end)")
        .integer("eval-samples", 1000, 16, 1e6, "generated images per evaluation")
        .integer("sample-every", 0, 0, 1e9,
                 "write a sample grid to MODEL_DIR/samples every N steps (0 = --eval-every)")
        .integer("log-every", 50, 1, 1e9, "metrics / plain progress line every N steps")
        .text("time-limit", "", kTimeLimitHelp, "DURATION")
        .text("feature-cache", "",
              "folder caching the FID feature network (default $IMAGINE_CACHE or ~/.cache/imagine)", "DIR")
        .choice("precision", "fp32", {"auto", "fp32", "bf16"},
                "bf16 = bfloat16 autocast with float32 weights (auto: where the hardware has fast bf16)")
        .integer("seed", 1337, -1, 9.2e18, "random seed (-1 = random; the seed used is recorded)")
        .text("device", "auto", "auto, cpu or cuda[:N]", "DEV")
        .integer("threads", 0, 0, 1024, "CPU threads (0 = all cores)")
        .flag("quiet", false, "no progress output");
    add_distributed_options(t);
    t.preset({"tiny",
              "8 wide, latent 8, 512 images, 40 steps: seconds on a CPU (tests)",
              {{"width", "8"},
               {"latent-dim", "8"},
               {"limit", "512"},
               {"test-limit", "256"},
               {"batch-size", "16"},
               {"steps", "40"},
               {"eval-every", "20"},
               {"eval-samples", "128"},
               {"log-every", "10"}}});
    t.preset({"fashion-cpu",
              "the demo's and benchmark's budget on 2 cores: 32 wide, 5000 steps of 64 images (5.3 epochs of "
              "Fashion-MNIST; ~1.5 min for the VAE, ~3.5 min for the GAN)",
              {{"width", "32"},
               {"batch-size", "64"},
               {"steps", "5000"},
               {"eval-every", "1000"},
               {"eval-samples", "1000"},
               {"log-every", "50"}}});
    return t;
  }();
  return table;
}

namespace {

struct ImageTaskSettings {
  double beta = 1.0;
  std::string loss = "ns";
  double gp_weight = 10.0;
  int64_t n_critic = 1;
  double d_lr_scale = 1.0;
  double ema = 0.999;
  int64_t batch = 64;
  int64_t eval_samples = 1000;
  int64_t sample_every = 500;
  uint64_t seed = 0;
  std::string out;
  bool write_samples = true;  // rank 0 of a data-parallel run alone writes sample grids
};

// The image families' plug-in for the Trainer.
class ImageTask : public TrainTask {
 public:
  ImageTask(ImageModel& m, const ImageData& data, FeatureSpace& fs, ImageTaskSettings s,
            nlohmann::json config)
      : m_(m), data_(data), fs_(fs), s_(std::move(s)), config_(std::move(config)) {}

  torch::nn::Module& model() override {
    if (m_.vae) return *m_.vae;
    return *m_.gan;
  }
  int64_t units_per_micro_batch() const override { return s_.batch; }
  std::string unit() const override { return "img"; }
  nlohmann::json model_config() const override { return config_; }

  std::vector<OptimizerGroup> optimizer_groups(const AdamWConfig& adamw) override {
    if (m_.vae) return TrainTask::optimizer_groups(adamw);
    auto named = [](torch::nn::Module& mod) {
      std::vector<std::pair<std::string, torch::Tensor>> out;
      for (auto& p : mod.named_parameters()) out.push_back({p.key(), p.value()});
      return out;
    };
    // The discriminator learns first each step (DCGAN's order), then the generator.
    return {OptimizerGroup{"d", named(*m_.gan->d), adamw, s_.d_lr_scale, s_.n_critic},
            OptimizerGroup{"g", named(*m_.gan->g), adamw, 1.0, 1}};
  }

  torch::Tensor micro_batch_loss(Rng& rng, size_t group) override {
    // The generator's step needs no real images, only labels for a conditional model.
    const bool g_step = m_.gan && group == 1;
    const int64_t n = data_.train.size();
    std::vector<int64_t> idx(s_.batch);
    for (auto& i : idx) i = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n)));
    auto index = torch::tensor(idx, torch::kInt64);
    torch::Tensor x, y;
    // uint8 crosses to the device (a quarter of the bytes), then becomes float there.
    if (!g_step) x = images_to_float(to_device(data_.train.images.index_select(0, index), m_.device));
    if (m_.conditional()) y = to_device(data_.train.labels.index_select(0, index), m_.device);
    if (m_.vae) {
      auto o = m_.vae->forward(x, y);
      return (o.recon_nll + s_.beta * o.kl).mean();
    }
    auto& gan = m_.gan;
    // Only the network being stepped needs weight gradients.
    for (auto& p : gan->d->parameters()) p.set_requires_grad(!g_step);
    auto z = torch::randn({s_.batch, m_.arch.latent_dim}, torch::TensorOptions().device(m_.device));
    if (g_step) return gan_g_loss(s_.loss, gan->d->forward(gan->g->forward(z, y), y));
    auto real = x * 2.0 - 1.0;
    torch::Tensor fake;
    {
      torch::NoGradGuard no_grad;
      fake = gan->g->forward(z, y);
    }
    auto loss = gan_d_loss(s_.loss, gan->d->forward(real, y), gan->d->forward(fake, y));
    if (s_.loss == "wgan-gp") loss = loss + s_.gp_weight * gradient_penalty(gan->d, real, fake, y);
    return loss;
  }

  void after_step(int64_t step) override {
    if (m_.gan && s_.ema > 0) {
      // Warm-up so short runs do not average in the random initialisation.
      const double decay = std::min(s_.ema, (1.0 + step) / (10.0 + step));
      m_.gan->update_ema(decay);
    } else if (m_.gan) {
      m_.gan->update_ema(0.0);
    }
    if (s_.write_samples && s_.sample_every > 0 && step % s_.sample_every == 0) write_sample_grid(step);
  }

  std::map<std::string, double> evaluate(int64_t) override {
    torch::NoGradGuard no_grad;
    if (m_.gan) m_.gan->refresh_ema_statistics(8, 64, s_.seed);
    ImageEvalOptions opt;
    opt.samples = s_.eval_samples;
    opt.seed = s_.seed;
    auto r = evaluate_image_model(m_, data_, fs_.net, fs_.real_features, opt);
    std::map<std::string, double> out;
    for (const char* k : {"fid", "kid", "precision", "recall", "elbo_nll", "recon_nll", "kl"})
      if (r.metrics.count(k)) out[k] = r.metrics[k];
    // Best checkpoint: the VAE by its held-out objective, the GAN by sample quality (FID).
    out["val_loss"] = m_.vae ? r.metrics["recon_nll"] + s_.beta * r.metrics["kl"] : r.metrics["fid"];
    return out;
  }

 private:
  void write_sample_grid(int64_t step) {
    torch::NoGradGuard no_grad;
    const bool was_training = model().is_training();
    model().eval();
    // The same 64 seeds every time, so successive grids show the same samples improving.
    auto images = generate_images(m_, 64, 0, 0, 64);
    model().train(was_training);
    std::vector<Image> tiles;
    for (int64_t i = 0; i < images.size(0); i++) tiles.push_back(tensor_to_image(images[i]));
    const std::string dir = join_path(s_.out, "samples");
    make_dirs(dir);
    char name[32];
    std::snprintf(name, sizeof name, "step-%07lld.png", static_cast<long long>(step));
    // Samples are generated content like any other: watermarked, with a manifest. The
    // weights are not on disk yet, so the model is named by its folder and step.
    if (!writer_) writer_ = std::make_unique<OutputWriter>(OutputPolicy{});
    GenerationRecord rec;
    rec.kind = "image";
    rec.verb = "sample";
    rec.model.name = s_.out;
    rec.model.family = config_.value("family", "");
    rec.model.training_data = config_.value("dataset", nlohmann::json::object());
    rec.settings = {{"step", step}, {"seeds", "0..63"}};
    writer_->write_image(join_path(dir, name), make_grid(tiles, 8), rec,
                         {{"Step", std::to_string(step)}, {"Seeds", "0-63"}});
  }

  ImageModel& m_;
  const ImageData& data_;
  FeatureSpace& fs_;
  ImageTaskSettings s_;
  nlohmann::json config_;
  std::unique_ptr<OutputWriter> writer_;
};

nlohmann::json dataset_record(const ImageData& d, const FeatureNetInfo& fi) {
  nlohmann::json skipped = nlohmann::json::array();
  for (size_t i = 0; i < d.skipped.size() && i < 200; i++)
    skipped.push_back({{"path", d.skipped[i].path}, {"reason", d.skipped[i].reason}});
  return {{"path", d.path},
          {"format", d.format},
          {"image_size", d.image_size},
          {"channels", d.channels},
          {"train_images", d.train.size()},
          {"test_images", d.test.size()},
          {"test_source", d.test_source},
          {"classes", d.classes},
          {"labelled", d.train.labels.defined()},
          {"files_used", d.files_used},
          {"skipped_count", d.skipped.size()},
          {"skipped", skipped},
          {"fingerprint", d.fingerprint},
          {"feature_net", {{"path", fi.path}, {"trained", fi.trained}, {"test_accuracy", fi.test_accuracy}}}};
}

}  // namespace

ImageTrainResult train_image(const Options& given, const std::function<void(const std::string&)>& log) {
  const RunSetup run = start_run(given, {"model", "size", "channels", "conditional", "latent-dim", "width",
                                         "likelihood", "spectral-norm", "d-norm", "loss"});
  const Options& o = run.options;
  const std::string& out = run.out;
  const bool resume = run.resume;
  const nlohmann::json& previous = run.previous;
  const int threads = run.threads;
  const torch::Device device = run.device;
  ImageTrainResult result;
  result.out_dir = out;
  result.seed = run.seed;
  result.family = o.s("model");
  const bool gan = result.family == "gan";

  // Data
  ImageDataOptions dopt;
  dopt.size = o.i("size");
  dopt.channels = o.i("channels");
  dopt.limit = o.i("limit");
  dopt.test_limit = o.i("test-limit");
  const ImageData data = load_image_data(o.s("data"), dopt);
  {
    std::string msg =
        str("data: ", data.train.size(), " training + ", data.test.size(), " held-out images (",
            data.test_source, "), ", data.image_size, "x", data.image_size, "x", data.channels, ", ");
    msg += data.classes.empty() ? std::string("no labels") : str(data.classes.size(), " classes");
    msg += " from " + data.path;
    if (data.format == "folder") msg += str("; used ", data.files_used, " file(s)");
    if (!data.skipped.empty())
      msg += str("; skipped ", data.skipped.size(), ": ", summarize_skips(data.skipped));
    log(msg);
  }
  const bool conditional = o.b("conditional");
  IMAGINE_CHECK(!conditional || !data.classes.empty(),
                "drop --conditional, or give the images labels (IDX label files or one subfolder per class)",
                "--conditional needs labels, and ", data.path, " has none");

  // Architecture
  ImageArch arch;
  arch.family = result.family;
  arch.channels = data.channels;
  arch.size = data.image_size;
  arch.latent_dim = o.i("latent-dim") > 0 ? o.i("latent-dim") : (gan ? 64 : 32);
  arch.width = o.i("width");
  arch.classes = conditional ? static_cast<int64_t>(data.classes.size()) : 0;
  arch.likelihood =
      o.s("likelihood") != "auto" ? o.s("likelihood") : (data.channels == 1 ? "bernoulli" : "gaussian");
  arch.spectral_norm = o.b("spectral-norm");
  const std::string loss = o.s("loss");
  arch.d_norm =
      o.s("d-norm") != "auto" ? o.s("d-norm") : (loss == "wgan-gp" || arch.spectral_norm ? "none" : "batch");
  IMAGINE_CHECK(!(gan && loss == "wgan-gp" && arch.d_norm == "batch"),
                "use --d-norm none with wgan-gp (the gradient penalty is per image; batch norm mixes images)",
                "--loss wgan-gp does not work with a batch-normalised discriminator");
  if (resume) arch = ImageArch::from_json(json_field(previous, "architecture", out + "/config.json"));
  arch.validate();

  // Feature space for FID / KID (cached per dataset)
  const std::string cache = feature_cache_dir(o.s("feature-cache"));
  FeatureSpace fs = prepare_feature_space(data, cache, log);

  // Model
  torch::manual_seed(result.seed);
  ImageModel m;
  m.arch = arch;
  m.device = device;
  m.dir = out;
  m.classes = conditional ? data.classes : std::vector<std::string>{};
  if (gan) {
    m.gan = GAN(arch);
    m.gan->to(device);
  } else {
    m.vae = VAE(arch);
    m.vae->to(device);
  }
  torch::nn::Module& net = gan ? static_cast<torch::nn::Module&>(*m.gan) : *m.vae;
  int64_t params = 0;
  for (auto& p : net.parameters())
    if (p.requires_grad()) params += p.numel();
  result.parameters = params;
  const std::string precision = resolve_precision(o.s("precision"), device);

  // Recipe: family defaults where the flags say 0 / -1.
  Options r = o;
  if (o.f("lr") == 0) r.set("lr", gan ? "2e-4" : "1e-3", "family default");
  if (o.f("min-lr") < 0) r.set("min-lr", r.s("lr"), "family default");
  if (o.f("beta1") < 0) r.set("beta1", gan ? "0.5" : "0.9", "family default");
  if (o.f("epochs") > 0)
    r.set("steps",
          std::to_string(
              static_cast<int64_t>(std::ceil(o.f("epochs") * data.train.size() / o.i("batch-size")))),
          "epochs");
  TrainRecipe recipe = recipe_from_options(r);
  recipe.precision = precision;
  recipe.eval_iters = 1;
  log(str("model: ", gan ? "DCGAN" : "VAE", " ", arch.size, "x", arch.size, "x", arch.channels, ", latent ",
          arch.latent_dim, ", width ", arch.width, ", ", arch.stages(), " stages",
          gan ? ", loss " + loss + (arch.spectral_norm ? ", spectral norm" : "") : ", " + arch.likelihood,
          conditional ? str(", conditional on ", arch.classes, " classes") : std::string(), "; ", params,
          " parameters; ", recipe.steps, " steps of ", recipe.batch_size, " images (",
          std::round(100.0 * recipe.steps * recipe.batch_size / data.train.size()) / 100, " epochs); lr ",
          recipe.lr, ", Adam betas (", recipe.adamw.beta1, ", ", recipe.adamw.beta2, "); device ",
          device.str(), ", ", threads, " threads, ", precision, ", seed ", result.seed));

  ImageTaskSettings s;
  s.beta = o.f("beta");
  s.loss = loss;
  s.gp_weight = o.f("gp-weight");
  s.n_critic = o.i("n-critic") > 0 ? o.i("n-critic") : (loss == "wgan-gp" ? 5 : 1);
  s.d_lr_scale = o.f("d-lr") > 0 ? o.f("d-lr") / recipe.lr : 1.0;
  s.ema = o.f("ema");
  s.batch = run.rank_batch(recipe.batch_size);  // this rank's share
  s.eval_samples = o.i("eval-samples");
  s.sample_every = o.i("sample-every") > 0 ? o.i("sample-every") : recipe.eval_every;
  s.seed = result.seed;
  s.out = out;
  s.write_samples = run.rank() == 0;
  make_dirs(out);
  nlohmann::json config = image_model_config(arch, m.classes, dataset_record(data, fs.info));
  config["gan"] = gan ? nlohmann::json{{"loss", loss},
                                       {"n_critic", s.n_critic},
                                       {"ema", s.ema},
                                       {"gp_weight", s.gp_weight},
                                       {"d_lr", recipe.lr * s.d_lr_scale}}
                      : nlohmann::json(nullptr);
  if (!gan) config["vae"] = {{"beta", s.beta}};
  if (!gan) config.erase("gan");
  ImageTask task(m, data, fs, s, config);
  result.outcome = run_trainer(task, recipe, run, log);
  return result;
}

}  // namespace imagine
