// JSB chorales loader: the piano-roll JSON (split -> chorale -> time step -> pitches) to
// Songs. The roll cannot tell a held pitch from a re-struck one, so a pitch present on
// consecutive steps becomes one held note. No MIDI and no tokens here.
#include "music/chorales.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/files.h"

namespace fs = std::filesystem;

namespace imagine {
namespace {

const char* kSplits[] = {"train", "valid", "test"};
const char* kFormatHint =
    "expected a JSON object {\"train\": [...], \"valid\": [...], \"test\": [...]} where each chorale is a "
    "list of time steps and each step a list of MIDI pitches (e.g. jsb-chorales-16th.json)";

bool is_chorale_file_name(const std::string& name) {
  return name.rfind("jsb-chorales-", 0) == 0 && name.size() > 5 && name.substr(name.size() - 5) == ".json";
}

// The file inside a folder: the 16th-note grid if present (finest rhythm), else the first
// other jsb-chorales-*.json by name so the choice does not depend on directory order.
std::string pick_file(const std::string& dir) {
  fs::path preferred = fs::path(dir) / "jsb-chorales-16th.json";
  if (fs::is_regular_file(preferred)) return preferred.string();
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file() && is_chorale_file_name(entry.path().filename().string())) {
      found.push_back(entry.path().string());
    }
  }
  IMAGINE_CHECK(!found.empty(), "point at jsb-chorales-16th.json or the folder holding it",
                "no jsb-chorales-*.json in ", dir);
  std::sort(found.begin(), found.end());
  return found.front();
}

// Seconds per step from the file name, at 120 bpm (a quarter note = 0.5 s).
double step_from_name(const std::string& file) {
  std::string name = fs::path(file).filename().string();
  if (name.find("16th") != std::string::npos) return 0.125;
  if (name.find("8th") != std::string::npos || name.find("eighth") != std::string::npos) return 0.25;
  if (name.find("quarter") != std::string::npos) return 0.5;
  throw Error(str("cannot tell the time grid of ", file, " from its name"),
              "name it jsb-chorales-16th.json / -quarter.json, or pass the step length explicitly");
}

int read_pitch(const nlohmann::json& v, const std::string& where) {
  // The 16th-note file stores some pitches as 73.0; accept any number that is a whole key.
  IMAGINE_CHECK(v.is_number(), kFormatHint, where, ": a pitch is not a number");
  double p = v.get<double>();
  IMAGINE_CHECK(std::isfinite(p) && p == std::floor(p) && p >= 0 && p <= 127, kFormatHint, where,
                ": pitch ", p, " is not a MIDI key 0..127");
  return int(p);
}

Song to_song(const nlohmann::json& chorale, const std::string& name, const std::string& file, double step,
             int program) {
  const std::string where = str(file, ": ", name);
  IMAGINE_CHECK(chorale.is_array(), kFormatHint, where, " is not a list of time steps");
  Song song;
  song.name = name;
  int start[128];
  std::fill(start, start + 128, -1);  // step where the sounding pitch began, -1 when silent
  auto close = [&](int pitch, int at) {
    Note n;
    n.pitch = pitch;
    n.program = program;
    n.start = start[pitch] * step;
    n.end = at * step;
    song.notes.push_back(n);
    start[pitch] = -1;
  };
  int i = 0;
  for (const auto& frame : chorale) {
    IMAGINE_CHECK(frame.is_array(), kFormatHint, where, ": step ", i, " is not a list of pitches");
    std::set<int> now;  // a set: a doubled voice (two parts on one key) is one sounding note
    for (const auto& v : frame) now.insert(read_pitch(v, str(where, " step ", i)));
    for (int p = 0; p < 128; p++) {
      if (start[p] >= 0 && !now.count(p)) close(p, i);
    }
    for (int p : now) {
      if (start[p] < 0) start[p] = i;
    }
    i++;
  }
  for (int p = 0; p < 128; p++) {
    if (start[p] >= 0) close(p, i);
  }
  song.sort();
  return song;
}

}  // namespace

Chorales load_chorales(const std::string& path, double step_seconds, int program) {
  IMAGINE_CHECK(fs::exists(path), "download the JSB chorales JSON or point at the folder holding it",
                "no such file or folder: ", path);
  IMAGINE_CHECK(program >= 0 && program <= 127, "General MIDI programs are 0..127", "chorale program ",
                program, " out of range");
  IMAGINE_CHECK(std::isfinite(step_seconds) && step_seconds >= 0, "use a positive step length in seconds",
                "chorale step_seconds must be >= 0, got ", step_seconds);
  std::string file = fs::is_directory(path) ? pick_file(path) : path;
  double step = step_seconds > 0 ? step_seconds : step_from_name(file);

  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw Error(str(file, ": not valid JSON (", e.what(), ")"), kFormatHint);
  }
  IMAGINE_CHECK(j.is_object(), kFormatHint, file, ": the top level is not a JSON object");

  Chorales out;
  std::vector<Song>* dest[] = {&out.train, &out.valid, &out.test};
  for (int s = 0; s < 3; s++) {
    const char* split = kSplits[s];
    IMAGINE_CHECK(j.contains(split), kFormatHint, file, ": missing the \"", split, "\" split");
    const nlohmann::json& list = j[split];
    IMAGINE_CHECK(list.is_array(), kFormatHint, file, ": \"", split, "\" is not a list of chorales");
    for (size_t k = 0; k < list.size(); k++) {
      dest[s]->push_back(to_song(list[k], str(split, "-", k), file, step, program));
    }
  }
  return out;
}

bool looks_like_chorales(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      if (entry.is_regular_file() && is_chorale_file_name(entry.path().filename().string())) return true;
    }
    return false;
  }
  if (!fs::is_regular_file(path, ec) || fs::path(path).extension() != ".json") return false;
  try {
    nlohmann::json j = nlohmann::json::parse(read_file(path));
    if (!j.is_object()) return false;
    for (const char* split : kSplits) {
      if (!j.contains(split) || !j[split].is_array()) return false;
    }
    return true;
  } catch (const std::exception&) {
    return false;  // unreadable or not JSON: some other kind of .json
  }
}

}  // namespace imagine
