#include "lib/text/gguf_vocab.h"

#include <memory>
#include <string>
#include <vector>

#include "lib/core/error.h"
#include "lib/text/tokenizer_model.h"

namespace dsq::text {

using json = nlohmann::json;
using formats::gguf_array;
using formats::gguf_bool;
using formats::gguf_string;
using formats::gguf_u32;
using formats::GgufValueType;

namespace {

// llama.cpp's llama_token_type (tokenizer.ggml.token_type).
constexpr int kNormal = 1, kControl = 3, kUserDefined = 4;

void add_ids(formats::GgufMetadata& md, int32_t bos, int32_t eos, int32_t unk, bool add_bos) {
  if (bos >= 0) md.emplace_back("tokenizer.ggml.bos_token_id", gguf_u32(static_cast<uint32_t>(bos)));
  if (eos >= 0) md.emplace_back("tokenizer.ggml.eos_token_id", gguf_u32(static_cast<uint32_t>(eos)));
  if (unk >= 0) md.emplace_back("tokenizer.ggml.unknown_token_id", gguf_u32(static_cast<uint32_t>(unk)));
  md.emplace_back("tokenizer.ggml.add_bos_token", gguf_bool(add_bos));
  md.emplace_back("tokenizer.ggml.add_eos_token", gguf_bool(false));
}

formats::GgufMetadata from_spm(const SpmModel& m) {
  if (!m.precompiled_charsmap.empty())
    throw ConfigError("'" + m.source + "': a SentencePiece normalization table (precompiled_charsmap) "
                      "cannot be written to GGUF's llama vocabulary");
  if (m.treat_whitespace_as_suffix || !m.escape_whitespaces)
    throw ConfigError("'" + m.source + "': SentencePiece whitespace options other than Llama's "
                      "cannot be written to GGUF");
  // BOS/EOS as the tokenizer resolves them (-2: the "<s>" / "</s>" pieces); building it also
  // validates the vocabulary.
  const std::unique_ptr<Tokenizer> tok = make_spm_tokenizer(m);
  json tokens = json::array(), scores = json::array(), types = json::array();
  int32_t unk = -1;
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    const SpmPiece& p = m.pieces[i];
    tokens.push_back(p.text);
    scores.push_back(p.score);
    types.push_back(static_cast<int32_t>(p.type));  // SentencePiece's numbering is llama.cpp's
    if (p.type == SpmPieceType::kUnknown && unk < 0) unk = static_cast<int32_t>(i);
  }
  formats::GgufMetadata md = {
      {"tokenizer.ggml.model", gguf_string("llama")},
      {"tokenizer.ggml.pre", gguf_string("default")},
      {"tokenizer.ggml.tokens", gguf_array(GgufValueType::kString, std::move(tokens))},
      {"tokenizer.ggml.scores", gguf_array(GgufValueType::kF32, std::move(scores))},
      {"tokenizer.ggml.token_type", gguf_array(GgufValueType::kI32, std::move(types))},
  };
  add_ids(md, tok->bos_id(), tok->eos_id(), unk, m.add_bos);
  md.emplace_back("tokenizer.ggml.add_space_prefix", gguf_bool(m.add_dummy_prefix));
  return md;
}

// The GGUF name of a byte-level BPE pre-tokenizer: the first known name whose splits are m's.
std::string pre_name(const BpeModel& m) {
  if (!m.pre.empty()) return m.pre;
  for (const char* name : {"gpt-2", "llama-bpe", "qwen2", "deepseek-llm", "deepseek-coder", "starcoder"}) {
    const std::vector<BpeSplit> want = bpe_splits_for_pre(name, m.source);
    bool same = want.size() == m.splits.size();
    for (size_t i = 0; same && i < want.size(); ++i)
      same = want[i].pattern == m.splits[i].pattern && want[i].behavior == m.splits[i].behavior;
    if (same) return name;
  }
  throw ConfigError("'" + m.source + "': its pre-tokenizer matches none that GGUF names (known: "
                    "gpt-2, llama-bpe, qwen2, deepseek-llm, deepseek-coder, starcoder)");
}

formats::GgufMetadata from_bpe(const BpeModel& m) {
  if (!m.byte_level || m.byte_fallback || m.prepend_space_symbol || m.replace_space_symbol)
    throw ConfigError("'" + m.source + "': only byte-level BPE vocabularies can be written to GGUF "
                      "(this one is character-level with ▁ spaces or byte fallback)");
  if (m.add_prefix_space || m.ignore_merges)
    throw ConfigError("'" + m.source + "': add_prefix_space / ignore_merges cannot be written to "
                      "GGUF's gpt2 vocabulary");
  const std::string pre = pre_name(m);
  json tokens = json::array(), types = json::array(), merges = json::array();
  for (size_t i = 0; i < m.tokens.size(); ++i) {
    tokens.push_back(m.tokens[i]);
    types.push_back(m.kinds[i] == BpeTokenKind::kControl ? kControl
                    : m.kinds[i] == BpeTokenKind::kAdded ? kUserDefined
                                                         : kNormal);
  }
  for (const auto& [a, b] : m.merges) merges.push_back(a + " " + b);
  formats::GgufMetadata md = {
      {"tokenizer.ggml.model", gguf_string("gpt2")},
      {"tokenizer.ggml.pre", gguf_string(pre)},
      {"tokenizer.ggml.tokens", gguf_array(GgufValueType::kString, std::move(tokens))},
      {"tokenizer.ggml.token_type", gguf_array(GgufValueType::kI32, std::move(types))},
      {"tokenizer.ggml.merges", gguf_array(GgufValueType::kString, std::move(merges))},
  };
  add_ids(md, m.bos_id, m.eos_id, m.unk_id, m.add_bos);
  return md;
}

}  // namespace

formats::GgufMetadata gguf_tokenizer_metadata(const json& ref) {
  const TokenizerModel model = load_tokenizer_model(ref);
  if (const auto* spm = std::get_if<SpmModel>(&model)) return from_spm(*spm);
  return from_bpe(std::get<BpeModel>(model));
}

}  // namespace dsq::text
