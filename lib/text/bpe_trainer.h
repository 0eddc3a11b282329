// Training a byte-level BPE tokenizer (GPT-2 style) on a text, for `dsq train`.
//
// The text is pre-tokenized with GPT-2's split pattern (the pre-tokenizer the result declares),
// every piece becomes its UTF-8 bytes in the byte-level alphabet, and the most frequent adjacent
// pair (ties: the lower pair of ids, so the result is the same on every machine) is merged until
// the vocabulary has `vocab_size` entries or no pair occurs `min_frequency` times. Pair counts are
// kept incrementally: each merge touches only the distinct pieces that contain its pair.
//
// The result is a Hugging Face tokenizer.json document (BPE model, ByteLevel pre-tokenizer and
// decoder, a TemplateProcessing post-processor that puts BOS first) and its tokenizer_config.json
// (bos/eos tokens): the files lib/text's load_tokenizer reads, embedded into the .dsq like any
// checkpoint's tokenizer files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace dsq::text {

struct BpeTrainOptions {
  int64_t vocab_size = 2048;  // special tokens + 256 bytes + merges
  int64_t min_frequency = 2;
  std::string bos = "<s>", eos = "</s>";  // ids 0 and 1
};

struct TrainedBpe {
  nlohmann::json tokenizer_json;  // tokenizer.json
  nlohmann::json config_json;     // tokenizer_config.json
  int64_t vocab_size = 0;         // may be below the target when the text runs out of pairs
  int64_t merges = 0;
  int64_t pieces = 0;             // distinct pre-tokenized pieces
};

// Throws UsageError for a vocab_size below 258 + 1 (the specials, the bytes and one merge).
TrainedBpe train_bpe(std::string_view text, const BpeTrainOptions& o);

}  // namespace dsq::text
