// The declarative option table: parsing, validation, presets, config files, --help.
#include "core/options.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "core/error.h"
#include "core/files.h"

namespace imagine {

namespace {

std::string type_name(const OptSpec& s) {
  switch (s.type) {
    case OptType::Int: return "an integer";
    case OptType::Float: return "a number";
    case OptType::Bool: return "true or false";
    case OptType::Choice: return "one of the listed choices";
    default: return "text";
  }
}

std::string fmt_range(const OptSpec& s) {
  std::ostringstream os;
  bool lo = std::isfinite(s.min), hi = std::isfinite(s.max);
  if (lo && hi) os << "between " << s.min << " and " << s.max;
  else if (lo) os << "at least " << s.min;
  else if (hi) os << "at most " << s.max;
  return os.str();
}

bool parse_bool(const std::string& v, bool& out) {
  if (v == "true" || v == "1" || v == "yes" || v == "on") return out = true, true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return out = false, true;
  return false;
}

// Validates a value for a spec; returns its canonical text or throws UsageError.
std::string validate(const OptSpec& s, const std::string& v, const std::string& source) {
  const std::string where = source == "flag" ? "--" + s.name : s.name + " (" + source + ")";
  auto bad = [&](const std::string& why) {
    return UsageError(where + ": invalid value '" + v + "': " + why,
                      "expected " + type_name(s) + (fmt_range(s).empty() ? "" : " " + fmt_range(s)) +
                          "; see --help");
  };
  switch (s.type) {
    case OptType::Int: {
      size_t pos = 0;
      long long x;
      try {
        x = std::stoll(v, &pos);
      } catch (...) {
        throw bad("not an integer");
      }
      if (pos != v.size()) throw bad("not an integer");
      if (x < s.min || x > s.max) throw bad("out of range (" + fmt_range(s) + ")");
      return std::to_string(x);
    }
    case OptType::Float: {
      size_t pos = 0;
      double x;
      try {
        x = std::stod(v, &pos);
      } catch (...) {
        throw bad("not a number");
      }
      if (pos != v.size() || !std::isfinite(x)) throw bad("not a finite number");
      if (x < s.min || x > s.max) throw bad("out of range (" + fmt_range(s) + ")");
      return v;
    }
    case OptType::Bool: {
      bool b;
      if (!parse_bool(v, b)) throw bad("not a boolean");
      return b ? "true" : "false";
    }
    case OptType::Choice: {
      if (std::find(s.choices.begin(), s.choices.end(), v) == s.choices.end()) {
        std::string all;
        for (auto& c : s.choices) all += (all.empty() ? "" : ", ") + c;
        throw UsageError(where + ": invalid value '" + v + "'", "choose one of: " + all);
      }
      return v;
    }
    default: return v;
  }
}

}  // namespace

OptionTable& OptionTable::add(OptSpec spec) {
  specs_.push_back(std::move(spec));
  return *this;
}
OptionTable& OptionTable::integer(const std::string& name, int64_t def, double min, double max,
                                  const std::string& help, const std::string& hint) {
  return add({name, OptType::Int, std::to_string(def), hint, help, min, max, {}, true});
}
OptionTable& OptionTable::real(const std::string& name, double def, double min, double max,
                               const std::string& help, const std::string& hint) {
  std::ostringstream os;
  os << def;
  return add({name, OptType::Float, os.str(), hint, help, min, max, {}, true});
}
OptionTable& OptionTable::text(const std::string& name, const std::string& def, const std::string& help,
                               const std::string& hint) {
  return add({name, OptType::String, def, hint, help, -INFINITY, INFINITY, {}, true});
}
OptionTable& OptionTable::flag(const std::string& name, bool def, const std::string& help) {
  return add({name, OptType::Bool, def ? "true" : "false", "", help, -INFINITY, INFINITY, {}, true});
}
OptionTable& OptionTable::choice(const std::string& name, const std::string& def,
                                 std::vector<std::string> choices, const std::string& help) {
  std::string hint;
  for (auto& c : choices) hint += (hint.empty() ? "" : "|") + c;
  return add({name, OptType::Choice, def, hint, help, -INFINITY, INFINITY, std::move(choices), true});
}
OptionTable& OptionTable::list(const std::string& name, const std::string& help, const std::string& hint) {
  return add({name, OptType::List, "", hint, help + " (repeatable)", -INFINITY, INFINITY, {}, true});
}
OptionTable& OptionTable::preset(Preset p) {
  presets_.push_back(std::move(p));
  return *this;
}

const OptSpec* OptionTable::find(const std::string& name) const {
  for (auto& s : specs_)
    if (s.name == name) return &s;
  return nullptr;
}

std::string OptionTable::help_text() const {
  std::ostringstream os;
  os << "usage: " << usage_ << "\n\n" << summary_ << "\n\noptions:\n";
  for (auto& s : specs_) {
    std::string left = "  --" + s.name;
    if (s.type != OptType::Bool) left += " " + s.hint;
    os << left;
    if (left.size() < 28) os << std::string(28 - left.size(), ' ');
    else os << "\n" << std::string(28, ' ');
    os << s.help;
    if (!s.def.empty() && s.type != OptType::List) os << " [default: " << s.def << "]";
    os << "\n";
  }
  if (!presets_.empty()) os << "  --preset NAME             start from a named preset (listed below)\n";
  os << "  --config FILE             read options from a TOML or JSON file (keys = option names)\n";
  os << "  --help                    show this help\n";
  if (!presets_.empty()) {
    os << "\npresets (--preset NAME; flags and --config override them):\n";
    for (auto& p : presets_) {
      os << "  " << p.name << std::string(p.name.size() < 22 ? 22 - p.name.size() : 1, ' ') << p.help << "\n";
    }
  }
  return os.str();
}

std::string closest_name(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, name.size() / 3) + 1;
  for (auto& c : candidates) {
    std::vector<size_t> prev(c.size() + 1), cur(c.size() + 1);
    for (size_t j = 0; j <= c.size(); j++) prev[j] = j;
    for (size_t i = 1; i <= name.size(); i++) {
      cur[0] = i;
      for (size_t j = 1; j <= c.size(); j++)
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (name[i - 1] != c[j - 1])});
      std::swap(prev, cur);
    }
    if (prev[c.size()] < best_d) best_d = prev[c.size()], best = c;
  }
  return best;
}

