// The input/output format table. One row per format: {name, extensions, sniff, open, sink}. Every
// command opens models through open_model() and writes them through open_sink() (sinks.h), so a
// new format is one row plus a formats/<fmt>/ dir.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "formats/sinks.h"
#include "lib/core/weight_store.h"

namespace dsq::formats {

struct OpenOptions {
  bool verify_checksums = true;  // dsq files: check each tensor's checksum when it is loaded
  // A model needs a config: without one a .dsq is refused at open (FormatError). Internal files
  // that are not models (the calibration pipeline's work directory) pass false.
  bool require_config = true;
};

struct FormatInfo {
  std::string_view name;                     // "hf", "safetensors", "gguf", "llama2c", "dsq"
  std::vector<std::string_view> extensions;  // ".gguf"; empty for directories
  // True when `path` looks like this format (magic bytes, or directory contents).
  bool (*sniff)(const std::string& path);
  // Open into a WeightStore with canonical names and a validated config. Throws dsq::Error.
  WeightStore (*open)(const std::string& path, const OpenOptions& opts);
  // The writer: a sink for an output path with one of `extensions`; nullptr when the format is
  // read-only.
  std::unique_ptr<ModelSink> (*sink)(const std::string& path, const WeightStore& src,
                                     const SinkOptions& opts) = nullptr;
};

const std::vector<FormatInfo>& format_table();

// Which format `path` is in; throws FormatError listing the supported formats when none match.
const FormatInfo& detect_format(const std::string& path);

// Open any supported model: HF directory, .safetensors file, .gguf, llama2.c .bin or .dsq.
WeightStore open_model(const std::string& path, const OpenOptions& opts = {});

}  // namespace dsq::formats
