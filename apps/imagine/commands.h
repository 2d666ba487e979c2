// The verbs of the imagine CLI. Each returns the process exit code and throws
// imagine::Error / UsageError, which main() turns into `error:` + `hint:` lines.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/options.h"
#include "provenance/audit.h"
#include "provenance/output.h"
#include "serve/verbs.h"

namespace imagine::cli {

using Args = std::vector<std::string>;

int train(const Args& args);           // imagine train text|image ...
int generate(const Args& args);        // imagine generate text|image ...
int info(const Args& args);            // imagine info MODEL_DIR [--json]
int eval(const Args& args);            // imagine eval MODEL_DIR --data PATH [--json]
int vary(const Args& args);            // imagine vary image ...
int blend(const Args& args);           // imagine blend image ...
int interpolate(const Args& args);     // imagine interpolate image ...
int reconstruct(const Args& args);     // imagine reconstruct image ...
int export_data(const Args& args);     // imagine export image ...
int continue_music(const Args& args);  // imagine continue music ...
int render(const Args& args);          // imagine render music IN.mid --wav OUT.wav
int roll(const Args& args);            // imagine roll music IN.mid --png ROLL.png
int detect(const Args& args);          // imagine detect FILE... [--json]
int verify(const Args& args);          // imagine verify FILE... [--trusted-keys F] [--json]
int keygen(const Args& args);          // imagine keygen [--out DIR]
int audit(const Args& args);           // imagine audit --model DIR FILE... | --generate N
int serve(const Args& args);           // imagine serve --models DIR [--port N] ...

// The music halves of generate / eval (cmd_music.cpp).
int generate_music(const Args& args);  // args start with "music"
int export_music(const Args& args);    // args start with "music"
int eval_music(const Args& args);

// The image halves of generate / eval / info (cmd_image.cpp, cmd_image_eval.cpp).
int generate_image(const Args& args);  // args start with "image"
int eval_image(const Args& args);
void print_image_info(const std::string& dir, bool json);
// "a.png:0.3,b.png:0.7" -> (path, weight) with weights normalised; UsageError when invalid.
std::vector<std::pair<std::string, double>> parse_blend_inputs(const std::string& spec);

// {"model_card": README.md's text or null, "data_license": ...} for `imagine info --json`.
nlohmann::json model_card_fields(const std::string& dir);

// The family recorded in MODEL_DIR/config.json ("" when it cannot be read).
std::string model_family(const std::string& dir);

// Runs a `imagine <verb> <family> [options]` verb: checks the family word, parses the
// verb's table, answers --help, refuses positional arguments unless `positional`.
int run_family_verb(const std::string& family, const std::string& verb, const Args& args,
                    const OptionTable& table, int (*run)(const Options&), bool positional = false);

// The options of every verb that writes generated content (watermark, provenance level,
// keys; `tokens`: the token watermark's parameters too), and the policy they give.
OptionTable& output_options(OptionTable& t, bool tokens);
OutputPolicy output_policy(const Options& o);

// Prints a line on stderr unless quiet (shared progress/log output of the verbs).
void note(bool quiet, const std::string& line);

// The copy check of the generate / vary / continue verbs: --reject-copies re-makes outputs
// the copy audit flags, and --provenance full records the nearest training items. The
// library's CopyCheck (serve/verbs.h) with the auditor it uses.
OptionTable& copy_check_options(OptionTable& t);
struct CliCopyCheck : CopyCheck {
  std::shared_ptr<CopyAuditor> owned;  // null unless --reject-copies or --provenance full
};
CliCopyCheck copy_check(const Options& o, const std::string& model_dir);

}  // namespace imagine::cli
