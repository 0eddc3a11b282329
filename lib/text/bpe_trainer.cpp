#include "lib/text/bpe_trainer.h"

#include <algorithm>
#include <unordered_map>
#include <vector>

#include "lib/core/error.h"
#include "lib/text/tokenizer_bpe.h"
#include "lib/text/tokenizer_regex.h"
#include "lib/text/unicode.h"

namespace dsq::text {

namespace {

using json = nlohmann::json;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Piece {
  std::vector<int32_t> sym;  // symbol ids: 0..255 bytes, 256.. merges
  int64_t count = 0;
};

}  // namespace

TrainedBpe train_bpe(std::string_view text, const BpeTrainOptions& o) {
  constexpr int64_t kSpecials = 2;
  if (o.vocab_size < kSpecials + 256 + 1)
    throw UsageError("--vocab must be at least 259 (2 special tokens, 256 bytes, 1 merge), got " +
                     std::to_string(o.vocab_size));
  if (o.min_frequency < 1) throw UsageError("the minimum pair frequency must be at least 1");
  // Distinct pre-tokenized pieces and their counts.
  std::unordered_map<std::string, int64_t> counts;
  {
    const SplitRegex re(kGpt2SplitPattern);
    const CodepointText cps = utf8_split(text);
    std::vector<std::pair<uint32_t, uint32_t>> matches;
    re.find_all(cps.cps.data(), cps.cps.size(), &matches);
    for (const auto& [b, e] : matches)
      ++counts[std::string(text.substr(cps.offset[b], cps.offset[e] - cps.offset[b]))];
  }
  // In a fixed order (the map's is not): by bytes.
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Piece> pieces(sorted.size());
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pieces that held the pair (stale ok)
  for (size_t w = 0; w < sorted.size(); ++w) {
    Piece& p = pieces[w];
    p.count = sorted[w].second;
    for (unsigned char c : sorted[w].first) p.sym.push_back(c);
    for (size_t i = 0; i + 1 < p.sym.size(); ++i) {
      const uint64_t k = pair_key(p.sym[i], p.sym[i + 1]);
      pair_count[k] += p.count;
      where[k].push_back(static_cast<int32_t>(w));
    }
  }
  std::vector<std::pair<int32_t, int32_t>> merges;
  const int64_t max_merges = o.vocab_size - kSpecials - 256;
  std::vector<int32_t> merged;
  while (static_cast<int64_t>(merges.size()) < max_merges) {
    uint64_t best = 0;
    int64_t best_count = 0;
    for (const auto& [k, c] : pair_count)
      if (c > best_count || (c == best_count && c > 0 && k < best)) {
        best = k;
        best_count = c;
      }
    if (best_count < o.min_frequency) break;
    const int32_t a = static_cast<int32_t>(best >> 32), b = static_cast<int32_t>(best & 0xFFFFFFFFu);
    const int32_t id = 256 + static_cast<int32_t>(merges.size());
    merges.emplace_back(a, b);
    std::vector<int32_t> list = std::move(where[best]);
    where.erase(best);
    std::sort(list.begin(), list.end());
    list.erase(std::unique(list.begin(), list.end()), list.end());
    for (const int32_t w : list) {
      Piece& p = pieces[static_cast<size_t>(w)];
      bool has = false;
      for (size_t i = 0; i + 1 < p.sym.size() && !has; ++i) has = p.sym[i] == a && p.sym[i + 1] == b;
      if (!has) continue;
      for (size_t i = 0; i + 1 < p.sym.size(); ++i) pair_count[pair_key(p.sym[i], p.sym[i + 1])] -= p.count;
      merged.clear();
      for (size_t i = 0; i < p.sym.size(); ++i) {
        if (i + 1 < p.sym.size() && p.sym[i] == a && p.sym[i + 1] == b) {
          merged.push_back(id);
          ++i;
        } else {
          merged.push_back(p.sym[i]);
        }
      }
      p.sym.swap(merged);
      for (size_t i = 0; i + 1 < p.sym.size(); ++i) {
        const uint64_t k = pair_key(p.sym[i], p.sym[i + 1]);
        pair_count[k] += p.count;
        where[k].push_back(w);
      }
    }
    pair_count.erase(best);
    for (auto it = pair_count.begin(); it != pair_count.end();)  // drop pairs that vanished
      it = it->second == 0 ? pair_count.erase(it) : std::next(it);
  }
  // Token texts in the byte-level alphabet.
  const auto b2u = bytes_to_unicode();
  std::vector<std::string> sym_text(256 + merges.size());
  for (int c = 0; c < 256; ++c) utf8_append(sym_text[static_cast<size_t>(c)], b2u[static_cast<size_t>(c)]);
  for (size_t m = 0; m < merges.size(); ++m)
    sym_text[256 + m] = sym_text[static_cast<size_t>(merges[m].first)] +
                        sym_text[static_cast<size_t>(merges[m].second)];
  // Two merges can spell the same text ("a"+"bc" and "ab"+"c"): they share the first one's id,
  // so ids stay dense.
  json vocab = json::object();
  int64_t next_id = kSpecials;
  for (const std::string& t : sym_text)
    if (!vocab.contains(t)) vocab[t] = next_id++;
  json merge_list = json::array();
  for (const auto& [x, y] : merges)
    merge_list.push_back({sym_text[static_cast<size_t>(x)], sym_text[static_cast<size_t>(y)]});
  auto added = [](int64_t id, const std::string& content) {
    return json{{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
                {"rstrip", false},   {"normalized", false}, {"special", true}};
  };
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false},
                           {"trim_offsets", true}, {"use_regex", true}};
  TrainedBpe r;
  r.tokenizer_json = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", json::array({added(0, o.bos), added(1, o.eos)})},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", o.bos}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array({{{"SpecialToken", {{"id", o.bos}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
        {"special_tokens", {{o.bos, {{"id", o.bos}, {"ids", json::array({0})}, {"tokens", json::array({o.bos})}}}}}}},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merge_list}}}};
  r.config_json = {{"bos_token", o.bos}, {"eos_token", o.eos}, {"add_bos_token", true},
                   {"tokenizer_class", "PreTrainedTokenizerFast"}, {"model_max_length", 1 << 20}};
  r.vocab_size = next_id;
  r.merges = static_cast<int64_t>(merges.size());
  r.pieces = static_cast<int64_t>(pieces.size());
  return r;
}

}  // namespace dsq::text
