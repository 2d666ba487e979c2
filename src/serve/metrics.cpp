// See metrics.h.
#include "serve/metrics.h"

#include <sstream>

namespace imagine::serve {

const std::vector<double>& Metrics::buckets() {
  static const std::vector<double> b = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
  return b;
}

void Metrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  requests_[{route, status}]++;
  Histogram& h = latency_[route];
  if (h.counts.empty()) h.counts.assign(buckets().size() + 1, 0);
  size_t i = 0;
  while (i < buckets().size() && seconds > buckets()[i]) i++;
  h.counts[i]++;
  h.sum += seconds;
  h.n++;
}

void Metrics::add_tokens(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_ += n;
}
void Metrics::add_images(int64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  images_ += n;
}
void Metrics::add_music_seconds(double s) {
  std::lock_guard<std::mutex> lock(mu_);
  music_seconds_ += s;
}

// Label values escape backslash, quote and newline.
static std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string Metrics::render(const std::vector<std::tuple<std::string, std::string, double>>& gauges) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::ostringstream os;
  os.precision(10);
  os << "# HELP imagine_http_requests_total HTTP requests answered, by route and status.\n"
     << "# TYPE imagine_http_requests_total counter\n";
  for (auto& [k, n] : requests_)
    os << "imagine_http_requests_total{route=\"" << label(k.first) << "\",status=\"" << k.second << "\"} "
       << n << "\n";
  os << "# HELP imagine_http_request_duration_seconds Time from request to the end of the response.\n"
     << "# TYPE imagine_http_request_duration_seconds histogram\n";
  for (auto& [route, h] : latency_) {
    uint64_t cum = 0;
    for (size_t i = 0; i < buckets().size(); i++) {
      cum += h.counts[i];
      os << "imagine_http_request_duration_seconds_bucket{route=\"" << label(route) << "\",le=\""
         << buckets()[i] << "\"} " << cum << "\n";
    }
    cum += h.counts.back();
    os << "imagine_http_request_duration_seconds_bucket{route=\"" << label(route) << "\",le=\"+Inf\"} " << cum
       << "\n";
    os << "imagine_http_request_duration_seconds_sum{route=\"" << label(route) << "\"} " << h.sum << "\n";
    os << "imagine_http_request_duration_seconds_count{route=\"" << label(route) << "\"} " << h.n << "\n";
  }
  os << "# HELP imagine_generated_tokens_total Text tokens sampled.\n# TYPE imagine_generated_tokens_total "
        "counter\n"
     << "imagine_generated_tokens_total " << tokens_ << "\n";
  os << "# HELP imagine_generated_images_total Images generated.\n# TYPE imagine_generated_images_total "
        "counter\n"
     << "imagine_generated_images_total " << images_ << "\n";
  os << "# HELP imagine_generated_music_seconds_total Seconds of music generated.\n"
     << "# TYPE imagine_generated_music_seconds_total counter\n"
     << "imagine_generated_music_seconds_total " << music_seconds_ << "\n";
  for (auto& [name, help, value] : gauges)
    os << "# HELP " << name << " " << help << "\n# TYPE " << name << " gauge\n"
       << name << " " << value << "\n";
  return os.str();
}

}  // namespace imagine::serve
