// Text corpora: walks a file or folder, keeps UTF-8 text, skips binary/empty/duplicate files with
// a reason, and normalises fortune files so a model sees one clean "%"-separated stream.
#include "data/text_corpus.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <system_error>
#include <utility>

#include "core/error.h"
#include "core/utf8.h"
#include "core/files.h"

namespace fs = std::filesystem;

namespace imagine {
namespace {

const char* kDataHint = "pass --data a text file or a folder of text files";

// "" for text, otherwise why the bytes look binary (used as the skip reason).
std::string binary_reason(const std::string& bytes) {
  size_t bad = 0;
  size_t i = 0;
  while (i < bytes.size()) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == 0) return "binary (NUL bytes)";
    if (c < 0x80) {
      // Form feeds appear in old text files and fortunes; the rest of C0 and DEL do not.
      bool allowed = c >= 0x20 || c == '\t' || c == '\n' || c == '\r' || c == '\f';
      if (!allowed || c == 0x7F) bad++;
      i++;
      continue;
    }
    size_t n = utf8_length(bytes, i);
    if (n == 0) {
      bad++;
      i++;
    } else {
      i += n;
    }
  }
  if (bad * 10 > bytes.size()) {
    return str("binary (", bad * 100 / bytes.size(), "% control or invalid UTF-8 bytes)");
  }
  return "";
}

bool only_whitespace(const std::string& s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') return false;
  }
  return true;
}

// Splits fortune-format text (entries separated by lines that are exactly "%") into entries.
// Returns false when there is no separator line, i.e. the file is plain text. Entries lose
// trailing blank lines, and blank entries are dropped, so the normalised file is regular.
bool parse_fortunes(const std::string& text, std::vector<std::string>* entries) {
  bool separated = false;
  std::vector<std::string> lines;
  auto finish = [&]() {
    while (!lines.empty() && only_whitespace(lines.back())) lines.pop_back();
    if (!lines.empty()) {
      std::string entry;
      for (size_t k = 0; k < lines.size(); k++) {
        if (k > 0) entry += '\n';
        entry += lines[k];
      }
      entries->push_back(std::move(entry));
    }
    lines.clear();
  };
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line == "%" || line == "%\r") {
      separated = true;
      finish();
    } else {
      lines.push_back(std::move(line));
    }
  }
  finish();
  return separated;
}

struct Skip {
  std::string path;
  std::string category;  // groups reasons for the "nothing usable" message
  std::string reason;
};

// Collects candidate files under dir (not following directory symlinks, so no cycles) and
// records everything that cannot be a text file.
void walk(const fs::path& dir, std::vector<fs::path>* files, std::vector<Skip>* skips) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    skips->push_back({dir.string(), "unreadable", "unreadable directory (" + ec.message() + ")"});
    return;
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    // Hidden entries are mostly tool state (.git, editor swap files), not corpus text.
    if (p.filename().string().rfind('.', 0) == 0) {
      skips->push_back({p.string(), "hidden", "hidden"});
      continue;
    }
    std::error_code sec;
    fs::file_status link = fs::symlink_status(p, sec);
    if (fs::is_symlink(link)) {
      fs::file_status target = fs::status(p, sec);
      if (!fs::exists(target)) {
        skips->push_back({p.string(), "broken symlink", "broken symlink"});
      } else if (fs::is_directory(target)) {
        skips->push_back({p.string(), "symlink to a directory", "symlink to a directory (not followed)"});
      } else if (fs::is_regular_file(target)) {
        files->push_back(p);
      } else {
        skips->push_back({p.string(), "not a regular file", "not a regular file"});
      }
    } else if (fs::is_directory(link)) {
      walk(p, files, skips);
    } else if (fs::is_regular_file(link)) {
      files->push_back(p);
    } else {
      skips->push_back({p.string(), "not a regular file", "not a regular file"});
    }
  }
  if (ec) skips->push_back({dir.string(), "unreadable", "unreadable directory (" + ec.message() + ")"});
}

}  // namespace

bool looks_binary(const std::string& bytes) { return !binary_reason(bytes).empty(); }

