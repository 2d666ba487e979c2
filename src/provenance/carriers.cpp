// See carriers.h.
#include "provenance/carriers.h"

#include <cstring>

#include "core/error.h"
#include "core/files.h"
#include "core/model_dir.h"
#include "core/utf8.h"
#include "provenance/envelope.h"

namespace imagine {

namespace {

constexpr const char* kPngManifestKey = "imagine:provenance";
// The meta event's payload starts with this tag and the original header's format digit.
constexpr const char* kMidiTag = "imagine-provenance v1 format ";

uint32_t be32(const std::string& s, size_t i) {
  return uint32_t(uint8_t(s[i])) << 24 | uint32_t(uint8_t(s[i + 1])) << 16 | uint32_t(uint8_t(s[i + 2])) << 8 |
         uint8_t(s[i + 3]);
}
uint32_t le32(const std::string& s, size_t i) {
  return uint32_t(uint8_t(s[i])) | uint32_t(uint8_t(s[i + 1])) << 8 | uint32_t(uint8_t(s[i + 2])) << 16 |
         uint32_t(uint8_t(s[i + 3])) << 24;
}
void put_be(std::string& out, uint32_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--) out.push_back(char((v >> (8 * i)) & 0xFF));
}
void put_le(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; i++) out.push_back(char((v >> (8 * i)) & 0xFF));
}

bool is_text(const std::string& b) { return b.find('\0') == std::string::npos && is_valid_utf8(b); }

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

// RIFF chunks after the 12-byte "RIFF....WAVE" header: (id, offset of payload, size).
struct Chunk {
  std::string id;
  size_t offset, size;
};
std::vector<Chunk> riff_chunks(const std::string& wav, const std::string& what) {
  const std::string hint = "the WAV file is truncated or damaged";
  IMAGINE_CHECK(wav.size() >= 12 && wav.compare(0, 4, "RIFF") == 0 && wav.compare(8, 4, "WAVE") == 0, hint, what,
                " is not a RIFF/WAVE file");
  std::vector<Chunk> out;
  size_t pos = 12;
  while (pos + 8 <= wav.size()) {
    const uint32_t size = le32(wav, pos + 4);
    IMAGINE_CHECK(size <= wav.size() - pos - 8, hint, what, ": chunk '", wav.substr(pos, 4), "' runs past the end");
    out.push_back({wav.substr(pos, 4), pos + 8, size});
    pos += 8 + size + (size & 1);
  }
  return out;
}

}  // namespace

ArtifactType sniff_artifact(const std::string& b) {
  if (is_png(b)) return ArtifactType::Png;
  if (is_jpeg(b)) return ArtifactType::Jpeg;
  if (b.size() >= 4 && b.compare(0, 4, "MThd") == 0) return ArtifactType::Midi;
  if (b.size() >= 12 && b.compare(0, 4, "RIFF") == 0 && b.compare(8, 4, "WAVE") == 0) return ArtifactType::Wav;
  if (is_text(b)) return ArtifactType::Text;
  return ArtifactType::Unknown;
}

std::string artifact_name(ArtifactType t) {
  switch (t) {
    case ArtifactType::Text: return "text";
    case ArtifactType::Png: return "png";
    case ArtifactType::Jpeg: return "jpeg";
    case ArtifactType::Midi: return "midi";
    case ArtifactType::Wav: return "wav";
    default: return "unknown";
  }
}

// ---- PNG ----

std::string png_content_sha256(const Image& img) {
  Sha256 h;
  const std::string head = str("imagine-png-pixels-v1 ", img.width, " ", img.height, " ", img.channels, "\n");
  h.update(head.data(), head.size());
  h.update(img.pixels.data(), img.pixels.size());
  return h.hex_digest();
}

std::string xmp_packet(const std::string& title) {
  return std::string("<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n") +
         "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
         " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
         "  <rdf:Description rdf:about=\"\"\n"
         "    xmlns:Iptc4xmpExt=\"http://iptc.org/std/Iptc4xmpExt/2008-02-29/\"\n"
         "    xmlns:xmp=\"http://ns.adobe.com/xap/1.0/\"\n"
         "    xmlns:dc=\"http://purl.org/dc/elements/1.1/\"\n"
         "    Iptc4xmpExt:DigitalSourceType=\"" + std::string(kDigitalSourceType) + "\"\n"
         "    xmp:CreatorTool=\"imagine\">\n"
         "   <dc:description><rdf:Alt><rdf:li xml:lang=\"x-default\">" + xml_escape(title) +
         "</rdf:li></rdf:Alt></dc:description>\n"
         "  </rdf:Description>\n"
         " </rdf:RDF>\n"
         "</x:xmpmeta>\n"
         "<?xpacket end=\"r\"?>";
}

