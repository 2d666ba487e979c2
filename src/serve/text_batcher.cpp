// See text_batcher.h.
#include "serve/text_batcher.h"

#include "core/error.h"
#include "core/runtime.h"

namespace imagine::serve {

void TextMailbox::push(TextEvent e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

bool TextMailbox::pop(TextEvent* e, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return false;
  *e = std::move(events_.front());
  events_.pop_front();
  return true;
}

struct TextBatcher::Job {
  TextRequest req;
  int index = 0;
  bool stream = false;
  std::shared_ptr<TextMailbox> box;
  Clock::time_point deadline;
  std::unique_ptr<TextStream> text;
  std::unique_ptr<DecodeSlot> slot;
};

TextBatcher::TextBatcher(TextModel& model, int slots, int queue_limit, int threads, bool bf16_weights)
    : model_(model),
      slots_(std::max(1, slots)),
      queue_limit_(std::max(0, queue_limit)),
      threads_(threads),
      bf16_weights_(bf16_weights) {
  thread_ = std::thread([this] { run(); });
}

TextBatcher::~TextBatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

int TextBatcher::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

bool TextBatcher::submit(std::vector<TextRequest> reqs, bool stream, std::shared_ptr<TextMailbox> box,
                         Clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t in = queue_.size() + static_cast<size_t>(active_count_.load());
    if (in + reqs.size() > static_cast<size_t>(slots_ + queue_limit_)) return false;
    for (size_t i = 0; i < reqs.size(); i++) {
      auto j = std::make_unique<Job>();
      j->req = std::move(reqs[i]);
      j->index = static_cast<int>(i);
      j->stream = stream;
      j->box = box;
      j->deadline = deadline;
      queue_.push_back(std::move(j));
    }
  }
  cv_.notify_all();
  return true;
}

void TextBatcher::finish(Job& j, const std::string& reason) {
  TextEvent e;
  e.index = j.index;
  e.done = true;
  e.result = j.text->finish(*j.slot, reason);
  tokens_ += e.result.tokens;
  j.box->push(std::move(e));
}

void TextBatcher::run() {
  set_threads(threads_);
  BatchDecoder decoder(model_.gpt, model_.device, slots_, bf16_weights_ ? torch::kBFloat16 : torch::kFloat);
  std::vector<std::unique_ptr<Job>> active;
  for (;;) {
    std::vector<std::unique_ptr<Job>> admitted;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty() || !active.empty(); });
      if (stop_) break;
      while (!queue_.empty() && static_cast<int>(active.size() + admitted.size()) < slots_) {
        admitted.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      active_count_ = static_cast<int>(active.size() + admitted.size());
    }
    for (auto& j : admitted) {
      try {
        Job* raw = j.get();
        std::function<void(const std::string&)> on_text;
        if (j->stream)
          on_text = [raw](const std::string& piece) {
            raw->box->push({raw->index, piece, false, {}, "", ""});
          };
        j->text = std::make_unique<TextStream>(model_, j->req, on_text);
        j->slot = std::make_unique<DecodeSlot>(j->text->slot());
        decoder.add(*j->slot);
        active.push_back(std::move(j));
      } catch (const Error& e) {
        j->box->push({j->index, "", true, {}, e.what(), e.hint()});
      } catch (const std::exception& e) {
        j->box->push({j->index, "", true, {}, e.what(), ""});
      }
    }
    // End what is done, cancelled or late; decode one round for the rest.
    const auto now = Clock::now();
    for (auto it = active.begin(); it != active.end();) {
      Job& j = **it;
      const char* reason = j.slot->done       ? ""
                           : j.box->cancelled ? "cancelled"
                           : now > j.deadline ? "timeout"
                                              : nullptr;
      if (reason) {
        decoder.remove(*j.slot);
        finish(j, reason);
        it = active.erase(it);
      } else {
        ++it;
      }
    }
    active_count_ = static_cast<int>(active.size());
    if (decoder.live() == 0) continue;
    if (static_cast<int>(decoder.live()) > max_batch_) max_batch_ = static_cast<int>(decoder.live());
    try {
      decoder.round();
      rounds_++;
    } catch (const std::exception& e) {
      const Error* err = dynamic_cast<const Error*>(&e);
      for (auto& j : active) j->box->push({j->index, "", true, {}, e.what(), err ? err->hint() : ""});
      active.clear();
      decoder.clear();
      active_count_ = 0;
    }
  }
  for (auto& j : active) j->box->push({j->index, "", true, {}, "the server is shutting down", "retry later"});
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& j : queue_) j->box->push({j->index, "", true, {}, "the server is shutting down", "retry later"});
}

}  // namespace imagine::serve
