// Tests for data/text_corpus: what is kept and skipped (binary, empty, links, hidden), fortune
// normalisation, the errors for missing or useless paths, and the real fortunes package.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "data/text_corpus.h"

#include "../support/temp_dir.h"

namespace fs = std::filesystem;
using imagine::load_text_corpus;
using imagine::looks_binary;
using imagine::TextCorpus;

namespace {

class TextCorpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = imagine::testing::make_temp_dir("imagine_corpus_");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string put(const std::string& rel, const std::string& bytes) {
    fs::path p = fs::path(dir_) / rel;
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p.string();
  }
  std::string at(const std::string& rel) const { return (fs::path(dir_) / rel).string(); }

  std::string dir_;
};

const imagine::SkippedFile* find_skip(const TextCorpus& c, const std::string& path) {
  for (const auto& s : c.skipped) {
    if (s.path == path) return &s;
  }
  return nullptr;
}

const imagine::CorpusFile* find_file(const TextCorpus& c, const std::string& path) {
  for (const auto& f : c.files) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

TEST(LooksBinary, TextIsNotBinary) {
  EXPECT_FALSE(looks_binary(""));
  EXPECT_FALSE(looks_binary("hello world\n"));
  EXPECT_FALSE(looks_binary("tabs\tand\r\nform\ffeeds\n"));
  EXPECT_FALSE(looks_binary("h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x8E\x89 \xE4\xB8\xAD\xE6\x96\x87\n"));
}

TEST(LooksBinary, AnyNulIsBinary) {
  EXPECT_TRUE(looks_binary(std::string("a long text with a single \0 in it", 34)));
  EXPECT_TRUE(looks_binary(std::string(1, '\0')));
}

TEST(LooksBinary, ControlCharactersOverTenPercent) {
  std::string few = std::string(95, 'a') + std::string(5, '\x01');
  std::string many = std::string(80, 'a') + std::string(20, '\x1b');
  EXPECT_FALSE(looks_binary(few));
  EXPECT_TRUE(looks_binary(many));
  EXPECT_TRUE(looks_binary(std::string(50, 'a') + std::string(50, '\x7f')));
}

TEST(LooksBinary, InvalidUtf8OverTenPercent) {
  std::string latin1;
  for (int i = 0; i < 20; i++) latin1 += "caf\xE9 ";  // ISO-8859-1, one stray byte in five
  EXPECT_TRUE(looks_binary(latin1));
  EXPECT_FALSE(looks_binary(std::string(100, 'a') + "\xE9"));
  EXPECT_TRUE(looks_binary(std::string(20, '\xFF')));
  EXPECT_TRUE(looks_binary(std::string(30, '\xC0') + "abc"));  // overlong lead bytes
  EXPECT_TRUE(looks_binary(std::string(6, '\xA0') + "abc"));   // continuation bytes with no lead
  std::string surrogate = "\xED\xA0\x80";                      // U+D800 encoded, which UTF-8 forbids
  EXPECT_TRUE(looks_binary(surrogate + surrogate + "ab"));
}

TEST_F(TextCorpusTest, MissingPathIsAnErrorWithHint) {
  std::string missing = at("nope");
  try {
    load_text_corpus(missing);
    FAIL() << "expected imagine::Error";
  } catch (const imagine::Error& e) {
    EXPECT_EQ(std::string(e.what()), "no such file or directory: " + missing);
    EXPECT_EQ(e.hint(), "pass --data a text file or a folder of text files");
  }
}

TEST_F(TextCorpusTest, SingleFile) {
  std::string p = put("one.txt", "just text\n");
  TextCorpus c = load_text_corpus(p);
  ASSERT_EQ(c.files.size(), 1u);
  EXPECT_EQ(c.files[0].path, p);
  EXPECT_EQ(c.files[0].bytes, 10u);
  EXPECT_EQ(c.files[0].format, "text");
  EXPECT_EQ(c.files[0].documents, 1);
  EXPECT_EQ(c.files[0].sha256, imagine::sha256_hex("just text\n"));
  EXPECT_EQ(c.text, "just text\n");
  EXPECT_EQ(c.documents, 1);
  EXPECT_TRUE(c.skipped.empty());
}

TEST_F(TextCorpusTest, TreeKeepsTextSkipsTheRestInSortedOrder) {
  put("b.txt", "bee");
  put("a.txt", "ay\n");
  put("sub/deeper/c.txt", "sea\n");
  put("sub/d.md", "dee");
  put("bin.dat", std::string("\x01\x02\0\0data", 8));
  put("empty.txt", "");
  put("blank.txt", " \n\n\t\n");
  put(".hidden.txt", "secret\n");
  put(".git/config", "[core]\n");
  fs::create_symlink("a.txt", at("link-to-a.txt"));
  fs::create_symlink("missing.txt", at("dangling.txt"));
  fs::create_directory_symlink("sub", at("subdir-link"));

  TextCorpus c = load_text_corpus(dir_);
  std::vector<std::string> kept;
  for (const auto& f : c.files) kept.push_back(f.path);
  std::vector<std::string> want = {at("a.txt"), at("b.txt"), at("sub/d.md"), at("sub/deeper/c.txt")};
  EXPECT_EQ(kept, want);
  EXPECT_EQ(c.text, "ay\nbee\ndee\nsea\n");
  EXPECT_EQ(c.documents, 4);

  ASSERT_NE(find_skip(c, at("bin.dat")), nullptr);
  EXPECT_EQ(find_skip(c, at("bin.dat"))->reason, "binary (NUL bytes)");
  ASSERT_NE(find_skip(c, at("empty.txt")), nullptr);
  EXPECT_EQ(find_skip(c, at("empty.txt"))->reason, "empty");
  ASSERT_NE(find_skip(c, at("blank.txt")), nullptr);
  EXPECT_TRUE(starts_with(find_skip(c, at("blank.txt"))->reason, "empty"));
  ASSERT_NE(find_skip(c, at("link-to-a.txt")), nullptr);
  EXPECT_EQ(find_skip(c, at("link-to-a.txt"))->reason, "duplicate of " + at("a.txt") + " (symlink)");
  ASSERT_NE(find_skip(c, at("dangling.txt")), nullptr);
  EXPECT_EQ(find_skip(c, at("dangling.txt"))->reason, "broken symlink");
  ASSERT_NE(find_skip(c, at("subdir-link")), nullptr);
  EXPECT_EQ(find_skip(c, at("subdir-link"))->reason, "symlink to a directory (not followed)");
  ASSERT_NE(find_skip(c, at(".hidden.txt")), nullptr);
  ASSERT_NE(find_skip(c, at(".git")), nullptr);
  EXPECT_EQ(find_skip(c, at(".git/config")), nullptr);  // hidden folders are not entered
  EXPECT_EQ(c.skipped.size(), 8u);
}

TEST_F(TextCorpusTest, SymlinkSortingFirstStillKeepsTheRealFile) {
  put("zz-real.txt", "the real one\n");
  fs::create_symlink("zz-real.txt", at("aa-link.txt"));
  TextCorpus c = load_text_corpus(dir_);
  ASSERT_EQ(c.files.size(), 1u);
  EXPECT_EQ(c.files[0].path, at("zz-real.txt"));
  ASSERT_EQ(c.skipped.size(), 1u);
  EXPECT_EQ(c.skipped[0].path, at("aa-link.txt"));
  EXPECT_EQ(c.skipped[0].reason, "duplicate of " + at("zz-real.txt") + " (symlink)");
}

TEST_F(TextCorpusTest, HardLinksAreDuplicates) {
  put("first.txt", "shared bytes\n");
  fs::create_hard_link(at("first.txt"), at("second.txt"));
  TextCorpus c = load_text_corpus(dir_);
  ASSERT_EQ(c.files.size(), 1u);
  EXPECT_EQ(c.files[0].path, at("first.txt"));
  ASSERT_EQ(c.skipped.size(), 1u);
  EXPECT_EQ(c.skipped[0].reason, "duplicate of " + at("first.txt") + " (hard link)");
  EXPECT_EQ(c.text, "shared bytes\n");
}

TEST_F(TextCorpusTest, SameContentInSeparateFilesIsKept) {
  // Only links are duplicates; equal bytes in two real files are the user's choice.
  put("a.txt", "same\n");
  put("b.txt", "same\n");
  TextCorpus c = load_text_corpus(dir_);
  EXPECT_EQ(c.files.size(), 2u);
  EXPECT_EQ(c.text, "same\nsame\n");
}

TEST_F(TextCorpusTest, FortuneFilesAreCountedAndNormalised) {
  put("jokes", "one\n%\ntwo\nlines\n\n%\n\n%\n   \n%\nthree\n\n");
  put("quotes", "%\nalpha\n%\nbeta");
  put("zplain.txt", "100% plain text, no separators\n");
  TextCorpus c = load_text_corpus(dir_);
  ASSERT_EQ(c.files.size(), 3u);
  const auto* jokes = find_file(c, at("jokes"));
  const auto* quotes = find_file(c, at("quotes"));
  const auto* plain = find_file(c, at("zplain.txt"));
  ASSERT_TRUE(jokes && quotes && plain);
  EXPECT_EQ(jokes->format, "fortune");
  EXPECT_EQ(jokes->documents, 3);
  EXPECT_EQ(quotes->format, "fortune");
  EXPECT_EQ(quotes->documents, 2);
  EXPECT_EQ(plain->format, "text");
  EXPECT_EQ(plain->documents, 1);
  EXPECT_EQ(c.documents, 6);
  EXPECT_EQ(c.text,
            "one\n%\ntwo\nlines\n%\nthree\n%\n"
            "alpha\n%\nbeta\n%\n"
            "100% plain text, no separators\n");
}

TEST_F(TextCorpusTest, CrlfFortunes) {
  put("dos", "first\r\n%\r\nsecond\r\n%\r\n");
  TextCorpus c = load_text_corpus(dir_);
  ASSERT_EQ(c.files.size(), 1u);
  EXPECT_EQ(c.files[0].format, "fortune");
  EXPECT_EQ(c.files[0].documents, 2);
}

TEST_F(TextCorpusTest, FortuneWithOnlySeparatorsIsSkipped) {
  put("hollow", "%\n\n%\n%\n");
  put("real.txt", "text\n");
  TextCorpus c = load_text_corpus(dir_);
  ASSERT_EQ(c.files.size(), 1u);
  ASSERT_NE(find_skip(c, at("hollow")), nullptr);
  EXPECT_TRUE(starts_with(find_skip(c, at("hollow"))->reason, "empty"));
}

TEST_F(TextCorpusTest, AllBinaryFolderIsAnError) {
  put("a.bin", std::string("\0\1\2", 3));
  put("b.bin", std::string(64, '\xFF'));
  put("c.bin", std::string("x\0y", 3));
  put("d.txt", "");
  try {
    load_text_corpus(dir_);
    FAIL() << "expected imagine::Error";
  } catch (const imagine::Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("4 files skipped"), std::string::npos) << what;
    EXPECT_NE(what.find("binary (3)"), std::string::npos) << what;
    EXPECT_NE(what.find(dir_), std::string::npos) << what;
    EXPECT_FALSE(e.hint().empty());
  }
}

