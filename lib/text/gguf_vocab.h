// The tokenizer.* metadata of a GGUF file, written from the tokenizer a model references
// (WeightStore::metadata["tokenizer"]), as llama.cpp's converters write it:
// - SentencePiece vocabularies (tokenizer.model, llama2.c tokenizer .bin, GGUF "llama"):
//   tokenizer.ggml.model "llama", tokens, scores, token_type, bos/eos/unknown ids,
//   add_bos_token, add_space_prefix;
// - byte-level BPE (Hugging Face tokenizer.json, GGUF "gpt2"): model "gpt2", tokenizer.ggml.pre
//   naming the pre-tokenizer (matched against the ones dsq knows), tokens, token_type, merges,
//   bos/eos/unknown ids, add_bos_token.
// Read back (load_tokenizer on the GGUF), the vocabulary gives the same ids as the source on
// text in NFC without leading, trailing or repeated spaces (tests/text/gguf_vocab_test.cpp, on
// TinyStories, WikiText-2 and Chinese text): llama.cpp neither NFC-normalizes (Qwen2's
// tokenizer.json does) nor strips and collapses spaces (SentencePiece's
// remove_extra_whitespaces).
#pragma once

#include <nlohmann/json.hpp>

#include "formats/gguf/gguf_writer.h"

namespace dsq::text {

// Throws ConfigError naming the tokenizer file for what GGUF cannot express: a SentencePiece
// normalization table (precompiled_charsmap), character-level BPE, byte fallback in BPE, a
// pre-tokenizer dsq has no GGUF name for, and the errors of load_tokenizer.
formats::GgufMetadata gguf_tokenizer_metadata(const nlohmann::json& ref);

}  // namespace dsq::text
