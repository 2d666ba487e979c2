// Tests for core/options: flag forms (--x y, --x=y, --flag, --no-flag), defaults, range and
// type errors with hints, "did you mean", presets, config files (TOML subset and JSON) and
// their precedence, repeatable lists, --help, and the real `train text` table.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/options.h"
#include "train/train_text.h"

#include "../support/temp_dir.h"

namespace fs = std::filesystem;
using imagine::OptionTable;
using imagine::Options;
using imagine::UsageError;

namespace {

const OptionTable& demo_table() {
  static const OptionTable t = [] {
    OptionTable t("demo [options] FILE...", "A table for tests.");
    t.integer("steps", 10, 0, 100, "optimizer steps")
        .real("lr", 1e-3, 0.0, 1.0, "learning rate")
        .text("name", "anon", "run name")
        .text("note", "", "unset by default")
        .flag("verbose", false, "talk more")
        .flag("color", true, "colored output")
        .choice("mode", "fast", {"fast", "slow"}, "speed")
        .list("stop", "stop string");
    imagine::OptSpec secret;
    secret.name = "secret";
    secret.type = imagine::OptType::String;
    secret.help = "flag only";
    secret.in_config = false;
    t.add(secret);
    t.preset({"big", "a bigger run", {{"steps", "50"}, {"lr", "0.01"}, {"name", "big"}}});
    t.preset({"small", "a smaller run", {{"steps", "2"}}});
    return t;
  }();
  return t;
}

Options parse(const std::vector<std::string>& args) { return demo_table().parse(args); }

// Runs parse and returns the UsageError it throws (fails the test if none).
UsageError usage_error(const std::vector<std::string>& args, const OptionTable& t = demo_table()) {
  try {
    t.parse(args);
  } catch (const UsageError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a UsageError, got: " << e.what();
    return UsageError("");
  }
  std::string joined;
  for (auto& a : args) joined += a + " ";
  ADD_FAILURE() << "expected a UsageError for: " << joined;
  return UsageError("");
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

class OptionsConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = imagine::testing::make_temp_dir("imagine_options_");
    ASSERT_FALSE(dir_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const std::string p = dir_ + "/" + name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  std::string dir_;
};

}  // namespace

TEST(Options, DefaultsWhenNothingGiven) {
  auto o = parse({});
  EXPECT_EQ(o.i("steps"), 10);
  EXPECT_DOUBLE_EQ(o.f("lr"), 1e-3);
  EXPECT_EQ(o.s("name"), "anon");
  EXPECT_FALSE(o.b("verbose"));
  EXPECT_TRUE(o.b("color"));
  EXPECT_EQ(o.s("mode"), "fast");
  EXPECT_TRUE(o.list("stop").empty());
  EXPECT_FALSE(o.has("note"));  // no default: unset
  EXPECT_EQ(o.s("note"), "");
  EXPECT_TRUE(o.has("steps"));
  EXPECT_FALSE(o.given("steps"));
  EXPECT_FALSE(o.help_requested);
  EXPECT_TRUE(o.positional.empty());
}

TEST(Options, UndeclaredNameIsAProgrammingError) {
  auto o = parse({});
  // A misspelt lookup must not read as 0 / "" / false.
  EXPECT_THROW(o.i("step"), std::logic_error);
  EXPECT_THROW(o.f("rate"), std::logic_error);
  EXPECT_THROW(o.b("verbos"), std::logic_error);
  EXPECT_THROW(o.s("nam"), std::logic_error);
  EXPECT_THROW(o.list("stops"), std::logic_error);
  EXPECT_THROW(o.given("stepz"), std::logic_error);
  EXPECT_THROW(o.has("x"), std::logic_error);
  try {
    o.s("nam");
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("--nam"), std::string::npos) << e.what();
  }
  EXPECT_EQ(o.s("name"), "anon");  // declared names still read as before
}

