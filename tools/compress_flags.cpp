#include "tools/compress_flags.h"

#include "tools/commands.h"

#include <fstream>

#include "jobs/job_util.h"
#include "lib/core/error.h"
#include "lib/core/log.h"

namespace dsq::tools {

void add_compress_flags(CLI::App& sub, CompressFlags& f) {
  sub.add_option("model", f.model, "Input model (HF directory, .safetensors, .gguf, llama2.c .bin, .dsq)")
      ->required();
  sub.add_option("-o,--output", f.out, jobs::kOutputModelHelp)->required();
  sub.add_option("--calib", f.calib.paths,
                 "Calibration data: .u32 ids, .txt or .jsonl text (tokenized with the model's "
                 "tokenizer); repeat to mix files");
  sub.add_option("--calib-samples", f.calib.n_samples, "Calibration windows")->capture_default_str();
  sub.add_option("--calib-len", f.calib.seq_len, "Tokens per calibration window (BOS included)")
      ->capture_default_str();
  sub.add_option("--seed", f.calib.seed, "Seed of the calibration window draw")->capture_default_str();
  sub.add_option("--drift-samples", f.drift_samples,
                 "Further held-out calibration windows on which the drift is measured (0 = none)")
      ->capture_default_str();
  sub.add_option("--zstd", f.zstd_level, "Compress tensors with zstd at this level (0 = off)")
      ->check(range(0, 22));
  sub.add_option("--json", f.json_path, "Write the report as JSON to this file ('-' for stdout)");
}

void apply_compress_flags(const CompressFlags& f, jobs::CompressRunOptions* o) {
  o->model_path = f.model;
  o->out_path = f.out;
  o->calib = f.calib;
  o->drift_samples = f.drift_samples;
  o->zstd_level = f.zstd_level;
  o->json_out = f.json_path;
  o->progress = !quiet();
}

}  // namespace dsq::tools
