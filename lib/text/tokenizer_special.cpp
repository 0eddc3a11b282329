#include "lib/text/tokenizer_special.h"

#include <algorithm>

namespace dsq::text {

void SpecialTokenMatcher::add(std::string text, int32_t id) {
  if (text.empty()) return;
  auto& list = by_first_[static_cast<uint8_t>(text[0])];
  list.emplace_back(std::move(text), id);
  std::stable_sort(list.begin(), list.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  ++count_;
}

size_t SpecialTokenMatcher::match_prefix(std::string_view s, int32_t* id) const {
  if (s.empty()) return 0;
  for (const auto& cand : by_first_[static_cast<uint8_t>(s[0])]) {
    if (s.compare(0, cand.first.size(), cand.first) == 0) {
      *id = cand.second;
      return cand.first.size();
    }
  }
  return 0;
}

void SpecialTokenMatcher::split(std::string_view text,
                                const std::function<void(std::string_view)>& on_text,
                                const std::function<void(int32_t)>& on_token) const {
  size_t start = 0;  // beginning of the pending ordinary text
  for (size_t i = 0; i < text.size();) {
    int32_t id = -1;
    const size_t len = match_prefix(text.substr(i), &id);
    if (len == 0) {
      ++i;
      continue;
    }
    if (i > start) on_text(text.substr(start, i - start));
    on_token(id);
    i += len;
    start = i;
  }
  if (start < text.size()) on_text(text.substr(start));
}

}  // namespace dsq::text
