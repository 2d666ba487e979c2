// Progress reporting for long jobs: a live bar (step/total, fields such as loss and
// tokens/s, ETA) when stderr is a terminal; a plain line every `every` steps otherwise;
// nothing when quiet.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace imagine {

class Progress {
 public:
  Progress(int64_t total, int64_t every, bool quiet, std::string label);
  // Reports that `step` of `total` is done; `fields` is shown after the counter.
  void update(int64_t step, const std::string& fields);
  // Prints a line that must not be overwritten by the bar (eval results, warnings).
  void message(const std::string& line);
  void finish();
  double elapsed() const;

 private:
  int64_t total_, every_, start_step_ = -1;
  bool quiet_, tty_, bar_shown_ = false;
  std::string label_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);

}  // namespace imagine
