// Running the imagine binary from tests: spawn with captured stdout/stderr, a timeout,
// and the checks every CLI test makes (clean `error:` + `hint:` failures).
#pragma once
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace imagine::testing {

struct ProcResult {
  bool exited = false;   // normal exit (not killed by a signal)
  int code = -1;         // exit status when exited
  int signal = 0;        // the signal when not
  std::string out, err;
  bool timed_out = false;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Starts IMAGINE_BINARY with args; stdout/stderr go to the given files, stdin is /dev/null.
inline pid_t spawn_imagine(const std::vector<std::string>& args, const std::string& out_path, const std::string& err_path) {
  std::vector<std::string> full = {IMAGINE_BINARY};
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, IMAGINE_BINARY, &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_EQ(rc, 0) << "cannot start " << IMAGINE_BINARY;
  return rc == 0 ? pid : -1;
}

// Waits for pid (killing it after timeout_s) and fills the exit fields.
inline void wait_for(pid_t pid, ProcResult& r, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  while (true) {
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0) {
      ADD_FAILURE() << "waitpid failed";
      return;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.exited = WIFEXITED(status);
  r.code = r.exited ? WEXITSTATUS(status) : -1;
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

// Ctrl-C to a spawned imagine: SIGINT, then waits (at most timeout_s) and reads what it
// printed to out_path / err_path.
inline ProcResult interrupt(pid_t pid, const std::string& out_path, const std::string& err_path,
                            double timeout_s) {
  kill(pid, SIGINT);
  ProcResult r;
  wait_for(pid, r, timeout_s);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  return r;
}

// Scratch folder for the captured stdout/stderr files (set by each suite).
inline std::string g_tmp;

inline ProcResult run_imagine(const std::vector<std::string>& args, double timeout_s = 120) {
  static std::atomic<int> counter{0};
  const std::string base = g_tmp + "/proc" + std::to_string(counter++);
  ProcResult r;
  const pid_t pid = spawn_imagine(args, base + ".out", base + ".err");
  if (pid < 0) return r;
  wait_for(pid, r, timeout_s);
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  EXPECT_FALSE(r.timed_out) << "imagine timed out";
  return r;
}

inline std::string describe(const std::vector<std::string>& args, const ProcResult& r) {
  std::string s = "imagine";
  for (auto& a : args) s += " " + a;
  return s + "\n  exit " + (r.exited ? std::to_string(r.code) : "signal " + std::to_string(r.signal)) +
         "\n  stdout: " + r.out.substr(0, 2000) + "\n  stderr: " + r.err.substr(0, 2000);
}

// Runs each command in turn (e.g. a suite's training runs); false at the first failure,
// with its description appended to *log.
inline bool run_all(const std::vector<std::vector<std::string>>& commands, double timeout_s, std::string* log) {
  for (const auto& args : commands) {
    auto r = run_imagine(args, timeout_s);
    if (!(r.exited && r.code == 0)) {
      *log += describe(args, r);
      return false;
    }
  }
  return true;
}

inline bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A clean failure: a normal exit with the given code and an error: + hint: pair on stderr.
inline void expect_clean_failure(const std::vector<std::string>& args, int want_code) {
  auto r = run_imagine(args);
  EXPECT_TRUE(r.exited) << describe(args, r);
  EXPECT_EQ(r.code, want_code) << describe(args, r);
  EXPECT_TRUE(has(r.err, "error: ")) << describe(args, r);
  EXPECT_TRUE(has(r.err, "hint: ")) << describe(args, r);
  EXPECT_FALSE(has(r.err, "terminate called")) << describe(args, r);
}

}  // namespace imagine::testing
