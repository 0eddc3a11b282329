// The teacher's soft labels on disk: for every token row of the training (and held-out) windows,
// its top-k ids and log-probabilities at the run's temperature and the remaining mass (loss.h).
// The teacher runs once, before the student is loaded, so teacher and student are never in
// memory together, and a resumed run reuses the file.
//
// File layout (little-endian): "DSQTOPK1", u64 header length, the JSON header
// {"k", "vocab", "rows", "temperature", "key"} padded with spaces to a multiple of 8 bytes, then
// `rows` records of int32 ids[k], f32 logp[k], f64 p_rest. `key` describes what the rows are (the
// teacher and the windows); a cache whose key differs is recomputed.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "lib/core/weight_store.h"
#include "lib/train/loss.h"

namespace dsq::train {

class TeacherCacheWriter {
 public:
  // Writes to path.tmp; finish() renames it to path.
  TeacherCacheWriter(std::string path, int64_t k, int64_t vocab, int64_t rows, double temperature,
                     const nlohmann::json& key);
  // Appends the top-k records of logits[n_rows, vocab] (rows in parallel; deterministic).
  void add(const float* logits, int64_t n_rows);
  void finish();

 private:
  std::string path_;
  std::ofstream f_;
  int64_t k_, vocab_, rows_, written_ = 0;
  double temperature_;
};

class TeacherCache {
 public:
  // The cache at path when it exists and was made for `key` (and k, temperature); else nullopt.
  // A file that exists but is not a well-formed cache is also nullopt (it is rewritten).
  static std::optional<TeacherCache> open_if_matches(const std::string& path,
                                                     const nlohmann::json& key);
  int64_t rows() const { return rows_; }
  int64_t k() const { return k_; }
  int64_t vocab() const { return vocab_; }
  double temperature() const { return temperature_; }
  TeacherRow row(int64_t i) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  const std::byte* data_ = nullptr;
  int64_t k_ = 0, vocab_ = 0, rows_ = 0;
  double temperature_ = 1.0;
};

}  // namespace dsq::train
