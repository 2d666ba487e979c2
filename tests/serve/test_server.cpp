// `imagine serve` end to end: a real server process on a free loopback port, a tiny text
// model in its models folder, and requests over real sockets (tests/support/http_client.h).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "../support/http_client.h"
#include "../support/run_cli.h"
#include "../support/shared_models.h"
#include "../support/temp_dir.h"
#include "core/utf8.h"
#include "music/midi.h"
#include "provenance/envelope.h"

namespace fs = std::filesystem;
using imagine::testing::describe;
using imagine::testing::g_tmp;
using imagine::testing::has;
using imagine::testing::http;
using imagine::testing::HttpResponse;
using imagine::testing::run_imagine;
using imagine::testing::slurp;
using imagine::testing::sse_events;
using json = nlohmann::json;

namespace {

// A running `imagine serve`: started with --port 0, its port read from its first line.
struct ServerProc {
  pid_t pid = -1;
  int port = 0;
  std::string out, err, log;
  bool start(const std::vector<std::string>& extra, const std::string& name) {
    out = g_tmp + "/" + name + ".out";
    err = g_tmp + "/" + name + ".err";
    std::vector<std::string> args = {"serve", "--port", "0", "--quiet", "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid = imagine::testing::spawn_imagine(args, out, err);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string o = slurp(out);
      const size_t at = o.find("http://127.0.0.1:");
      if (at != std::string::npos && o.find('/', at + 17) != std::string::npos) {
        port = std::atoi(o.c_str() + at + 17);
        return port > 0;
      }
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        log = "server exited early: " + slurp(err);
        pid = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    log = "server printed no port: " + slurp(out) + slurp(err);
    return false;
  }
  bool alive() const { return pid > 0 && kill(pid, 0) == 0 && waitpid(pid, nullptr, WNOHANG) == 0; }
  // SIGTERM; returns the exit code (-1 when it had to be killed).
  int stop() {
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    imagine::testing::ProcResult r;
    imagine::testing::wait_for(pid, r, 30);
    pid = -1;
    return r.exited ? r.code : -1;
  }
  ~ServerProc() {
    if (pid > 0) stop();
  }
};

std::string write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// 20 kB of tinyshakespeare, or English-like filler where the data set is missing.
std::string corpus_text() {
  const std::string shakes = std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/tinyshakespeare/input.txt";
  std::string text = fs::exists(shakes) ? slurp(shakes).substr(0, 20000) : std::string();
  for (int i = 0; text.size() < 20000; i++)
    text += "the king and the queen of a fair day " + std::to_string(i % 7) + "\n";
  return text;
}

// Runs a CLI verb that writes `file` and returns the file's bytes ("" after a failure).
std::string cli_output(const std::vector<std::string>& args, const std::string& file) {
  auto r = run_imagine(args);
  EXPECT_TRUE(r.exited && r.code == 0) << describe(args, r);
  return r.exited && r.code == 0 ? slurp(file) : "";
}

json body_json(const HttpResponse& r) {
  try {
    return json::parse(r.body);
  } catch (...) {
    return json();
  }
}

// A 4xx JSON error with a message and a hint.
::testing::AssertionResult is_json_error(const HttpResponse& r, int status) {
  if (!r.well_formed) return ::testing::AssertionFailure() << "malformed response: " << r.problem;
  if (r.status != status)
    return ::testing::AssertionFailure() << "status " << r.status << ", body " << r.body;
  const json j = body_json(r);
  if (!j.contains("error") || !j["error"].contains("message") || !j["error"]["message"].is_string() ||
      j["error"]["message"].get<std::string>().empty() || !j["error"].contains("hint"))
    return ::testing::AssertionFailure() << "no {error: {message, hint}} body: " << r.body;
  return ::testing::AssertionSuccess();
}

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_tmp = imagine::testing::make_temp_dir("imagine_serve_");
    ASSERT_FALSE(g_tmp.empty());
    models_ = g_tmp + "/models";
    // Text, image and music models, trained once per binary (ctest runs each test alone).
    const std::string shared = imagine::testing::shared_models("serve", 1, [](const std::string& dir) {
      const std::string corpus = write_text(dir + "/corpus.txt", corpus_text());
      const std::string chorales =
          std::string(IMAGINE_SOURCE_DIR) + "/../shared/data/jsb-chorales/jsb-chorales-16th.json";
      const std::vector<std::vector<std::string>> trains = {
          {"train", "text", "--data", corpus, "--out", dir + "/models/tiny", "--preset", "tiny", "--steps",
           "30", "--quiet", "--no-samples", "--threads", "1"},
          {"train", "image", "--model", "vae", "--out", dir + "/models/vae", "--preset", "tiny", "--threads",
           "1", "--feature-cache", dir + "/cache", "--quiet"},
          {"train", "music", "--data", chorales, "--out", dir + "/models/bach", "--preset", "tiny", "--quiet",
           "--threads", "1"}};
      std::string log;
      const bool ok = imagine::testing::run_all(trains, 600, &log);
      if (!ok) std::fprintf(stderr, "%s\n", log.c_str());
      return ok;
    });
    ASSERT_FALSE(shared.empty()) << "training the shared models failed";
    fs::copy(shared + "/models", models_, fs::copy_options::recursive);
    fs::create_directories(models_ + "/not-a-model");
    // A model outside the folder, reachable through a symlink: must not be served.
    fs::copy(models_ + "/tiny", g_tmp + "/outside", fs::copy_options::recursive);
    fs::create_directory_symlink(g_tmp + "/outside", models_ + "/escape");
    const std::string text = corpus_text();
    // Data for training jobs: a folder inside the data root, and a file outside it.
    fs::create_directories(g_tmp + "/data/poems");
    write_text(g_tmp + "/data/poems/a.txt", text);
    write_text(g_tmp + "/secret.txt", text);
    ::setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
    server_ = new ServerProc;
    ASSERT_TRUE(
        server_->start({"--models", models_, "--max-tokens", "400", "--data-root", g_tmp + "/data"}, "main"))
        << server_->log;
  }
  static void TearDownTestSuite() {
    delete server_;
    ::unsetenv("SOURCE_DATE_EPOCH");
    fs::remove_all(g_tmp);
  }
  static HttpResponse post(const std::string& path, const json& body) {
    return http(port(), "POST", path, body.dump());
  }
  static int port() { return server_->port; }

  static inline std::string models_;
  static inline ServerProc* server_ = nullptr;
};

}  // namespace

