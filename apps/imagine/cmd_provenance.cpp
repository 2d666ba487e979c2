// The responsible-generation verbs: `imagine detect` (is this watermarked?), `imagine verify`
// (is its provenance intact, and who signed it?), `imagine keygen` (a signing key pair), and
// the options every verb that writes generated content shares.
#include <cstdio>

#include "commands.h"
#include "core/error.h"
#include "core/options.h"
#include "provenance/carriers.h"
#include "provenance/detect.h"
#include "provenance/envelope.h"
#include "provenance/keys.h"
#include "provenance/output.h"
#include "provenance/verify.h"

namespace imagine::cli {

OptionTable& output_options(OptionTable& t, bool tokens) {
  t.flag("watermark", true, "watermark the output (--no-watermark opts out; the manifest then says so)")
      .text("watermark-key", "",
            "watermark key file (default: $XDG_CONFIG_HOME/imagine/watermark.key, created on first use)",
            "FILE")
      .choice("provenance", "minimal", {"none", "minimal", "full"},
              "manifest written with the output: full adds the prompt and the nearest training items")
      .text("sign-key", "",
            "Ed25519 key from `imagine keygen` (default: $XDG_CONFIG_HOME/imagine/signing.key if present)",
            "FILE");
  if (tokens) {
    TokenWatermarkParams d;
    t.integer("watermark-context", d.context, 1, 4,
              "tokens the green list depends on: 1 (lefthash) or 4 (selfhash)")
        .real("watermark-delta", d.delta, 0, 20,
              "logit bias of green tokens (higher: easier to detect, lower quality)")
        .real("watermark-gamma", d.gamma, 0.01, 0.99, "green fraction of the vocabulary");
  }
  return t;
}

OutputPolicy output_policy(const Options& o) {
  OutputPolicy p;
  p.watermark = o.b("watermark");
  p.watermark_key = o.s("watermark-key");
  p.sign_key = o.s("sign-key");
  p.level = parse_provenance_level(o.s("provenance"));
  p.created = source_date_epoch();
  if (o.table->find("watermark-context")) {
    p.tokens.context = static_cast<int>(o.i("watermark-context"));
    p.tokens.delta = o.f("watermark-delta");
    p.tokens.gamma = o.f("watermark-gamma");
    p.tokens.validate();
  }
  return p;
}

OptionTable& copy_check_options(OptionTable& t) {
  t.flag("reject-copies", false,
         "re-make outputs the copy audit flags as copies of the training data (see imagine audit); the "
         "manifest records "
         "the check")
      .integer("reject-copies-tries", 4, 1, 100, "attempts per output under --reject-copies");
  return t;
}

CliCopyCheck copy_check(const Options& o, const std::string& model_dir) {
  CliCopyCheck c;
  c.reject = o.b("reject-copies");
  c.tries = static_cast<int>(o.i("reject-copies-tries"));
  c.attribute = o.s("provenance") == "full";
  const bool quiet = o.table->find("quiet") && o.b("quiet");
  c.warn = [quiet](const std::string& s) { note(quiet, s); };
  if (c.reject || c.attribute) {
    c.owned = open_copy_auditor(model_dir, AuditOptions{}, c.warn);
    c.auditor = c.owned.get();
  }
  return c;
}

namespace {

const OptionTable& detect_table() {
  static const OptionTable table = [] {
    TokenWatermarkParams d;
    DetectionPolicy pol;
    OptionTable t(
        "imagine detect FILE... [--model DIR] [--json]",
        "Check files for imagine's watermark. The type is sniffed from the bytes: text and MIDI are scored "
        "with the token watermark, PNG and JPEG with the image watermark; WAV has no audio watermark "
        "(its provenance is reported). Exit status 0 whatever the verdict.");
    t.text("model", "",
           "model directory: its tokenizer (text) or event vocabulary (MIDI); default: byte tokens", "DIR")
        .text("watermark-key", "", "watermark key file (default: $XDG_CONFIG_HOME/imagine/watermark.key)",
              "FILE")
        .real("z-threshold", pol.z_threshold, 0, 100, "verdict 'watermarked' above this z (4 = p < 3.2e-5)")
        .integer("min-tokens", pol.min_tokens, 1, 1e9,
                 "fewer scored tokens than this without a mark: inconclusive")
        .real("entropy-threshold", 0, 0, 20,
              "text: score only positions where --model's next-token entropy is at least this many nats "
              "(SWEET; 0 = all)")
        .integer("watermark-context", d.context, 1, 4,
                 "token context of the green list, when the file has no manifest")
        .real("watermark-gamma", d.gamma, 0.01, 0.99, "green fraction, when the file has no manifest")
        .flag("json", false, "one JSON object per file, one per line");
    return t;
  }();
  return table;
}

int detect_cmd(const Options& o) {
  if (o.positional.empty()) throw UsageError("missing FILE", "usage: " + detect_table().usage());
  DetectOptions opt;
  opt.watermark_key = o.s("watermark-key");
  opt.model_dir = o.s("model");
  opt.policy.z_threshold = o.f("z-threshold");
  opt.policy.min_tokens = o.i("min-tokens");
  opt.entropy_threshold = o.f("entropy-threshold");
  opt.tokens.context = static_cast<int>(o.i("watermark-context"));
  opt.tokens.gamma = o.f("watermark-gamma");
  opt.tokens.validate();
  for (const auto& path : o.positional) {
    const DetectReport r = detect_file(path, opt);
    if (o.b("json")) {
      std::printf("%s\n", r.to_json().dump().c_str());
    } else if (r.unit.empty()) {
      std::printf("%s: %s — %s (%s)\n", path.c_str(), r.type.c_str(), r.verdict.c_str(), r.note.c_str());
    } else {
      std::printf("%s: %s — %s (z %.2f, p %.3g, %lld %s scored, %s)%s%s\n", path.c_str(), r.type.c_str(),
                  r.verdict.c_str(), r.z, r.p_value, (long long)r.scored, r.unit.c_str(), r.method.c_str(),
                  r.note.empty() ? "" : "; ", r.note.c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}

const OptionTable& verify_table() {
  static const OptionTable table = [] {
    OptionTable t(
        "imagine verify FILE... [--trusted-keys FILE] [--json]",
        "Check the provenance of files: the content hash against the manifest, the signature, and whether "
        "the signer's key is trusted. Exit status 0 when every file is intact (signed or not), 1 otherwise.");
    t.text("trusted-keys", "",
           "public keys to trust, one per line (default: $XDG_CONFIG_HOME/imagine/trusted.keys)", "FILE")
        .flag("json", false, "one JSON object per file, one per line");
    return t;
  }();
  return table;
}

int verify_cmd(const Options& o) {
  if (o.positional.empty()) throw UsageError("missing FILE", "usage: " + verify_table().usage());
  const std::vector<std::string> trusted = load_default_trusted_keys(o.s("trusted-keys"));
  bool all_ok = true;
  for (const auto& path : o.positional) {
    const VerifyReport r = verify_file(path, trusted);
    all_ok = all_ok && r.intact();
    if (o.b("json")) {
      std::printf("%s\n", r.to_json().dump().c_str());
    } else {
      std::printf("%s: %s\n", path.c_str(), r.summary().c_str());
    }
    std::fflush(stdout);
  }
  return all_ok ? 0 : 1;
}

const OptionTable& keygen_table() {
  static const OptionTable table = [] {
    OptionTable t(
        "imagine keygen [--out DIR]",
        "Create an Ed25519 key pair for signing provenance manifests: DIR/signing.key (private, mode 0600) "
        "and DIR/signing.pub. Refuses to overwrite. Outputs are signed whenever "
        "$XDG_CONFIG_HOME/imagine/signing.key exists or --sign-key is given.");
    t.text("out", "", "folder for the key pair (default: $XDG_CONFIG_HOME/imagine)", "DIR");
    return t;
  }();
  return table;
}

int keygen_cmd(const Options& o) {
  const std::string dir = o.s("out").empty() ? config_dir() : o.s("out");
  const SigningKey k = generate_keypair(dir);
  std::printf("wrote %s/signing.key (private, 0600) and %s/signing.pub\nkey id %s\n", dir.c_str(),
              dir.c_str(), k.key_id().c_str());
  return 0;
}

int run_plain(const OptionTable& table, const Args& args, int (*run)(const Options&)) {
  Options o = table.parse(args);
  if (o.help_requested) return std::fputs(table.help_text().c_str(), stdout), 0;
  return run(o);
}

}  // namespace

int detect(const Args& args) { return run_plain(detect_table(), args, detect_cmd); }
int verify(const Args& args) { return run_plain(verify_table(), args, verify_cmd); }
int keygen(const Args& args) {
  Options o = keygen_table().parse(args);
  if (o.help_requested) return std::fputs(keygen_table().help_text().c_str(), stdout), 0;
  if (!o.positional.empty())
    throw UsageError("unexpected argument '" + o.positional[0] + "'", "usage: imagine keygen [--out DIR]");
  return keygen_cmd(o);
}

}  // namespace imagine::cli
