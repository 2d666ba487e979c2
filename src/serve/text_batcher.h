// Decodes the concurrent text requests of one model together (llama.cpp's "slots"): one
// thread owns the model and a BatchDecoder; each round it admits waiting requests up to
// the slot count, samples one token for every active request and computes all their next
// logits in one batched forward over the preallocated cache. A request alone decodes
// exactly as the CLI does.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "generate/text_generate.h"

namespace imagine::serve {

using Clock = std::chrono::steady_clock;

// What one request's text jobs report, in order, to the HTTP thread that waits on them.
struct TextEvent {
  int index = 0;     // which of the request's jobs (OpenAI's n)
  std::string text;  // a streamed piece (when !done)
  bool done = false;
  TextResult result;  // when done and error is empty
  std::string error, hint;
};

// A thread-safe queue of events for one request; `cancelled` stops its jobs (client gone).
class TextMailbox {
 public:
  void push(TextEvent e);
  // Waits up to `timeout` for the next event; false when none came.
  bool pop(TextEvent* e, std::chrono::milliseconds timeout);
  std::atomic<bool> cancelled{false};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TextEvent> events_;
};

class TextBatcher {
 public:
  // `slots`: sequences decoded together; `queue_limit`: requests waiting beyond them.
  // `threads`: torch threads of the decoding thread.
  TextBatcher(TextModel& model, int slots, int queue_limit, int threads, bool bf16_weights = false);
  ~TextBatcher();
  TextBatcher(const TextBatcher&) = delete;
  TextBatcher& operator=(const TextBatcher&) = delete;

  // Queues the jobs of one request (all or none): false when there is no room (503).
  // Streamed pieces go to `box` when `stream`; every job ends with a done event. A job past
  // `deadline` ends with stop reason "timeout"; a cancelled box ends them as "cancelled".
  bool submit(std::vector<TextRequest> reqs, bool stream, std::shared_ptr<TextMailbox> box,
              Clock::time_point deadline);

  int active() const { return active_count_.load(); }
  int waiting() const;
  int64_t tokens_generated() const { return tokens_.load(); }
  int64_t batched_rounds() const { return rounds_.load(); }
  int max_batch_seen() const { return max_batch_.load(); }

 private:
  struct Job;
  void run();
  void finish(Job& j, const std::string& reason);

  TextModel& model_;
  const int slots_, queue_limit_, threads_;
  const bool bf16_weights_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stop_ = false;
  std::atomic<int> active_count_{0}, max_batch_{0};
  std::atomic<int64_t> tokens_{0}, rounds_{0};
  std::thread thread_;
};

}  // namespace imagine::serve
