// Flags shared by `dsq prune` and `dsq sparsify`: model, output, calibration windows, drift
// windows, zstd and the JSON report, bound to one struct so each command file stays thin.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include <nlohmann/json.hpp>

#include "jobs/compress_common.h"

namespace dsq::tools {

struct CompressFlags {
  std::string model, out, json_path;
  jobs::CalibOptions calib;
  int64_t drift_samples = 16;
  int zstd_level = 0;
};

// Binds MODEL, -o, --calib, --calib-samples, --calib-len, --seed, --drift-samples, --zstd, --json.
void add_compress_flags(CLI::App& sub, CompressFlags& f);
// Copies the shared flags into a compression step's options (progress follows --quiet).
void apply_compress_flags(const CompressFlags& f, jobs::CompressRunOptions* o);

}  // namespace dsq::tools
