// libimagine_spm: SentencePiece behind a C interface (see shim_api.h for why it is a
// separate, dlopen'ed library). Built as a CMake MODULE, not part of libimagine.
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "shim_api.h"

namespace {

char* copy_out(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p) {
    std::memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
  }
  return p;
}

class Sentences : public sentencepiece::SentenceIterator {
 public:
  Sentences(const char* const* s, const size_t* len, size_t n) : s_(s), len_(len), n_(n) { load(); }
  bool done() const override { return i_ >= n_; }
  void Next() override {
    i_++;
    load();
  }
  const std::string& value() const override { return cur_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  void load() {
    if (i_ < n_) cur_.assign(s_[i_], len_[i_]);
  }
  const char* const* s_;
  const size_t* len_;
  size_t n_, i_ = 0;
  std::string cur_;
};

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int imagine_spm_train(const char* const* sentences, const size_t* lengths,
                                                             size_t n, const char* const* keys,
                                                             const char* const* values, size_t nkv, unsigned seed,
                                                             char** out, size_t* out_len, char** err) {
  try {
    std::unordered_map<std::string, std::string> args;
    for (size_t i = 0; i < nkv; i++) args[keys[i]] = values[i];
    sentencepiece::SetRandomGeneratorSeed(seed);
    Sentences it(sentences, lengths, n);
    std::string proto;
    auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &proto);
    if (!status.ok()) {
      *err = copy_out(status.ToString());
      return 1;
    }
    *out = copy_out(proto);
    *out_len = proto.size();
    return 0;
  } catch (const std::exception& e) {
    *err = copy_out(e.what());
    return 1;
  }
}

__attribute__((visibility("default"))) void* imagine_spm_load(const char* proto, size_t len, char** err) {
  auto* sp = new sentencepiece::SentencePieceProcessor();
  auto status = sp->LoadFromSerializedProto(std::string_view(proto, len));
  if (!status.ok()) {
    *err = copy_out(status.ToString());
    delete sp;
    return nullptr;
  }
  return sp;
}

__attribute__((visibility("default"))) void imagine_spm_free(void* h) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(h);
}

__attribute__((visibility("default"))) int imagine_spm_size(void* h) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(h)->GetPieceSize();
}

__attribute__((visibility("default"))) int imagine_spm_piece(void* h, int id, const char** piece, size_t* len) {
  auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
  const std::string& p = sp->IdToPiece(id);
  *piece = p.data();
  *len = p.size();
  if (sp->IsByte(id)) return IMAGINE_SPM_BYTE;
  if (sp->IsControl(id)) return IMAGINE_SPM_CONTROL;
  if (sp->IsUnknown(id)) return IMAGINE_SPM_UNKNOWN;
  if (sp->IsUnused(id)) return IMAGINE_SPM_UNUSED;
  return IMAGINE_SPM_NORMAL;
}

__attribute__((visibility("default"))) int imagine_spm_encode(void* h, const char* text, size_t len, int** ids,
                                                              size_t* n) {
  auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(h);
  std::vector<int> out = sp->EncodeAsIds(std::string_view(text, len));
  *ids = static_cast<int*>(std::malloc(sizeof(int) * (out.empty() ? 1 : out.size())));
  if (!*ids) return 1;
  if (!out.empty()) std::memcpy(*ids, out.data(), sizeof(int) * out.size());
  *n = out.size();
  return 0;
}

__attribute__((visibility("default"))) void imagine_spm_free_buf(void* p) { std::free(p); }
}
