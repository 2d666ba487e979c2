// Reading and writing the safetensors format (8-byte little-endian header length, JSON
// header, raw little-endian tensor bytes), so weights open in Python's safetensors too.
// We add a "sha256" of the data section to __metadata__ and verify it on load, so a
// flipped bit is refused rather than silently loaded. Leaves out: memory mapping.
#pragma once
#include <map>
#include <string>

#include <torch/torch.h>

namespace imagine {

struct SafetensorsFile {
  std::map<std::string, torch::Tensor> tensors;   // CPU, contiguous
  std::map<std::string, std::string> metadata;    // __metadata__ (string -> string)
};

// Serialises tensors (moved to CPU, made contiguous) in name order.
std::string safetensors_bytes(const std::map<std::string, torch::Tensor>& tensors,
                              const std::map<std::string, std::string>& metadata = {});
// Atomic write of safetensors_bytes().
void save_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Parses and validates: header length within the file, JSON well-formed, known dtypes,
// non-negative shapes, offsets inside the data section, byte counts matching shapes, no
// overlaps or holes, and the data checksum when present. Throws imagine::Error with a hint
// naming `what` (e.g. "checkpoint runs/x/model.safetensors") on any problem.
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& what);
SafetensorsFile load_safetensors(const std::string& path);

}  // namespace imagine
