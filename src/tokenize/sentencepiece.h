// SentencePiece, reached through the dlopen'ed libimagine_spm plug-in (see
// sentencepiece_shim/shim_api.h for why it is not linked directly).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace imagine::spm {

// Trains a model; returns the serialized ModelProto. Throws imagine::Error with
// SentencePiece's message when training fails.
std::string train(const std::vector<std::string>& sentences,
                  const std::unordered_map<std::string, std::string>& args, unsigned seed);

enum class PieceKind { Normal = 0, Byte = 1, Control = 2, Unknown = 3, Unused = 4 };

class Model {
 public:
  // Throws imagine::Error when the proto does not load.
  explicit Model(const std::string& proto);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  int size() const;
  PieceKind piece(int id, std::string* text) const;
  void encode(std::string_view text, std::vector<int64_t>* ids) const;  // appends

 private:
  void* handle_;
};

}  // namespace imagine::spm