static std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::map<std::string, std::string> parse_config_file(const std::string& path) {
  const std::string text = read_file(path);
  std::map<std::string, std::string> out;
  const std::string t = trim(text);
  if (!t.empty() && t[0] == '{') {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(t);
    } catch (const std::exception& e) {
      throw UsageError("config " + path + ": invalid JSON: " + e.what(), "fix the syntax of the config file");
    }
    for (auto& [key, v] : j.items()) {
      std::string k = key;
      std::replace(k.begin(), k.end(), '_', '-');  // n_layer and n-layer name the same option
      if (v.is_string()) out[k] = v.get<std::string>();
      else if (v.is_array()) {
        std::string joined;
        for (auto& e : v) joined += (joined.empty() ? "" : "\x1f") + (e.is_string() ? e.get<std::string>() : e.dump());
        out[k] = joined;
      } else out[k] = v.dump();
    }
    return out;
  }
  std::istringstream is(text);
  std::string line;
  int lineno = 0;
  while (std::getline(is, line)) {
    lineno++;
    std::string l = trim(line);
    if (l.empty() || l[0] == '#' || l[0] == '[') continue;
    size_t eq = l.find('=');
    if (eq == std::string::npos)
      throw UsageError(str("config ", path, ":", lineno, ": expected key = value"),
                       "write one setting per line, e.g. lr = 1e-3");
    std::string key = trim(l.substr(0, eq)), val = trim(l.substr(eq + 1));
    if (!val.empty() && (val[0] == '"' || val[0] == '\'')) {
      char q = val[0];
      size_t end = val.find(q, 1);
      if (end == std::string::npos)
        throw UsageError(str("config ", path, ":", lineno, ": unterminated string"), "close the quote");
      val = val.substr(1, end - 1);
    } else {
      size_t hash = val.find('#');
      if (hash != std::string::npos) val = trim(val.substr(0, hash));
    }
    std::replace(key.begin(), key.end(), '_', '-');
    out[key] = val;
  }
  return out;
}

