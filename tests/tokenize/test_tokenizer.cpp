// Tests for tokenize/tokenizer: exact round trips for any bytes (byte and BPE), BPE compression
// and determinism, save/load through config.json entries, and the errors for bad sizes or files.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "tokenize/tokenizer.h"

#include "../support/temp_dir.h"

namespace fs = std::filesystem;
using imagine::Tokenizer;

namespace {

std::string shakespeare_path() {
  return std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/tinyshakespeare/input.txt";
}

// English text to train on: tinyshakespeare when present, else a repeated fallback paragraph
// (varied by a counter so BPE still finds plenty of merges).
std::string english_text(size_t bytes) {
  if (fs::exists(shakespeare_path())) return imagine::read_file(shakespeare_path()).substr(0, bytes);
  std::string text;
  for (int i = 0; text.size() < bytes; i++) {
    text += "It was the best of times, it was the worst of times, it was the age of wisdom, chapter " +
            std::to_string(i) + ".\nThe quick brown fox jumps over the lazy dog; all the king's men.\n";
  }
  return text.substr(0, bytes);
}

const std::string kUnicode =
    "H\xC3\xA9llo, w\xC3\xB6rld! \xE2\x80\x94 \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C "
    "\xF0\x9F\x98\x80\xF0\x9F\x8E\x89\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB\n"
    "\ttabs\tand  double  spaces   and\r\nCRLF\n\n\nblank lines,    trailing   \n"
    " leading space, \xE2\x96\x81 a literal U+2581 and \xEF\xBF\xBD a literal U+FFFD, <0x41> <unk> <s></s>\n"
    "NFKC would change these: e\xCC\x81 (combining accent), \xEF\xBC\xA1 (fullwidth A), \xEF\xAC\x81 (fi)\n";

// Random byte strings drawn from several shapes, so invalid UTF-8, NULs, long runs and
// ordinary text all appear often.
std::string random_string(std::mt19937& rng, const std::string& sample) {
  std::uniform_int_distribution<int> shape(0, 6);
  std::uniform_int_distribution<int> len(0, 200);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s;
  int n = len(rng);
  switch (shape(rng)) {
    case 0:  // arbitrary bytes
      for (int i = 0; i < n; i++) s += static_cast<char>(byte(rng));
      break;
    case 1: {  // a slice of real text
      size_t start = std::uniform_int_distribution<size_t>(0, sample.size() - 1)(rng);
      s = sample.substr(start, n);  // may cut a multi-byte character in half
      break;
    }
    case 2: {  // text with bytes spliced in
      size_t start = std::uniform_int_distribution<size_t>(0, sample.size() - 1)(rng);
      s = sample.substr(start, n);
      for (int k = 0; k < 5 && !s.empty(); k++) {
        s[std::uniform_int_distribution<size_t>(0, s.size() - 1)(rng)] = static_cast<char>(byte(rng));
      }
      break;
    }
    case 3: {  // long runs
      const char* runs[] = {" ", "a", "\n", "\0", "\xE2\x96\x81", "\xFF", "ab", "\xF0\x9F\x98\x80", "\t "};
      std::string unit = runs[std::uniform_int_distribution<int>(0, 8)(rng)];
      if (unit.empty()) unit = std::string(1, '\0');
      int count = std::uniform_int_distribution<int>(1, 3000)(rng);
      for (int i = 0; i < count; i++) s += unit;
      break;
    }
    case 4: {  // unicode pieces mixed with specials
      const char* parts[] = {kUnicode.c_str(), "\xC3", "\xA9", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                             "\xC0\xAF",       " ",    "the ", "\r\n",         "<0xFF>"};
      for (int i = 0; i < n / 10; i++) s += parts[std::uniform_int_distribution<int>(0, 9)(rng)];
      s += std::string(3, '\0');
      break;
    }
    case 5:  // ASCII with control characters
      for (int i = 0; i < n; i++) s += static_cast<char>(byte(rng) % 128);
      break;
    default:  // empty or a single byte
      if (n % 2) s += static_cast<char>(byte(rng));
      break;
  }
  return s;
}

void expect_round_trips(const Tokenizer& tok, const std::string& sample, int count, unsigned seed) {
  std::mt19937 rng(seed);
  for (int i = 0; i < count; i++) {
    std::string s = random_string(rng, sample);
    std::vector<int64_t> ids = tok.encode(s);
    for (int64_t id : ids) {
      ASSERT_GE(id, 0);
      ASSERT_LT(id, tok.vocab_size());
      // Never <unk> or a control piece: every emitted token stands for some bytes.
      ASSERT_FALSE(tok.token_bytes(id).empty()) << "id " << id;
    }
    ASSERT_EQ(tok.decode(ids), s) << "case " << i;
  }
}

class TempDir {
 public:
  TempDir() {
    path_ = imagine::testing::make_temp_dir("imagine_tok_");
    if (path_.empty()) throw std::runtime_error("mkdtemp failed");
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One BPE tokenizer trained on 200 KB of English, shared by the tests that only use it.
class BpeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    text_ = new std::string(english_text(200 * 1024));
    tok_ = imagine::train_bpe_tokenizer(*text_, 512).release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete text_;
  }
  static const std::string* text_;
  static const Tokenizer* tok_;
};
const std::string* BpeTest::text_ = nullptr;
const Tokenizer* BpeTest::tok_ = nullptr;

template <typename F>
std::string error_hint(F f) {
  try {
    f();
  } catch (const imagine::Error& e) {
    return e.hint().empty() ? "<empty hint>" : e.hint();
  }
  return "<no error>";
}

TEST(ByteTokenizer, Basics) {
  auto tok = imagine::make_byte_tokenizer();
  EXPECT_EQ(tok->kind(), "byte");
  EXPECT_EQ(tok->vocab_size(), 256);
  std::string all;
  for (int b = 0; b < 256; b++) all += static_cast<char>(b);
  std::vector<int64_t> ids = tok->encode(all);
  ASSERT_EQ(ids.size(), 256u);
  for (int b = 0; b < 256; b++) EXPECT_EQ(ids[b], b);
  EXPECT_EQ(tok->decode(ids), all);
  EXPECT_EQ(tok->token_bytes(0), std::string(1, '\0'));
  EXPECT_THROW(tok->token_bytes(256), imagine::Error);
  EXPECT_THROW(tok->token_bytes(-1), imagine::Error);
}

TEST(ByteTokenizer, RandomRoundTrips) {
  auto tok = imagine::make_byte_tokenizer();
  expect_round_trips(*tok, kUnicode + english_text(4096), 3000, 1);
}

TEST(ByteTokenizer, SaveWritesNoFilesAndLoads) {
  TempDir dir;
  auto tok = imagine::make_byte_tokenizer();
  nlohmann::json entry = tok->save(dir.path());
  EXPECT_EQ(entry, nlohmann::json({{"kind", "byte"}, {"vocab_size", 256}}));
  EXPECT_TRUE(fs::is_empty(dir.path()));
  auto loaded = imagine::load_tokenizer(entry, dir.path());
  EXPECT_EQ(loaded->kind(), "byte");
  EXPECT_EQ(loaded->encode("hi"), (std::vector<int64_t>{'h', 'i'}));
}

TEST_F(BpeTest, Basics) {
  EXPECT_EQ(tok_->kind(), "bpe");
  EXPECT_EQ(tok_->vocab_size(), 512);
  EXPECT_TRUE(tok_->encode("").empty());
  EXPECT_EQ(tok_->decode({}), "");
}

TEST_F(BpeTest, RandomRoundTrips) { expect_round_trips(*tok_, kUnicode + text_->substr(0, 20000), 4000, 2); }

TEST_F(BpeTest, UnicodeAndWhitespaceRoundTrip) {
  for (const std::string& s : {kUnicode, std::string("  "), std::string(" x"), std::string("x "),
                               std::string("\n"), std::string("a\0b", 3), std::string("\xE2\x96\x81"),
                               std::string("\xE2\x96"), std::string(10000, ' '), kUnicode + kUnicode}) {
    std::vector<int64_t> ids = tok_->encode(s);
    EXPECT_EQ(tok_->decode(ids), s);
    std::string streamed;
    for (int64_t id : ids) streamed += tok_->token_bytes(id);
    EXPECT_EQ(streamed, s);
  }
}

TEST_F(BpeTest, EveryByteRoundTrips) {
  for (int b = 0; b < 256; b++) {
    std::string s(1, static_cast<char>(b));
    std::vector<int64_t> ids = tok_->encode(s);
    ASSERT_EQ(ids.size(), 1u) << b;
    EXPECT_EQ(tok_->token_bytes(ids[0]), s) << b;
  }
}

TEST_F(BpeTest, WholeCorpusRoundTrips) { EXPECT_EQ(tok_->decode(tok_->encode(*text_)), *text_); }

TEST_F(BpeTest, CompressesEnglish) {
  if (!fs::exists(shakespeare_path())) GTEST_SKIP() << shakespeare_path() << " is absent";
  // Held-out text: the 50 KB after the training slice.
  std::string held_out = imagine::read_file(shakespeare_path()).substr(200 * 1024, 50 * 1024);
  size_t tokens = tok_->encode(held_out).size();
  double ratio = static_cast<double>(tokens) / held_out.size();
  std::cout << "bpe-512 tokens/bytes on held-out tinyshakespeare: " << ratio << "\n";
  EXPECT_LT(ratio, 0.6);
  EXPECT_LT(tok_->encode(*text_).size(), text_->size() * 6 / 10);
}

TEST_F(BpeTest, TokenIdsOutOfRangeThrow) {
  EXPECT_THROW(tok_->token_bytes(512), imagine::Error);
  EXPECT_THROW(tok_->token_bytes(-1), imagine::Error);
}

TEST_F(BpeTest, SaveLoadRoundTrip) {
  TempDir dir;
  nlohmann::json entry = tok_->save(dir.path());
  EXPECT_EQ(entry["kind"], "bpe");
  EXPECT_EQ(entry["vocab_size"], 512);
  EXPECT_EQ(entry["file"], "tokenizer.model");
  std::string bytes = imagine::read_file(dir.path() + "/tokenizer.model");
  EXPECT_EQ(entry["sha256"], imagine::sha256_hex(bytes));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"tokenizer.model"});  // no temp files left behind

  auto loaded = imagine::load_tokenizer(entry, dir.path());
  EXPECT_EQ(loaded->kind(), "bpe");
  EXPECT_EQ(loaded->vocab_size(), 512);
  std::string sample = text_->substr(0, 5000) + kUnicode;
  EXPECT_EQ(loaded->encode(sample), tok_->encode(sample));
  for (int id = 0; id < 512; id++) EXPECT_EQ(loaded->token_bytes(id), tok_->token_bytes(id));
  // Saving the loaded copy gives the same file.
  TempDir again;
  EXPECT_EQ(loaded->save(again.path()), entry);
}

