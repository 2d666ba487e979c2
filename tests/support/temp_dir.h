// A fresh directory per test (mkdtemp under gtest's TempDir), so tests that run side by
// side under ctest -j never collide.
#pragma once
#include <stdlib.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace imagine::testing {

// Returns the new directory's path, or "" when it could not be created.
inline std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = ::testing::TempDir() + prefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  return ::mkdtemp(buf.data()) ? std::string(buf.data()) : std::string();
}

}  // namespace imagine::testing
