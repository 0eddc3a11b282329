#include "calibration/calib_data.h"

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "lib/core/error.h"
#include "lib/core/rng.h"
#include "lib/core/json_io.h"
#include "lib/core/hash.h"
#include "lib/core/log.h"

namespace dsq::calibration {
namespace {

// Uniform in [0, n) without modulo bias (rejection sampling).
uint64_t uniform_below(uint64_t& state, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = splitmix64(state);
  while (x >= limit);
  return x % n;
}

std::string extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

std::vector<int32_t> tokenize_jsonl(const std::string& path, const std::string& text,
                                    const text::Tokenizer& tok) {
  std::vector<int32_t> ids;
  std::istringstream in(text);
  std::string line;
  int64_t line_no = 0, docs = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j =
        parse_json(line, path + ":" + std::to_string(line_no));
    if (!j.is_object())
      throw FormatError(strprintf("'%s': line %lld is not a JSON object", path.c_str(),
                                  static_cast<long long>(line_no)));
    const auto it = j.find("text");
    if (it == j.end() || !it->is_string())
      throw FormatError(strprintf("'%s': line %lld has no string field 'text'", path.c_str(),
                                  static_cast<long long>(line_no)));
    const std::vector<int32_t> doc = tok.encode(it->get<std::string>(), false);
    ids.insert(ids.end(), doc.begin(), doc.end());
    ++docs;
  }
  if (docs == 0) throw FormatError("'" + path + "': no documents");
  return ids;
}

}  // namespace

std::vector<int32_t> read_calib_stream(const std::string& path, const text::Tokenizer* tok,
                                       int64_t vocab) {
  const std::string ext = extension(path);
  std::vector<int32_t> ids;
  if (ext == ".u32") {
    ids = text::read_token_ids(path);
  } else if (ext == ".txt" || ext == ".jsonl") {
    if (!tok) {
      throw ConfigError("'" + path + "': text calibration data needs the model's tokenizer, and "
                        "the model has none (pass token ids as a .u32 file)");
    }
    const std::string text = text::load_text_file(path);
    text::require_text(text, path);
    ids = ext == ".txt" ? tok->encode(text, false) : tokenize_jsonl(path, text, *tok);
  } else {
    throw UsageError("'" + path + "': calibration data must be .u32 (token ids), .txt or .jsonl");
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab)
      throw FormatError(strprintf("'%s': token %zu has id %d, outside the vocabulary [0, %lld)",
                                  path.c_str(), i, ids[i], static_cast<long long>(vocab)));
  }
  return ids;
}

std::vector<int64_t> draw_slots(int64_t n_slots, int64_t n, uint64_t seed) {
  DSQ_ASSERT(n >= 0 && n <= n_slots, "draw %lld of %lld slots", static_cast<long long>(n),
             static_cast<long long>(n_slots));
  // Partial Fisher-Yates over a sparse permutation (only touched entries are stored), so the
  // cost is O(n log n) whatever the stream length.
  std::vector<std::pair<int64_t, int64_t>> swapped;  // sorted (index, value) overrides
  auto get = [&](int64_t i) {
    auto it = std::lower_bound(swapped.begin(), swapped.end(), std::make_pair(i, INT64_MIN));
    return it != swapped.end() && it->first == i ? it->second : i;
  };
  auto set = [&](int64_t i, int64_t v) {
    auto it = std::lower_bound(swapped.begin(), swapped.end(), std::make_pair(i, INT64_MIN));
    if (it != swapped.end() && it->first == i) it->second = v;
    else swapped.insert(it, {i, v});
  };
  uint64_t state = seed;
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = i + static_cast<int64_t>(uniform_below(state, static_cast<uint64_t>(n_slots - i)));
    const int64_t vi = get(i), vj = get(j);
    set(i, vj);
    set(j, vi);
    out.push_back(vj);
  }
  std::sort(out.begin(), out.end());
  return out;
}

CalibData load_calib_data(const CalibOptions& o, int64_t vocab, int32_t bos_id,
                          const text::Tokenizer* tok) {
  if (o.paths.empty()) throw UsageError("missing calibration data (--calib FILE)");
  if (o.n_samples <= 0 && !o.all_windows) throw UsageError("--calib-samples must be positive");
  if (o.seq_len <= 1) throw UsageError("--calib-len must be at least 2");
  const bool bos = o.bos && bos_id >= 0;
  std::vector<std::vector<int32_t>> streams;
  int64_t longest = 0, total = 0;
  for (const auto& path : o.paths) {
    std::vector<int32_t> s = read_calib_stream(path, tok, vocab);
    if (bos && !s.empty() && s.front() == bos_id) s.erase(s.begin());
    if (s.empty()) throw FormatError("'" + path + "': no calibration tokens");
    longest = std::max(longest, static_cast<int64_t>(s.size()));
    total += static_cast<int64_t>(s.size());
    streams.push_back(std::move(s));
  }
  const std::string what = o.paths.size() == 1 ? "'" + o.paths.front() + "'" : "the calibration files";

  const int64_t extra = bos ? 1 : 0;  // ids per window not taken from the stream
  int64_t len = o.seq_len, n = o.n_samples;
  if (longest < len - extra) {
    len = longest + extra;
    log_warn(strprintf("%s: %lld tokens: calibration windows shortened from %lld to %lld tokens",
                       what.c_str(), static_cast<long long>(longest),
                       static_cast<long long>(o.seq_len), static_cast<long long>(len)));
  }
  const int64_t span = len - extra;
  std::vector<int64_t> first_slot;  // [file] index of its first slot in the global numbering
  int64_t n_slots = 0;
  for (const auto& s : streams) {
    first_slot.push_back(n_slots);
    n_slots += static_cast<int64_t>(s.size()) / span;
  }
  if (o.all_windows) {
    n = n_slots;
  } else if (n_slots < n) {
    n = n_slots;
    log_warn(strprintf("%s: %lld tokens hold only %lld windows of %lld: using %lld windows "
                       "instead of %lld",
                       what.c_str(), static_cast<long long>(total),
                       static_cast<long long>(n_slots), static_cast<long long>(len),
                       static_cast<long long>(n), static_cast<long long>(o.n_samples)));
  }
  CalibData d;
  d.n_samples = n;
  d.seq_len = len;
  d.tokens.reserve(static_cast<size_t>(n * len));
  for (const int64_t slot : draw_slots(n_slots, n, o.seed)) {
    const size_t f = static_cast<size_t>(
        std::upper_bound(first_slot.begin(), first_slot.end(), slot) - first_slot.begin() - 1);
    if (bos) d.tokens.push_back(bos_id);
    const auto first = streams[f].begin() + (slot - first_slot[f]) * span;
    d.tokens.insert(d.tokens.end(), first, first + span);
  }
  nlohmann::json files = nlohmann::json::array();
  for (size_t i = 0; i < o.paths.size(); ++i)
    files.push_back({{"file", std::filesystem::path(o.paths[i]).filename().string()},
                     {"sha256", sha256_file(o.paths[i])},
                     {"stream_tokens", static_cast<int64_t>(streams[i].size())}});
  d.recipe = {{"files", files},
              {"stream_tokens", total},
              {"samples", n},
              {"seq_len", len},
              {"seed", o.seed},
              {"bos", bos}};
  return d;
}

}  // namespace dsq::calibration
