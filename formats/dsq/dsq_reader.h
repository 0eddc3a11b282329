// Reading .dsq files (docs/FORMAT.md). The reader trusts nothing: the preamble, index, tensor
// table and JSON header are validated when the file is opened, each tensor's checksum when it is
// loaded. Uncompressed tensors are zero-copy views into a shared mmap of the file.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/format_table.h"
#include "lib/core/weight_store.h"

namespace dsq::formats {

struct DsqTensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  QuantDesc quant{};          // kQInt only
  uint8_t compression = 0;    // 0 none, 1 zstd
  uint64_t data_offset = 0;   // absolute
  uint64_t stored_bytes = 0;  // on disk
  uint64_t raw_bytes = 0;     // decompressed
  uint64_t checksum = 0;      // XXH64 of the raw bytes
};

struct DsqIndex {
  uint16_t version_major = 0, version_minor = 0;
  uint64_t file_bytes = 0;
  uint64_t index_offset = 0;
  std::vector<DsqTensorInfo> tensors;  // file order
  nlohmann::json header;               // the JSON header
};

// Parses and validates everything but the tensor data. Throws FormatError
// "'<path>': [tensor '<name>': ]..." on any inconsistency.
DsqIndex read_dsq_index(const MappedFile& f);

bool sniff_dsq(const std::string& path);  // "DSQMODEL" magic
// Format-table entry: a WeightStore whose config, tokenizer, provenance, recipe and per-tensor
// attrs come from the header (validated against the config when the header has one).
WeightStore open_dsq(const std::string& path, const OpenOptions& opts);

// The bytes of an embedded tokenizer file (header "tokenizer"."files"."<name>"), or nullopt.
// Throws FormatError when the entry is malformed or its sha256 does not match.
std::optional<std::string> dsq_embedded_file(const nlohmann::json& tokenizer,
                                             const std::string& name);

}  // namespace dsq::formats
