// Reading a model directory's metrics.jsonl in tests: one JSON object per line.
#pragma once
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace imagine::testing {

inline std::vector<nlohmann::json> read_metrics_lines(const std::string& model_dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(model_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

}  // namespace imagine::testing
