// One declarative option table per command. Each option is declared once (name, type,
// default, range, help) and that declaration feeds --help, command-line parsing, config
// files (TOML subset or JSON) and named presets. Unknown keys and out-of-range values are
// rejected with a suggestion; nothing is ignored silently.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace imagine {

enum class OptType { Int, Float, String, Bool, Choice, List };

struct OptSpec {
  std::string name;        // --name on the command line, `name` in config files
  OptType type = OptType::String;
  std::string def;         // default as text ("" = unset)
  std::string hint;        // value placeholder in --help, e.g. "N"
  std::string help;        // one line
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices;  // for Choice
  bool in_config = true;   // may appear in config files / presets
};

// A named preset: option name -> value text.
struct Preset {
  std::string name;
  std::string help;
  std::map<std::string, std::string> values;
};

class Options;

class OptionTable {
 public:
  OptionTable(std::string usage, std::string summary) : usage_(std::move(usage)), summary_(std::move(summary)) {}
  OptionTable& add(OptSpec spec);
  OptionTable& integer(const std::string& name, int64_t def, double min, double max, const std::string& help,
                       const std::string& hint = "N");
  OptionTable& real(const std::string& name, double def, double min, double max, const std::string& help,
                    const std::string& hint = "X");
  OptionTable& text(const std::string& name, const std::string& def, const std::string& help,
                    const std::string& hint = "S");
  OptionTable& flag(const std::string& name, bool def, const std::string& help);
  OptionTable& choice(const std::string& name, const std::string& def, std::vector<std::string> choices,
                      const std::string& help);
  OptionTable& list(const std::string& name, const std::string& help, const std::string& hint = "S");
  OptionTable& preset(Preset p);

  const OptSpec* find(const std::string& name) const;
  const std::vector<OptSpec>& specs() const { return specs_; }
  const std::vector<Preset>& presets() const { return presets_; }
  std::string help_text() const;
  std::string usage() const { return usage_; }

  // Parses argv-style arguments (after the verb). Order of precedence: defaults < --preset
  // < --config file < flags. Positional arguments are returned in Options::positional.
  // Throws UsageError on unknown options, bad values, or --help (with help_requested set).
  Options parse(const std::vector<std::string>& args) const;

 private:
  std::string usage_, summary_;
  std::vector<OptSpec> specs_;
  std::vector<Preset> presets_;
};

class Options {
 public:
  std::vector<std::string> positional;
  bool help_requested = false;

  // Every lookup of a name the table does not declare throws std::logic_error (a bug).
  bool given(const std::string& name) const;  // set by preset, config or flag (not default)
  bool has(const std::string& name) const;    // has any value (default included)
  int64_t i(const std::string& name) const;
  double f(const std::string& name) const;
  bool b(const std::string& name) const;
  std::string s(const std::string& name) const;
  std::vector<std::string> list(const std::string& name) const;
  // Sets a value, validating it against the table (used by parse and by presets).
  void set(const std::string& name, const std::string& value, const std::string& source);
  // Sets a value given as JSON (as stored by to_json), e.g. options recorded in a checkpoint.
  void set_json(const std::string& name, const nlohmann::json& value, const std::string& source);
  nlohmann::json to_json() const;  // every option in the table with its effective value

  const OptionTable* table = nullptr;

 private:
  friend class OptionTable;
  std::map<std::string, std::vector<std::string>> values_;
  std::map<std::string, std::string> source_;  // "default", "preset x", "config f", "flag"
  void require_declared(const std::string& name) const;
};

// Closest name by edit distance, for "did you mean" hints ("" when nothing is close).
std::string closest_name(const std::string& name, const std::vector<std::string>& candidates);

// Parses a config file: JSON (starts with '{') or a TOML subset (key = value, # comments,
// quoted strings, numbers, booleans, [section] headers are ignored as grouping only).
std::map<std::string, std::string> parse_config_file(const std::string& path);

}  // namespace imagine
