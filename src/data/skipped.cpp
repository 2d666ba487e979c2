#include "data/skipped.h"

#include <map>

namespace imagine {

std::string summarize_skips(const std::vector<SkippedFile>& skipped) {
  std::map<std::string, int> by_reason;
  for (auto& s : skipped) {
    std::string r = s.reason;
    if (r.rfind("duplicate of", 0) == 0) r = "duplicate (symlink or hard link)";
    // "corrupt PNG: <details>" -> "corrupt PNG": the details differ per file.
    const size_t colon = r.find(':');
    if (colon != std::string::npos) r = r.substr(0, colon);
    by_reason[r]++;
  }
  std::string out;
  for (auto& [r, n] : by_reason) out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + r;
  return out;
}

}  // namespace imagine
