// See music_generate.h.
#include "generate/music_generate.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <tuple>

namespace imagine {

// A MIDI channel holds one sounding copy of a key: a model may start a key that is already
// sounding on the same instrument (or twice at once). As MIDI players do, the new note ends
// the old one; exact duplicates collapse into one.
static void resolve_restrikes(Song& song) {
  std::stable_sort(song.notes.begin(), song.notes.end(), [](const Note& a, const Note& b) {
    return std::tie(a.drum, a.program, a.pitch, a.start) < std::tie(b.drum, b.program, b.pitch, b.start);
  });
  std::vector<Note> kept;
  for (const Note& n : song.notes) {
    if (!kept.empty()) {
      Note& prev = kept.back();
      if (prev.drum == n.drum && prev.program == n.program && prev.pitch == n.pitch && n.start < prev.end) {
        if (n.start <= prev.start) {
          prev.end = std::max(prev.end, n.end);  // same onset: one note
          continue;
        }
        prev.end = n.start;
      }
    }
    kept.push_back(n);
  }
  song.notes = std::move(kept);
  song.sort();
}

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
  // Sampling keeps the stream canonical (music/events.h: EventGrammar), so the written MIDI
  // re-encodes to the sampled tokens and the watermark survives the round trip; the note
  // cap is enforced in the stream itself.
  EventGrammar grammar(m.vocab);
  for (int t : primer_tokens) grammar.push(t);
  if (req.max_note_seconds > 0)
    grammar.set_note_cap(
        std::max<int64_t>(1, static_cast<int64_t>(req.max_note_seconds / m.vocab.step_seconds + 1e-9)));
  const int64_t primer_onsets = grammar.onsets();
  opt.logit_hook = [&](std::vector<float>& logits, const std::vector<int64_t>& tokens) {
    grammar.mask(logits);
    // A piece without a single new note is no answer, and one asked to last `seconds` lasts
    // them: EOS waits for both (max_tokens still bounds the piece).
    const bool too_short = req.seconds > 0 && steps < limit_steps;
    if ((grammar.onsets() == primer_onsets || too_short) && m.vocab.eos() < static_cast<int>(logits.size()))
      logits[m.vocab.eos()] = -std::numeric_limits<float>::infinity();
    if (req.logit_hook) req.logit_hook(logits, tokens);
  };
  Rng rng(req.seed);
  r.stop_reason = "max_tokens";
  auto fresh = sample_continuation(m.gpt, m.device, ctx, opt, rng, [&](int64_t tok) {
    grammar.push(static_cast<int>(tok));
    if (tok == m.vocab.eos()) {
      r.stop_reason = "end";
      return false;
    }
    steps += shift_steps(tok);
    if (steps >= limit_steps) {
      r.stop_reason = "seconds";
      return false;
    }
    if (req.stop) {
      std::string why = req.stop();
      if (!why.empty()) {
        r.stop_reason = std::move(why);
        return false;
      }
    }
    return true;
  });
  r.tokens = static_cast<int64_t>(fresh.size());
  std::vector<int> tokens(all.begin(), all.end());
  for (int64_t t : fresh) tokens.push_back(static_cast<int>(t));
  r.song = m.vocab.decode(tokens);  // new notes already respect max_note_seconds (the grammar's cap)
  if (r.stop_reason == "seconds") {
    // The time shift that crossed the limit is part of the tokens; the piece itself ends at
    // the requested length: later onsets are dropped and sounding notes end there.
    const double end = req.seconds;
    std::vector<Note> kept;
    for (Note n : r.song.notes) {
      if (n.start >= end) continue;
      n.end = std::min(n.end, end);
      kept.push_back(n);
    }
    r.song.notes = std::move(kept);
  }
  resolve_restrikes(r.song);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace imagine
