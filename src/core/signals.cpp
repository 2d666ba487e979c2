// Signal handlers only touch atomics, write(2), unlink(2) and _exit(2): all
// async-signal-safe. See signals.h for the two modes.
#include "core/signals.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>

namespace imagine {

static std::atomic<int> g_signal{0};
// Non-null: cooperative, naming the safe point for the message.
static std::atomic<const char*> g_cooperative{nullptr};

// Temp files being written (a fixed table: the handler cannot allocate).
constexpr int kTempSlots = 32;
constexpr size_t kTempPath = 4096;
static char g_temp_path[kTempSlots][kTempPath];
static std::atomic<bool> g_temp_used[kTempSlots];

static void say(const char* a, const char* b = "", const char* c = "") {
  for (const char* s : {a, b, c}) {
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
  }
}

static void remove_temp_files() {
  for (int i = 0; i < kTempSlots; i++)
    if (g_temp_used[i].load()) unlink(g_temp_path[i]);
}

static void on_signal(int sig) {
  const char* cooperative = g_cooperative.load();
  if (g_signal.load() != 0 || !cooperative) {  // exit mode, or a second signal: stop now
    remove_temp_files();
    say("\ninterrupted: stopped", cooperative ? " without finishing" : "", "\n");
    _exit(128 + sig);
  }
  g_signal.store(sig);
  say("\ninterrupt received: ", cooperative, " (press again to stop at once)\n");
}

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupt_requested() { return g_signal.load() != 0; }
int interrupt_signal() { return g_signal.load(); }
void request_interrupt() { g_signal.store(SIGINT); }
void clear_interrupt() { g_signal.store(0); }

CooperativeInterrupts::CooperativeInterrupts(const char* what) : previous_(g_cooperative.exchange(what)) {}
CooperativeInterrupts::~CooperativeInterrupts() { g_cooperative.store(previous_); }

TempFileGuard::TempFileGuard(const char* path) : slot_(-1) {
  if (strlen(path) >= kTempPath) return;
  for (int i = 0; i < kTempSlots; i++) {
    bool expected = false;
    if (g_temp_used[i].load() || !g_temp_used[i].compare_exchange_strong(expected, true)) continue;
    // Marked used before the path is complete: the handler may unlink a partial name, which
    // names no file of ours; the path is written before the file is created.
    std::memcpy(g_temp_path[i], path, strlen(path) + 1);
    slot_ = i;
    return;
  }
}

TempFileGuard::~TempFileGuard() {
  if (slot_ >= 0) g_temp_used[slot_].store(false);
}

}  // namespace imagine
