// See image_eval.h.
#include "eval/image_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/runtime.h"
#include "eval/image_metrics.h"

namespace imagine {

nlohmann::json ImageEvalReport::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (auto& [k, v] : metrics) j[k] = v;
  if (!nearest_distance.empty()) {
    j["nearest_train_distance"] = nearest_distance;
    j["nearest_train_index"] = nearest_index;
  }
  return j;
}

std::string feature_cache_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* e = std::getenv("IMAGINE_CACHE"); e && *e) return e;
  if (const char* e = std::getenv("XDG_CACHE_HOME"); e && *e) return std::string(e) + "/imagine";
  if (const char* e = std::getenv("HOME"); e && *e) return std::string(e) + "/.cache/imagine";
  return "/tmp/imagine-cache";
}

FeatureSpace prepare_feature_space(const ImageData& data, const std::string& cache_dir,
                                   const std::function<void(const std::string&)>& log) {
  FeatureSpace fs;
  const int64_t classes = static_cast<int64_t>(data.classes.size());
  fs.net = load_or_train_feature_net(cache_dir, data.fingerprint, images_to_float(data.train.images),
                                     data.train.labels, images_to_float(data.test.images), data.test.labels,
                                     classes, &fs.info, log);
  fs.real_features = extract_features(fs.net, images_to_float(data.test.images));
  return fs;
}

torch::Tensor generate_images(ImageModel& m, int64_t n, uint64_t seed, double truncation, int64_t batch,
                              torch::Tensor* labels_out) {
  std::vector<torch::Tensor> out, all_labels;
  for (int64_t i = 0; i < n; i += batch) {
    const int64_t b = std::min(batch, n - i);
    std::vector<torch::Tensor> zs;
    for (int64_t k = 0; k < b; k++) zs.push_back(seeded_latent(seed + i + k, m.arch.latent_dim, truncation));
    torch::Tensor labels;
    if (m.conditional()) labels = torch::arange(i, i + b, torch::kInt64).remainder(m.arch.classes);
    out.push_back(m.decode(torch::stack(zs), labels));
    if (labels.defined()) all_labels.push_back(labels);
  }
  if (labels_out && !all_labels.empty()) *labels_out = torch::cat(all_labels);
  return torch::cat(out);
}

// Evaluation draws noise from torch's generator with a fixed seed (ScopedTorchSeed), so it
// repeats, and puts the training run's generator state back afterwards, so evaluating never
// changes the training trajectory (and resumed runs match uninterrupted ones).
std::map<std::string, double> vae_elbo(VAE& vae, const ImageSet& set, int64_t limit, uint64_t seed,
                                       int64_t batch) {
  torch::NoGradGuard no_grad;
  const auto device = vae->parameters()[0].device();
  const int64_t n = limit > 0 ? std::min(limit, set.size()) : set.size();
  ScopedTorchSeed rng(seed);
  double recon = 0, kl = 0;
  for (int64_t i = 0; i < n; i += batch) {
    const int64_t e = std::min(n, i + batch);
    auto x = images_to_float(set.images.slice(0, i, e)).to(device);
    torch::Tensor y;
    if (vae->arch.classes > 0) y = set.labels.slice(0, i, e).to(device);
    auto o = vae->forward(x, y);
    recon += o.recon_nll.sum().item<double>();
    kl += o.kl.sum().item<double>();
  }
  return {{"elbo_nll", (recon + kl) / n}, {"recon_nll", recon / n}, {"kl", kl / n}};
}

ImageEvalReport evaluate_image_model(ImageModel& m, const ImageData& data, FeatureNet& net,
                                     const torch::Tensor& real_features, const ImageEvalOptions& opt) {
  ImageEvalReport r;
  torch::NoGradGuard no_grad;
  auto fake = generate_images(m, opt.samples, opt.seed, 0, opt.batch);
  auto fake_f = extract_features(net, fake);
  auto real_f =
      opt.real > 0 && opt.real < real_features.size(0) ? real_features.slice(0, 0, opt.real) : real_features;
  r.metrics["fid"] = frechet_distance(fake_f, real_f);
  const auto kd = kernel_distance(fake_f, real_f, 20, 1000, opt.seed);
  r.metrics["kid"] = kd.mean;
  r.metrics["kid_std"] = kd.std;
  const auto pr = precision_recall(real_f, fake_f, 3);
  r.metrics["precision"] = pr.precision;
  r.metrics["recall"] = pr.recall;
  r.metrics["samples"] = static_cast<double>(opt.samples);
  r.metrics["real_images"] = static_cast<double>(real_f.size(0));
  if (opt.floor) {
    // Real training images in place of samples: the best score this feature net can give
    // with this many samples (finite-sample bias included).
    const int64_t k = std::min<int64_t>(opt.samples, data.train.size());
    auto train_f = extract_features(net, images_to_float(data.train.images.slice(0, 0, k)));
    r.metrics["fid_floor"] = frechet_distance(train_f, real_f);
    r.metrics["kid_floor"] = kernel_distance(train_f, real_f, 20, 1000, opt.seed).mean;
  }
  if (m.vae) {
    auto elbo = vae_elbo(m.vae, data.test, opt.real, opt.seed);
    for (auto& [k, v] : elbo) r.metrics[k] = v;
    if (opt.iw_samples > 0) {
      ScopedTorchSeed rng(opt.seed + 1);
      const int64_t n = std::min(opt.iw_images, data.test.size());
      double total = 0;
      const int64_t batch = 100;
      for (int64_t i = 0; i < n; i += batch) {
        const int64_t e = std::min(n, i + batch);
        auto x = images_to_float(data.test.images.slice(0, i, e)).to(m.device);
        torch::Tensor y;
        if (m.conditional()) y = data.test.labels.slice(0, i, e).to(m.device);
        total += m.vae->iw_nll(x, y, opt.iw_samples).sum().item<double>();
      }
      r.metrics["iw_nll"] = total / n;
      r.metrics["iw_k"] = static_cast<double>(opt.iw_samples);
      r.metrics["iw_images"] = static_cast<double>(n);
    }
  }
  if (opt.nearest) {
    auto flat = [](const torch::Tensor& t) { return t.flatten(1).to(torch::kFloat32); };
    auto nn = nearest_neighbours(flat(fake), flat(images_to_float(data.train.images)));
    // RMS per pixel: independent of image size, 0 = an exact copy, ~0.5 = unrelated.
    auto rms = nn.distance / std::sqrt(static_cast<double>(fake[0].numel()));
    r.nearest_distance.assign(rms.data_ptr<float>(), rms.data_ptr<float>() + rms.numel());
    auto idx = nn.index.to(torch::kInt64).contiguous();
    r.nearest_index.assign(idx.data_ptr<int64_t>(), idx.data_ptr<int64_t>() + idx.numel());
    r.metrics["nearest_train_rms_mean"] = rms.mean().item<double>();
    r.metrics["nearest_train_rms_min"] = rms.min().item<double>();
  }
  return r;
}

}  // namespace imagine
