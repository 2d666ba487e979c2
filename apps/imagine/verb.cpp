// The shared front of the family verbs (see commands.h).
#include <cstdio>

#include "commands.h"
#include "core/error.h"

namespace imagine::cli {

int run_family_verb(const std::string& family, const std::string& verb, const Args& args, const OptionTable& table,
                    int (*run)(const Options&), bool positional) {
  if (args.empty() || args[0] != family) {
    if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
      std::printf("usage: %s   (see imagine %s %s --help)\n", table.usage().c_str(), verb.c_str(), family.c_str());
      return 0;
    }
    throw UsageError(args.empty() ? "missing model family" : "unknown model family '" + args[0] + "' for " + verb,
                     "usage: " + table.usage());
  }
  Options o = table.parse(Args(args.begin() + 1, args.end()));
  if (o.help_requested) {
    std::fputs(table.help_text().c_str(), stdout);
    return 0;
  }
  if (!positional && !o.positional.empty())
    throw UsageError("unexpected argument '" + o.positional[0] + "'", "usage: " + table.usage());
  return run(o);
}

}  // namespace imagine::cli
