#include "models/image_arch.h"

#include <algorithm>

#include "core/error.h"

namespace imagine {

int64_t ImageArch::stages() const {
  int64_t n = 0;
  for (int64_t s = base(); s < size; s *= 2) n++;
  return n;
}

int64_t ImageArch::stage_channels(int64_t i) const { return std::min(width << i, width * 8); }

void ImageArch::validate() const {
  const char* hint = "check the architecture flags (see imagine train image --help)";
  IMAGINE_CHECK(family == "vae" || family == "gan", hint, "unknown image family '", family, "'");
  IMAGINE_CHECK(channels == 1 || channels == 3, hint, "channels must be 1 or 3, not ", channels);
  IMAGINE_CHECK(size == 28 || size == 32 || size == 64 || size == 128, hint, "size must be 28, 32, 64 or 128, not ",
                size);
  IMAGINE_CHECK(latent_dim >= 1 && latent_dim <= 4096, hint, "latent dimension ", latent_dim, " is out of range");
  IMAGINE_CHECK(width >= 4 && width <= 1024, hint, "width ", width, " is out of range");
  IMAGINE_CHECK(classes >= 0 && classes <= 10000, hint, "class count ", classes, " is out of range");
  IMAGINE_CHECK(likelihood == "bernoulli" || likelihood == "gaussian", hint, "unknown likelihood '", likelihood,
                "'");
  IMAGINE_CHECK(d_norm == "batch" || d_norm == "none", hint, "unknown discriminator normalisation '", d_norm, "'");
}

nlohmann::json ImageArch::to_json() const {
  nlohmann::json j = {{"family", family}, {"channels", channels}, {"size", size},
                      {"latent_dim", latent_dim}, {"width", width}, {"classes", classes}};
  if (family == "vae") j["likelihood"] = likelihood;
  if (family == "gan") {
    j["d_norm"] = d_norm;
    j["spectral_norm"] = spectral_norm;
  }
  return j;
}

ImageArch ImageArch::from_json(const nlohmann::json& j) {
  ImageArch a;
  try {
    a.family = j.at("family").get<std::string>();
    a.channels = j.at("channels").get<int64_t>();
    a.size = j.at("size").get<int64_t>();
    a.latent_dim = j.at("latent_dim").get<int64_t>();
    a.width = j.at("width").get<int64_t>();
    a.classes = j.value("classes", int64_t{0});
    a.likelihood = j.value("likelihood", a.likelihood);
    a.d_norm = j.value("d_norm", a.d_norm);
    a.spectral_norm = j.value("spectral_norm", a.spectral_norm);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("config.json: bad image architecture (") + e.what() + ")",
                "the model directory is damaged or from another version");
  }
  a.validate();
  return a;
}

}  // namespace imagine