TEST(Options, FlagForms) {
  auto o = parse({"--steps", "42", "--lr=0.5", "--name", "x y", "--verbose", "--no-color", "--mode=slow", "in.txt",
                  "-7", "more"});
  EXPECT_EQ(o.i("steps"), 42);
  EXPECT_DOUBLE_EQ(o.f("lr"), 0.5);
  EXPECT_EQ(o.s("name"), "x y");
  EXPECT_TRUE(o.b("verbose"));
  EXPECT_FALSE(o.b("color"));
  EXPECT_EQ(o.s("mode"), "slow");
  EXPECT_EQ(o.positional, (std::vector<std::string>{"in.txt", "-7", "more"}));  // negative numbers are positional
  for (auto n : {"steps", "lr", "name", "verbose", "color", "mode"}) EXPECT_TRUE(o.given(n)) << n;
  // booleans with explicit values, in every accepted spelling
  EXPECT_FALSE(parse({"--color=false"}).b("color"));
  EXPECT_FALSE(parse({"--color=no"}).b("color"));
  EXPECT_FALSE(parse({"--color=0"}).b("color"));
  EXPECT_TRUE(parse({"--verbose=yes"}).b("verbose"));
  EXPECT_TRUE(parse({"--verbose=on"}).b("verbose"));
  // a value that starts with a dash is taken as the value of the option before it
  EXPECT_EQ(parse({"--name", "--weird"}).s("name"), "--weird");
  // the last occurrence wins for scalars
  EXPECT_EQ(parse({"--steps", "1", "--steps", "2"}).i("steps"), 2);
  // an empty value is accepted for text
  EXPECT_EQ(parse({"--name="}).s("name"), "");
}

