// Ctrl-C / SIGTERM for every verb. By default a signal stops the program at once (exit
// 128 + signal) after removing the temporary files being written, so no verb ignores it and
// none leaves a half-written temp file behind (finished outputs are renamed into place
// atomically, so they are whole or absent). Loops that can stop at a safe point — training
// (checkpoint first), text generation, the server — switch to cooperative mode while they
// run: the first signal sets a flag they poll, a second exits at once.
#pragma once

namespace imagine {

void install_interrupt_handlers();
bool interrupt_requested();
int interrupt_signal();    // the signal number received, 0 if none
void request_interrupt();  // the same path as a signal, for tests and callbacks
void clear_interrupt();

// While one lives, a signal only sets the flag (`what` is how the message names the safe
// point: "saving a checkpoint", "stopping after this token"). Not nested across threads.
class CooperativeInterrupts {
 public:
  explicit CooperativeInterrupts(const char* what);
  ~CooperativeInterrupts();
  CooperativeInterrupts(const CooperativeInterrupts&) = delete;
  CooperativeInterrupts& operator=(const CooperativeInterrupts&) = delete;

 private:
  const char* previous_;
};

// A temporary file being written: removed by the signal handler if the program is stopped
// while it exists. Scope it around the file's life (create .. rename or unlink).
class TempFileGuard {
 public:
  explicit TempFileGuard(const char* path);
  ~TempFileGuard();
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;

 private:
  int slot_;
};

}  // namespace imagine
