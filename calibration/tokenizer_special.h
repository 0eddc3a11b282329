// Internal to the tokenizers: literal matching of special / added tokens before subword
// tokenization, leftmost-longest like Hugging Face's added-vocabulary matcher.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsq::calibration {

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

}  // namespace dsq::calibration
