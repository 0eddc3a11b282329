// GGUF (llama.cpp's model file, versions 2 and 3): a bounds-checked parser of the header, the
// metadata key/value section and the tensor table, plus the reader that maps a GGUF model onto a
// canonical WeightStore.
//
// File layout (all little-endian):
//   "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x   { gguf_string key | u32 value_type | value }
//   n_tensors x { gguf_string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to `general.alignment` (default 32) | tensor data (offsets relative to here)
// gguf_string = u64 length + bytes (no terminator); arrays = u32 elem_type + u64 count + elems.
// ne[0] is the innermost (fastest varying) dimension: a linear's ne = [in_features, out_features].
//
// GgufFile is also the entry point for vocabulary-only files (no tensors), e.g. llama.cpp's
// ggml-vocab-*.gguf: tokenizers read tokenizer.ggml.* keys from metadata().
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/format_table.h"
#include "lib/core/weight_store.h"

namespace dsq::formats {

// On-disk metadata value types (GGUF spec numbering).
enum class GgufValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
std::string_view gguf_value_type_name(GgufValueType t);  // "u8" ... "f64", "string", "array"

// ggml tensor types dsq knows the block size of (ids from ggml.h; gaps are types dsq does not
// know, which are rejected when a file uses them).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};
struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;  // "f32", "q4_0", ...
  int64_t block;          // elements per block (1 for plain types)
  int64_t block_bytes;    // bytes per block
};
// nullptr for a type id dsq does not know.
const GgmlTypeTraits* ggml_type_traits(uint32_t id);
// Bytes of a tensor of type tr and ggml shape ne (ne[0] innermost; empty: a scalar), for the
// reader's table and the writer alike. nullopt when a dimension is negative, ne[0] is not a whole
// number of tr's blocks, or the size overflows.
std::optional<uint64_t> ggml_nbytes(const GgmlTypeTraits& tr, const std::vector<int64_t>& ne);

// One entry of the tensor table, validated: dims non-negative with an int64 product, ne[0] a
// multiple of the type's block size, data inside the file and not overlapping another tensor.
struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] innermost
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;  // relative to the data section
  uint64_t nbytes = 0;
};

// The type of a metadata value; `elem` is the element type of an array (kArray for nested
// arrays, whose inner types are not recorded).
struct GgufKeyType {
  GgufValueType type = GgufValueType::kU8;
  GgufValueType elem = GgufValueType::kU8;
};

class GgufFile {
 public:
  // Maps and parses the file. Throws IoError when it cannot be read and FormatError (one line,
  // naming the file and the key or tensor) for anything malformed.
  static GgufFile open(const std::string& path);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  // Every key/value pair. Integers become JSON integers, f32/f64 numbers, bools, strings
  // (bytes as stored, not validated as UTF-8: use .get<std::string>(), dump() may throw),
  // arrays (possibly nested) JSON arrays.
  const nlohmann::json& metadata() const { return metadata_; }
  // The on-disk type of metadata key `key`, or nullopt when absent.
  std::optional<GgufKeyType> metadata_type(const std::string& key) const;
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute start of the data section
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  // Raw bytes of a tensor inside the mapping (valid while mapping() is alive).
  const std::byte* tensor_data(const GgufTensorInfo& t) const;
  const std::shared_ptr<const MappedFile>& mapping() const { return map_; }

 private:
  std::string path_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::map<std::string, GgufKeyType> types_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
  std::shared_ptr<const MappedFile> map_;
};

// Format-table hooks. sniff: the first four bytes are "GGUF". read_gguf: a GGUF model (arch
// llama or qwen2) as a canonical WeightStore; F32/F16/BF16 tensors stay in their dtype (mmap
// views unless q/k rows need the Meta->rotate_half permutation), Q4_0/Q4_1/Q8_0 are dequantized to f32
// when loaded. An output.weight bit-identical to token_embd.weight is dropped (tied model).
bool sniff_gguf(const std::string& path);
WeightStore read_gguf(const std::string& path, const OpenOptions& opts);
// The writer column (gguf_sink.cpp): a dense-family model (llama, qwen2, qwen3; uniform layer
// widths) as llama.cpp loads it. Throws ConfigError naming the output for models GGUF export does
// not cover, FormatError for a tensor it cannot write exactly.
std::unique_ptr<ModelSink> gguf_sink(const std::string& path, const WeightStore& src,
                                     const SinkOptions& opts);

// Dequantize `n` elements (a multiple of 32) of ggml Q4_0 / Q4_1 / Q8_0 blocks into f32.
void dequantize_q4_0(const std::byte* src, float* dst, int64_t n);
void dequantize_q4_1(const std::byte* src, float* dst, int64_t n);
void dequantize_q8_0(const std::byte* src, float* dst, int64_t n);

}  // namespace dsq::formats
