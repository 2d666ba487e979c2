// Loads libimagine_spm with dlopen(RTLD_LOCAL | RTLD_DEEPBIND) and forwards to it.
#include "tokenize/sentencepiece.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "core/error.h"
#include "tokenize/sentencepiece_shim/shim_api.h"

namespace imagine::spm {
namespace {

struct Api {
  imagine_spm_train_fn train = nullptr;
  imagine_spm_load_fn load = nullptr;
  imagine_spm_free_fn free = nullptr;
  imagine_spm_size_fn size = nullptr;
  imagine_spm_piece_fn piece = nullptr;
  imagine_spm_encode_fn encode = nullptr;
  imagine_spm_free_buf_fn free_buf = nullptr;
};

std::string exe_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = '\0';
  return std::filesystem::path(buf).parent_path().string();
}

const Api& api() {
  static Api a;
  static std::string problem;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("IMAGINE_SPM_PLUGIN")) candidates.push_back(env);
    candidates.push_back(exe_dir() + "/libimagine_spm.so");
    candidates.push_back(exe_dir() + "/../lib/imagine/libimagine_spm.so");
    void* h = nullptr;
    for (auto& c : candidates) {
      if (!std::filesystem::exists(c)) continue;
      h = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (h) break;
      problem = dlerror();
    }
    if (!h) {
      if (problem.empty()) problem = "libimagine_spm.so not found next to the executable";
      return;
    }
    a.train = reinterpret_cast<imagine_spm_train_fn>(dlsym(h, "imagine_spm_train"));
    a.load = reinterpret_cast<imagine_spm_load_fn>(dlsym(h, "imagine_spm_load"));
    a.free = reinterpret_cast<imagine_spm_free_fn>(dlsym(h, "imagine_spm_free"));
    a.size = reinterpret_cast<imagine_spm_size_fn>(dlsym(h, "imagine_spm_size"));
    a.piece = reinterpret_cast<imagine_spm_piece_fn>(dlsym(h, "imagine_spm_piece"));
    a.encode = reinterpret_cast<imagine_spm_encode_fn>(dlsym(h, "imagine_spm_encode"));
    a.free_buf = reinterpret_cast<imagine_spm_free_buf_fn>(dlsym(h, "imagine_spm_free_buf"));
    if (!a.train || !a.load || !a.free || !a.size || !a.piece || !a.encode || !a.free_buf) {
      problem = "libimagine_spm.so lacks expected symbols";
      a = Api{};
    }
  });
  IMAGINE_CHECK(a.train, "rebuild imagine (make), or set IMAGINE_SPM_PLUGIN to the plug-in's path; --tokenizer byte works without it",
                "the SentencePiece plug-in is unavailable: ", problem);
  return a;
}

std::string take(char* p) {
  std::string s = p ? p : "";
  api().free_buf(p);
  return s;
}

}  // namespace

std::string train(const std::vector<std::string>& sentences, const std::unordered_map<std::string, std::string>& args,
                  unsigned seed) {
  const Api& a = api();
  std::vector<const char*> s, k, v;
  std::vector<size_t> len;
  for (auto& x : sentences) s.push_back(x.data()), len.push_back(x.size());
  for (auto& [key, val] : args) k.push_back(key.c_str()), v.push_back(val.c_str());
  char *out = nullptr, *err = nullptr;
  size_t out_len = 0;
  if (a.train(s.data(), len.data(), s.size(), k.data(), v.data(), k.size(), seed, &out, &out_len, &err) != 0)
    throw Error(take(err), "");
  std::string proto(out, out_len);
  a.free_buf(out);
  return proto;
}

Model::Model(const std::string& proto) {
  char* err = nullptr;
  handle_ = api().load(proto.data(), proto.size(), &err);
  if (!handle_) throw Error("invalid SentencePiece model: " + take(err), "");
}

Model::~Model() {
  if (handle_) api().free(handle_);
}

int Model::size() const { return api().size(handle_); }

PieceKind Model::piece(int id, std::string* text) const {
  const char* p = nullptr;
  size_t n = 0;
  int kind = api().piece(handle_, id, &p, &n);
  text->assign(p, n);
  return static_cast<PieceKind>(kind);
}

void Model::encode(std::string_view text, std::vector<int64_t>* ids) const {
  int* out = nullptr;
  size_t n = 0;
  IMAGINE_CHECK(api().encode(handle_, text.data(), text.size(), &out, &n) == 0, "", "SentencePiece encoding failed");
  for (size_t i = 0; i < n; i++) ids->push_back(out[i]);
  api().free_buf(out);
}

}  // namespace imagine::spm
