// Files a dataset loader passed over, with the reason, so every run can say how much of
// the user's data it used and why the rest was left out.
#pragma once
#include <string>
#include <vector>

namespace imagine {

struct SkippedFile {
  std::string path;
  std::string reason;  // e.g. "binary (NUL bytes)", "corrupt PNG: ...", "duplicate of a/b.png (symlink)"
};

// "3 corrupt JPEG, 1 empty": counts per reason, reasons that name a file collapsed.
std::string summarize_skips(const std::vector<SkippedFile>& skipped);

}  // namespace imagine
