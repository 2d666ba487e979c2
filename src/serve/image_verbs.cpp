// See image_verbs.h.
#include "serve/image_verbs.h"

#include <cmath>

#include "core/error.h"
#include "data/image_dataset.h"

namespace imagine {

torch::Tensor output_labels(const ImageModel& m, int64_t n, const std::string& cls) {
  if (!cls.empty()) return torch::full({n}, m.class_index(cls), torch::kInt64);
  if (m.conditional()) return torch::arange(n, torch::kInt64).remainder(m.arch.classes);
  return {};
}

torch::Tensor input_labels(const ImageModel& m, int64_t n, const std::string& cls) {
  if (!m.conditional()) return {};
  if (cls.empty()) {
    std::string names;
    for (auto& c : m.classes) names += (names.empty() ? "" : ", ") + c;
    throw UsageError("this model is class-conditional: pass the input's class with --class",
                     "classes: " + names);
  }
  return torch::full({n}, m.class_index(cls), torch::kInt64);
}

Image output_image(const torch::Tensor& chw, int64_t upscale) {
  Image img = tensor_to_image(chw);
  const int k = static_cast<int>(upscale);
  return k > 1 ? resize_exact(img, img.width * k, img.height * k) : img;
}

std::vector<Image> sample_images(ImageModel& m, uint64_t seed, int64_t n, double truncation,
                                 const torch::Tensor& labels, int64_t upscale, const CopyCheck& check,
                                 std::vector<CheckRecord>* records) {
  torch::NoGradGuard no_grad;
  std::vector<Image> images;
  if (records) records->assign(static_cast<size_t>(n), CheckRecord{});
  if (check.auditor) {
    for (int64_t i = 0; i < n; i++) {
      const torch::Tensor x = make_checked<torch::Tensor>(
          check, records ? &(*records)[static_cast<size_t>(i)] : nullptr,
          [&](int attempt) {
            const torch::Tensor z =
                seeded_latent(retry_seed(seed + i, attempt), m.arch.latent_dim, truncation);
            return m.decode(z.unsqueeze(0), labels.defined() ? labels.slice(0, i, i + 1) : labels)[0];
          },
          [&](const torch::Tensor& t) { return check.auditor->audit_image(tensor_to_image(t)); });
      images.push_back(output_image(x, upscale));
    }
    return images;
  }
  for (int64_t i = 0; i < n; i += 256) {
    const int64_t e = std::min(n, i + 256);
    std::vector<torch::Tensor> zs;
    for (int64_t k = i; k < e; k++) zs.push_back(seeded_latent(seed + k, m.arch.latent_dim, truncation));
    auto x = m.decode(torch::stack(zs), labels.defined() ? labels.slice(0, i, e) : labels);
    for (int64_t k = 0; k < x.size(0); k++) images.push_back(output_image(x[k], upscale));
  }
  return images;
}

torch::Tensor vary_latent(const torch::Tensor& z, double s, uint64_t seed) {
  return std::sqrt(1.0 - s * s) * z + s * seeded_latent(seed, z.size(0));
}

torch::Tensor vary_images(ImageModel& m, const torch::Tensor& z, double strength, uint64_t seed, int64_t n,
                          const torch::Tensor& y, const CopyCheck& check, std::vector<CheckRecord>* records) {
  torch::NoGradGuard no_grad;
  if (records) records->assign(static_cast<size_t>(n), CheckRecord{});
  if (!check.auditor) {
    std::vector<torch::Tensor> zs;
    for (int64_t i = 0; i < n; i++) zs.push_back(vary_latent(z, strength, seed + static_cast<uint64_t>(i)));
    return m.decode(torch::stack(zs), y.defined() ? y.expand({n}).clone() : y);
  }
  std::vector<torch::Tensor> made;
  for (int64_t i = 0; i < n; i++) {
    made.push_back(make_checked<torch::Tensor>(
        check, records ? &(*records)[static_cast<size_t>(i)] : nullptr,
        [&](int attempt) {
          return m.decode(vary_latent(z, strength, retry_seed(seed + i, attempt)).unsqueeze(0), y)[0];
        },
        [&](const torch::Tensor& t) { return check.auditor->audit_image(tensor_to_image(t)); }));
  }
  return torch::stack(made);
}

torch::Tensor blend_latents(const torch::Tensor& zs, const std::vector<double>& weights) {
  IMAGINE_CHECK(zs.size(0) == static_cast<int64_t>(weights.size()), "pass one weight per image",
                "blend: ", zs.size(0), " latents for ", weights.size(), " weights");
  auto z = torch::zeros({zs.size(1)});
  for (size_t i = 0; i < weights.size(); i++) z += weights[i] * zs[static_cast<int64_t>(i)];
  return z;
}

std::vector<torch::Tensor> interpolate_latents(const torch::Tensor& a, const torch::Tensor& b, int64_t k) {
  std::vector<torch::Tensor> zs;
  for (int64_t i = 0; i < k; i++)
    zs.push_back(slerp(a, b, static_cast<double>(i) / static_cast<double>(k - 1)));
  return zs;
}

Artifact image_artifact(const OutputWriter& w, const ModelRecord& model, const Image& img,
                        const ImageOutput& out, int64_t upscale, const std::string& cls, uint64_t seed) {
  GenerationRecord rec;
  rec.kind = "image";
  rec.verb = out.verb;
  rec.model = model;
  rec.settings = out.settings;
  rec.copy_check = out.copy_check;
  rec.attribution = out.attribution;
  rec.settings["upscale"] = upscale;
  if (!cls.empty()) rec.settings["class"] = cls;
  std::vector<std::pair<std::string, std::string>> params = {{"Verb", out.verb},
                                                             {"Seed", std::to_string(seed)}};
  if (out.settings.contains("seed")) params[1].second = out.settings["seed"].dump();
  params.push_back({"Detail", out.settings.value("detail", "")});
  return w.encode_image(img, rec, params);
}

}  // namespace imagine
