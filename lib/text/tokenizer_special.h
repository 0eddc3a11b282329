// Internal to the tokenizers: literal matching of special / added tokens before subword
// tokenization (leftmost-longest, like Hugging Face's added-vocabulary matcher), and the per-call
// cache of ids for repeated words.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dsq::text {

class SpecialTokenMatcher {
 public:
  void add(std::string text, int32_t id);  // empty texts are ignored
  bool empty() const { return count_ == 0; }

  // Byte length of the longest token that `s` starts with (0 if none); its id in *id.
  size_t match_prefix(std::string_view s, int32_t* id) const;

  // Calls on_text(fragment) for each run of ordinary text and on_token(id) for each special token
  // found, in text order. Empty fragments are not reported.
  void split(std::string_view text, const std::function<void(std::string_view)>& on_text,
             const std::function<void(int32_t)>& on_token) const;

 private:
  // Candidates by first byte, longest first.
  std::array<std::vector<std::pair<std::string, int32_t>>, 256> by_first_{};
  size_t count_ = 0;
};

// Remembers, for the duration of one encode call, where the ids of each word already sit in the
// output vector, so a repeated word is copied instead of merged again.
class WordIdCache {
 public:
  // Appends the ids remembered for `word` to *out; false when the word is new.
  bool replay(std::string_view word, std::vector<int32_t>* out) const {
    const auto it = spans_.find(word);
    if (it == spans_.end()) return false;
    const auto first = out->begin() + static_cast<std::ptrdiff_t>(it->second.first);
    out->insert(out->end(), first, first + static_cast<std::ptrdiff_t>(it->second.second));
    return true;
  }
  // Records that out[begin, out.size()) are the ids of `word` (which must outlive the cache).
  void remember(std::string_view word, size_t begin, const std::vector<int32_t>& out) {
    spans_.emplace(word, std::make_pair(begin, out.size() - begin));
  }

 private:
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> spans_;  // offset, count
};

}  // namespace dsq::text
