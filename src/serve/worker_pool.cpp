// See worker_pool.h.
#include "serve/worker_pool.h"

#include <algorithm>

#include "core/runtime.h"

namespace imagine::serve {

struct WorkerPool::Task {
  std::function<void()> fn;
  std::exception_ptr error;
  bool taken = false, done = false;
  std::condition_variable cv;
};

WorkerPool::WorkerPool(int workers, int queue, int threads) : queue_limit_(std::max(0, queue)) {
  workers = std::max(1, workers);
  if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / workers);
  for (int i = 0; i < workers; i++) threads_.emplace_back([this, threads] { work(threads); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

int WorkerPool::busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return busy_;
}

int WorkerPool::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(tasks_.size());
}

void WorkerPool::work(int threads) {
  set_threads(threads);
  for (;;) {
    std::shared_ptr<Task> t;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
      if (stop_) return;
      t = tasks_.front();
      tasks_.pop_front();
      t->taken = true;
      busy_++;
    }
    t->cv.notify_all();
    try {
      t->fn();
    } catch (...) {
      t->error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_--;
      t->done = true;
    }
    t->cv.notify_all();
  }
}

bool WorkerPool::run(const std::function<void()>& fn, std::chrono::steady_clock::time_point deadline) {
  auto t = std::make_shared<Task>();
  t->fn = fn;
  std::unique_lock<std::mutex> lock(mu_);
  if (static_cast<int>(tasks_.size()) >=
      queue_limit_ + std::max(0, static_cast<int>(threads_.size()) - busy_))
    return false;
  tasks_.push_back(t);
  cv_.notify_one();
  // Waiting in the queue past the deadline gives up; once a worker has it, it runs to the end.
  if (!t->cv.wait_until(lock, deadline, [&] { return t->taken; })) {
    tasks_.erase(std::find(tasks_.begin(), tasks_.end(), t));
    return false;
  }
  t->cv.wait(lock, [&] { return t->done; });
  if (t->error) std::rethrow_exception(t->error);
  return true;
}

}  // namespace imagine::serve