TEST_F(Serve, HealthAndModelList) {
  auto h = http(port(), "GET", "/health");
  ASSERT_TRUE(h.well_formed) << h.problem;
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(body_json(h).value("status", ""), "ok") << h.body;
  auto m = http(port(), "GET", "/api/models");
  ASSERT_EQ(m.status, 200) << m.body;
  const json list = body_json(m)["models"];
  ASSERT_EQ(list.size(), 3u) << "only the real models inside the folder are listed: " << m.body;
  EXPECT_EQ(list[0]["name"], "bach");
  EXPECT_EQ(list[0]["family"], "gpt-music");
  EXPECT_EQ(list[1]["name"], "tiny");
  EXPECT_EQ(list[1]["family"], "gpt-text");
  EXPECT_EQ(list[2]["name"], "vae");
  EXPECT_EQ(list[2]["family"], "image");
  EXPECT_TRUE(list[1]["model_card"].is_string() && has(list[1]["model_card"].get<std::string>(), "---"))
      << "the model card (README.md) comes with the model";
  auto one = http(port(), "GET", "/api/models/tiny");
  EXPECT_EQ(one.status, 200);
  EXPECT_EQ(body_json(one)["architecture"], list[1]["architecture"]);
  auto v1 = http(port(), "GET", "/v1/models");
  EXPECT_EQ(body_json(v1)["data"].size(), 1u) << "OpenAI's list holds the text models only: " << v1.body;
}

