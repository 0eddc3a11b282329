// Plumbing the jobs share: atomic JSON reports, timing, the model's tokenizer.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "lib/core/weight_store.h"
#include "lib/text/tokenizer.h"

namespace dsq::jobs {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Writes `j` (pretty-printed) to `path` through <path>.tmp + rename; IoError naming the path.
void write_json_file(const std::string& path, const nlohmann::json& j);

// The tokenizer the model's reader found (metadata "tokenizer"); ConfigError naming `path` when
// the model has none (the hint names the --tokens alternative of `dsq eval`).
std::unique_ptr<text::Tokenizer> model_tokenizer(const WeightStore& ws, const std::string& path);

// The tokenizer when the model has a usable one, else null (only text inputs need it).
std::unique_ptr<text::Tokenizer> optional_tokenizer(const WeightStore& ws);

}  // namespace dsq::jobs
