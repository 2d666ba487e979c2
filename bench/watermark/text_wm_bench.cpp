// Measures the token watermark on a trained text model (docs/responsible.md):
//   gen   : N samples of L new tokens per (context h, delta, temperature): z at prefixes of
//           50/100/200/400 tokens, the detection rate at z > 4, the quality cost (loss of
//           the samples under the unwatermarked model), and z after random token
//           replacement (10%, 20%) and character insertions/deletions.
//   null  : z over windows of W tokens of human text that no model here produced.
//   sweet : SWEET-style entropy filtering (provenance/sweet.h): for each entropy threshold,
//           z at prefixes of watermarked samples and the null z over human-text windows,
//           both scoring only positions whose next-token entropy reaches the threshold.
// Prints one JSON object per configuration.
//   text_wm_bench gen MODEL_DIR N L H DELTA TEMP [SEED]
//   text_wm_bench null MODEL_DIR H WINDOW FILE...
//   text_wm_bench sweet MODEL_DIR N L H DELTA TEMP THRESHOLDS WINDOW FILE...   (THRESHOLDS: 0,0.5,1)
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/runtime.h"
#include "generate/text_generate.h"
#include "models/text_model.h"
#include "provenance/sweet.h"
#include "provenance/token_watermark.h"

using namespace imagine;

static const std::string kKey(32, '\x42');  // a fixed bench key (never a user's)

static nlohmann::json summary(std::vector<double> v) {
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= std::max<size_t>(v.size(), 1);
  for (double x : v) s += (x - m) * (x - m);
  s = std::sqrt(s / std::max<size_t>(v.size() - 1, 1));
  int above = 0;
  for (double x : v) above += x > 4.0;
  return {{"mean", m}, {"sd", s}, {"n", v.size()}, {"above_4", above}, {"rate", double(above) / std::max<size_t>(v.size(), 1)}};
}

