// Internal to the tokenizers: merge-ranked BPE (Hugging Face `tokenizers` BPE model, GGUF
// tokenizer.ggml.model = "gpt2"), byte-level (GPT-2 bytes_to_unicode alphabet) or character
// level with <0xNN> byte fallback (Llama-2 style tokenizer.json).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lib/text/tokenizer.h"

namespace dsq::text {

// How a pre-tokenizer Split keeps the text around its matches (Hugging Face
// SplitDelimiterBehavior).
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext };

struct BpeSplit {
  std::string pattern;  // regex (see tokenizer_regex.h)
  SplitBehavior behavior = SplitBehavior::kIsolated;
};

// Role of a vocabulary entry when encoding and decoding.
enum class BpeTokenKind : uint8_t {
  kNormal = 0,   // produced by BPE; decodes through the byte-level/▁ mapping
  kControl = 1,  // special (BOS/EOS/...): matched literally, decodes to nothing
  kAdded = 2,    // user-defined / added token: matched literally, decodes to its text
};

struct BpeModel {
  std::vector<std::string> tokens;  // id -> text as stored (byte-level alphabet for normal tokens)
  std::vector<BpeTokenKind> kinds;  // same size as tokens
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
  bool byte_level = true;         // map bytes through GPT-2's bytes_to_unicode before BPE
  bool byte_fallback = false;     // character level: unknown characters become <0xNN> tokens
  bool ignore_merges = false;     // a pre-token that is itself a token is emitted unmerged
  bool add_prefix_space = false;  // ByteLevel: prepend ' ' unless the text starts with one
  bool nfc = false;               // NFC normalizer (Qwen2)
  // Character-level normalization (Llama-2 tokenizer.json): prepend "▁" to the text and replace
  // ' ' by "▁".
  bool prepend_space_symbol = false;
  bool replace_space_symbol = false;
  std::vector<BpeSplit> splits;  // applied in order, each to every piece of the previous one
  int32_t unk_id = -1, bos_id = -1, eos_id = -1;
  bool add_bos = false;  // the pipeline puts BOS first (Tokenizer::adds_bos)
  std::string pre;       // the GGUF pre-tokenizer name the splits came from (GGUF sources)
  std::string source;  // file name for messages
};

// The pre-tokenizer regexes of the vocabularies dsq knows by GGUF tokenizer.ggml.pre name
// ("gpt-2", "llama3"/"llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder", ...). Throws
// ConfigError naming an unknown pre-tokenizer.
std::vector<BpeSplit> bpe_splits_for_pre(const std::string& pre, const std::string& source);
// GPT-2's pattern, used by a ByteLevel pre-tokenizer with use_regex.
extern const char kGpt2SplitPattern[];
// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100.. in byte order (the byte-level alphabet).
std::array<char32_t, 256> bytes_to_unicode();

// Validates the model (FormatError naming model.source for merges of unknown tokens, duplicate
// tokens) and builds the tokenizer.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeModel model);

}  // namespace dsq::text