TEST_F(TextCorpusTest, EmptyFolderIsAnError) { EXPECT_THROW(load_text_corpus(dir_), imagine::Error); }

TEST_F(TextCorpusTest, BinarySingleFileIsAnError) {
  std::string p = put("image.png", std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16));
  EXPECT_THROW(load_text_corpus(p), imagine::Error);
}

TEST_F(TextCorpusTest, UnreadableFileIsSkipped) {
  if (::geteuid() == 0) GTEST_SKIP() << "root can read anything";
  put("ok.txt", "fine\n");
  std::string p = put("locked.txt", "secret\n");
  fs::permissions(p, fs::perms::none);
  TextCorpus c = load_text_corpus(dir_);
  fs::permissions(p, fs::perms::owner_all);
  ASSERT_EQ(c.files.size(), 1u);
  ASSERT_NE(find_skip(c, p), nullptr);
  EXPECT_TRUE(starts_with(find_skip(c, p)->reason, "unreadable")) << find_skip(c, p)->reason;
}

TEST_F(TextCorpusTest, Deterministic) {
  for (int i = 0; i < 30; i++) {
    put("d" + std::to_string(i % 4) + "/f" + std::to_string(i), std::to_string(i) + "\n");
  }
  TextCorpus a = load_text_corpus(dir_);
  TextCorpus b = load_text_corpus(dir_);
  EXPECT_EQ(a.text, b.text);
  ASSERT_EQ(a.files.size(), 30u);
  for (size_t i = 1; i < a.files.size(); i++) EXPECT_LT(a.files[i - 1].path, a.files[i].path);
}

