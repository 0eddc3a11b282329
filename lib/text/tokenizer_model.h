// Internal to the tokenizers: what a tokenizer reference holds (the vocabulary and its rules)
// before the tokenizer is built; the GGUF tokenizer metadata (gguf_vocab.h) is written from it.
#pragma once

#include <memory>
#include <variant>

#include <nlohmann/json.hpp>

#include "lib/text/tokenizer.h"
#include "lib/text/tokenizer_bpe.h"
#include "lib/text/tokenizer_spm.h"

namespace dsq::text {

using TokenizerModel = std::variant<SpmModel, BpeModel>;

// The model of a reference as load_tokenizer() takes it (same errors).
TokenizerModel load_tokenizer_model(const nlohmann::json& ref);
// Validates and builds the tokenizer (load_tokenizer = make_tokenizer(load_tokenizer_model)).
std::unique_ptr<Tokenizer> make_tokenizer(TokenizerModel model);

}  // namespace dsq::text
