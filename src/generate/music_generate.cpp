// See music_generate.h.
#include "generate/music_generate.h"

#include <chrono>

namespace imagine {

MusicResult generate_music(MusicModel& m, const Song& primer, const MusicRequest& req) {
  const auto t0 = std::chrono::steady_clock::now();
  MusicResult r;
  std::vector<int> primer_tokens = m.vocab.encode(primer, /*eos=*/false);
  std::vector<int64_t> all(primer_tokens.begin(), primer_tokens.end());
  r.primer_tokens = static_cast<int64_t>(all.size());
  // The model sees at most its block; the primer stays whole in the output.
  const int64_t block = m.gpt->config.block_size;
  std::vector<int64_t> ctx = all;
  if (static_cast<int64_t>(ctx.size()) > block) ctx.erase(ctx.begin(), ctx.end() - block);
  // Time already covered by the primer's events, in grid steps.
  const int first_shift = m.vocab.time_shift(1);
  auto shift_steps = [&](int64_t tok) {
    return tok >= first_shift && tok < first_shift + m.vocab.max_shift_steps ? tok - first_shift + 1 : 0;
  };
  int64_t steps = 0;
  for (int64_t t : all) steps += shift_steps(t);
  const int64_t limit_steps =
      req.seconds > 0 ? static_cast<int64_t>(req.seconds / m.vocab.step_seconds + 0.5) : INT64_MAX;
  TokenSampling opt;
  opt.max_tokens = req.max_tokens;
  opt.sampling = req.sampling;
  opt.banned = {m.vocab.bos()};
  Rng rng(req.seed);
  r.stop_reason = "max_tokens";
  auto fresh = sample_continuation(m.gpt, m.device, ctx, opt, rng, [&](int64_t tok) {
    if (tok == m.vocab.eos()) {
      r.stop_reason = "end";
      return false;
    }
    steps += shift_steps(tok);
    if (steps >= limit_steps) {
      r.stop_reason = "seconds";
      return false;
    }
    return true;
  });
  r.tokens = static_cast<int64_t>(fresh.size());
  std::vector<int> tokens(all.begin(), all.end());
  for (int64_t t : fresh) tokens.push_back(static_cast<int>(t));
  r.song = m.vocab.decode(tokens);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace imagine