// The Debian fortunes package: text files, strfile .dat indexes (binary) and .u8 symlinks.
TEST(TextCorpusFortunes, RealFortunesDirectory) {
  const std::string dir = "/usr/share/games/fortunes";
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " is absent (apt-get install fortunes)";
  size_t dat = 0;
  size_t u8 = 0;
  size_t text = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string ext = e.path().extension().string();
    if (e.path().filename().string()[0] == '.') continue;
    if (ext == ".dat") {
      dat++;
    } else if (ext == ".u8") {
      u8++;
    } else if (e.is_regular_file()) {
      text++;
    }
  }
  TextCorpus c = load_text_corpus(dir);
  EXPECT_EQ(c.files.size(), text);
  EXPECT_EQ(c.skipped.size(), dat + u8);
  for (const auto& s : c.skipped) {
    fs::path p(s.path);
    if (p.extension() == ".dat") {
      EXPECT_TRUE(starts_with(s.reason, "binary")) << s.path << ": " << s.reason;
    } else if (p.extension() == ".u8") {
      fs::path target = p.parent_path() / p.stem();
      EXPECT_EQ(s.reason, "duplicate of " + target.string() + " (symlink)") << s.path;
    } else {
      ADD_FAILURE() << "unexpected skip " << s.path << ": " << s.reason;
    }
  }
  int64_t entries = 0;
  for (const auto& f : c.files) {
    EXPECT_EQ(f.format, "fortune") << f.path;
    EXPECT_GT(f.documents, 0) << f.path;
    entries += f.documents;
  }
  EXPECT_EQ(c.documents, entries);
  EXPECT_GT(entries, 1000);
  EXPECT_GT(c.text.size(), 100000u);
  EXPECT_FALSE(looks_binary(c.text));
}

}  // namespace
