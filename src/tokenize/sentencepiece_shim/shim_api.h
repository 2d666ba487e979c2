// C interface of libimagine_spm, a small plug-in that wraps SentencePiece. Debian's
// libsentencepiece bundles and exports its own protobuf-lite, which clashes with the
// protobuf that LibTorch loads (the process crashes at start-up when both are linked).
// So SentencePiece is never linked into imagine: this plug-in is dlopen'ed with
// RTLD_LOCAL | RTLD_DEEPBIND, which keeps each protobuf to its own library.
#pragma once
#include <stddef.h>

extern "C" {

// Piece kinds returned by imagine_spm_piece.
enum { IMAGINE_SPM_NORMAL = 0, IMAGINE_SPM_BYTE = 1, IMAGINE_SPM_CONTROL = 2, IMAGINE_SPM_UNKNOWN = 3, IMAGINE_SPM_UNUSED = 4 };

// Trains a model from `n` sentences and `nkv` trainer flags; on success returns 0 and a
// malloc'ed serialized ModelProto in *out (length *out_len); on failure non-zero and a
// malloc'ed message in *err. Free both with imagine_spm_free_buf.
typedef int (*imagine_spm_train_fn)(const char* const* sentences, const size_t* lengths, size_t n,
                                    const char* const* keys, const char* const* values, size_t nkv, unsigned seed,
                                    char** out, size_t* out_len, char** err);
// Loads a serialized model; returns a handle or NULL with *err set.
typedef void* (*imagine_spm_load_fn)(const char* proto, size_t len, char** err);
typedef void (*imagine_spm_free_fn)(void* handle);
typedef int (*imagine_spm_size_fn)(void* handle);
// The piece text of `id` (valid while the handle lives) and its kind.
typedef int (*imagine_spm_piece_fn)(void* handle, int id, const char** piece, size_t* len);
// Encodes text into a malloc'ed id array; returns 0 on success.
typedef int (*imagine_spm_encode_fn)(void* handle, const char* text, size_t len, int** ids, size_t* n);
typedef void (*imagine_spm_free_buf_fn)(void* p);
}
