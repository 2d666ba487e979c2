// Ctrl-C / SIGTERM: outside a cooperative loop the program stops at once (128 + signal) and
// removes the temporary files it was writing; inside one the first signal only sets the flag.
// Each case runs in a forked child, so the real handlers and _exit run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "../support/temp_dir.h"
#include "core/signals.h"

namespace fs = std::filesystem;

namespace {

// Runs `body` in a child with the handlers installed; its exit code (-1: no normal exit).
int in_child(const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    imagine::install_interrupt_handlers();
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(Signals, OutsideACooperativeLoopASignalStopsAtOnceAndRemovesTempFiles) {
  const std::string dir = imagine::testing::make_temp_dir("imagine_signals_");
  const std::string tmp = dir + "/out.png.tmp.1", kept = dir + "/other.tmp";
  const int code = in_child([&] {
    std::ofstream(kept) << "not registered";
    imagine::TempFileGuard guard(tmp.c_str());
    std::ofstream(tmp) << "half a file";
    raise(SIGINT);
    return 0;  // not reached: the handler exits
  });
  EXPECT_EQ(code, 128 + SIGINT);
  EXPECT_FALSE(fs::exists(tmp)) << "the temp file being written is removed";
  EXPECT_TRUE(fs::exists(kept)) << "only registered files are removed";
  // A guard that went out of scope no longer names its file (it was renamed or removed).
  const std::string done = dir + "/done.tmp";
  EXPECT_EQ(in_child([&] {
              { imagine::TempFileGuard guard(done.c_str()); }
              std::ofstream(done) << "a file of the same name, made later";
              raise(SIGTERM);
              return 0;
            }),
            128 + SIGTERM);
  EXPECT_TRUE(fs::exists(done));
  fs::remove_all(dir);
}

TEST(Signals, InACooperativeLoopTheFirstSignalSetsTheFlagAndASecondStops) {
  EXPECT_EQ(in_child([] {
              imagine::CooperativeInterrupts coop("stopping after this step");
              raise(SIGINT);
              return imagine::interrupt_requested() && imagine::interrupt_signal() == SIGINT ? 7 : 1;
            }),
            7);
  EXPECT_EQ(in_child([] {
              imagine::CooperativeInterrupts coop("stopping after this step");
              raise(SIGINT);
              raise(SIGINT);
              return 1;
            }),
            128 + SIGINT);
  // Leaving the loop restores stop-at-once.
  EXPECT_EQ(in_child([] {
              { imagine::CooperativeInterrupts coop("stopping after this step"); }
              raise(SIGINT);
              return 1;
            }),
            128 + SIGINT);
}
