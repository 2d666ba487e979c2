// A bounded pool for image and music requests: `workers` threads, at most `queue` requests
// waiting; run() answers false at once when the queue is full (the caller sends 503).
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace imagine::serve {

class WorkerPool {
 public:
  WorkerPool(int workers, int queue, int threads);  // threads: torch threads per worker (0 = cores / workers)
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs `fn` on a worker and waits for it; rethrows what it throws. False (fn not run) when
  // the queue is full, or when `deadline` passes before a worker takes it.
  bool run(const std::function<void()>& fn, std::chrono::steady_clock::time_point deadline);

  int busy() const;
  int waiting() const;

 private:
  struct Task;
  void work(int threads);
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Task>> tasks_;
  int busy_ = 0;
  const int queue_limit_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace imagine::serve