// The same request gives the same bytes from the CLI (--out file + sidecar) and the API.
TEST_F(Serve, TextMatchesTheCliByteForByte) {
  // top-k 5 keeps the barely trained model to the common (ASCII) bytes: JSON carries UTF-8.
  auto r = post("/api/generate/text",
                {{"model", "tiny"}, {"prompt", "ROMEO:"}, {"max_tokens", 48}, {"seed", 7}, {"top_k", 5}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = body_json(r);
  const std::string file = g_tmp + "/cli.txt";
  const std::vector<std::string> cli = {
      "generate", "text",      "--model", models_ + "/tiny", "--prompt", "ROMEO:", "--max-tokens",
      "48",       "--seed",    "7",       "--top-k",         "5",        "--out",  file,
      "--quiet",  "--threads", "1"};
  const std::string written = cli_output(cli, file);
  ASSERT_FALSE(written.empty());
  ASSERT_TRUE(imagine::is_valid_utf8(written)) << "the comparison needs UTF-8 text";
  EXPECT_EQ(j["file"].get<std::string>(), written);
  std::string exact;
  ASSERT_TRUE(imagine::base64_decode(j["file_base64"], exact));
  EXPECT_EQ(exact, written);
  EXPECT_EQ(j["manifest"].dump(2) + "\n", slurp(file + ".provenance.json"));
  EXPECT_EQ(j["samples"][0]["text"].get<std::string>(), written.substr(6, written.size() - 7));
  EXPECT_EQ(j["manifest"]["watermark"]["applied"], true);
  EXPECT_EQ(j["manifest"]["created"], "2023-11-14T22:13:20Z") << "SOURCE_DATE_EPOCH fixes the time";
}

// reject_copies and attribution do what --reject-copies and --provenance full do on the CLI:
// the same file and manifest for the same request, the check in the answer too; images and
// music carry theirs; a stream cannot be held back for the audit (400).
TEST_F(Serve, CopyChecksAsOnTheCli) {
  auto r = post("/api/generate/text", {{"model", "tiny"},
                                       {"prompt", "ROMEO:"},
                                       {"max_tokens", 40},
                                       {"seed", 11},
                                       {"top_k", 5},
                                       {"reject_copies", true},
                                       {"reject_copies_tries", 2}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = body_json(r);
  const json& sample = j["samples"][0];
  ASSERT_TRUE(sample.contains("copy_check")) << r.body;
  EXPECT_TRUE(sample["copy_check"]["result"] == "passed" || sample["copy_check"]["result"] == "flagged");
  EXPECT_EQ(j["manifest"]["copy_check"], sample["copy_check"]);
  EXPECT_EQ(j["manifest"]["generation"]["seeds_used"][0], sample["seed"]);
  const std::string file = g_tmp + "/cli-checked.txt";
  const std::string written = cli_output({"generate",
                                          "text",
                                          "--model",
                                          models_ + "/tiny",
                                          "--prompt",
                                          "ROMEO:",
                                          "--max-tokens",
                                          "40",
                                          "--seed",
                                          "11",
                                          "--top-k",
                                          "5",
                                          "--reject-copies",
                                          "--reject-copies-tries",
                                          "2",
                                          "--out",
                                          file,
                                          "--quiet",
                                          "--threads",
                                          "1"},
                                         file);
  ASSERT_FALSE(written.empty());
  EXPECT_EQ(j["file"].get<std::string>(), written);
  EXPECT_EQ(j["manifest"].dump(2) + "\n", slurp(file + ".provenance.json"));

  auto a =
      post("/api/generate/text",
           {{"model", "tiny"}, {"prompt", "ROMEO:"}, {"max_tokens", 30}, {"seed", 3}, {"attribution", true}});
  ASSERT_EQ(a.status, 200) << a.body;
  const json attr = body_json(a)["samples"][0]["attribution"];
  EXPECT_TRUE(attr.contains("summary") && attr.contains("flagged") && attr.contains("audit")) << a.body;
  EXPECT_TRUE(body_json(a)["manifest"]["attribution"].is_null())
      << "the manifest keeps the server's --provenance level (minimal here): attribution in the answer only";
  EXPECT_TRUE(is_json_error(
      post("/api/generate/text", {{"model", "tiny"}, {"stream", true}, {"reject_copies", true}}), 400));
  EXPECT_TRUE(
      is_json_error(post("/api/generate/text", {{"model", "tiny"}, {"reject_copies_tries", 0}}), 400));

  auto img =
      post("/api/generate/image",
           {{"model", "vae"}, {"count", 2}, {"seed", 4}, {"reject_copies", true}, {"attribution", true}});
  ASSERT_EQ(img.status, 200) << img.body.substr(0, 300);
  for (const json& one : body_json(img)["images"]) {
    EXPECT_TRUE(one.contains("copy_check") && one.contains("attribution")) << one.dump().substr(0, 300);
    EXPECT_EQ(one["manifest"]["copy_check"], one["copy_check"]);
  }
  // At --provenance full the server attributes every output, and the manifest holds it, as
  // `generate text --provenance full` writes it.
  ServerProc full;
  ASSERT_TRUE(full.start({"--models", models_, "--provenance", "full", "--threads", "1"}, "full"))
      << full.log;
  auto f = http(
      full.port, "POST", "/api/generate/text",
      json{{"model", "tiny"}, {"prompt", "ROMEO:"}, {"max_tokens", 30}, {"seed", 3}, {"top_k", 5}}.dump());
  ASSERT_EQ(f.status, 200) << f.body;
  const json fj = body_json(f);
  EXPECT_FALSE(fj["manifest"]["attribution"].is_null()) << f.body.substr(0, 400);
  const std::string full_file = g_tmp + "/cli-full.txt";
  const std::string full_written = cli_output(
      {"generate", "text", "--model", models_ + "/tiny", "--prompt", "ROMEO:", "--max-tokens", "30", "--seed",
       "3", "--top-k", "5", "--provenance", "full", "--out", full_file, "--quiet", "--threads", "1"},
      full_file);
  EXPECT_EQ(fj["file"].get<std::string>(), full_written);
  EXPECT_EQ(fj["manifest"].dump(2) + "\n", slurp(full_file + ".provenance.json"));
  auto oa = http(full.port, "POST", "/v1/completions",
                 json{{"model", "tiny"}, {"prompt", "ROMEO:"}, {"max_tokens", 20}, {"seed", 3}}.dump());
  ASSERT_EQ(oa.status, 200) << oa.body;
  EXPECT_FALSE(body_json(oa)["provenance"]["attribution"].is_null()) << "the OpenAI answers' manifest too";

  auto music =
      post("/api/generate/music",
           {{"model", "bach"}, {"seconds", 4}, {"seed", 5}, {"reject_copies", true}, {"wav", false}});
  ASSERT_EQ(music.status, 200) << music.body.substr(0, 300);
  const json mj = body_json(music);
  ASSERT_TRUE(mj.contains("copy_check")) << music.body.substr(0, 300);
  EXPECT_EQ(mj["midi"]["manifest"]["copy_check"], mj["copy_check"]);
}

// serve --decode-precision bf16: the server's decoder multiplies by bf16 weights, and a
// request gives the same bytes as `generate text --decode-precision bf16`, manifest included.
TEST_F(Serve, Bf16DecodingMatchesTheCli) {
  ServerProc bf;
  ASSERT_TRUE(bf.start({"--models", models_, "--decode-precision", "bf16"}, "bf16")) << bf.log;
  auto r = http(
      bf.port, "POST", "/api/generate/text",
      json{{"model", "tiny"}, {"prompt", "ROMEO:"}, {"max_tokens", 40}, {"seed", 9}, {"top_k", 5}}.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = body_json(r);
  EXPECT_EQ(j["manifest"]["generation"]["decode_precision"], "bf16") << j["manifest"].dump();
  const std::string file = g_tmp + "/cli-bf16.txt";
  const std::string written = cli_output(
      {"generate", "text", "--model", models_ + "/tiny", "--prompt", "ROMEO:", "--max-tokens", "40", "--seed",
       "9", "--top-k", "5", "--decode-precision", "bf16", "--out", file, "--quiet", "--threads", "1"},
      file);
  EXPECT_EQ(j["file"].get<std::string>(), written);
  EXPECT_EQ(j["manifest"].dump(2) + "\n", slurp(file + ".provenance.json"));
}

TEST_F(Serve, StreamsTextAsServerSentEvents) {
  auto r = post("/api/generate/text",
                {{"model", "tiny"}, {"prompt", "KING:"}, {"max_tokens", 60}, {"seed", 3}, {"stream", true}});
  ASSERT_TRUE(r.well_formed) << r.problem;
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  const auto events = sse_events(r.body);
  ASSERT_GE(events.size(), 3u) << r.body;
  std::string streamed;
  for (size_t i = 0; i + 1 < events.size(); i++) {
    EXPECT_EQ(events[i].first, "token");
    const std::string piece = json::parse(events[i].second)["text"];
    EXPECT_TRUE(imagine::is_valid_utf8(piece)) << "pieces end on character boundaries";
    streamed += piece;
  }
  ASSERT_EQ(events.back().first, "done");
  const json done = json::parse(events.back().second);
  EXPECT_EQ(streamed, done["samples"][0]["text"].get<std::string>());
  EXPECT_TRUE(done["manifest"].is_object());
  // Streaming changes nothing: the same request without it gives the same text.
  auto plain =
      post("/api/generate/text", {{"model", "tiny"}, {"prompt", "KING:"}, {"max_tokens", 60}, {"seed", 3}});
  EXPECT_EQ(body_json(plain)["samples"][0]["text"], done["samples"][0]["text"]);
}

TEST_F(Serve, OpenAiCompletionsAndChat) {
  auto models = http(port(), "GET", "/v1/models");
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(body_json(models)["object"], "list");
  EXPECT_EQ(body_json(models)["data"][0]["id"], "tiny");
  EXPECT_TRUE(is_json_error(post("/v1/completions", {{"model", "vae"}, {"prompt", "x"}}), 400))
      << "not a text model";

  const json req = {{"model", "tiny"},
                    {"prompt", "To be"},
                    {"max_tokens", 20},
                    {"n", 2},
                    {"seed", 11},
                    {"temperature", 0.9},
                    {"stop", json::array({"\n\n"})}};
  auto a = post("/v1/completions", req);
  ASSERT_EQ(a.status, 200) << a.body;
  const json ja = body_json(a);
  EXPECT_EQ(ja["object"], "text_completion");
  ASSERT_EQ(ja["choices"].size(), 2u);
  for (auto& c : ja["choices"]) {
    EXPECT_TRUE(c["finish_reason"] == "length" || c["finish_reason"] == "stop") << c;
    EXPECT_EQ(c["text"].get<std::string>().find("\n\n"), std::string::npos) << "stops before the stop string";
  }
  EXPECT_LE(ja["usage"]["completion_tokens"].get<int>(), 40);
  EXPECT_EQ(ja["usage"]["total_tokens"].get<int>(),
            ja["usage"]["prompt_tokens"].get<int>() + ja["usage"]["completion_tokens"].get<int>());
  EXPECT_TRUE(ja["provenance"].is_object());
  auto b = post("/v1/completions", req);
  EXPECT_EQ(body_json(b)["choices"], ja["choices"]) << "a seed makes completions repeatable";

  const json chat = {{"model", "tiny"},
                     {"messages", json::array({{{"role", "user"}, {"content", "Speak."}}})},
                     {"max_tokens", 30},
                     {"seed", 5}};
  auto c = post("/v1/chat/completions", chat);
  ASSERT_EQ(c.status, 200) << c.body;
  const json jc = body_json(c);
  EXPECT_EQ(jc["object"], "chat.completion");
  EXPECT_EQ(jc["choices"][0]["message"]["role"], "assistant");
  json chat_stream = chat;
  chat_stream["stream"] = true;
  auto s = post("/v1/chat/completions", chat_stream);
  ASSERT_EQ(s.status, 200) << s.body;
  const auto events = sse_events(s.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().second, "[DONE]");
  std::string content;
  for (auto& [ev, data] : events) {
    if (data == "[DONE]") continue;
    const json chunk = json::parse(data);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    for (auto& ch : chunk["choices"])
      if (ch["delta"].contains("content")) content += ch["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(content, jc["choices"][0]["message"]["content"].get<std::string>());
}

TEST_F(Serve, BadRequestsGetJsonErrorsAndTheServerStaysUp) {
  EXPECT_TRUE(is_json_error(http(port(), "POST", "/api/generate/text", "{not json"), 400));
  EXPECT_TRUE(is_json_error(http(port(), "POST", "/api/generate/text", "[1,2]"), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/text", {{"prompt", "x"}}), 400)) << "no model";
  EXPECT_TRUE(is_json_error(post("/api/generate/text", {{"model", "tiny"}, {"max_tokens", -1}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/text", {{"model", "tiny"}, {"max_tokens", 1e12}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/text", {{"model", "tiny"}, {"count", 100000}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/text", {{"model", "tiny"}, {"temperature", "hot"}}), 400));
  EXPECT_TRUE(is_json_error(post("/v1/completions", {{"model", "tiny"}, {"n", 0}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/text", {{"model", "../../etc/passwd"}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/text", {{"model", "/etc"}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/text", {{"model", ".."}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/text", {{"model", "escape"}}), 404))
      << "symlink out of the folder";
  EXPECT_TRUE(is_json_error(post("/api/generate/text", {{"model", "not-a-model"}}), 404));
  EXPECT_TRUE(is_json_error(post("/api/generate/text", {{"model", "nope"}}), 404));
  EXPECT_TRUE(is_json_error(http(port(), "GET", "/api/models/..%2F..%2Fetc"), 404));
  EXPECT_TRUE(is_json_error(http(port(), "GET", "/no/such/route"), 404));
  EXPECT_TRUE(
      is_json_error(post("/v1/chat/completions", {{"model", "tiny"}, {"messages", json::array()}}), 400));
  EXPECT_TRUE(is_json_error(
      post("/v1/chat/completions", {{"model", "tiny"}, {"messages", json::array({{{"role", "robot"}}})}}),
      400));
  // Invalid UTF-8 in a prompt (the JSON parser takes the escaped bytes as text).
  EXPECT_TRUE(is_json_error(
      http(port(), "POST", "/api/generate/text", "{\"model\":\"tiny\",\"prompt\":\"\xff\xfe\"}"), 400));
  // A body over the limit (16 MiB default) is refused before it is read whole.
  EXPECT_TRUE(is_json_error(http(port(), "POST", "/api/generate/text", std::string(17 << 20, ' ')), 413));
  // An empty upload.
  EXPECT_TRUE(is_json_error(
      http(port(), "POST", "/api/verify", "", {"Content-Type: application/octet-stream"}), 400));
  auto h = http(port(), "GET", "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_TRUE(server_->alive());
}

TEST_F(Serve, ConcurrentRequestsAreDecodedInOneBatch) {
  std::vector<std::thread> clients;
  std::vector<HttpResponse> answers(8);
  for (int i = 0; i < 8; i++)
    clients.emplace_back([&, i] {
      answers[i] = post("/api/generate/text",
                        {{"model", "tiny"}, {"prompt", "A"}, {"max_tokens", 120}, {"seed", 100 + i}});
    });
  for (auto& t : clients) t.join();
  std::set<std::string> texts;
  for (auto& a : answers) {
    ASSERT_EQ(a.status, 200) << a.body;
    const json s = body_json(a)["samples"][0];
    EXPECT_TRUE(s["tokens"] == 120 || s["stop_reason"] == "stop") << s;
    texts.insert(s["text"].get<std::string>());
  }
  EXPECT_GE(texts.size(), 4u) << "each request samples from its own seed";
  const std::string metrics = http(port(), "GET", "/metrics").body;
  const size_t at = metrics.find("\nimagine_text_max_batch ");
  ASSERT_NE(at, std::string::npos) << metrics;
  EXPECT_GE(std::atof(metrics.c_str() + at + 24), 2.0) << "concurrent requests shared decoding rounds";
}

TEST_F(Serve, MetricsInPrometheusFormat) {
  post("/api/generate/text", {{"model", "tiny"}, {"max_tokens", 5}, {"seed", 1}});
  http(port(), "GET", "/no/such/route");
  auto m = http(port(), "GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_TRUE(has(m.header("content-type"), "text/plain"));
  EXPECT_TRUE(has(m.body, "imagine_http_requests_total{route=\"/api/generate/text\",status=\"200\"}"))
      << m.body;
  EXPECT_TRUE(has(m.body, "imagine_http_requests_total{route=\"other\",status=\"404\"}")) << m.body;
  EXPECT_TRUE(
      has(m.body, "imagine_http_request_duration_seconds_bucket{route=\"/api/generate/text\",le=\"+Inf\"}"));
  EXPECT_TRUE(has(m.body, "# TYPE imagine_queue_depth gauge"));
  const size_t at = m.body.find("\nimagine_generated_tokens_total ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GT(std::atof(m.body.c_str() + at + 32), 0.0);
}

// Multipart upload of a generated text and its manifest: intact, then tampered with.
TEST_F(Serve, VerifyAndDetectUploads) {
  auto g =
      post("/api/generate/text", {{"model", "tiny"}, {"prompt", "Hark"}, {"max_tokens", 200}, {"seed", 9}});
  ASSERT_EQ(g.status, 200);
  // The exact bytes: a barely trained byte model samples invalid UTF-8, which "file" (JSON
  // text) carries as U+FFFD.
  std::string file;
  ASSERT_TRUE(imagine::base64_decode(body_json(g)["file_base64"], file));
  const std::string manifest = body_json(g)["manifest"].dump(2) + "\n";
  auto multipart = [](const std::string& content, const std::string& side) {
    const std::string b = "XyZboundary42";
    std::string body = "--" + b +
                       "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"out.txt\"\r\n" +
                       "Content-Type: text/plain\r\n\r\n" + content + "\r\n";
    body +=
        "--" + b +
        "\r\nContent-Disposition: form-data; name=\"manifest\"; filename=\"out.txt.provenance.json\"\r\n" +
        "Content-Type: application/json\r\n\r\n" + side + "\r\n--" + b + "--\r\n";
    return std::make_pair(body, "Content-Type: multipart/form-data; boundary=" + b);
  };
  auto [ok_body, type] = multipart(file, manifest);
  auto v = http(port(), "POST", "/api/verify", ok_body, {type});
  ASSERT_EQ(v.status, 200) << v.body;
  EXPECT_EQ(body_json(v)["intact"], true) << v.body;
  std::string changed = file;
  changed[changed.size() / 2] ^= 1;
  auto bad = http(port(), "POST", "/api/verify", multipart(changed, manifest).first, {type});
  ASSERT_EQ(bad.status, 200);
  EXPECT_EQ(body_json(bad)["intact"], false) << bad.body;
  // With its manifest as the sidecar, the upload is text even where the bytes are not UTF-8.
  auto d = http(port(), "POST", "/api/detect?model=tiny", ok_body, {type});
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(body_json(d)["type"], "text");
  EXPECT_GT(body_json(d)["z"].get<double>(), 2.0) << "the server's output carries its watermark: " << d.body;
  // The copy audit of an upload: training text is flagged, the model's own sample is checked too.
  auto copied = http(port(), "POST", "/api/audit?model=tiny", corpus_text().substr(1000, 3000),
                     {"Content-Type: text/plain"});
  ASSERT_EQ(copied.status, 200) << copied.body;
  EXPECT_EQ(body_json(copied)["kind"], "text");
  EXPECT_EQ(body_json(copied)["flagged"], true) << copied.body;
  auto vae_audit = http(port(), "POST", "/api/audit?model=vae", ok_body, {type});
  EXPECT_TRUE(is_json_error(vae_audit, 400)) << "text against an image model";
  EXPECT_TRUE(is_json_error(http(port(), "POST", "/api/audit", file, {"Content-Type: text/plain"}), 400));
}

TEST_F(Serve, FullQueueAnswers503WithRetryAfter) {
  ServerProc small;
  ASSERT_TRUE(small.start({"--models", models_, "--slots", "1", "--text-queue", "0"}, "small")) << small.log;
  std::vector<std::thread> clients;
  std::vector<HttpResponse> answers(4);
  for (int i = 0; i < 4; i++)
    clients.emplace_back([&, i] {
      answers[i] = http(small.port, "POST", "/api/generate/text",
                        json{{"model", "tiny"}, {"max_tokens", 300}, {"seed", i}}.dump());
    });
  for (auto& t : clients) t.join();
  int ok = 0, busy = 0;
  for (auto& a : answers) {
    ASSERT_TRUE(a.well_formed) << a.problem;
    if (a.status == 200) ok++;
    if (a.status == 503) {
      busy++;
      EXPECT_FALSE(a.header("retry-after").empty());
      EXPECT_TRUE(is_json_error(a, 503));
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, 1) << "one slot and no queue: concurrent requests beyond it are refused";
  EXPECT_EQ(ok + busy, 4);
}

// A request that would run far past --timeout ends there, with what it made so far: text
// with stop reason "timeout", music as a piece that ends early (valid MIDI). Text asks for
// 200000 tokens and music for an hour: minutes of work, cut after one second.
TEST_F(Serve, LongRequestsStopAtTheTimeout) {
  ServerProc quick;
  ASSERT_TRUE(quick.start({"--models", models_, "--timeout", "1", "--max-tokens", "1000000",
                           "--max-music-seconds", "3600", "--threads", "1"},
                          "quick"))
      << quick.log;
  const auto t0 = std::chrono::steady_clock::now();
  auto text = http(quick.port, "POST", "/api/generate/text",
                   json{{"model", "tiny"}, {"max_tokens", 200000}, {"seed", 1}}.dump(), {}, 120);
  const double text_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(text.status, 200) << text.body;
  const json t = body_json(text)["samples"][0];
  EXPECT_EQ(t["stop_reason"], "timeout") << text.body.substr(0, 300);
  EXPECT_GT(t["tokens"].get<int64_t>(), 0);
  EXPECT_LT(t["tokens"].get<int64_t>(), 200000);
  EXPECT_LT(text_s, 60) << "cut at the timeout, not run to the end";
  const auto t1 = std::chrono::steady_clock::now();
  auto music = http(quick.port, "POST", "/api/generate/music",
                    json{{"model", "bach"},
                         {"seconds", 3600},
                         {"max_tokens", 1000000},
                         {"seed", 2},
                         {"wav", false},
                         {"roll", false}}
                        .dump(),
                    {}, 120);
  const double music_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  ASSERT_EQ(music.status, 200) << music.body;
  const json m = body_json(music);
  EXPECT_EQ(m["stop_reason"], "timeout") << music.body.substr(0, 300);
  EXPECT_LT(m["seconds"].get<double>(), 3600);
  EXPECT_LT(music_s, 60);
  std::string midi;
  ASSERT_TRUE(imagine::base64_decode(m["midi"]["base64"].get<std::string>(), midi));
  const imagine::Song song = imagine::parse_midi(midi, "the answer");  // throws when not valid MIDI
  EXPECT_GT(song.notes.size(), 0u) << "the piece cut short keeps its notes";
  EXPECT_EQ(http(quick.port, "GET", "/health").status, 200);
}

TEST_F(Serve, ApiKeyIsRequiredWhenSet) {
  ServerProc keyed;
  ASSERT_TRUE(keyed.start({"--models", models_, "--api-key", "s3cret"}, "keyed")) << keyed.log;
  EXPECT_EQ(http(keyed.port, "GET", "/health").status, 200) << "health stays open for probes";
  EXPECT_TRUE(is_json_error(http(keyed.port, "GET", "/api/models"), 401));
  EXPECT_TRUE(
      is_json_error(http(keyed.port, "GET", "/api/models", "", {"Authorization: Bearer wrong"}), 401));
  EXPECT_EQ(http(keyed.port, "GET", "/api/models", "", {"Authorization: Bearer s3cret"}).status, 200);
  EXPECT_EQ(http(keyed.port, "GET", "/v1/models", "", {"X-API-Key: s3cret"}).status, 200);
  EXPECT_EQ(keyed.stop(), 0) << "SIGTERM stops the server cleanly";
}

TEST_F(Serve, RefusesToServeBeyondLoopbackWithoutAKey) {
  imagine::testing::expect_clean_failure({"serve", "--models", models_, "--host", "0.0.0.0", "--port", "0"},
                                         1);
  imagine::testing::expect_clean_failure({"serve", "--models", g_tmp + "/no-such-folder", "--port", "0"}, 1);
  imagine::testing::expect_clean_failure({"serve"}, 2);
}

// Random and mutated bodies against every POST route, bounded in time: every answer is a
// well-formed HTTP response with a JSON body, and the server survives.
TEST_F(Serve, FuzzedRequestsGetWellFormedAnswers) {
  ServerProc fuzz;
  ASSERT_TRUE(fuzz.start({"--models", models_, "--max-tokens", "4"}, "fuzz")) << fuzz.log;
  const std::vector<std::string> routes = {"/api/generate/text", "/v1/completions", "/v1/chat/completions",
                                           "/api/detect", "/api/verify"};
  const std::vector<json> seeds = {
      {{"model", "tiny"}, {"prompt", "Hi"}, {"max_tokens", 3}, {"seed", 1}},
      {{"model", "tiny"},
       {"messages", json::array({{{"role", "user"}, {"content", "x"}}})},
       {"max_tokens", 2}},
      {{"model", "tiny"}, {"prompt", json::array({"a"})}, {"n", 2}, {"stop", "x"}, {"max_tokens", 2}}};
  std::mt19937 rng(1234);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(25);
  int sent = 0, accepted = 0;
  std::map<int, int> statuses;
  while (std::chrono::steady_clock::now() < deadline && sent < 3000) {
    std::string body = seeds[rng() % seeds.size()].dump();
    const int kind = static_cast<int>(rng() % 4);
    if (kind == 0) {  // random bytes
      body.assign(rng() % 64, '\0');
      for (auto& c : body) c = static_cast<char>(rng());
    } else {  // byte flips, deletions and insertions of JSON punctuation
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits && !body.empty(); e++) {
        const size_t at = rng() % body.size();
        const char* punct = "{}[]\":,-0123456789.eEtrufanl\\";
        if (rng() % 3 == 0)
          body.erase(at, 1);
        else if (rng() % 2)
          body[at] = punct[rng() % 29];
        else
          body.insert(at, 1, punct[rng() % 29]);
      }
    }
    const std::string& route = routes[rng() % routes.size()];
    auto r = http(fuzz.port, "POST", route, body, {}, 60);
    sent++;
    ASSERT_TRUE(r.well_formed) << route << " " << body << ": " << r.problem;
    statuses[r.status]++;
    ASSERT_TRUE(r.status == 200 || r.status == 400 || r.status == 404 || r.status == 503)
        << r.status << " " << body;
    if (r.header("content-type") == "application/json") {
      const json j = body_json(r);
      ASSERT_FALSE(j.is_null()) << "unparseable JSON answer to " << body << ": " << r.body;
      if (r.status != 200) {
        ASSERT_TRUE(j.contains("error")) << r.body;
      }
    }
    if (r.status == 200) {
      accepted++;
      // An accepted mutated request still decodes to a real answer for its route.
      const json j = body_json(r);
      if (route == "/v1/completions" || route == "/v1/chat/completions") {
        ASSERT_TRUE(j.contains("choices")) << r.body;
      }
      if (route == "/api/generate/text") {
        ASSERT_TRUE(j.contains("samples") && j.contains("manifest")) << r.body;
      }
      if (route == "/api/detect") {
        ASSERT_TRUE(j.contains("verdict")) << r.body;
      }
    }
  }
  EXPECT_GE(sent, 200);
  EXPECT_GT(accepted, 0) << "some mutations stay valid requests";
  EXPECT_GT(statuses[400], 0);
  EXPECT_TRUE(fuzz.alive());
  EXPECT_EQ(http(fuzz.port, "GET", "/health").status, 200);
}

// Runs `node ARGS` in `dir` (at most 400 s); its exit code (-1 when it did not exit), its
// stdout and stderr into *out.
static int run_node(const std::string& dir, const std::string& args, std::string* out) {
  FILE* p = popen(("cd '" + dir + "' && timeout 400 node " + args + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out->append(buf, n);
  const int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The official `openai` npm package (tests/node, installed by scripts/install-deps.sh) talks
// to the server unchanged: models, completions, chat, both streamed, and its error type.
TEST_F(Serve, OfficialOpenAiNpmClientWorks) {
  const std::string dir = std::string(IMAGINE_SOURCE_DIR) + "/tests/node";
  ASSERT_TRUE(fs::exists(dir + "/node_modules/openai/package.json"))
      << "the openai npm package is missing: run scripts/install-deps.sh (it runs npm ci in tests/node)";
  std::string out;
  const int status = run_node(dir, "openai_client.mjs " + std::to_string(port()) + " tiny", &out);
  ASSERT_EQ(status, 0) << out;
  const json seen = json::parse(out.substr(out.find('{')));
  EXPECT_EQ(seen["status"], 404);
  EXPECT_GE(seen["chunks"].get<int>(), 2);
}

// The web studio in a real browser (tests/node/studio.mjs: Debian's chromium driven by
// playwright-core): text streamed as variations without moving the layout, continued from one;
// an image grid, variations, a scrubbed interpolation, a blend, an upload; a music primer
// continued and played; files checked (and a corrupt one refused with a hint); a training run
// started, watched and cancelled; no overlap at 1280x800 or at 400 px wide. The screenshots
// are kept in build/test-artifacts/studio/ to be looked at.
TEST_F(Serve, StudioWorksInARealBrowser) {
  const std::string dir = std::string(IMAGINE_SOURCE_DIR) + "/tests/node";
  ASSERT_TRUE(fs::exists(dir + "/node_modules/playwright-core/package.json"))
      << "playwright-core is missing: run scripts/install-deps.sh (it runs npm ci in tests/node)";
  if (!fs::exists("/usr/bin/chromium"))
    GTEST_SKIP() << "no /usr/bin/chromium: scripts/install-deps.sh installs it";
  const std::string shots = fs::path(IMAGINE_BINARY).parent_path().string() + "/test-artifacts/studio";
  fs::remove_all(shots);
  std::string out;
  const int status = run_node(dir, "studio.mjs " + std::to_string(port()) + " '" + shots + "'", &out);
  if (status == 77) GTEST_SKIP() << out;
  ASSERT_EQ(status, 0) << out;
  const json seen = json::parse(out.substr(out.find('{')));
  EXPECT_TRUE(seen["problems"].empty()) << out;
  EXPECT_GE(seen["summary"]["text_frames_mid_stream"].get<int>(), 2) << "text streamed in";
  EXPECT_GT(seen["summary"]["music_played"]["played"].get<double>(), 0.2);
  for (const char* name : {"studio", "text-1280", "images-1280", "music-1280", "check-1280", "train-1280",
                           "text-400", "images-400"})
    EXPECT_TRUE(fs::exists(shots + "/" + name + ".png")) << name;
}

// The studio's files: the page at /, its modules under /studio/, served without the API key
// (they hold no secrets; the API behind them still needs it), nothing outside them.
TEST(ServeStudio, FilesAreServedAndNothingElse) {
  ServerProc s;
  const std::string dir = imagine::testing::make_temp_dir("imagine_studio_");
  g_tmp = dir;
  fs::create_directories(dir + "/models");
  ASSERT_TRUE(s.start({"--models", dir + "/models", "--api-key", "sekrit"}, "studio")) << s.log;
  auto page = http(s.port, "GET", "/");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_TRUE(has(page.body, "<script type=\"module\" src=\"/studio/js/main.js\">")) << page.body;
  for (const char* path : {"/studio/js/main.js", "/studio/js/api.js", "/studio/studio.css"}) {
    auto r = http(s.port, "GET", path);
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_FALSE(r.body.empty()) << path;
  }
  EXPECT_TRUE(has(http(s.port, "GET", "/studio/js/main.js").body, "import")) << "the module's own text";
  EXPECT_TRUE(is_json_error(http(s.port, "GET", "/api/models"), 401)) << "the API still needs the key";
  for (const char* bad : {"/studio/../README.md", "/studio/%2e%2e/CMakeLists.txt", "/studio/js/missing.js",
                          "/studio/", "/studio/js/main.js.bak", "/studio//etc/passwd"}) {
    auto r = http(s.port, "GET", bad);
    EXPECT_TRUE(r.status == 404 || r.status == 400 || r.status == 401)
        << bad << " -> " << r.status << " " << r.body;
    EXPECT_FALSE(has(r.body, "cmake_minimum_required") || has(r.body, "root:")) << bad;
  }
  auto data = http(s.port, "GET", "/api/data", "", {"Authorization: Bearer sekrit"});
  ASSERT_EQ(data.status, 200) << data.body;
  EXPECT_EQ(body_json(data)["enabled"], false) << "no --data-root, no training data";
  EXPECT_EQ(s.stop(), 0);
  fs::remove_all(dir);
}

// GET /api/data: what the studio's training form offers (the data root's entries, what their
// files look like, each family's presets).
TEST_F(Serve, DataRootIsListedForTheStudio) {
  auto r = http(port(), "GET", "/api/data");
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = body_json(r);
  EXPECT_EQ(j["enabled"], true);
  ASSERT_EQ(j["entries"].size(), 1u) << r.body;
  EXPECT_EQ(j["entries"][0]["name"], "poems");
  EXPECT_EQ(j["entries"][0]["type"], "folder");
  EXPECT_EQ(j["entries"][0]["files"], 1);
  EXPECT_EQ(j["entries"][0]["kinds"]["text"], 1);
  EXPECT_FALSE(has(r.body, "secret.txt")) << "nothing outside the data root";
  for (const char* family : {"text", "image", "music"}) {
    bool tiny = false;
    for (const auto& p : j["presets"][family]) tiny = tiny || p["name"] == "tiny";
    EXPECT_TRUE(tiny) << family << " presets: " << j["presets"][family].dump();
  }
}

namespace {
std::string b64(const std::string& bytes) { return imagine::base64_encode(bytes); }
std::string unb64(const json& file) {
  std::string out;
  EXPECT_TRUE(imagine::base64_decode(file["base64"].get<std::string>(), out));
  return out;
}
}  // namespace

TEST_F(Serve, ImagesMatchTheCliAndEveryImageVerbWorks) {
  auto g = post("/api/generate/image", {{"model", "vae"}, {"count", 3}, {"seed", 21}});
  ASSERT_EQ(g.status, 200) << g.body;
  const json jg = body_json(g);
  ASSERT_EQ(jg["images"].size(), 3u);
  EXPECT_EQ(jg["images"][1]["seed"], 22);
  EXPECT_EQ(jg["images"][0]["mime"], "image/png");
  const std::string png = unb64(jg["images"][0]);
  ASSERT_EQ(png.substr(1, 3), "PNG");
  const std::string file = g_tmp + "/cli-21.png";
  const std::vector<std::string> cli = {"generate",  "image",  "--model", models_ + "/vae", "--count",
                                        "1",         "--seed", "21",      "--out",          file,
                                        "--threads", "1",      "--quiet"};
  const std::string written = cli_output(cli, file);
  ASSERT_FALSE(written.empty());
  EXPECT_EQ(png, written) << "same seed and settings: the same PNG bytes from the CLI and the API";
  auto grid = post("/api/generate/image", {{"model", "vae"}, {"count", 4}, {"seed", 1}, {"grid", true}});
  ASSERT_EQ(grid.status, 200);
  EXPECT_EQ(body_json(grid)["grid"]["manifest"]["generation"]["count"], 4);

  auto v = post("/api/vary/image",
                {{"model", "vae"}, {"image", b64(png)}, {"count", 2}, {"strength", 0.3}, {"seed", 2}});
  ASSERT_EQ(v.status, 200) << v.body;
  EXPECT_EQ(body_json(v)["variations"].size(), 2u);
  EXPECT_LT(body_json(v)["mse"].get<double>(), 0.2);
  EXPECT_EQ(body_json(v)["reconstruction"]["manifest"]["verb"], "vary");
  auto r = post("/api/reconstruct/image", {{"model", "vae"}, {"image", b64(png)}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_GT(body_json(r)["psnr"].get<double>(), 5.0);
  auto b = post("/api/blend/image",
                {{"model", "vae"},
                 {"images", json::array({{{"image", b64(png)}, {"weight", 1}},
                                         {{"image", b64(unb64(jg["images"][1]))}, {"weight", 3}}})}});
  ASSERT_EQ(b.status, 200) << b.body;
  EXPECT_TRUE(has(body_json(b)["image"]["manifest"]["generation"]["detail"].get<std::string>(), "0.75"));
  auto i = post("/api/interpolate/image",
                {{"model", "vae"}, {"from", {{"seed", 3}}}, {"to", {{"image", b64(png)}}}, {"steps", 5}});
  ASSERT_EQ(i.status, 200) << i.body;
  EXPECT_EQ(body_json(i)["frames"].size(), 5u);
  EXPECT_EQ(body_json(i)["strip"]["mime"], "image/png");
  // The API's images carry the watermark.
  auto d = http(port(), "POST", "/api/detect?name=x.png", png, {"Content-Type: image/png"});
  EXPECT_EQ(body_json(d)["verdict"], "watermarked") << d.body;

  EXPECT_TRUE(is_json_error(post("/api/generate/image", {{"model", "vae"}, {"count", 0}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/image", {{"model", "vae"}, {"count", 100000}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/image", {{"model", "vae"}, {"upscale", 1000}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/image", {{"model", "tiny"}}), 400)) << "a text model";
  EXPECT_TRUE(is_json_error(post("/api/vary/image", {{"model", "vae"}, {"image", "%%%"}}), 400));
  EXPECT_TRUE(
      is_json_error(post("/api/vary/image", {{"model", "vae"}, {"image", b64("not a png at all")}}), 400));
  std::string broken = png.substr(0, png.size() / 2);
  EXPECT_TRUE(is_json_error(post("/api/reconstruct/image", {{"model", "vae"}, {"image", b64(broken)}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/blend/image", {{"model", "vae"}, {"images", json::array()}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/interpolate/image", {{"model", "vae"}, {"from", 3}, {"to", 4}}), 400));
  EXPECT_TRUE(server_->alive());
}

TEST_F(Serve, MusicAsMidiWavAndPianoRoll) {
  auto g = post("/api/generate/music", {{"model", "bach"}, {"seconds", 6}, {"seed", 3}});
  ASSERT_EQ(g.status, 200) << g.body;
  const json j = body_json(g);
  const std::string midi = unb64(j["midi"]);
  EXPECT_EQ(midi.substr(0, 4), "MThd");
  EXPECT_EQ(unb64(j["wav"]).substr(0, 4), "RIFF");
  EXPECT_EQ(unb64(j["roll"]).substr(1, 3), "PNG");
  EXPECT_EQ(j["roll"]["manifest"]["source"]["verb"], "generate") << "the roll cites the piece";
  EXPECT_GT(j["notes"].get<int>(), 0);
  const std::string file = g_tmp + "/cli.mid";
  const std::vector<std::string> cli = {"generate",  "music",  "--model", models_ + "/bach", "--seconds",
                                        "6",         "--seed", "3",       "--out",           file,
                                        "--threads", "1",      "--quiet"};
  const std::string written = cli_output(cli, file);
  ASSERT_FALSE(written.empty());
  EXPECT_EQ(midi, written) << "the same MIDI bytes from the CLI and the API";

  auto cont = post("/api/continue/music", {{"model", "bach"},
                                           {"primer", b64(midi)},
                                           {"primer_seconds", 2},
                                           {"seconds", 3},
                                           {"count", 2},
                                           {"seed", 8},
                                           {"wav", false},
                                           {"roll", false}});
  ASSERT_EQ(cont.status, 200) << cont.body;
  const json jc = body_json(cont);
  ASSERT_EQ(jc["continuations"].size(), 2u);
  EXPECT_FALSE(jc["continuations"][0].contains("wav"));
  EXPECT_EQ(jc["continuations"][0]["midi"]["manifest"]["verb"], "continue");
  EXPECT_GE(jc["continuations"][0]["seconds"].get<double>(), 2.0);

  EXPECT_TRUE(is_json_error(post("/api/generate/music", {{"model", "bach"}, {"seconds", 100000}}), 400));
  EXPECT_TRUE(
      is_json_error(post("/api/continue/music", {{"model", "bach"}, {"primer", b64("MThd garbage")}}), 400));
  EXPECT_TRUE(is_json_error(post("/api/generate/music", {{"model", "vae"}}), 400));
  EXPECT_TRUE(server_->alive());
}

TEST_F(Serve, TrainingJobsRunStreamAndCancel) {
  auto bad = [&](const json& body, int status) {
    EXPECT_TRUE(is_json_error(post("/api/jobs", body), status)) << body;
  };
  bad({{"family", "text"}, {"data", "../secret.txt"}, {"name", "x1"}}, 400);
  bad({{"family", "text"}, {"data", g_tmp + "/secret.txt"}, {"name", "x1"}}, 400);
  bad({{"family", "text"}, {"data", "nope"}, {"name", "x1"}}, 404);
  bad({{"family", "text"}, {"data", "poems"}, {"name", "tiny"}}, 409);
  bad({{"family", "text"}, {"data", "poems"}, {"name", "../x"}}, 400);
  bad({{"family", "video"}, {"data", "poems"}, {"name", "x1"}}, 400);
  bad({{"family", "text"}, {"data", "poems"}, {"name", "x1"}, {"preset", "tiny --out /etc"}}, 400);

  auto start =
      post("/api/jobs",
           {{"family", "text"}, {"data", "poems"}, {"name", "from-job"}, {"preset", "tiny"}, {"steps", 40}});
  ASSERT_EQ(start.status, 202) << start.body;
  const std::string id = body_json(start)["id"];
  auto busy =
      post("/api/jobs", {{"family", "text"}, {"data", "poems"}, {"name", "second"}, {"preset", "tiny"}});
  EXPECT_TRUE(is_json_error(busy, 503)) << "one job at a time by default";
  auto events = http(port(), "GET", "/api/jobs/" + id + "/events", "", {}, 300);
  ASSERT_EQ(events.status, 200) << events.body;
  int progress = 0;
  json end;
  for (auto& [ev, data] : sse_events(events.body)) {
    const json e = json::parse(data);
    if (ev == "progress") {
      progress++;
      EXPECT_TRUE(e.contains("loss") && e.contains("step")) << data;
    }
    if (ev == "end") end = e;
  }
  EXPECT_GE(progress, 2) << events.body;
  ASSERT_EQ(end["status"], "succeeded") << end;
  EXPECT_EQ(end["total_steps"], 40);
  // The new model is served at once.
  auto gen = post("/api/generate/text", {{"model", "from-job"}, {"max_tokens", 5}, {"seed", 1}});
  EXPECT_EQ(gen.status, 200) << gen.body;

  auto longer = post(
      "/api/jobs",
      {{"family", "text"}, {"data", "poems"}, {"name", "cancelled"}, {"preset", "tiny"}, {"steps", 1000000}});
  ASSERT_EQ(longer.status, 202) << longer.body;
  const std::string id2 = body_json(longer)["id"];
  for (int i = 0; i < 300 && body_json(http(port(), "GET", "/api/jobs/" + id2))["last"].is_null(); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(http(port(), "DELETE", "/api/jobs/" + id2).status, 200);
  json state;
  for (int i = 0; i < 300; i++) {
    state = body_json(http(port(), "GET", "/api/jobs/" + id2));
    if (state["status"] != "running") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(state["status"], "cancelled") << state;
  EXPECT_TRUE(fs::exists(models_ + "/cancelled/checkpoint-latest")) << "cancel saves a checkpoint";
  EXPECT_TRUE(is_json_error(http(port(), "GET", "/api/jobs/job-999"), 404));
  EXPECT_EQ(body_json(http(port(), "GET", "/api/jobs"))["jobs"].size(), 2u);
}
