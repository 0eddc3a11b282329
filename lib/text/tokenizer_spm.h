// Internal to the tokenizers: SentencePiece BPE (the vocabulary, its sources, the encoder).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lib/text/tokenizer.h"

namespace dsq::text {

// sentencepiece_model.proto ModelProto.SentencePiece.Type (on-disk values).
enum class SpmPieceType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct SpmPiece {
  std::string text;  // UTF-8, with U+2581 for spaces
  float score = 0;   // BPE: higher merges first
  SpmPieceType type = SpmPieceType::kNormal;
};

struct SpmModel {
  std::vector<SpmPiece> pieces;
  // NormalizerSpec (defaults as in sentencepiece_model.proto).
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
  bool treat_whitespace_as_suffix = false;
  std::string precompiled_charsmap;  // darts-clone trie + normalized strings; empty = identity
  // TrainerSpec.
  bool byte_fallback = false;
  std::string unk_surface = " \xE2\x81\x87 ";  // what an unknown piece decodes to
  int32_t bos_id = -2, eos_id = -2;            // -2: the control pieces "<s>" / "</s>" if present
  bool add_bos = true;  // Llama's tokenizers put BOS first (Tokenizer::adds_bos)
  // true: SentencePiece semantics (the whole text is normalized at once; user-defined pieces are
  // kept whole). false: llama.cpp semantics for GGUF vocabularies (control and user-defined
  // tokens are split out first, each remaining fragment gets the dummy prefix when it follows a
  // special token or starts the text, spaces are never collapsed).
  bool sentencepiece_mode = true;
  std::string source;  // file name for messages
};

// Parses a serialized ModelProto (tokenizer.model). Throws FormatError naming `path` on corrupt
// protobuf bytes and ConfigError for models other than BPE.
SpmModel parse_sentencepiece_model(std::string_view bytes, const std::string& path);

// Builds the tokenizer; validates the vocabulary (duplicate pieces, missing byte pieces when
// byte_fallback is set, a missing unknown piece) with FormatError naming model.source.
std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmModel model);

}  // namespace dsq::text
