// Tokenizers: text <-> token ids for `dsq eval --text`, `dsq generate` and calibration data.
//
// Two families, both exact re-implementations (no Python, no libsentencepiece):
// - SentencePiece BPE (Llama-2, TinyLlama, llama2.c tok512): from tokenizer.model (protobuf) or
//   GGUF metadata (tokenizer.ggml.model = "llama") or llama2.c tokenizer .bin files.
// - Byte-level BPE (GPT-2, Llama-3, Qwen2, DeepSeek): from a Hugging Face tokenizer.json or GGUF
//   metadata (tokenizer.ggml.model = "gpt2" with tokenizer.ggml.pre naming the pre-tokenizer).
// Special tokens (control / user-defined / added tokens) found literally in the text are emitted
// as their ids before the remaining text is tokenized, as Hugging Face tokenizers and llama.cpp
// do.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dsq::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids for `text` (UTF-8; malformed bytes go through byte fallback), BOS first when
  // add_bos and the vocabulary has one. Never adds EOS.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;
  // Text for a sequence of ids: the inverse of encode up to normalization (SentencePiece drops
  // the dummy-prefix space; control tokens such as BOS/EOS render as nothing). Throws
  // ConfigError for an id outside the vocabulary.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // The vocabulary's text for one id (the raw piece, e.g. "▁the", "<0x0A>", "Ġthe").
  virtual std::string token_text(int32_t id) const = 0;

  int32_t bos_id() const { return bos_id_; }  // -1 when the vocabulary has none
  // Whether the tokenizer's own pipeline puts BOS before a text: a Hugging Face post-processor
  // (TemplateProcessing that starts with a special token, as DeepSeek-V3's), tokenizer_config's
  // add_bos_token for SentencePiece, GGUF's tokenizer.ggml.add_bos_token. What `dsq generate`
  // follows (Qwen: no BOS; Llama/DeepSeek: BOS).
  bool adds_bos() const { return adds_bos_ && bos_id_ >= 0; }
  int32_t eos_id() const { return eos_id_; }  // -1 when the vocabulary has none
  size_t vocab_size() const { return vocab_size_; }
  // Short description for logs, e.g. "sentencepiece bpe, 512 pieces ('tok512.model')".
  const std::string& description() const { return description_; }

 protected:
  // Throws ConfigError "'<source>': token id N is outside the vocabulary of V".
  void check_id(int32_t id) const;

  std::string source_;  // file the vocabulary came from, for messages
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  bool adds_bos_ = false;
  size_t vocab_size_ = 0;
  std::string description_;
};

// Loads the tokenizer a model reader referenced in WeightStore::metadata["tokenizer"]:
//   {"kind": "sentencepiece", "path": ".../tokenizer.model"}
//   {"kind": "hf-json", "path": ".../tokenizer.json"}
//   {"kind": "gguf", "path": ".../model.gguf"}
//   {"kind": "llama2c", "path": ".../tokenizer.bin"}
// A reference read back from a .dsq header may also carry the tokenizer itself: "files"
// ({"tokenizer.model": {"bytes", "sha256", "base64"}, ...}) or, for "gguf", "gguf_metadata" (the
// tokenizer.* keys); these are used instead of the path, which may no longer exist.
// Throws ConfigError for an unknown kind or unsupported tokenizer (naming it), FormatError for a
// corrupt file and IoError for a missing one.
std::unique_ptr<Tokenizer> load_tokenizer(const nlohmann::json& ref);

// Loads a tokenizer from a file, choosing the kind from its name and magic bytes
// (tokenizer.json, *.gguf, llama2.c .bin, otherwise a SentencePiece protobuf).
std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path);

// Reads a .u32 token file (little-endian uint32, no header). Throws FormatError when the size is
// not a multiple of 4 or an id does not fit int32; the caller checks ids against its vocabulary.
std::vector<int32_t> read_token_ids(const std::string& path);

// Reads a whole file as bytes (IoError naming the path when it cannot be read).
std::string load_text_file(const std::string& path);

// Throws FormatError naming `path` unless `text` looks like text: no NUL byte and at most 1% of
// its bytes in malformed UTF-8 (a binary file given as --text would otherwise be "tokenized" for
// minutes into garbage).
void require_text(std::string_view text, const std::string& path);

}  // namespace dsq::text