std::string encode_png_with_provenance(const Image& img, const std::string& manifest,
                                       const std::vector<std::pair<std::string, std::string>>& parameters, bool xmp) {
  PngText text = {{"Software", "imagine"}};
  std::string params;
  for (const auto& [k, v] : parameters) {
    std::string value = v;
    for (char& c : value)
      if (c == ',' || c == '\n') c = ';';  // the format's separators cannot appear in values
    params += (params.empty() ? "" : ", ") + k + ": " + value;
  }
  if (!params.empty()) text.push_back({"parameters", params});
  if (xmp) text.push_back({"XML:com.adobe.xmp", xmp_packet("AI-generated with imagine")});
  if (!manifest.empty()) text.push_back({kPngManifestKey, manifest});
  return encode_png(img, text);
}

// ---- MIDI ----

std::string midi_with_manifest(const std::string& midi, const std::string& manifest) {
  IMAGINE_CHECK(midi.size() >= 14 && midi.compare(0, 4, "MThd") == 0, "", "midi_with_manifest: not a MIDI file");
  const int format = (uint8_t(midi[8]) << 8) | uint8_t(midi[9]);
  const int tracks = (uint8_t(midi[10]) << 8) | uint8_t(midi[11]);
  std::string payload = kMidiTag + std::to_string(format) + "\n" + manifest;
  std::string ev;
  ev.push_back('\0');  // delta time 0
  ev += "\xFF\x7F";
  // Variable-length quantity for the payload length.
  std::string vlq;
  uint32_t n = uint32_t(payload.size());
  vlq.push_back(char(n & 0x7F));
  while (n >>= 7) vlq.insert(vlq.begin(), char(0x80 | (n & 0x7F)));
  ev += vlq + payload;
  ev += std::string("\0\xFF\x2F\x00", 4);  // end of track
  std::string out = midi;
  out[8] = 0;
  out[9] = 1;  // an extra track makes any file format 1
  out[10] = char(((tracks + 1) >> 8) & 0xFF);
  out[11] = char((tracks + 1) & 0xFF);
  out += "MTrk";
  put_be(out, uint32_t(ev.size()), 4);
  out += ev;
  return out;
}

std::pair<std::string, std::string> split_midi_manifest(const std::string& midi, const std::string& what) {
  const std::string hint = "the MIDI file is truncated or damaged";
  IMAGINE_CHECK(midi.size() >= 14 && midi.compare(0, 4, "MThd") == 0, hint, what, " is not a MIDI file");
  const uint32_t header_len = be32(midi, 4);
  IMAGINE_CHECK(header_len >= 6 && header_len <= midi.size() - 8, hint, what, ": bad MThd length");
  const int tracks = (uint8_t(midi[10]) << 8) | uint8_t(midi[11]);
  size_t pos = 8 + header_len, last = 0;
  int found = 0;
  while (pos + 8 <= midi.size()) {
    const uint32_t len = be32(midi, pos + 4);
    IMAGINE_CHECK(len <= midi.size() - pos - 8, hint, what, ": a chunk runs past the end of the file");
    if (midi.compare(pos, 4, "MTrk") == 0) {
      last = pos;
      found++;
    }
    pos += 8 + len;
  }
  if (found == 0 || found != tracks) return {midi, ""};
  // The manifest track: exactly one FF 7F event with our tag, then end of track.
  const uint32_t len = be32(midi, last + 4);
  const std::string body = midi.substr(last + 8, len);
  if (body.size() < 4 || body.compare(0, 3, "\0\xFF\x7F", 3) != 0) return {midi, ""};
  size_t i = 3;
  uint32_t n = 0;
  for (int k = 0; k < 4 && i < body.size(); k++) {
    const uint8_t b = uint8_t(body[i++]);
    n = n << 7 | (b & 0x7F);
    if (!(b & 0x80)) break;
  }
  if (n > body.size() - i) return {midi, ""};
  const std::string payload = body.substr(i, n);
  if (payload.compare(0, std::strlen(kMidiTag), kMidiTag) != 0) return {midi, ""};
  const size_t nl = payload.find('\n');
  IMAGINE_CHECK(nl != std::string::npos, hint, what, ": the provenance event is damaged");
  const int format = std::atoi(payload.substr(std::strlen(kMidiTag), nl - std::strlen(kMidiTag)).c_str());
  std::string content = midi.substr(0, last) + midi.substr(last + 8 + len);
  content[8] = char((format >> 8) & 0xFF);
  content[9] = char(format & 0xFF);
  content[10] = char(((tracks - 1) >> 8) & 0xFF);
  content[11] = char((tracks - 1) & 0xFF);
  return {content, payload.substr(nl + 1)};
}

