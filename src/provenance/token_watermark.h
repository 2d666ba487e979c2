// A statistical watermark for token streams (text and music events): the green-list scheme
// of Kirchenbauer et al., "A Watermark for Large Language Models" (KGW, 2023).
//
// At every step a keyed pseudorandom function of the previous h tokens splits the
// vocabulary: a fraction gamma is "green", and delta is added to the green tokens' logits
// before sampling. A detector with the key counts green tokens among the T it scores;
// without a watermark each is green with probability gamma, so
//   z = (G - gamma T) / sqrt(T gamma (1 - gamma)),   p = 1 - Phi(z).
// A pair that repeats is scored once (repeated phrases would otherwise count their colour
// many times); a pair is what the colour depends on: (seed, token).
//
// Two seeding schemes:
//   h = 1, "lefthash": the green list depends on the previous token only. Robust to edits
//        (one changed token affects two scores) but there are only |V| green lists, so
//        they can be learned from enough marked text and spoofed.
//   h = 4, "selfhash": the reference implementation's current default. The seed is the
//        minimum, over the 4 previous tokens x, of PRF(x, t) for the candidate token t
//        itself (anchored min-hash, with the candidate "self-salted" in): a single edited
//        context token changes the seed only when it held the minimum, and the green lists
//        are many more than |V|.
// The PRF is SipHash-2-4 (provenance/prf.h): the same marks on every machine and device.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "provenance/prf.h"

namespace imagine {

struct TokenWatermarkParams {
  int context = 4;      // h: 1 (lefthash) or 4 (selfhash)
  double gamma = 0.25;  // green fraction of the vocabulary
  double delta = 2.0;   // logit bias of green tokens

  std::string scheme() const;  // "kgw-lefthash-1" or "kgw-selfhash-4"
  void validate() const;       // throws imagine::UsageError for values out of range
  nlohmann::json to_json() const;
  static TokenWatermarkParams from_json(const nlohmann::json& j);  // throws imagine::Error
};

struct TokenDetection {
  int64_t scored = 0;   // T: distinct (context, token) pairs scored
  int64_t green = 0;    // G
  int64_t skipped = 0;  // positions not scored (too little context, repeats, low entropy)
  double z = 0;
  double p_value = 1;
  std::string verdict;  // "watermarked", "not watermarked" or "inconclusive"
  nlohmann::json to_json() const;
};

// Detection thresholds (the defaults: z > 4, i.e. p < 3.2e-5; fewer than min_tokens scored
// tokens without reaching z is "inconclusive", never "human").
struct DetectionPolicy {
  double z_threshold = 4.0;
  int64_t min_tokens = 50;
};

class TokenWatermark {
 public:
  TokenWatermark(const std::string& key32, const TokenWatermarkParams& p);

  const TokenWatermarkParams& params() const { return p_; }

  // Whether `token` is green after `context` (the h tokens before it, oldest first).
  bool is_green(const int64_t* context, int64_t token) const;

  // What one generation has hashed, so that each (context token, candidate) pair is hashed
  // once rather than at every step it stays in the window: the green bit of a candidate
  // depends only on the context token that seeds it (lefthash: the previous token;
  // selfhash: the one with the smallest PRF(x, token)). Filled lazily, per context token
  // a row over the vocabulary; bounded (starts afresh before it would pass kRows rows).
  // Belongs to one generation: not shared between threads.
  class Cache {
   public:
    static constexpr size_t kRows = 64;

   private:
    friend class TokenWatermark;
    struct Row {
      std::vector<uint64_t> seed;  // selfhash: PRF(x, t); UINT64_MAX = not computed yet
      std::vector<int8_t> green;   // green bit of t when x seeds it; -1 = not computed yet
    };
    Row& row(int64_t x, size_t vocab);
    std::unordered_map<int64_t, Row> rows_;
  };

  // Adds delta to the logits of the green tokens for the next position after `tokens`.
  // With fewer than h tokens of context nothing is added (and detection skips them too).
  // With a cache the result is the same, computed with far less hashing.
  void bias(std::vector<float>& logits, const std::vector<int64_t>& tokens, Cache* cache = nullptr) const;

  // Scores tokens[first..]: each position i >= max(first, h) whose (context, token) pair
  // is new. `score` (optional, same length as tokens) excludes positions marked false,
  // e.g. low-entropy ones (SWEET).
  TokenDetection detect(const std::vector<int64_t>& tokens, const DetectionPolicy& policy = {},
                        size_t first = 0, const std::vector<bool>* score = nullptr) const;

 private:
  // The green list's seed for `token` after `context`: PRF(previous token) for lefthash,
  // min_j PRF(context_j, token) for selfhash.
  uint64_t seed(const int64_t* context, int64_t token) const;
  // Whether `token` is green under the green-list seed `seed`.
  bool green_for_seed(uint64_t seed, int64_t token) const;

  TokenWatermarkParams p_;
  PrfKey key_;
  uint64_t threshold_;  // green iff PRF output < threshold_ (= gamma * 2^64)
};

// z and the one-sided p-value of G green among T with green probability gamma, and the
// verdict under a policy (shared with the image detector's reporting).
double green_z(int64_t green, int64_t scored, double gamma);
double normal_upper_tail(double z);  // 1 - Phi(z), accurate far into the tail

}  // namespace imagine
