// Tests and CI never touch the user's keys: before any test runs, XDG_CONFIG_HOME points at
// a fresh temporary folder, so the watermark key (and any signing key) that the library
// and the spawned imagine processes create live there and vanish with it.
#include <cstdlib>
#include <filesystem>
#include <string>

namespace {

struct TempConfigHome {
  std::string dir;
  TempConfigHome() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "imagine_test_config_XXXXXX").string();
    if (::mkdtemp(tmpl.data())) {
      dir = tmpl;
      ::setenv("XDG_CONFIG_HOME", dir.c_str(), 1);
    }
  }
  ~TempConfigHome() {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

const TempConfigHome g_config_home;

}  // namespace
