// imagine: train generative models on your own data and generate from them.
// main() dispatches to one file per verb and is the single place where errors become
// `error:` / `hint:` lines and exit codes (1 = failure, 2 = usage).
#include <cstdio>
#include <cstring>
#include <iostream>

#include "commands.h"
#include "core/error.h"
#include "core/signals.h"

namespace {

const char* kUsage =
    "imagine — train generative models on your own data, then generate from them\n"
    "\n"
    "usage:\n"
    "  imagine train text --data PATH --out MODEL_DIR [--preset NAME] [--config FILE] [--steps N] [--resume] ...\n"
    "  imagine generate text --model MODEL_DIR [--prompt S] [--max-tokens N] [--seed S] ...\n"
    "  imagine train image --model vae|gan [--data PATH] --out MODEL_DIR [--size N] [--epochs N|--steps N] ...\n"
    "  imagine generate image --model MODEL_DIR --count N --out grid.png|DIR [--seed S] [--class C] [--truncation T]\n"
    "  imagine vary image --model MODEL_DIR --input a.png --count N --strength S --out DIR|grid.png\n"
    "  imagine blend image --model MODEL_DIR --inputs a.png:0.3,b.png:0.7 --out x.png\n"
    "  imagine interpolate image --model MODEL_DIR --from a.png|seed:N --to b.png|seed:M --steps K --out strip.png\n"
    "  imagine reconstruct image --model MODEL_DIR --input a.png --out r.png\n"
    "  imagine export image [--data PATH] --out DIR [--split test] [--count N]   (dataset images as PNG)\n"
    "  imagine train music [--data PATH] --out MODEL_DIR [--preset NAME] ...\n"
    "  imagine generate music --model MODEL_DIR --out piece.mid [--wav piece.wav] [--seconds S] [--seed S]\n"
    "  imagine continue music --model MODEL_DIR --primer phrase.mid [--primer-seconds S] --count N --out DIR\n"
    "  imagine render music input.mid --wav out.wav [--soundfont F]\n"
    "  imagine roll music input.mid --png roll.png\n"
    "  imagine detect FILE... [--model MODEL_DIR] [--json]        (is it watermarked?)\n"
    "  imagine verify FILE... [--trusted-keys FILE] [--json]      (is its provenance intact, who signed it?)\n"
    "  imagine keygen [--out DIR]                                 (Ed25519 key pair for signing outputs)\n"
    "  imagine audit --model MODEL_DIR FILE...|--generate N [--json]  (copies of the training data?)\n"
    "  imagine serve --models DIR [--port 7860] [--api-key KEY]  (HTTP API + OpenAI endpoints, docs/api.md)\n"
    "  imagine info MODEL_DIR [--json]\n"
    "  imagine eval MODEL_DIR --data PATH [--json]\n"
    "\n"
    "Run any command with --help for its options, defaults and presets.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace imagine;
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
      std::fputs(kUsage, stdout);
      return args.empty() ? 2 : 0;
    }
    if (args[0] == "--version") {
      std::printf("imagine 0.1.0 (LibTorch %d.%d)\n", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR);
      return 0;
    }
    install_interrupt_handlers();
    const std::string verb = args[0];
    cli::Args rest(args.begin() + 1, args.end());
    if (verb == "train") return cli::train(rest);
    if (verb == "generate") return cli::generate(rest);
    if (verb == "info") return cli::info(rest);
    if (verb == "eval") return cli::eval(rest);
    if (verb == "vary") return cli::vary(rest);
    if (verb == "blend") return cli::blend(rest);
    if (verb == "interpolate") return cli::interpolate(rest);
    if (verb == "reconstruct") return cli::reconstruct(rest);
    if (verb == "export") return cli::export_data(rest);
    if (verb == "continue") return cli::continue_music(rest);
    if (verb == "render") return cli::render(rest);
    if (verb == "roll") return cli::roll(rest);
    if (verb == "detect") return cli::detect(rest);
    if (verb == "verify") return cli::verify(rest);
    if (verb == "keygen") return cli::keygen(rest);
    if (verb == "audit") return cli::audit(rest);
    if (verb == "serve") return cli::serve(rest);
    throw UsageError("unknown command '" + verb + "'",
                     "commands: train, generate, vary, blend, interpolate, reconstruct, export, continue, render, roll, detect, "
                     "verify, keygen, audit, info, eval "
                     "(see imagine --help)");
  } catch (const UsageError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "hint: %s\n", e.hint().c_str());
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "hint: %s\n", e.hint().c_str());
    return 1;
  } catch (const c10::Error& e) {
    // Keep only torch's first line: the rest is a C++ backtrace.
    std::string msg = e.what_without_backtrace();
    msg = msg.substr(0, msg.find('\n'));
    std::fprintf(stderr, "error: %s\n", msg.c_str());
    std::fprintf(stderr, "hint: this is an internal tensor error; please report it with the command you ran\n");
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    std::fprintf(stderr, "hint: use a smaller model, batch or context\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    std::fprintf(stderr, "hint: please report this with the command you ran\n");
    return 1;
  }
}