TEST_F(BpeTest, CorruptOrMissingFilesAreErrors) {
  TempDir dir;
  nlohmann::json entry = tok_->save(dir.path());
  std::string path = dir.path() + "/tokenizer.model";
  std::string good = imagine::read_file(path);

  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x20;
  imagine::write_file_atomic(path, flipped);
  try {
    imagine::load_tokenizer(entry, dir.path());
    FAIL() << "expected imagine::Error";
  } catch (const imagine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }

  // Without a checksum, SentencePiece itself must reject garbage and truncation.
  nlohmann::json unchecked = entry;
  unchecked.erase("sha256");
  for (const std::string& bad : {std::string("this is not a protobuf at all"),
                                 good.substr(0, good.size() / 3), std::string(), std::string(1000, '\xFF')}) {
    imagine::write_file_atomic(path, bad);
    EXPECT_THROW(imagine::load_tokenizer(unchecked, dir.path()), imagine::Error) << bad.size();
  }

  fs::remove(path);
  try {
    imagine::load_tokenizer(entry, dir.path());
    FAIL() << "expected imagine::Error";
  } catch (const imagine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tokenizer file"), std::string::npos) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }

  imagine::write_file_atomic(path, good);
  nlohmann::json wrong_size = entry;
  wrong_size["vocab_size"] = 1000;
  EXPECT_THROW(imagine::load_tokenizer(wrong_size, dir.path()), imagine::Error);
  nlohmann::json escape = unchecked;
  escape["file"] = "../tokenizer.model";
  EXPECT_THROW(imagine::load_tokenizer(escape, dir.path()), imagine::Error);
  EXPECT_NO_THROW(imagine::load_tokenizer(entry, dir.path()));
}

TEST(LoadTokenizer, BadEntries) {
  TempDir dir;
  EXPECT_THROW(imagine::load_tokenizer(nlohmann::json::object(), dir.path()), imagine::Error);
  EXPECT_THROW(imagine::load_tokenizer({{"kind", "wordpiece"}}, dir.path()), imagine::Error);
  EXPECT_THROW(imagine::load_tokenizer({{"kind", "byte"}, {"vocab_size", 300}}, dir.path()), imagine::Error);
  EXPECT_THROW(imagine::load_tokenizer({{"kind", "bpe"}, {"vocab_size", 512}}, dir.path()), imagine::Error);
}

TEST(BpeTraining, Deterministic) {
  std::string text = english_text(60 * 1024) + kUnicode;
  auto a = imagine::train_bpe_tokenizer(text, 400);
  auto b = imagine::train_bpe_tokenizer(text, 400);
  std::string sample = text.substr(1000, 8000);
  EXPECT_EQ(a->encode(sample), b->encode(sample));
  TempDir da;
  TempDir db;
  EXPECT_EQ(a->save(da.path())["sha256"], b->save(db.path())["sha256"]);
}

TEST(BpeTraining, VocabSizeErrors) {
  std::string text = english_text(30 * 1024);
  EXPECT_NE(error_hint([&] { imagine::train_bpe_tokenizer(text, 100); }).find("larger --vocab-size"),
            std::string::npos);
  EXPECT_NE(error_hint([&] { imagine::train_bpe_tokenizer(text, 260); }).find("larger --vocab-size"),
            std::string::npos);
  EXPECT_NE(error_hint([&] { imagine::train_bpe_tokenizer(text, 50000000); }).find("smaller --vocab-size"),
            std::string::npos);
  // Too big for this corpus: a few words cannot make thousands of pieces.
  auto tiny_corpus = [] { imagine::train_bpe_tokenizer("the cat sat on the mat\n", 4000); };
  EXPECT_NE(error_hint(tiny_corpus).find("smaller --vocab-size"), std::string::npos);
  EXPECT_NE(error_hint([&] { imagine::train_bpe_tokenizer("", 512); }).find("--data"), std::string::npos);
  EXPECT_NE(error_hint([&] { imagine::train_bpe_tokenizer(std::string("\n\n\xFF\0", 4), 512); }),
            "<no error>");
}

TEST(BpeTraining, ManyDistinctCharactersFallBackToBytes) {
  // 2000 distinct CJK characters cannot each get a piece in a vocab of 600; the rare ones must
  // be left to byte fallback instead of failing, and still round-trip.
  std::string cjk;
  std::mt19937 rng(5);
  std::geometric_distribution<int> pick(0.01);  // a few common characters, a long rare tail
  for (int i = 0; i < 40000; i++) {
    int cp = 0x4E00 + std::min(pick(rng), 1999);
    if (i < 2000) cp = 0x4E00 + i;
    cjk += static_cast<char>(0xE0 | (cp >> 12));
    cjk += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    cjk += static_cast<char>(0x80 | (cp & 0x3F));
    if (i % 7 == 6) cjk += (i % 70 == 69) ? "\n" : " ";
  }
  auto tok = imagine::train_bpe_tokenizer(cjk, 600);
  EXPECT_EQ(tok->vocab_size(), 600);
  std::vector<int64_t> ids = tok->encode(cjk);
  EXPECT_EQ(tok->decode(ids), cjk);
  EXPECT_LT(ids.size(), cjk.size() / 2);
}

TEST(BpeTraining, TrainsOnMessyText) {
  // Invalid UTF-8, NULs, U+2581, very long lines and CRLF must not upset training.
  std::mt19937 rng(7);
  std::string text = english_text(40 * 1024);
  std::string messy;
  for (int i = 0; i < 2000; i++) {
    messy += random_string(rng, text);
    messy += '\n';
  }
  messy += std::string(20000, 'x') + "\n" + std::string(9000, ' ') + "end\r\n";
  auto tok = imagine::train_bpe_tokenizer(text + messy, 600);
  expect_round_trips(*tok, messy, 2000, 3);
  EXPECT_EQ(tok->decode(tok->encode(messy)), messy);
}

TEST(BpeTraining, FullShakespeareTiming) {
  if (!fs::exists(shakespeare_path())) GTEST_SKIP() << shakespeare_path() << " is absent";
  std::string text = imagine::read_file(shakespeare_path());
  auto start = std::chrono::steady_clock::now();
  auto tok = imagine::train_bpe_tokenizer(text, 2048);
  double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  start = std::chrono::steady_clock::now();
  std::vector<int64_t> ids = tok->encode(text);
  double encode_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "bpe-2048 on " << text.size() << " bytes: train " << train_s << " s, encode " << encode_s
            << " s, tokens/bytes " << static_cast<double>(ids.size()) / text.size() << "\n";
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_LT(train_s, 60.0);
}

}  // namespace
