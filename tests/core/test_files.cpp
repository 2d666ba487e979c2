// Tests for core/files: SHA-256 against the FIPS 180-4 example vectors, atomic writes, and
// the errors read_file gives for bad paths.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/files.h"

#include "../support/temp_dir.h"

namespace fs = std::filesystem;

namespace {

// Each test gets its own directory so parallel runs (ctest -j) cannot collide.
class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = imagine::testing::make_temp_dir("imagine_files_");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    return names;
  }

  std::string dir_;
};

std::string repeat(char c, size_t n) { return std::string(n, c); }

}  // namespace

TEST(Sha256, FipsExampleVectors) {
  EXPECT_EQ(imagine::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(imagine::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(imagine::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(imagine::sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                                "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256, MillionAsInOddChunks) {
  // Chunk sizes that never line up with the 64-byte block exercise the buffering paths.
  imagine::Sha256 h;
  const std::string chunk = repeat('a', 997);
  size_t left = 1000000;
  size_t step = 1;
  while (left > 0) {
    size_t n = std::min({step, left, chunk.size()});
    h.update(chunk.data(), n);
    left -= n;
    step = step * 3 + 1;
    if (step > chunk.size()) step = 7;
  }
  EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PaddingBoundaries) {
  // Lengths around 55/56 and 64 bytes change how many padding blocks are needed.
  // Expected values from coreutils sha256sum.
  const std::vector<std::pair<size_t, std::string>> cases = {
      {55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072"},
      {56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e"},
      {63, "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2"},
      {64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c"},
      {65, "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9"},
      {119, "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c"},
      {120, "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98"},
      {128, "24da1b81d0b16df6428eee73c69fcb2a93c76bc6df706f0c6670fe6bfe800464"},
  };
  for (const auto& [n, want] : cases) EXPECT_EQ(imagine::sha256_hex(repeat('x', n)), want) << "length " << n;

  std::string all_bytes;
  for (int i = 0; i < 256; i++) all_bytes.push_back(static_cast<char>(i));
  EXPECT_EQ(imagine::sha256_hex(all_bytes),
            "40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880");
}

TEST(Sha256, IncrementalMatchesOneShotForEverySplit) {
  std::string msg;
  for (int i = 0; i < 200; i++) msg.push_back(static_cast<char>(i * 37 + 11));
  for (size_t len = 0; len <= msg.size(); len += 13) {
    const std::string whole = imagine::sha256_hex(msg.data(), len);
    for (size_t split = 0; split <= len; split++) {
      imagine::Sha256 h;
      h.update(msg.data(), split);
      h.update(msg.data() + split, len - split);
      ASSERT_EQ(h.hex_digest(), whole) << "len " << len << " split " << split;
    }
  }
}

TEST_F(FilesTest, Sha256FileMatchesInMemoryHash) {
  std::string content;
  for (int i = 0; i < 3000000; i++) content.push_back(static_cast<char>(i % 251));  // spans read chunks
  const std::string path = dir_ + "/blob.bin";
  imagine::write_file_atomic(path, content);
  EXPECT_EQ(imagine::sha256_file(path), imagine::sha256_hex(content));
  EXPECT_THROW(imagine::sha256_file(dir_ + "/missing"), imagine::Error);
}

TEST_F(FilesTest, AtomicWriteCreatesAndReplaces) {
  const std::string path = dir_ + "/out.txt";
  imagine::write_file_atomic(path, "first version, fairly long");
  EXPECT_EQ(imagine::read_file(path), "first version, fairly long");
  imagine::write_file_atomic(path, "second");  // shorter: no stale tail may survive
  EXPECT_EQ(imagine::read_file(path), "second");
  imagine::write_file_atomic(path, "");
  EXPECT_EQ(imagine::read_file(path), "");
  EXPECT_EQ(entries(), std::vector<std::string>{"out.txt"});  // no temp files left behind
}

TEST_F(FilesTest, AtomicWriteKeepsBinaryBytesExactly) {
  std::string bytes;
  for (int i = 0; i < 1000; i++) bytes.push_back(static_cast<char>(i & 0xff));  // includes NULs
  const std::string path = dir_ + "/bin";
  imagine::write_file_atomic(path, bytes);
  EXPECT_EQ(imagine::read_file(path), bytes);
}

TEST_F(FilesTest, AtomicWritePreservesPermissions) {
  const std::string path = dir_ + "/mode";
  imagine::write_file_atomic(path, "a");
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  imagine::write_file_atomic(path, "b");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(FilesTest, AtomicWriteFailureRemovesTempAndKeepsOld) {
  // rename() of a file over a non-empty directory fails after the temp file was written,
  // which exercises the cleanup path.
  const std::string target = dir_ + "/target";
  fs::create_directory(target);
  imagine::write_file_atomic(target + "/keep", "old");
  try {
    imagine::write_file_atomic(target, "new");
    FAIL() << "expected imagine::Error";
  } catch (const imagine::Error& e) {
    EXPECT_NE(std::string(e.what()).find(target), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_EQ(entries(), std::vector<std::string>{"target"});
  EXPECT_EQ(imagine::read_file(target + "/keep"), "old");
}

TEST_F(FilesTest, AtomicWriteIntoMissingDirectoryThrows) {
  try {
    imagine::write_file_atomic(dir_ + "/no/such/dir/file", "x");
    FAIL() << "expected imagine::Error";
  } catch (const imagine::Error& e) {
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_TRUE(entries().empty());
}

TEST_F(FilesTest, AtomicWriteWithRelativePath) {
  // A bare file name has no '/': the directory to fsync is the current one.
  const fs::path old_cwd = fs::current_path();
  fs::current_path(dir_);
  imagine::write_file_atomic("relative.txt", "rel");
  fs::current_path(old_cwd);
  EXPECT_EQ(imagine::read_file(dir_ + "/relative.txt"), "rel");
}

TEST_F(FilesTest, ReadMissingFileThrowsWithHint) {
  const std::string path = dir_ + "/does_not_exist.bin";
  try {
    imagine::read_file(path);
    FAIL() << "expected imagine::Error";
  } catch (const imagine::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cannot open " + path), std::string::npos) << msg;
    EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
    EXPECT_EQ(e.hint(), "check the path");
  }
}

TEST_F(FilesTest, ReadDirectoryThrows) {
  try {
    imagine::read_file(dir_);
    FAIL() << "expected imagine::Error";
  } catch (const imagine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("directory"), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
}
