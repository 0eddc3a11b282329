// `dsq convert`: open any supported model and stream it into an output sink (formats/sinks.h:
// .dsq today, chosen by the output's extension).
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
};

struct ConvertReport {
  std::string src, out, source_format;
  int64_t tensors = 0, parameters = 0;
  uint64_t source_bytes = 0;     // sum of the source files' sizes
  uint64_t tensor_bytes_in = 0;  // tensor bytes as the source stores them (after dequantization)
  formats::SinkReport written;
  double seconds = 0;
  nlohmann::json to_json() const;
};

// Throws UsageError for bad options (unknown dtype, zstd level outside 0..22, out == src) and
// dsq::Error for bad input; on any error no output file is left behind.
ConvertReport run_convert(const ConvertOptions& opts);

}  // namespace dsq::jobs
