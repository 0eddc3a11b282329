// Output sinks: where a command's model goes. The format table (format_table.h) has a writer
// column; open_sink() picks the row by the output's extension, so every command that writes a
// model (convert, quantize, prune, sparsify) writes any writable format the same way. .dsq is the
// first row; an exporter is one more row with its own ModelSink.
//
// Contract of a sink: add() takes tensors one at a time (canonical names, any dtype the format can
// hold) and writes them at once, so a model larger than RAM streams through; finish() commits
// atomically (write <out>.tmp, rename); a sink destroyed without finish() leaves nothing behind.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/core/weight_store.h"

namespace dsq::formats {

struct GgufValue;  // formats/gguf/gguf_writer.h
// GGUF metadata in file order (keys unique).
using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;

// Hugging Face directory layouts (formats/hf/hf.h, hf_sink): plain floats, or the quantized
// layouts transformers and vLLM load.
enum class HfLayout { kNone, kFloat, kGptq, kGptqV2, kAwq, kCompressedTensors };
// "float", "gptq", "gptq-v2", "awq", "compressed-tensors"; parse returns kNone for anything else.
std::string_view hf_layout_name(HfLayout l);
HfLayout parse_hf_layout(std::string_view name);

struct SinkOptions {
  int zstd_level = 0;  // .dsq: 0 = uncompressed, 1..22 per-tensor zstd
  // Cast float tensors: tensors with 2+ dims become `cast`; 1-D tensors (norms, biases) become f32
  // (they are tiny and precision-sensitive). Quantized and integer tensors are kept as they are.
  std::optional<DType> cast;
  nlohmann::json recipe = nullptr;  // what produced the model (null: keep the source's recipe)
  bool progress = true;             // write_model's progress bar
  // GGUF outputs: the tokenizer.* keys, asked for by the GGUF sink only (a tokenizer is read by
  // lib/text, above this floor; jobs fill this from text::gguf_tokenizer_metadata). Unset: the file
  // has no tokenizer (the sink says so; llama.cpp needs one).
  std::function<std::shared_ptr<const GgufMetadata>()> gguf_tokenizer;
  // Set: the output is a Hugging Face directory in this layout (whatever its name), written by
  // the "hf" row of the format table. Shards hold at most hf_shard_bytes of tensor data each
  // (a tensor larger than that gets a shard of its own).
  HfLayout hf_layout = HfLayout::kNone;
  uint64_t hf_shard_bytes = uint64_t{5} << 30;
};

struct SinkReport {
  int64_t tensors = 0;
  int64_t parameters = 0;     // elements (kQInt counted by logical shape)
  uint64_t raw_bytes = 0;     // tensor bytes before compression
  uint64_t stored_bytes = 0;  // tensor bytes on disk
  uint64_t file_bytes = 0;    // the whole output
  int64_t compressed = 0;     // tensors stored compressed
  // What the writer decided that the user should know, one line each (e.g. a GGUF tensor kept in
  // F16 because no block type divides its rows); also logged as warnings.
  std::vector<std::string> notes;
};

class ModelSink {
 public:
  virtual ~ModelSink() = default;
  // Validates and writes one tensor now (FormatError naming the output and tensor).
  virtual void add(const std::string& name, const Tensor& t,
                   const nlohmann::json& attrs = nlohmann::json::object()) = 0;
  virtual SinkReport finish() = 0;
};

// The highest SinkOptions::zstd_level (zstd's maximum level).
int max_zstd_level();

// The dtype a tensor of `dtype` and `ndim` dims is written as under `cast`.
// Block-FP8 tensors (a storage scheme, quant q) are dequantized to the cast dtype.
DType sink_cast_dtype(DType dtype, size_t ndim, std::optional<DType> cast,
                      const QuantDesc* q = nullptr);

// The sink for `path`: a Hugging Face directory when opts.hf_layout is set, else chosen by its
// extension from the format table's writer column. `src`
// provides the config, tokenizer and provenance of the model being written. Throws UsageError
// naming the writable extensions when none matches, or for a bad cast.
std::unique_ptr<ModelSink> open_sink(const std::string& path, const WeightStore& src,
                                     const SinkOptions& opts);
// The check open_sink makes of the path alone (a writer for its extension, unless `hf_dir`):
// commands call it before any work, so a misnamed output fails at once, not after the run.
void check_sink_path(const std::string& path, bool hf_dir);

// The last step of every writer: syncs and closes `*fd` (set to -1) and renames `tmp` to `path`
// (IoError naming the file on failure). Until then the output does not exist.
void commit_output(int* fd, const std::string& tmp, const std::string& path);

// Streams every tensor of `ws` (in ws.names() order, with its attrs) into `sink` and finishes it.
SinkReport stream_model(const WeightStore& ws, ModelSink& sink, bool progress);

// Streams every tensor of `ws` into open_sink(path) (cast applied by the sink).
SinkReport write_model(const WeightStore& ws, const std::string& path, const SinkOptions& opts);

}  // namespace dsq::formats
