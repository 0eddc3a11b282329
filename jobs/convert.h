// `dsq convert` and `dsq export`: open any supported model and stream it into an output sink
// (formats/sinks.h: .dsq or .gguf by the output's extension, or a Hugging Face directory in a
// layout for `dsq export --hf`).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/sinks.h"

namespace dsq::jobs {

struct ConvertOptions {
  std::string src;             // anything open_model() reads
  std::string out;             // the .dsq to write (via <out>.tmp)
  std::string dtype = "keep";  // keep | f32 | f16 | bf16 (1-D tensors stay f32, see DsqWriteOptions)
  int zstd_level = 0;          // 0 = uncompressed, 1..22
  std::string json_out;        // the report as JSON: a file, "-" for stdout, empty for none
  bool progress = true;
  std::string command = "convert";  // recorded in the output's recipe
  // export: a Hugging Face directory in this layout (formats::parse_hf_layout names), and the
  // largest shard in bytes. Empty: the output's extension decides.
  std::string hf;
  uint64_t shard_bytes = uint64_t{5} << 30;
};

struct ConvertReport {
  std::string src, out, source_format, hf_layout;
  int64_t tensors = 0, parameters = 0;
  uint64_t source_bytes = 0;     // sum of the source files' sizes
  uint64_t tensor_bytes_in = 0;  // tensor bytes as the source stores them (after dequantization)
  formats::SinkReport written;
  double seconds = 0;
  nlohmann::json to_json() const;
};

// Throws UsageError for bad options (unknown dtype or layout, zstd level outside 0..22, out ==
// src, an existing directory for an export) and
// dsq::Error for bad input; on any error no output file is left behind.
ConvertReport run_convert(const ConvertOptions& opts);

}  // namespace dsq::jobs
