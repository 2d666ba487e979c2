// Text corpora: one UTF-8 file or a folder of text files (recursive). Binary files (e.g.
// the fortunes package's .dat indexes) and duplicate files reached through symlinks are
// skipped and reported with a reason. Fortune files (entries separated by "%" lines)
// are recognised and their entries counted. Leaves out: tokenisation (src/tokenize).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/skipped.h"

namespace imagine {

struct CorpusFile {
  std::string path;     // as found (relative paths kept relative)
  uint64_t bytes = 0;   // size on disk
  std::string sha256;   // of the file's bytes
  std::string format;   // "text" or "fortune"
  int64_t documents = 0;  // 1 for plain text, number of entries for fortune files
  uint64_t text_begin = 0;  // where its text starts in TextCorpus::text
  uint64_t text_bytes = 0;  // and its length there (fortune files: their entries, re-joined)
};

struct TextCorpus {
  std::string text;                    // all kept files, in sorted path order, separated by "\n"
  std::vector<CorpusFile> files;       // kept
  std::vector<SkippedFile> skipped;    // skipped, with reasons
  int64_t documents = 0;               // total documents/entries
};

// Loads `path` (file or directory). Throws imagine::Error with a hint if the path is
// missing, or if nothing usable (non-empty text) was found.
TextCorpus load_text_corpus(const std::string& path);

// True when the bytes look like a binary file rather than text: any NUL byte, or more
// than 10% of the bytes being control characters / invalid UTF-8 sequences.
bool looks_binary(const std::string& bytes);

}  // namespace imagine
