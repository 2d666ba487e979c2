// See jobs.h.
#include "serve/jobs.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"

extern char** environ;

namespace fs = std::filesystem;

namespace imagine::serve {

using Clock = std::chrono::steady_clock;

struct JobManager::Job {
  std::string id;
  JobSpec spec;
  pid_t pid = -1;
  std::string status = "running";  // running, succeeded, failed, cancelled
  int exit_code = -1;
  bool cancel_requested = false;
  std::string log;
  Clock::time_point started;
  double seconds = 0;  // when finished
  int64_t total = 0;   // steps of the run, once the log has told
};

JobManager::JobManager(std::string binary, int max_running, int threads)
    : binary_(std::move(binary)), max_running_(std::max(1, max_running)), threads_(threads) {
  char tmpl[] = "/tmp/imagine-jobs-XXXXXX";
  IMAGINE_CHECK(mkdtemp(tmpl) != nullptr, "check that /tmp is writable",
                "cannot create a folder for job logs");
  logs_ = tmpl;
  reaper_ = std::thread([this] { reap(); });
}

JobManager::~JobManager() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    for (auto& [id, j] : jobs_)
      if (j->status == "running") kill(j->pid, SIGINT);  // the trainer checkpoints and exits
  }
  reaper_.join();
  std::error_code ec;
  fs::remove_all(logs_, ec);
}

void JobManager::reap() {
  for (;;) {
    bool any_running = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, j] : jobs_) {
        if (j->status != "running") continue;
        int st = 0;
        if (waitpid(j->pid, &st, WNOHANG) == j->pid) {
          j->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
          j->status = j->exit_code == 0 ? "succeeded" : j->cancel_requested ? "cancelled" : "failed";
          j->seconds = std::chrono::duration<double>(Clock::now() - j->started).count();
        } else {
          any_running = true;
        }
      }
      if (stop_ && !any_running) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::string JobManager::start(const JobSpec& spec) {
  std::lock_guard<std::mutex> lock(mu_);
  int running = 0;
  for (auto& [id, j] : jobs_) running += j->status == "running";
  if (running >= max_running_) return "";
  auto j = std::make_shared<Job>();
  j->id = "job-" + std::to_string(next_++);
  j->spec = spec;
  j->log = logs_ + "/" + j->id + ".log";
  std::vector<std::string> args = {binary_, "train", spec.family, "--data", spec.data, "--out", spec.out};
  if (spec.family == "text") args.push_back("--no-samples");
  if (threads_ > 0) args.insert(args.end(), {"--threads", std::to_string(threads_)});
  args.insert(args.end(), spec.options.begin(), spec.options.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, j->log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const int rc = posix_spawn(&j->pid, binary_.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  IMAGINE_CHECK(rc == 0, "check the server's binary", "cannot start ", binary_,
                " train: ", std::strerror(rc));
  j->started = Clock::now();
  jobs_[j->id] = j;
  return j->id;
}

std::shared_ptr<JobManager::Job> JobManager::find(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

std::vector<std::string> JobManager::ids() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (auto& [id, j] : jobs_) out.push_back(id);
  return out;
}

bool JobManager::cancel(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return false;
  Job& j = *it->second;
  if (j.status == "running") {
    j.cancel_requested = true;
    kill(j.pid, SIGINT);
  }
  return true;
}

bool JobManager::finished(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  return it == jobs_.end() || it->second->status != "running";
}

std::vector<nlohmann::json> JobManager::metrics_since(const std::string& id, size_t* offset) {
  auto j = find(id);
  std::vector<nlohmann::json> out;
  if (!j) return out;
  std::ifstream f(join_path(j->spec.out, "metrics.jsonl"), std::ios::binary);
  if (!f) return out;
  f.seekg(static_cast<std::streamoff>(*offset));
  std::string line;
  // Only whole lines: the trainer may be in the middle of writing the last one.
  while (std::getline(f, line) && !f.eof()) {
    *offset += line.size() + 1;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception&) {
    }
  }
  return out;
}

static std::string read_log(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// "train step 120/2000 ..." lines of the trainer's log give the run's length.
static int64_t logged_total(const std::string& log) {
  int64_t total = 0;
  size_t p = 0;
  while ((p = log.find(" step ", p)) != std::string::npos) {
    p += 6;
    const size_t slash = log.find('/', p);
    if (slash == std::string::npos || slash - p > 12) continue;
    total = std::atoll(log.c_str() + slash + 1);
  }
  return total;
}

int64_t JobManager::total_steps(const std::string& id) {
  auto j = find(id);
  if (!j) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  if (j->total == 0) j->total = logged_total(read_log(j->log));
  return j->total;
}

nlohmann::json JobManager::eta_seconds(int64_t step, int64_t total, double elapsed) {
  if (total <= 0 || step <= 0 || elapsed <= 0) return nullptr;
  return elapsed / static_cast<double>(step) * static_cast<double>(total - step);
}

nlohmann::json JobManager::describe(const std::string& id) {
  auto j = find(id);
  if (!j) return nullptr;
  std::string status;
  int exit_code;
  double seconds;
  {
    std::lock_guard<std::mutex> lock(mu_);
    status = j->status;
    exit_code = j->exit_code;
    seconds =
        status == "running" ? std::chrono::duration<double>(Clock::now() - j->started).count() : j->seconds;
  }
  const std::string log = read_log(j->log);
  size_t offset = 0;
  nlohmann::json last_step, last_eval;
  for (auto& m : metrics_since(id, &offset)) (m.value("event", "") == "eval" ? last_eval : last_step) = m;
  const int64_t total = total_steps(id);
  nlohmann::json d = {{"id", id},
                      {"family", j->spec.family},
                      {"data", j->spec.data_name},
                      {"model", j->spec.name},
                      {"status", status},
                      {"seconds", seconds},
                      {"total_steps", total > 0 ? nlohmann::json(total) : nlohmann::json(nullptr)},
                      {"last", last_step},
                      {"eval", last_eval}};
  if (status != "running") d["exit_code"] = exit_code;
  const int64_t step = last_step.is_object() ? last_step.value("step", int64_t{0}) : 0;
  const double elapsed = last_step.is_object() ? last_step.value("elapsed_s", 0.0) : 0.0;
  const nlohmann::json eta = eta_seconds(step, total, elapsed);
  if (status == "running" && !eta.is_null()) d["eta_seconds"] = eta;
  // The log's last lines (the error and hint of a failed run).
  size_t start = log.size();
  for (int newlines = 0; start > 0 && newlines < 7; newlines++) {
    const size_t nl = log.rfind('\n', start - 1);
    if (nl == std::string::npos) {
      start = 0;
      break;
    }
    start = nl;
  }
  d["log_tail"] = log.substr(start == 0 ? 0 : start + 1);
  return d;
}

}  // namespace imagine::serve
