// Ctrl-C / SIGTERM handling for long jobs: the first signal asks the job to stop at the
// next safe point (the trainer saves a checkpoint); a second one exits at once.
#pragma once

namespace imagine {

void install_interrupt_handlers();
bool interrupt_requested();
int interrupt_signal();      // the signal number received, 0 if none
void request_interrupt();    // the same path as a signal, for tests and callbacks
void clear_interrupt();

}  // namespace imagine
