// Where a manifest travels inside each kind of file, following the conventions other tools
// read, and each format's content hash: the hash of the content without the metadata
// itself, so verification can recompute it from the file alone.
//   PNG   an XMP packet (iTXt "XML:com.adobe.xmp") with Iptc4xmpExt:DigitalSourceType, a
//         "parameters" tEXt chunk ("Key: value, Key: value", as image-generation UIs write),
//         and the manifest in iTXt "imagine:provenance". Content: the decoded pixels.
//   MIDI  one extra track at the end holding a sequencer-specific meta event (FF 7F) with
//         the manifest. Content: the file without that track, i.e. the bytes as written by
//         encode_midi (header restored).
//   WAV   a LIST/INFO chunk (ICMT comment, ISFT software) and a "prov" chunk with the
//         manifest. Content: the fmt and data chunks.
//   text  a sidecar FILE.provenance.json. Content: the file's bytes.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "image/image.h"

namespace imagine {

enum class ArtifactType { Text, Png, Jpeg, Midi, Wav, Unknown };
ArtifactType sniff_artifact(const std::string& bytes);  // by magic numbers; text = UTF-8 without NUL
std::string artifact_name(ArtifactType t);               // "png", "midi", ...

constexpr const char* kPngContentHashing = "png-pixels-v1";
constexpr const char* kMidiContentHashing = "midi-without-provenance-track-v1";
constexpr const char* kWavContentHashing = "wav-fmt-data-v1";
constexpr const char* kTextContentHashing = "sha256-bytes";

// ---- PNG ----
std::string png_content_sha256(const Image& img);
// `manifest` "" writes no manifest and no XMP (provenance none); parameters always.
std::string encode_png_with_provenance(const Image& img, const std::string& manifest,
                                       const std::vector<std::pair<std::string, std::string>>& parameters,
                                       bool xmp);
std::string xmp_packet(const std::string& title);  // the XMP with our DigitalSourceType

// ---- MIDI ----
std::string midi_with_manifest(const std::string& midi, const std::string& manifest);
// Splits a MIDI file into (content bytes, manifest text); manifest "" when it has none.
// Throws imagine::Error for a file whose chunk structure is damaged.
std::pair<std::string, std::string> split_midi_manifest(const std::string& midi, const std::string& what);

// ---- WAV ----
std::string wav_with_manifest(const std::string& wav, const std::string& manifest);
std::string wav_content_sha256(const std::string& wav);  // throws for a damaged RIFF structure
std::string wav_manifest(const std::string& wav, const std::string& what);  // "" when none

// ---- text ----
std::string text_sidecar_path(const std::string& path);  // path + ".provenance.json"

// What a file carries: its manifest (when present) and its recomputed content hash.
struct EmbeddedProvenance {
  ArtifactType type = ArtifactType::Unknown;
  bool present = false;
  nlohmann::json manifest;
  std::string content_sha256;
  std::string content_hashing;
};
// Reads any supported file. A damaged manifest throws imagine::Error (with a hint); a
// missing one is present = false.
EmbeddedProvenance read_provenance(const std::string& path);
// The same for bytes already read from `path` (the sidecar of a text file is still read).
EmbeddedProvenance read_provenance(const std::string& path, const std::string& bytes);

}  // namespace imagine
