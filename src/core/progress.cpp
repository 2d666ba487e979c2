// Terminal progress bar / plain log lines. See progress.h.
#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace imagine {

std::string format_duration(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%02ld:%02ld", t / 60, t % 60);
  return buf;
}

Progress::Progress(int64_t total, int64_t every, bool quiet, std::string label)
    : total_(total), every_(every < 1 ? 1 : every), quiet_(quiet), tty_(isatty(STDERR_FILENO)),
      label_(std::move(label)), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t step, const std::string& fields) {
  if (quiet_) return;
  if (start_step_ < 0) start_step_ = step - 1;
  const double el = elapsed();
  const double rate = (step - start_step_) / (el > 1e-9 ? el : 1e-9);
  const double eta = rate > 0 ? (total_ - step) / rate : -1;
  if (tty_) {
    auto now = std::chrono::steady_clock::now();
    if (step != total_ && std::chrono::duration<double>(now - last_draw_).count() < 0.1) return;
    last_draw_ = now;
    const int width = 24;
    int filled = total_ > 0 ? static_cast<int>(width * step / total_) : 0;
    std::string bar(filled, '#');
    bar += std::string(width - filled, '.');
    std::fprintf(stderr, "\r\033[K%s [%s] %lld/%lld %s eta %s", label_.c_str(), bar.c_str(), (long long)step,
                 (long long)total_, fields.c_str(), format_duration(eta).c_str());
    bar_shown_ = true;
  } else if (step % every_ == 0 || step == total_) {
    std::fprintf(stderr, "%s step %lld/%lld %s eta %s\n", label_.c_str(), (long long)step, (long long)total_,
                 fields.c_str(), format_duration(eta).c_str());
  }
  std::fflush(stderr);
}

void Progress::message(const std::string& line) {
  if (quiet_) return;
  if (tty_ && bar_shown_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", line.c_str());
  bar_shown_ = false;
  std::fflush(stderr);
}

void Progress::finish() {
  if (quiet_) return;
  if (tty_ && bar_shown_) std::fprintf(stderr, "\n");
  bar_shown_ = false;
  std::fflush(stderr);
}

}  // namespace imagine
