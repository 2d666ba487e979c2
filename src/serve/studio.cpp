// See studio.h.
#include "serve/studio.h"

#include <algorithm>
#include <filesystem>

#include "core/files.h"
#include "serve/routes.h"

namespace fs = std::filesystem;

namespace imagine::serve {

static const char* mime_for(const std::string& path) {
  static const std::pair<const char*, const char*> kTypes[] = {{".html", "text/html; charset=utf-8"},
                                                               {".js", "text/javascript; charset=utf-8"},
                                                               {".css", "text/css; charset=utf-8"},
                                                               {".svg", "image/svg+xml"},
                                                               {".png", "image/png"},
                                                               {".json", "application/json"}};
  const std::string ext = fs::path(path).extension().string();
  for (const auto& [e, mime] : kTypes)
    if (ext == e) return mime;
  return nullptr;
}

std::optional<StudioAsset> studio_asset(const std::string& dir, const std::string& path) {
  const char* mime = mime_for(path);
  if (!mime || path.empty() || path[0] == '/' ||
      path.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./") !=
          std::string::npos)
    return std::nullopt;
  for (const auto& part : fs::path(path))
    if (part == "..") return std::nullopt;
  if (!dir.empty()) {
    const fs::path p = fs::path(dir) / path;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) return std::nullopt;
    return StudioAsset{read_file(p.string()), mime};
  }
  const auto& files = studio_files();
  auto it = std::find_if(files.begin(), files.end(), [&](const StudioFile& f) { return path == f.path; });
  if (it == files.end()) return std::nullopt;
  return StudioAsset{std::string(reinterpret_cast<const char*>(it->data), it->size), it->mime};
}

// The page and its files. They hold no secrets, so they are served without the API key (the
// page asks for it and sends it with its API calls); the CSP keeps the page to this server.
static void send_asset(const Context& ctx, const std::string& path, httplib::Response& res) {
  const auto asset = studio_asset(ctx.cfg.studio_dir, path);
  if (!asset) throw ApiError(404, "no studio file '" + path + "'", "the studio lives at /");
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Content-Security-Policy",
                 "default-src 'self'; img-src 'self' data: blob:; media-src 'self' data: blob:; "
                 "style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; "
                 "frame-ancestors 'none'");
  res.set_content(asset->bytes, asset->mime);
}

std::vector<Route> studio_routes(Context ctx) {
  return {
      {"GET", "/",
       [ctx](const httplib::Request&, httplib::Response& res) { send_asset(ctx, "index.html", res); }},
      {"GET", R"(/studio/(.+))",
       [ctx](const httplib::Request& req, httplib::Response& res) {
         send_asset(ctx, req.matches[1].str(), res);
       }},
  };
}

}  // namespace imagine::serve
