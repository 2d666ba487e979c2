// The verbs of the imagine CLI. Each returns the process exit code and throws
// imagine::Error / UsageError, which main() turns into `error:` + `hint:` lines.
#pragma once
#include <string>
#include <vector>

namespace imagine::cli {

using Args = std::vector<std::string>;

int train(const Args& args);     // imagine train text ...
int generate(const Args& args);  // imagine generate text ...
int info(const Args& args);      // imagine info MODEL_DIR [--json]
int eval(const Args& args);      // imagine eval MODEL_DIR --data PATH [--json]

// Prints a line on stderr unless quiet (shared progress/log output of the verbs).
void note(bool quiet, const std::string& line);

}  // namespace imagine::cli