TextCorpus load_text_corpus(const std::string& path) {
  std::error_code ec;
  fs::file_status top = fs::status(path, ec);
  if (!fs::exists(top)) throw Error("no such file or directory: " + path, kDataHint);

  std::vector<fs::path> candidates;
  std::vector<Skip> skips;
  if (fs::is_directory(top)) {
    walk(path, &candidates, &skips);
  } else {
    candidates.push_back(path);
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const fs::path& a, const fs::path& b) { return a.string() < b.string(); });

  // Symlinks and hard links share (device, inode) with their target. Per file we keep the
  // first real (non-symlink) path in sorted order, so "art" wins over "art.u8 -> art" even
  // if a link happened to sort first.
  std::vector<std::pair<dev_t, ino_t>> ids(candidates.size());
  std::vector<bool> have_id(candidates.size(), false);
  std::vector<bool> is_link(candidates.size(), false);
  std::map<std::pair<dev_t, ino_t>, size_t> keeper;
  for (size_t i = 0; i < candidates.size(); i++) {
    struct stat st;
    if (::stat(candidates[i].c_str(), &st) != 0) continue;  // read below reports the error
    ids[i] = {st.st_dev, st.st_ino};
    have_id[i] = true;
    is_link[i] = fs::is_symlink(fs::symlink_status(candidates[i], ec));
    auto found = keeper.find(ids[i]);
    if (found == keeper.end()) {
      keeper[ids[i]] = i;
    } else if (is_link[found->second] && !is_link[i]) {
      found->second = i;
    }
  }

  TextCorpus corpus;
  for (size_t i = 0; i < candidates.size(); i++) {
    std::string name = candidates[i].string();
    auto found = have_id[i] ? keeper.find(ids[i]) : keeper.end();
    if (found != keeper.end() && found->second != i) {
      std::string how = is_link[i] ? " (symlink)" : " (hard link)";
      skips.push_back({name, "duplicate", "duplicate of " + candidates[found->second].string() + how});
      continue;
    }
    std::string bytes;
    try {
      bytes = read_file(name);
    } catch (const Error& e) {
      skips.push_back({name, "unreadable", std::string("unreadable (") + e.what() + ")"});
      continue;
    }
    if (bytes.empty()) {
      skips.push_back({name, "empty", "empty"});
      continue;
    }
    std::string binary = binary_reason(bytes);
    if (!binary.empty()) {
      skips.push_back({name, "binary", binary});
      continue;
    }
    if (only_whitespace(bytes)) {
      skips.push_back({name, "empty", "empty (only whitespace)"});
      continue;
    }

    CorpusFile file;
    file.path = name;
    file.bytes = bytes.size();
    file.sha256 = sha256_hex(bytes);
    std::string text;
    std::vector<std::string> entries;
    if (parse_fortunes(bytes, &entries)) {
      if (entries.empty()) {
        skips.push_back({name, "empty", "empty (no fortune entries)"});
        continue;
      }
      // Every entry is followed by a "%" line, as fortune files are written, so
      // concatenated fortune files still form one regular stream.
      for (const std::string& entry : entries) text += entry + "\n%\n";
      file.format = "fortune";
      file.documents = static_cast<int64_t>(entries.size());
    } else {
      text = std::move(bytes);
      file.format = "text";
      file.documents = 1;
    }
    // Files are separated by a newline; a file's own final newline serves as that separator.
    if (!corpus.text.empty() && corpus.text.back() != '\n') corpus.text += '\n';
    file.text_begin = corpus.text.size();
    file.text_bytes = text.size();
    corpus.text += text;
    corpus.documents += file.documents;
    corpus.files.push_back(std::move(file));
  }

  for (const Skip& s : skips) corpus.skipped.push_back({s.path, s.reason});
  if (corpus.files.empty()) {
    if (skips.empty()) throw Error("no files in " + path, kDataHint);
    // Name the most common category (first seen wins ties) so the user knows what to fix.
    std::vector<std::pair<std::string, size_t>> counts;
    for (const Skip& s : skips) {
      bool counted = false;
      for (auto& c : counts) {
        if (c.first == s.category) {
          c.second++;
          counted = true;
        }
      }
      if (!counted) counts.push_back({s.category, 1});
    }
    std::pair<std::string, size_t> top_reason = counts[0];
    for (const auto& c : counts) {
      if (c.second > top_reason.second) top_reason = c;
    }
    throw Error(str("no usable text in ", path, ": ", skips.size(), skips.size() == 1 ? " file" : " files",
                    " skipped, most often as ", top_reason.first, " (", top_reason.second, ")"),
                "pass --data UTF-8 text: binary, empty, hidden and duplicate files are skipped");
  }
  return corpus;
}

}  // namespace imagine
