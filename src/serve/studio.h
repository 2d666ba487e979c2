// The web studio (web/studio): static HTML, CSS and ES modules built into the binary by
// cmake/embed_files.cmake and served by `imagine serve` at / and /studio/. The page calls
// only the public API (docs/api.md), so everything it does can be scripted too.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace imagine::serve {

struct StudioFile {
  const char* path;  // relative to web/studio: "index.html", "js/text.js"
  const char* mime;
  const unsigned char* data;
  size_t size;
};

// Every built-in file, sorted by path (generated at build time).
const std::vector<StudioFile>& studio_files();

struct StudioAsset {
  std::string bytes, mime;
};
// The studio's file at `path`: read from `dir` when it is set (`serve --studio-dir`, for
// working on the studio without rebuilding), else the built-in copy. nullopt for a path that
// is not a studio file (unknown type, "..", or missing).
std::optional<StudioAsset> studio_asset(const std::string& dir, const std::string& path);

}  // namespace imagine::serve