Options OptionTable::parse(const std::vector<std::string>& args) const {
  Options o;
  o.table = this;
  for (auto& s : specs_)
    if (!s.def.empty()) o.values_[s.name] = {s.def}, o.source_[s.name] = "default";

  std::vector<std::string> names;
  for (auto& s : specs_) names.push_back(s.name);
  auto unknown = [&](const std::string& key, const std::string& where) {
    // Flags arrive as "--name": compare the bare name, or every suggestion is 2 edits off.
    const std::string bare = key.rfind("--", 0) == 0 ? key.substr(2) : key;
    std::string near = closest_name(bare, names);
    return UsageError("unknown option '" + key + "'" + where,
                      near.empty() ? "see --help for the options of this command" : "did you mean --" + near + "?");
  };

  // First pass: flags as (name, value) pairs, positional arguments aside.
  std::vector<std::pair<std::string, std::string>> flags;
  std::string preset_name, config_path;
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      o.help_requested = true;
      continue;
    }
    if (a.size() < 3 || a.rfind("--", 0) != 0) {
      if (a.size() > 1 && a[0] == '-' && !(a[1] >= '0' && a[1] <= '9'))
        throw UsageError("unknown option '" + a + "'", "options start with -- (see --help)");
      o.positional.push_back(a);
      continue;
    }
    std::string key = a.substr(2), val;
    bool has_val = false;
    size_t eq = key.find('=');
    if (eq != std::string::npos) val = key.substr(eq + 1), key = key.substr(0, eq), has_val = true;
    if (key == "preset" || key == "config") {
      if (!has_val) {
        if (i + 1 >= args.size()) throw UsageError("--" + key + " needs a value", "see --help");
        val = args[++i];
      }
      (key == "preset" ? preset_name : config_path) = val;
      continue;
    }
    const OptSpec* s = find(key);
    if (!s && key.rfind("no-", 0) == 0) {
      const OptSpec* neg = find(key.substr(3));
      if (neg && neg->type == OptType::Bool && !has_val) {
        flags.push_back({neg->name, "false"});
        continue;
      }
    }
    if (!s) throw unknown("--" + key, "");
    if (!has_val) {
      if (s->type == OptType::Bool) val = "true";
      else {
        if (i + 1 >= args.size()) throw UsageError("--" + key + " needs a value (" + s->hint + ")", "see --help");
        val = args[++i];
      }
    }
    flags.push_back({key, val});
  }
  if (o.help_requested) return o;

  if (!preset_name.empty()) {
    const Preset* p = nullptr;
    for (auto& q : presets_)
      if (q.name == preset_name) p = &q;
    if (!p) {
      std::string all;
      for (auto& q : presets_) all += (all.empty() ? "" : ", ") + q.name;
      throw UsageError("unknown preset '" + preset_name + "'",
                       all.empty() ? "this command has no presets" : "available presets: " + all);
    }
    for (auto& [k, v] : p->values) o.set(k, v, "preset " + preset_name);
  }
  if (!config_path.empty()) {
    for (auto& [k, v] : parse_config_file(config_path)) {
      const OptSpec* s = find(k);
      if (!s || !s->in_config) throw unknown(k, " in config " + config_path);
      if (s->type == OptType::List) {
        o.values_[k].clear();
        std::stringstream ss(v);
        std::string item;
        while (std::getline(ss, item, '\x1f')) o.values_[k].push_back(item);
        o.source_[k] = "config " + config_path;
      } else {
        o.set(k, v, "config " + config_path);
      }
    }
  }
  std::map<std::string, bool> list_reset;
  for (auto& [k, v] : flags) {
    const OptSpec* s = find(k);
    if (s->type == OptType::List) {
      if (!list_reset[k]) o.values_[k].clear(), list_reset[k] = true;
      o.values_[k].push_back(v);
      o.source_[k] = "flag";
    } else {
      o.set(k, v, "flag");
    }
  }
  return o;
}

void Options::set(const std::string& name, const std::string& value, const std::string& source) {
  const OptSpec* s = table->find(name);
  if (!s) throw UsageError("unknown option '" + name + "' (" + source + ")", "see --help");
  if (s->type == OptType::List) {
    values_[name].push_back(value);
  } else {
    values_[name] = {validate(*s, value, source)};
  }
  source_[name] = source;
}

void Options::set_json(const std::string& name, const nlohmann::json& value, const std::string& source) {
  auto text = [](const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  if (value.is_array()) {
    values_[name].clear();
    for (auto& e : value) set(name, text(e), source);
  } else {
    set(name, text(value), source);
  }
}

// Asking for an option the table does not declare is a bug in the caller (a misspelt or
// forgotten name), not a user error: it must not read as a silent 0 / "".
void Options::require_declared(const std::string& name) const {
  if (table && !table->find(name))
    throw std::logic_error("internal error: the options of `" + table->usage() + "` do not declare --" + name);
}

bool Options::given(const std::string& name) const {
  require_declared(name);
  auto it = source_.find(name);
  return it != source_.end() && it->second != "default";
}
bool Options::has(const std::string& name) const {
  require_declared(name);
  auto it = values_.find(name);
  return it != values_.end() && !it->second.empty();
}
std::string Options::s(const std::string& name) const {
  require_declared(name);
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return "";
  return it->second.back();
}
int64_t Options::i(const std::string& name) const { return has(name) ? std::stoll(s(name)) : 0; }
double Options::f(const std::string& name) const { return has(name) ? std::stod(s(name)) : 0.0; }
bool Options::b(const std::string& name) const { return s(name) == "true"; }
std::vector<std::string> Options::list(const std::string& name) const {
  require_declared(name);
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

nlohmann::json Options::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (auto& spec : table->specs()) {
    if (!has(spec.name)) continue;
    switch (spec.type) {
      case OptType::Int: j[spec.name] = i(spec.name); break;
      case OptType::Float: j[spec.name] = f(spec.name); break;
      case OptType::Bool: j[spec.name] = b(spec.name); break;
      case OptType::List: j[spec.name] = list(spec.name); break;
      default: j[spec.name] = s(spec.name);
    }
  }
  return j;
}

}  // namespace imagine
