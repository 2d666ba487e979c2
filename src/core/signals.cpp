// Signal handlers only set an atomic flag; all real work happens in the job's loop.
#include "core/signals.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

namespace imagine {

static std::atomic<int> g_signal{0};

static void on_signal(int sig) {
  if (g_signal.load() != 0) _exit(128 + sig);  // second signal: the user insists
  g_signal.store(sig);
  const char msg[] = "\ninterrupt received: finishing the current step and saving a checkpoint "
                     "(press again to abort without saving)\n";
  ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)r;
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

}  // namespace imagine
