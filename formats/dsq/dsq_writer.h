// Writing .dsq files (docs/FORMAT.md). The writer streams: each add() validates one tensor and
// appends it to `<out>.tmp` at once, so a model larger than RAM can be produced tensor by tensor;
// finish() appends the index and renames the file into place. Without finish() (an exception
// on the way), the destructor removes the temporary file: no half-written output survives.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "formats/sinks.h"
#include "lib/core/interrupt.h"
#include "lib/core/weight_store.h"

namespace dsq::formats {

using DsqWriteReport = SinkReport;

class DsqWriter {
 public:
  // `header`: a JSON object (config, tokenizer, provenance, recipe, metadata...). The writer adds
  // "format", "format_version" and "tensors" (per-tensor attrs and quant scheme names).
  // zstd_level 0 stores tensors uncompressed; 1..22 compresses each tensor with zstd (a tensor
  // whose compressed form is not smaller is stored uncompressed). Throws IoError on open.
  DsqWriter(std::string out_path, nlohmann::json header, int zstd_level = 0);
  ~DsqWriter();
  DsqWriter(const DsqWriter&) = delete;
  DsqWriter& operator=(const DsqWriter&) = delete;

  // Validates (unique non-empty name; byte count matches dtype x shape or the quant layout; no
  // NaN/Inf in float tensors or quant scales; zero points < 2^bits) and writes the tensor now.
  // Throws FormatError "'<out>': tensor '<name>': ..." (nothing is committed on error).
  void add(const std::string& name, const Tensor& t,
           const nlohmann::json& attrs = nlohmann::json::object());
  // The header may still be amended before finish().
  nlohmann::json& header() { return header_; }
  // Writes the index, syncs, renames `<out>.tmp` to `<out>`.
  DsqWriteReport finish();

 private:
  void write_all(const void* p, size_t n);
  void pad_to_alignment();
  std::string path_, tmp_path_;
  interrupt::RemoveOnSignal tmp_guard_;  // the .tmp goes if the run is interrupted
  nlohmann::json header_;
  nlohmann::json tensor_extras_ = nlohmann::json::object();
  int zstd_level_;
  int fd_ = -1;
  uint64_t pos_ = 0;
  bool finished_ = false;
  std::string records_;  // TensorRecord bytes
  std::string names_;    // name pool
  std::vector<std::string> seen_;  // sorted names, for duplicate detection
  DsqWriteReport report_;
};

struct DsqWriteOptions {
  int zstd_level = 0;                  // 0 = uncompressed
  // Cast float tensors: tensors with 2+ dims become `cast`; 1-D tensors (norms, biases) become
  // f32 (they are tiny and precision-sensitive). kQInt and integer tensors are kept as they are.
  std::optional<DType> cast;
  nlohmann::json recipe = nullptr;     // stored as header "recipe" (null: keep ws.metadata recipe)
  bool embed_tokenizer = true;         // embed tokenizer files referenced by ws (see FORMAT.md)
  bool progress = true;                // progress bar (silent unless a TTY)
};

// The header write_dsq stores for `ws`: config, tokenizer (files embedded as base64 when asked),
// provenance (sources with sha256, dsq version, the previous provenance as "parent"), recipe.
// A source file's sha256 is null here: DsqWriter::finish fills it (sha256_file), and a large
// file is hashed on a background thread in the meantime (sha256_file_prefetch).
nlohmann::json dsq_header_for(const WeightStore& ws, const DsqWriteOptions& opts);

// Streams every tensor of `ws` (in ws.names() order, cast applied) through a DsqWriter.
DsqWriteReport write_dsq(const WeightStore& ws, const std::string& path,
                         const DsqWriteOptions& opts = {});

// The .dsq row of the format table's writer column (sinks.h): a DsqWriter with the header of
// dsq_header_for(src) (tokenizer files embedded), casting as opts.cast says.
std::unique_ptr<ModelSink> dsq_sink(const std::string& path, const WeightStore& src,
                                    const SinkOptions& opts);

}  // namespace dsq::formats
