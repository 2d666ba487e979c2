// Music generation's length: a piece asked to last `seconds` lasts them even where the model
// ends it earlier (the end-of-piece event waits), and without a length the model may end it.
#include <gtest/gtest.h>

#include <cmath>

#include "generate/music_generate.h"

namespace {

imagine::MusicModel tiny_music_model() {
  imagine::MusicModel m;
  imagine::GPTConfig c;
  c.vocab_size = m.vocab.size();
  c.block_size = 64;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_embd = 16;
  torch::manual_seed(5);
  m.gpt = imagine::GPT(c);
  m.gpt->eval();
  return m;
}

}  // namespace

TEST(MusicGenerate, PieceLastsTheSecondsAskedForEvenWhereTheModelEndsIt) {
  torch::set_num_threads(1);
  imagine::MusicModel m = tiny_music_model();
  imagine::MusicRequest req;
  req.max_tokens = 100000;
  req.seed = 3;
  req.max_note_seconds = 0.05;
  // A model eager to end: EOS 30 nats ahead wherever the grammar allows it (once a note has
  // sounded and every note is closed).
  req.logit_hook = [&](std::vector<float>& logits, const std::vector<int64_t>&) {
    if (std::isfinite(logits[m.vocab.eos()])) logits[m.vocab.eos()] += 30;
  };
  req.seconds = 0;  // no length asked: the model ends the piece where it likes
  const imagine::MusicResult free = imagine::generate_music(m, imagine::Song{}, req);
  ASSERT_EQ(free.stop_reason, "end");
  const double ended = free.song.duration();
  // Asked for more than that, the same seed samples the same events up to that point, but
  // EOS waits: the piece goes on to the requested length and is cut there.
  req.seconds = std::ceil(ended) + 4;
  const imagine::MusicResult r = imagine::generate_music(m, imagine::Song{}, req);
  EXPECT_EQ(r.stop_reason, "seconds")
      << "the model ended at " << ended << " s; " << req.seconds << " s were asked";
  EXPECT_LE(r.song.duration(), req.seconds + 1e-9);
  double last_onset = 0;
  for (const auto& n : r.song.notes) last_onset = std::max(last_onset, n.start);
  EXPECT_GT(last_onset, ended + 2) << "notes keep coming after the point where the model ended";
}
