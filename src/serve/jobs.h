// Training jobs of the server: `imagine train` runs as a child process (a crash or an
// out-of-memory in training cannot take the server down, and the trainer's own Ctrl-C path
// is the cancel: SIGINT, checkpoint, exit). Its progress is read from the model directory's
// metrics.jsonl and its log; the trained model lands in the models folder, ready to serve.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace imagine::serve {

struct JobSpec {
  std::string family;                // text, image, music
  std::string data;                  // resolved path inside the data root
  std::string data_name;             // as the request named it
  std::string out;                   // the new model directory
  std::string name;                  // its name in the models folder
  std::vector<std::string> options;  // further `imagine train` flags (whitelisted by the route)
};

class JobManager {
 public:
  // `binary`: the imagine executable; `max_running`: jobs at once (then 503).
  JobManager(std::string binary, int max_running, int threads);
  ~JobManager();  // cancels running jobs and waits for them

  // Starts a job; "" when max_running jobs are running already.
  std::string start(const JobSpec& spec);
  // The job's state: status (running, succeeded, failed, cancelled), progress (step, total,
  // loss, last eval, ETA), exit code and the log's tail. Null when there is no such job.
  nlohmann::json describe(const std::string& id);
  std::vector<std::string> ids();
  bool cancel(const std::string& id);  // false when there is no such job
  // Metrics lines of the job from byte `offset` on (advanced); progress and eval events.
  std::vector<nlohmann::json> metrics_since(const std::string& id, size_t* offset);
  bool finished(const std::string& id);
  // The run's length in steps, from the trainer's log; 0 until it has logged a step, kept
  // once known.
  int64_t total_steps(const std::string& id);
  // Seconds left after `step` of `total` steps took `elapsed` seconds (null when unknown).
  static nlohmann::json eta_seconds(int64_t step, int64_t total, double elapsed);

 private:
  struct Job;
  void reap();
  std::shared_ptr<Job> find(const std::string& id);

  std::string binary_, logs_;
  int max_running_, threads_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;
  int next_ = 1;
  bool stop_ = false;
  std::thread reaper_;
};

}  // namespace imagine::serve
