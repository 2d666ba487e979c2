// See music_dataset.h.
#include "data/music_dataset.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "music/chorales.h"
#include "music/midi.h"

namespace fs = std::filesystem;

namespace imagine {
namespace {

const char* kHint = "pass --data a folder of .mid files, a MIDI file, or the JSB chorales JSON";

bool held_out(const std::string& rel, double fraction) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a: stable across runs and machines
  for (unsigned char c : rel) h = (h ^ c) * 1099511628211ULL;
  return static_cast<double>(h % 10000) < fraction * 10000.0;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

MusicData load_music_data(const std::string& path, double valid_fraction) {
  IMAGINE_CHECK(!path.empty(), kHint, "missing --data");
  IMAGINE_CHECK(fs::exists(path), kHint, path, " does not exist");
  MusicData d;
  d.path = path;
  if (looks_like_chorales(path)) {
    Chorales c = load_chorales(path);
    d.format = "chorales";
    d.train = std::move(c.train);
    d.valid = std::move(c.valid);
    d.test = std::move(c.test);
    d.files_used = 1;
    if (!d.train.empty() && !d.train[0].notes.empty()) {
      // The grid is the shortest note of the first chorale (one step).
      double g = 1e9;
      for (auto& n : d.train[0].notes) g = std::min(g, n.end - n.start);
      d.grid_seconds = g;
    }
    return d;
  }
  d.format = "midi";
  std::vector<std::pair<std::string, std::string>> files;  // (relative, full)
  if (fs::is_directory(path)) {
    std::map<std::pair<dev_t, ino_t>, std::string> seen;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (!it->is_regular_file(ec)) continue;
      const std::string rel = fs::relative(it->path(), path).string();
      const std::string ext = lower(it->path().extension().string());
      if (ext != ".mid" && ext != ".midi") continue;  // the packages ship .obm/.txt beside their songs
      struct stat st {};
      if (::stat(it->path().c_str(), &st) == 0) {
        auto [at, fresh] = seen.insert({{st.st_dev, st.st_ino}, rel});
        if (!fresh) {
          d.skipped.push_back({rel, "duplicate of " + at->second + " (symlink or hard link)"});
          continue;
        }
      }
      files.push_back({rel, it->path().string()});
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back({fs::path(path).filename().string(), path});
  }
  for (auto& [rel, full] : files) {
    Song s;
    try {
      s = read_midi(full);
    } catch (const Error& e) {
      // The reason without the file name the message starts with (the record names it).
      std::string why = e.what();
      for (const std::string& prefix : {full + ": ", rel + ": "})
        if (why.rfind(prefix, 0) == 0) why = why.substr(prefix.size());
      d.skipped.push_back({rel, why});
      continue;
    }
    if (s.notes.empty()) {
      d.skipped.push_back({rel, "no notes"});
      continue;
    }
    s.name = rel;
    (held_out(rel, valid_fraction) ? d.valid : d.train).push_back(std::move(s));
    d.files_used++;
  }
  if (d.train.empty() && d.valid.empty()) {
    std::string why = d.skipped.empty() ? "no .mid files" : "skipped: " + summarize_skips(d.skipped);
    throw Error("no usable MIDI file in " + path + " (" + why + ")", kHint);
  }
  // Keep a piece on each side when the hash put them all on one.
  if (d.valid.empty() && d.train.size() > 1) {
    d.valid.push_back(d.train.back());
    d.train.pop_back();
  } else if (d.train.empty() && d.valid.size() > 1) {
    d.train.push_back(d.valid.back());
    d.valid.pop_back();
  }
  return d;
}

double note_length_quantile(const std::vector<Song>& songs, double q) {
  std::vector<double> lengths;
  for (auto& s : songs)
    for (auto& n : s.notes)
      if (!n.drum) lengths.push_back(n.end - n.start);
  if (lengths.empty()) return 0;
  const size_t k = std::min(lengths.size() - 1, static_cast<size_t>(q * static_cast<double>(lengths.size())));
  std::nth_element(lengths.begin(), lengths.begin() + static_cast<std::ptrdiff_t>(k), lengths.end());
  return lengths[k];
}

std::vector<int64_t> encode_songs(const std::vector<Song>& songs, const EventVocab& vocab, const Augmentation* aug) {
  std::vector<int> shifts = {0};
  std::vector<double> factors = {1.0};
  if (aug) {
    for (int t = -aug->transpose; t <= aug->transpose; t++)
      if (t != 0) shifts.push_back(t);
    if (aug->stretch > 0) factors = {1.0 - aug->stretch, 1.0, 1.0 + aug->stretch};
  }
  std::vector<int64_t> out;
  for (const Song& song : songs) {
    for (int shift : shifts) {
      bool fits = true;
      for (auto& n : song.notes)
        if (!n.drum && (n.pitch + shift < 0 || n.pitch + shift > 127)) fits = false;
      if (!fits) continue;
      for (double f : factors) {
        Song v = song;
        for (auto& n : v.notes) {
          if (!n.drum) n.pitch += shift;
          n.start *= f;
          n.end *= f;
        }
        for (int tok : vocab.encode(v, true)) out.push_back(tok);
      }
    }
  }
  return out;
}

}  // namespace imagine