int main(int argc, char** argv) {
  try {
    std::vector<std::string> a(argv + 1, argv + argc);
    if (a.size() < 2) throw Error("usage: text_wm_bench gen|null ...");
    set_threads(0);
    TextModel model = load_text_model(a[1], torch::kCPU);
    if (a[0] == "null") {
      TokenWatermarkParams p;
      p.context = std::stoi(a[2]);
      const size_t window = std::stoul(a[3]);
      TokenWatermark wm(kKey, p);
      std::vector<double> zs;
      int64_t files = 0;
      for (size_t i = 4; i < a.size(); i++) {
        std::string text;
        try { text = read_file(a[i]); } catch (const Error&) { continue; }
        files++;
        auto toks = model.tokenizer->encode(text);
        for (size_t s = 0; s + window <= toks.size(); s += window) {
          std::vector<int64_t> w(toks.begin() + s, toks.begin() + s + window);
          zs.push_back(wm.detect(w).z);
        }
      }
      double mx = -1e9;
      for (double z : zs) mx = std::max(mx, z);
      nlohmann::json j = {{"mode", "null"}, {"model", a[1]}, {"tokenizer", model.tokenizer->kind()}, {"context", p.context},
                          {"window", window}, {"files", files}, {"z", summary(zs)}, {"max_z", mx}};
      std::printf("%s\n", j.dump().c_str());
      return 0;
    }
    if (a[0] == "sweet") {
      const int n = std::stoi(a[2]), len = std::stoi(a[3]);
      TokenWatermarkParams p;
      p.context = std::stoi(a[4]);
      p.delta = std::stod(a[5]);
      const double temp = std::stod(a[6]);
      std::vector<double> thresholds;
      for (size_t at = 0; at < a[7].size();) {
        const size_t comma = a[7].find(',', at);
        thresholds.push_back(std::stod(a[7].substr(at, comma == std::string::npos ? std::string::npos : comma - at)));
        at = comma == std::string::npos ? a[7].size() : comma + 1;
      }
      const size_t window = std::stoul(a[8]);
      TokenWatermark wm(kKey, p);
      const std::vector<int> prefixes = {50, 100, 200, 400};
      // z[threshold][prefix] over samples; scored counts alongside.
      std::vector<std::vector<std::vector<double>>> zs(thresholds.size(), std::vector<std::vector<double>>(prefixes.size()));
      std::vector<std::vector<double>> kept(thresholds.size());
      for (int i = 0; i < n; i++) {
        TextRequest req;
        req.max_tokens = len;
        req.seed = 1000 + i;
        req.sampling.temperature = temp;
        req.logit_hook = [&](std::vector<float>& l, const std::vector<int64_t>& t) { wm.bias(l, t); };
        const TextResult r = generate_text(model, req);
        const auto toks = model.tokenizer->encode(r.text);
        const std::vector<double> h = next_token_entropies(model, toks);
        for (size_t t = 0; t < thresholds.size(); t++) {
          const std::vector<bool> mask = entropy_mask(h, thresholds[t]);
          size_t on = 0;
          for (bool b : mask) on += b;
          kept[t].push_back(double(on) / std::max<size_t>(mask.size(), 1));
          for (size_t k = 0; k < prefixes.size(); k++) {
            if (toks.size() < size_t(prefixes[k])) continue;
            const std::vector<int64_t> pre(toks.begin(), toks.begin() + prefixes[k]);
            const std::vector<bool> m(mask.begin(), mask.begin() + prefixes[k]);
            zs[t][k].push_back(wm.detect(pre, DetectionPolicy{}, 0, &m).z);
          }
        }
      }
      // Null: human text windows, each scored with its own entropies.
      std::vector<std::vector<double>> null(thresholds.size());
      for (size_t f = 9; f < a.size(); f++) {
        std::string text;
        try { text = read_file(a[f]); } catch (const Error&) { continue; }
        const auto toks = model.tokenizer->encode(text);
        for (size_t s0 = 0; s0 + window <= toks.size(); s0 += window) {
          const std::vector<int64_t> w(toks.begin() + s0, toks.begin() + s0 + window);
          const std::vector<double> h = next_token_entropies(model, w);
          for (size_t t = 0; t < thresholds.size(); t++) {
            const std::vector<bool> m = entropy_mask(h, thresholds[t]);
            null[t].push_back(wm.detect(w, DetectionPolicy{}, 0, &m).z);
          }
        }
      }
      for (size_t t = 0; t < thresholds.size(); t++) {
        double mx = -1e9, mean_kept = 0;
        for (double z : null[t]) mx = std::max(mx, z);
        for (double k : kept[t]) mean_kept += k / std::max<size_t>(kept[t].size(), 1);
        nlohmann::json j = {{"mode", "sweet"}, {"model", a[1]}, {"tokenizer", model.tokenizer->kind()},
                            {"params", p.to_json()}, {"temperature", temp}, {"samples", n}, {"threshold", thresholds[t]},
                            {"scored_fraction", mean_kept}, {"null_window", window}, {"null_z", summary(null[t])},
                            {"null_max_z", mx}};
        for (size_t k = 0; k < prefixes.size(); k++) j["z_at"][std::to_string(prefixes[k])] = summary(zs[t][k]);
        std::printf("%s\n", j.dump().c_str());
      }
      return 0;
    }
    const int n = std::stoi(a[2]), len = std::stoi(a[3]);
    TokenWatermarkParams p;
    p.context = std::stoi(a[4]);
    p.delta = std::stod(a[5]);
    const double temp = std::stod(a[6]);
    const uint64_t seed0 = a.size() > 7 ? std::stoull(a[7]) : 1000;
    TokenWatermark wm(kKey, p);
    const std::vector<int> prefixes = {25, 50, 100, 200, 400};
    std::vector<std::vector<double>> zp(prefixes.size());
    std::vector<double> z_rep10, z_rep20, z_ins, z_del, losses;
    double seconds = 0;
    int64_t tokens = 0;
    Rng edit(7);
    for (int i = 0; i < n; i++) {
      TextRequest req;
      req.max_tokens = len;
      req.seed = seed0 + i;
      req.sampling.temperature = temp;
      if (p.delta > 0) req.logit_hook = [&](std::vector<float>& l, const std::vector<int64_t>& t) { wm.bias(l, t); };
      TextResult r = generate_text(model, req);
      seconds += r.seconds;
      tokens += r.tokens;
      // The detector sees the text only: re-tokenise it as `imagine detect` does.
      const auto toks = model.tokenizer->encode(r.text);
      for (size_t k = 0; k < prefixes.size(); k++)
        if (toks.size() >= size_t(prefixes[k]))
          zp[k].push_back(wm.detect(std::vector<int64_t>(toks.begin(), toks.begin() + prefixes[k])).z);
      const int64_t vocab = model.tokenizer->vocab_size();
      auto replaced = [&](double frac) {
        auto t = toks;
        for (auto& x : t)
          if (edit.uniform() < frac) x = int64_t(edit.below(uint64_t(vocab)));
        return wm.detect(t).z;
      };
      z_rep10.push_back(replaced(0.1));
      z_rep20.push_back(replaced(0.2));
      // Character edits on the text: insert or delete one printable character per 20.
      std::string ins, del;
      for (char c : r.text) {
        if (edit.uniform() < 0.05) ins += char('a' + edit.below(26));
        ins += c;
        if (edit.uniform() >= 0.05) del += c;
      }
      z_ins.push_back(wm.detect(model.tokenizer->encode(ins)).z);
      z_del.push_back(wm.detect(model.tokenizer->encode(del)).z);
      losses.push_back(score_text(model, model.start_text + r.text).loss);
    }
    nlohmann::json j = {{"mode", "gen"}, {"model", a[1]}, {"tokenizer", model.tokenizer->kind()},
                        {"params", p.to_json()}, {"temperature", temp}, {"samples", n}, {"length", len},
                        {"tokens_per_s", tokens / std::max(seconds, 1e-9)}};
    for (size_t k = 0; k < prefixes.size(); k++) j["z_at"][std::to_string(prefixes[k])] = summary(zp[k]);
    j["z_replace_10"] = summary(z_rep10);
    j["z_replace_20"] = summary(z_rep20);
    j["z_insert_5pct_chars"] = summary(z_ins);
    j["z_delete_5pct_chars"] = summary(z_del);
    double ml = 0;
    for (double l : losses) ml += l;
    j["loss_unwatermarked_model"] = ml / std::max<size_t>(losses.size(), 1);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
