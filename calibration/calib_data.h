// Calibration data for calibrated quantization (GPTQ, AWQ): N windows of L token ids drawn
// deterministically from a file.
//
// Sources (by extension):
//   .u32   little-endian uint32 ids, no header (already tokenized for this model)
//   .txt   UTF-8 text, tokenized once with the model's tokenizer
//   .jsonl one JSON object per line with a string field "text"; documents are tokenized one by
//          one and concatenated
// Several files mix domains (e.g. in-domain stories and encyclopedic text): each file's stream is
// cut into its own slots, and the draw picks among all of them, so each file contributes in
// proportion to its length and no window straddles two files.
// Sampling: the id stream is cut into non-overlapping slots of L ids (L-1 with BOS, see below);
// a seeded Fisher-Yates draw (splitmix64, identical on every platform) picks N distinct slots,
// which are then used in file order. When the stream holds fewer than N slots, N is reduced to
// the slot count with a warning; when it is shorter than one window, L is reduced likewise.
// BOS: each window is the model's BOS id followed by L-1 ids of its slot, so every window is a
// fresh sequence at position 0, the way a served model sees a prompt. (This differs on purpose
// from `dsq eval --bos`, which reproduces the reference protocol of ../shared/data/MANIFEST.md: BOS
// once at the head of the stream, then consecutive windows taken as they are.) A BOS at the very start of the stream
// (the shared .u32 files begin with one) is dropped first so no window starts with two.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/text/tokenizer.h"

namespace dsq::calibration {

struct CalibOptions {
  std::vector<std::string> paths;  // .u32, .txt or .jsonl files (empty: no calibration)
  int64_t n_samples = 128;  // windows
  bool all_windows = false;  // every slot of the stream instead (n_samples ignored; dsq train)
  int64_t seq_len = 512;    // tokens per window (BOS included)
  uint64_t seed = 0;
  bool bos = true;          // start each window with BOS (ignored when the model has none)
};

struct CalibData {
  int64_t n_samples = 0;
  int64_t seq_len = 0;
  std::vector<int32_t> tokens;  // [n_samples, seq_len], row-major
  // What was used: {"files": [{"file", "sha256", "stream_tokens"}...], "samples", "seq_len",
  // "seed", "bos"}.
  nlohmann::json recipe = nlohmann::json::object();

  std::span<const int32_t> window(int64_t i) const {
    return {tokens.data() + i * seq_len, static_cast<size_t>(seq_len)};
  }
};

// The ids of the file (tokenized when text). `tok` may be null for .u32 files; text files without
// a tokenizer throw ConfigError. Ids are checked against `vocab` (FormatError naming the file).
std::vector<int32_t> read_calib_stream(const std::string& path, const text::Tokenizer* tok,
                                       int64_t vocab);

// Reads the file and draws the windows. bos_id < 0 disables BOS. Throws UsageError for
// non-positive counts, FormatError for an empty stream.
CalibData load_calib_data(const CalibOptions& opts, int64_t vocab, int32_t bos_id,
                          const text::Tokenizer* tok);

// The window draw alone (exposed for tests): start offsets of the chosen slots, in file order.
std::vector<int64_t> draw_slots(int64_t n_slots, int64_t n, uint64_t seed);

}  // namespace dsq::calibration
