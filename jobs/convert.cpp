#include "jobs/convert.h"

#include <chrono>
#include <filesystem>

#include "formats/format_table.h"
#include "jobs/job_util.h"
#include "lib/core/error.h"

namespace dsq::jobs {

namespace fs = std::filesystem;

nlohmann::json ConvertReport::to_json() const {
  return {{"src", src},
          {"out", out},
          {"source_format", source_format},
          {"hf_layout", hf_layout.empty() ? nlohmann::json(nullptr) : nlohmann::json(hf_layout)},
          {"tensors", tensors},
          {"parameters", parameters},
          {"source_bytes", source_bytes},
          {"tensor_bytes_in", tensor_bytes_in},
          {"tensor_bytes_out", written.raw_bytes},
          {"stored_bytes", written.stored_bytes},
          {"file_bytes", written.file_bytes},
          {"compressed_tensors", written.compressed},
          {"notes", written.notes},
          {"seconds", seconds}};
}

ConvertReport run_convert(const ConvertOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  formats::SinkOptions w;
  if (opts.dtype != "keep") {
    const auto dt = dtype_from_name(opts.dtype);
    if (!dt || (*dt != DType::kF32 && *dt != DType::kF16 && *dt != DType::kBF16))
      throw UsageError("--dtype must be keep, f32, f16 or bf16, got '" + opts.dtype + "'");
    w.cast = *dt;
  }
  if (opts.zstd_level < 0 || opts.zstd_level > formats::max_zstd_level())
    throw UsageError("--zstd must be 0 (off) to " + std::to_string(formats::max_zstd_level()));
  w.zstd_level = opts.zstd_level;
  if (!opts.hf.empty()) {
    w.hf_layout = formats::parse_hf_layout(opts.hf);
    if (w.hf_layout == formats::HfLayout::kNone)
      throw UsageError("--hf must be float, gptq, gptq-v2, awq or compressed-tensors, got '" +
                       opts.hf + "'");
    if (opts.zstd_level != 0) throw UsageError("--zstd applies to .dsq outputs, not --hf directories");
    if (opts.shard_bytes == 0) throw UsageError("--shard-size must be positive");
    w.hf_shard_bytes = opts.shard_bytes;
  }
  w.progress = opts.progress;
  const WeightStore ws = formats::open_model(opts.src);
  IoPlan io;
  io.input(opts.src);
  io.model_inputs(ws);
  io.model_output(opts.out, !opts.hf.empty());
  if (!opts.hf.empty() && fs::exists(opts.out))
    throw UsageError("'" + opts.out + "' (-o) exists: an export writes a new directory (remove it "
                     "or choose another name)");
  io.output(opts.json_out, "--json");
  io.check();
  ConvertReport r;
  r.src = opts.src;
  r.out = opts.out;
  r.hf_layout = opts.hf;
  r.source_format = ws.metadata.value("source_format", std::string());
  for (const auto& s : ws.sources) r.source_bytes += s.bytes;
  for (const auto& n : ws.names()) {
    const auto& e = ws.entry(n);
    r.tensor_bytes_in += tensor_nbytes(e.dtype, e.shape, e.dtype == DType::kQInt ? &e.quant : nullptr);
  }
  set_sink_tokenizer(w, ws);
  w.recipe = {{"command", opts.command}, {"dtype", opts.dtype}, {"zstd", opts.zstd_level}};
  if (ws.metadata.contains("recipe")) w.recipe["parent"] = ws.metadata["recipe"];  // e.g. quantization
  r.written = formats::write_model(ws, opts.out, w);
  r.tensors = r.written.tensors;
  r.parameters = r.written.parameters;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!opts.json_out.empty()) write_json_file(opts.json_out, r.to_json());
  return r;
}

}  // namespace dsq::jobs