TEST(Options, RangeAndTypeErrorsHaveHints) {
  {
    auto e = usage_error({"--steps", "-5"});
    EXPECT_TRUE(contains(e.what(), "--steps")) << e.what();
    EXPECT_TRUE(contains(e.what(), "-5")) << e.what();
    EXPECT_TRUE(contains(e.what(), "out of range")) << e.what();
    EXPECT_TRUE(contains(e.hint(), "integer")) << e.hint();
    EXPECT_TRUE(contains(e.hint(), "between 0 and 100")) << e.hint();
  }
  {
    auto e = usage_error({"--steps=101"});
    EXPECT_TRUE(contains(e.what(), "out of range")) << e.what();
  }
  EXPECT_EQ(parse({"--steps", "100"}).i("steps"), 100);  // bounds are inclusive
  EXPECT_EQ(parse({"--steps", "0"}).i("steps"), 0);
  for (auto bad : {"abc", "5x", "1.5", ""}) {
    auto e = usage_error({"--steps", bad});
    EXPECT_TRUE(contains(e.what(), "not an integer")) << bad << ": " << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
  for (auto bad : {"1.5", "-0.1", "nan", "inf", "0.1x", "x"}) {
    auto e = usage_error({"--lr", bad});
    EXPECT_FALSE(e.hint().empty()) << bad;
  }
  {
    auto e = usage_error({"--verbose=maybe"});
    EXPECT_TRUE(contains(e.what(), "not a boolean")) << e.what();
    EXPECT_TRUE(contains(e.hint(), "true or false")) << e.hint();
  }
  {
    auto e = usage_error({"--mode", "medium"});
    EXPECT_TRUE(contains(e.hint(), "fast, slow")) << e.hint();
  }
  {
    auto e = usage_error({"--steps"});  // missing value
    EXPECT_TRUE(contains(e.what(), "needs a value")) << e.what();
  }
  // --no- only negates booleans
  EXPECT_TRUE(contains(usage_error({"--no-steps"}).what(), "unknown option"));
  EXPECT_TRUE(contains(usage_error({"--no-verbose=true"}).what(), "unknown option"));
}

TEST(Options, UnknownOptionSuggestsClosestName) {
  {
    auto e = usage_error({"--stpes", "5"});
    EXPECT_TRUE(contains(e.what(), "unknown option '--stpes'")) << e.what();
    EXPECT_EQ(e.hint(), "did you mean --steps?");
  }
  EXPECT_EQ(usage_error({"--verbos"}).hint(), "did you mean --verbose?");
  EXPECT_EQ(usage_error({"--mdoe=fast"}).hint(), "did you mean --mode?");
  {
    auto e = usage_error({"--completely-unrelated-thing"});
    EXPECT_FALSE(contains(e.hint(), "did you mean")) << e.hint();
    EXPECT_FALSE(e.hint().empty());
  }
  {
    auto e = usage_error({"-x"});  // single-dash options do not exist
    EXPECT_TRUE(contains(e.what(), "-x")) << e.what();
    EXPECT_FALSE(e.hint().empty());
  }
  EXPECT_EQ(imagine::closest_name("n-layr", {"n-layer", "n-head", "n-embd"}), "n-layer");
  EXPECT_EQ(imagine::closest_name("zzzzzzzz", {"n-layer", "n-head"}), "");
}

TEST(Options, HelpIsRequestedNotAnError) {
  for (auto flag : {"--help", "-h"}) {
    auto o = parse({"--steps", "3", flag});
    EXPECT_TRUE(o.help_requested) << flag;
  }
  // --help wins over values that would not validate
  EXPECT_TRUE(parse({"--help", "--steps", "-5"}).help_requested);
  const std::string h = demo_table().help_text();
  for (auto part : {"usage: demo", "--steps N", "[default: 10]", "--verbose", "--mode fast|slow", "(repeatable)",
                    "presets", "big", "a bigger run", "--help"})
    EXPECT_TRUE(contains(h, part)) << "help lacks '" << part << "':\n" << h;
}

TEST(Options, PresetsApplyAndFlagsOverrideThem) {
  auto o = parse({"--preset", "big"});
  EXPECT_EQ(o.i("steps"), 50);
  EXPECT_DOUBLE_EQ(o.f("lr"), 0.01);
  EXPECT_EQ(o.s("name"), "big");
  EXPECT_TRUE(o.given("steps"));
  EXPECT_EQ(o.s("mode"), "fast");  // untouched by the preset
  // flags override, wherever they appear
  EXPECT_EQ(parse({"--preset=big", "--steps", "7"}).i("steps"), 7);
  EXPECT_EQ(parse({"--steps", "7", "--preset", "big"}).i("steps"), 7);
  EXPECT_DOUBLE_EQ(parse({"--steps", "7", "--preset", "big"}).f("lr"), 0.01);
  auto e = usage_error({"--preset", "huge"});
  EXPECT_TRUE(contains(e.what(), "huge")) << e.what();
  EXPECT_TRUE(contains(e.hint(), "big")) << e.hint();
  EXPECT_TRUE(contains(e.hint(), "small")) << e.hint();
  EXPECT_TRUE(contains(usage_error({"--preset"}).what(), "needs a value"));
}

TEST(Options, ListsAreRepeatable) {
  auto o = parse({"--stop", "a", "--stop=b", "--stop", "a"});
  EXPECT_EQ(o.list("stop"), (std::vector<std::string>{"a", "b", "a"}));
  EXPECT_EQ(o.s("stop"), "a");  // scalar view: the last one
  EXPECT_TRUE(o.given("stop"));
  auto j = o.to_json();
  EXPECT_EQ(j["stop"], nlohmann::json({"a", "b", "a"}));
}

TEST(Options, ToJsonAndSetJsonRoundTrip) {
  auto o = parse({"--steps", "12", "--lr", "0.25", "--verbose", "--stop", "x", "--stop", "y"});
  auto j = o.to_json();
  EXPECT_EQ(j["steps"], 12);
  EXPECT_DOUBLE_EQ(j["lr"].get<double>(), 0.25);
  EXPECT_EQ(j["verbose"], true);
  EXPECT_EQ(j["color"], true);
  EXPECT_EQ(j["name"], "anon");
  EXPECT_FALSE(j.contains("note"));
  auto p = parse({});
  for (auto& [k, v] : j.items()) p.set_json(k, v, "checkpoint");
  EXPECT_EQ(p.to_json(), j);
  EXPECT_THROW(p.set_json("steps", 1000, "checkpoint"), UsageError);  // still validated
  EXPECT_THROW(p.set("bogus", "1", "checkpoint"), UsageError);
}

TEST_F(OptionsConfigTest, TomlSubset) {
  const auto f = write("run.toml",
                       "# a comment\n"
                       "\n"
                       "[training]\n"
                       "steps = 30\n"
                       "lr = 5e-4   # trailing comment\n"
                       "name = \"with # hash and = sign\"\n"
                       "note = 'single quoted'\n"
                       "verbose = true\n"
                       "[output]\n"
                       "color = false\n"
                       "mode = slow\n");
  auto o = parse({"--config", f});
  EXPECT_EQ(o.i("steps"), 30);
  EXPECT_DOUBLE_EQ(o.f("lr"), 5e-4);
  EXPECT_EQ(o.s("name"), "with # hash and = sign");
  EXPECT_EQ(o.s("note"), "single quoted");
  EXPECT_TRUE(o.b("verbose"));
  EXPECT_FALSE(o.b("color"));
  EXPECT_EQ(o.s("mode"), "slow");
  EXPECT_TRUE(o.given("steps"));
  // TOML-style snake_case keys map to the dashed option names
  const auto g = write("snake.toml", "n_layer = 3\nblock_size = 16\n");
  auto t = imagine::text_train_table().parse({"--config=" + g});
  EXPECT_EQ(t.i("n-layer"), 3);
  EXPECT_EQ(t.i("block-size"), 16);
}

TEST_F(OptionsConfigTest, JsonConfig) {
  const auto f = write("run.json",
                       "  {\"steps\": 30, \"lr\": 0.0005, \"name\": \"json run\", \"verbose\": true,\n"
                       "   \"color\": false, \"mode\": \"slow\", \"stop\": [\"x\", \"y\"]}\n");
  auto o = parse({"--config", f});
  EXPECT_EQ(o.i("steps"), 30);
  EXPECT_DOUBLE_EQ(o.f("lr"), 0.0005);
  EXPECT_EQ(o.s("name"), "json run");
  EXPECT_TRUE(o.b("verbose"));
  EXPECT_FALSE(o.b("color"));
  EXPECT_EQ(o.s("mode"), "slow");
  EXPECT_EQ(o.list("stop"), (std::vector<std::string>{"x", "y"}));
  // flags replace a list from the config rather than appending to it
  EXPECT_EQ(parse({"--config", f, "--stop", "z"}).list("stop"), (std::vector<std::string>{"z"}));
  // values are validated as flags are
  const auto bad = write("bad.json", "{\"steps\": 1000}");
  auto e = usage_error({"--config", bad});
  EXPECT_TRUE(contains(e.what(), "out of range")) << e.what();
  EXPECT_TRUE(contains(e.what(), "config")) << e.what();
  const auto broken = write("broken.json", "{\"steps\": 3,");
  EXPECT_TRUE(contains(usage_error({"--config", broken}).what(), "invalid JSON"));
}

TEST_F(OptionsConfigTest, PrecedenceDefaultsPresetConfigFlags) {
  const auto f = write("c.toml", "steps = 30\nname = from-config\n");
  auto o = parse({"--steps", "9", "--config", f, "--preset", "big"});
  EXPECT_EQ(o.i("steps"), 9);               // flag beats config and preset
  EXPECT_EQ(o.s("name"), "from-config");    // config beats preset
  EXPECT_DOUBLE_EQ(o.f("lr"), 0.01);        // preset beats default
  EXPECT_EQ(o.s("mode"), "fast");           // default
}

TEST_F(OptionsConfigTest, UnknownConfigKeysAreRejected) {
  {
    const auto f = write("typo.toml", "steps = 3\nstpes = 4\n");
    auto e = usage_error({"--config", f});
    EXPECT_TRUE(contains(e.what(), "stpes")) << e.what();
    EXPECT_TRUE(contains(e.what(), f)) << e.what();
    EXPECT_EQ(e.hint(), "did you mean --steps?");
  }
  {
    const auto f = write("typo.json", "{\"verbos\": true}");
    auto e = usage_error({"--config", f});
    EXPECT_TRUE(contains(e.what(), "verbos")) << e.what();
    EXPECT_EQ(e.hint(), "did you mean --verbose?");
  }
  {
    const auto f = write("secret.toml", "secret = x\n");  // flag-only option
    EXPECT_TRUE(contains(usage_error({"--config", f}).what(), "secret"));
    EXPECT_EQ(parse({"--secret", "x"}).s("secret"), "x");
  }
  {
    const auto f = write("nokey.toml", "steps 3\n");
    auto e = usage_error({"--config", f});
    EXPECT_TRUE(contains(e.what(), ":1")) << e.what();  // the line number
  }
  {
    const auto f = write("quote.toml", "name = \"open\n");
    EXPECT_TRUE(contains(usage_error({"--config", f}).what(), "unterminated"));
  }
  // a missing config file is an error too (not silently ignored)
  EXPECT_THROW(parse({"--config", dir_ + "/missing.toml"}), imagine::Error);
}

TEST(Options, TrainTextTablePresets) {
  const auto& t = imagine::text_train_table();
  auto o = t.parse({"--preset", "tiny", "--data", "d.txt", "--out", "m"});
  EXPECT_EQ(o.i("n-layer"), 2);
  EXPECT_EQ(o.i("n-head"), 2);
  EXPECT_EQ(o.i("n-embd"), 32);
  EXPECT_EQ(o.i("block-size"), 32);
  EXPECT_EQ(o.i("steps"), 100);
  EXPECT_DOUBLE_EQ(o.f("lr"), 3e-3);
  EXPECT_EQ(o.s("data"), "d.txt");
  auto p = t.parse({"--preset", "tiny", "--n-layer", "3", "--steps=7"});
  EXPECT_EQ(p.i("n-layer"), 3);
  EXPECT_EQ(p.i("steps"), 7);
  EXPECT_EQ(p.i("n-embd"), 32);
  // every preset names only options of the table, with valid values
  for (auto& preset : t.presets()) {
    EXPECT_NO_THROW(t.parse({"--preset", preset.name})) << preset.name;
    for (auto& [k, v] : preset.values) EXPECT_NE(t.find(k), nullptr) << preset.name << ": " << k;
  }
  auto sc = t.parse({"--preset", "shakespeare-cpu"});
  EXPECT_EQ(sc.i("n-embd"), 128);
  EXPECT_EQ(sc.i("block-size"), 64);
  // Without a preset: the modern recipe; the nanoGPT presets pin GPT-2 + AdamW + cosine.
  auto d = t.parse({});
  EXPECT_EQ(d.i("steps"), 600);
  EXPECT_EQ(d.s("pos"), "rope");
  EXPECT_EQ(d.s("optimizer"), "muon");
  EXPECT_EQ(d.s("schedule"), "trapezoid");
  EXPECT_TRUE(d.b("qk-norm"));
  EXPECT_EQ(sc.s("pos"), "learned");
  EXPECT_EQ(sc.s("norm"), "layernorm");
  EXPECT_FALSE(sc.b("qk-norm"));
  EXPECT_EQ(sc.s("mlp"), "gelu");
  EXPECT_EQ(sc.f("logit-softcap"), 0.0);
  EXPECT_EQ(sc.s("optimizer"), "adamw");
  EXPECT_EQ(sc.s("schedule"), "cosine");
  EXPECT_EQ(t.parse({"--preset", "shakespeare-cpu", "--pos", "rope"}).s("pos"), "rope");  // flags still win
  {
    auto e = usage_error({"--steps", "-5"}, t);
    EXPECT_TRUE(contains(e.what(), "out of range")) << e.what();
    EXPECT_TRUE(contains(e.hint(), "between 0 and")) << e.hint();
  }
  EXPECT_EQ(usage_error({"--n-layr", "2"}, t).hint(), "did you mean --n-layer?");
  EXPECT_TRUE(t.parse({"--no-samples"}).given("samples"));
  EXPECT_FALSE(t.parse({"--no-samples"}).b("samples"));
  EXPECT_TRUE(t.parse({}).b("samples"));
}