// ---- WAV ----

std::string wav_with_manifest(const std::string& wav, const std::string& manifest) {
  riff_chunks(wav, "the rendered audio");  // validates
  auto chunk = [](const std::string& id, const std::string& data) {
    std::string c = id;
    put_le(c, uint32_t(data.size()));
    c += data;
    if (data.size() & 1) c.push_back('\0');
    return c;
  };
  auto zstr = [](const std::string& s) { return s + std::string(1, '\0'); };
  const std::string info = "INFO" + chunk("ICMT", zstr("AI-generated by imagine (IPTC digital source type: "
                                                       "trainedAlgorithmicMedia); provenance manifest in the 'prov' chunk")) +
                           chunk("ISFT", zstr("imagine"));
  std::string out = wav + chunk("LIST", info) + chunk("prov", manifest);
  const uint32_t riff = uint32_t(out.size() - 8);
  for (int i = 0; i < 4; i++) out[4 + i] = char((riff >> (8 * i)) & 0xFF);
  return out;
}

std::string wav_content_sha256(const std::string& wav) {
  Sha256 h;
  bool fmt = false, data = false;
  for (const Chunk& c : riff_chunks(wav, "the WAV file")) {
    if (c.id == "fmt " || c.id == "data") {
      h.update(c.id.data(), 4);
      const std::string size = std::to_string(c.size) + "\n";
      h.update(size.data(), size.size());
      h.update(wav.data() + c.offset, c.size);
      (c.id == "data" ? data : fmt) = true;
    }
  }
  IMAGINE_CHECK(fmt && data, "the WAV file is damaged", "the WAV file has no fmt or data chunk");
  return h.hex_digest();
}

std::string wav_manifest(const std::string& wav, const std::string& what) {
  for (const Chunk& c : riff_chunks(wav, what))
    if (c.id == "prov") return wav.substr(c.offset, c.size);
  return "";
}

std::string text_sidecar_path(const std::string& path) { return path + ".provenance.json"; }

EmbeddedProvenance read_provenance(const std::string& path) { return read_provenance(path, read_file(path)); }

EmbeddedProvenance read_provenance(const std::string& path, const std::string& bytes) {
  EmbeddedProvenance p;
  p.type = sniff_artifact(bytes);
  // Text from a byte-level model may hold any bytes (invalid UTF-8, NUL): its sidecar says
  // that it is text all the same.
  if (p.type == ArtifactType::Unknown && path_exists(text_sidecar_path(path))) p.type = ArtifactType::Text;
  std::string manifest;
  switch (p.type) {
    case ArtifactType::Png: {
      PngText text;
      const Image img = decode_png(bytes, path, &text);
      p.content_sha256 = png_content_sha256(img);
      p.content_hashing = kPngContentHashing;
      for (const auto& [k, v] : text)
        if (k == kPngManifestKey) manifest = v;
      break;
    }
    case ArtifactType::Midi: {
      auto [content, m] = split_midi_manifest(bytes, path);
      p.content_sha256 = sha256_hex(content);
      p.content_hashing = kMidiContentHashing;
      manifest = m;
      break;
    }
    case ArtifactType::Wav:
      p.content_sha256 = wav_content_sha256(bytes);
      p.content_hashing = kWavContentHashing;
      manifest = wav_manifest(bytes, path);
      break;
    case ArtifactType::Text: {
      p.content_sha256 = sha256_hex(bytes);
      p.content_hashing = kTextContentHashing;
      const std::string side = text_sidecar_path(path);
      if (path_exists(side)) manifest = read_file(side);
      break;
    }
    default:
      p.content_hashing = "none";
      break;
  }
  if (!manifest.empty()) {
    p.manifest = parse_manifest(manifest, path);
    p.present = true;
  }
  return p;
}

}  // namespace imagine
