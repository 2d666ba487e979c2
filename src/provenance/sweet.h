// Entropy-filtered watermark scoring in the manner of SWEET (Lee et al. 2023, "Who Wrote
// this Code? Watermarking for Code Generation"): positions where the model was nearly
// certain carry almost no watermark (the bias cannot move a token with probability ~1), yet
// count in T and dilute z. Scoring only positions whose next-token entropy, under the
// unwatermarked model, reaches a threshold raises z per scored token. The detector then
// needs the model, and the entropy it recomputes must match the generator's closely enough.
#pragma once
#include <cstdint>
#include <vector>

#include "models/text_model.h"

namespace imagine {

// Entropy (nats) of the model's next-token distribution before each of `tokens` (the first
// is predicted from model.start_text), with windows of the model's block sliding by half a
// block. One value per token.
std::vector<double> next_token_entropies(TextModel& model, const std::vector<int64_t>& tokens);

// Which positions to score: entropy >= threshold.
std::vector<bool> entropy_mask(const std::vector<double>& entropies, double threshold);

}  // namespace imagine
