// Models shared by the tests of one suite: ctest runs every test in a process of its own, so
// models that take a minute to train are made once, under a lock, in the build folder, keyed
// by the binary that trained them (a rebuilt binary trains afresh).
#pragma once
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

namespace imagine::testing {

// build/test-cache/<name>-<binary's mtime>-<size>-v<version>, made by make(dir) the first
// time (older binaries' folders of that name are removed). "" when make fails.
inline std::string shared_models(const std::string& name, int version,
                                 const std::function<bool(const std::string&)>& make) {
  namespace fs = std::filesystem;
  struct stat st {};
  if (::stat(IMAGINE_BINARY, &st) != 0) return "";
  const std::string root = fs::path(IMAGINE_BINARY).parent_path().string() + "/test-cache";
  fs::create_directories(root);
  const std::string key =
      std::to_string(st.st_mtime) + "-" + std::to_string(st.st_size) + "-v" + std::to_string(version);
  const std::string dir = root + "/" + name + "-" + key;
  const int lock = ::open((root + "/" + name + ".lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (lock < 0 || ::flock(lock, LOCK_EX) != 0) return "";
  bool ready = fs::exists(dir + "/done");
  if (!ready) {
    for (auto& e : fs::directory_iterator(root))
      if (e.path().filename().string().rfind(name + "-", 0) == 0) fs::remove_all(e.path());
    fs::create_directories(dir);
    ready = make(dir);
    if (ready) std::ofstream(dir + "/done") << "";
  }
  ::flock(lock, LOCK_UN);
  ::close(lock);
  return ready ? dir : "";
}

}  // namespace imagine::testing
