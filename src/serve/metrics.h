// The server's counters in Prometheus' text exposition format (GET /metrics): requests by
// route and status, a latency histogram per route, what was generated, and gauges the
// caller supplies when scraped (queue depth, active requests).
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace imagine::serve {

class Metrics {
 public:
  void request(const std::string& route, int status, double seconds);
  void add_tokens(int64_t n);
  void add_images(int64_t n);
  void add_music_seconds(double s);
  // The exposition text; `gauges` are (name, help, value) read at scrape time.
  std::string render(const std::vector<std::tuple<std::string, std::string, double>>& gauges) const;

  static const std::vector<double>& buckets();

 private:
  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket (not cumulative), + the +Inf bucket
    double sum = 0;
    uint64_t n = 0;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  int64_t tokens_ = 0, images_ = 0;
  double music_seconds_ = 0;
};

}  // namespace imagine::serve
