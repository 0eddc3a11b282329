// GgufWriter: a GGUF v3 file (layout in gguf.h) written in one streaming pass.
//
// The tensor table comes before the data, and holds each tensor's type and offset; but its size
// depends only on the names and ranks. So the caller declares every tensor (name and ggml shape)
// up front, the writer reserves the exact header, and add_tensor() then writes each tensor's bytes
// at once, in any order, into the data section; finish() writes the header and table with the
// types and offsets seen, syncs and renames `<out>.tmp` into place. A writer destroyed without
// finish() removes its temporary file: no half-written output survives.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/gguf/gguf.h"
#include "lib/core/interrupt.h"

namespace dsq::formats {

// One typed metadata value. Scalars hold a JSON number / bool / string; an array holds a JSON
// array of scalars of `elem` (nested arrays are not written).
struct GgufValue {
  GgufValueType type = GgufValueType::kU32;
  GgufValueType elem = GgufValueType::kU32;  // arrays only
  nlohmann::json value;
};
inline GgufValue gguf_u32(uint64_t v) { return {GgufValueType::kU32, GgufValueType::kU32, v}; }
inline GgufValue gguf_i32(int64_t v) { return {GgufValueType::kI32, GgufValueType::kI32, v}; }
inline GgufValue gguf_f32(double v) { return {GgufValueType::kF32, GgufValueType::kF32, v}; }
inline GgufValue gguf_bool(bool v) { return {GgufValueType::kBool, GgufValueType::kBool, v}; }
inline GgufValue gguf_string(std::string v) {
  return {GgufValueType::kString, GgufValueType::kString, std::move(v)};
}
inline GgufValue gguf_array(GgufValueType elem, nlohmann::json values) {
  return {GgufValueType::kArray, elem, std::move(values)};
}

// GgufMetadata (a vector of key/value pairs in file order) is declared in formats/sinks.h.

struct GgufTensorDecl {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] innermost
};

class GgufWriter {
 public:
  // Validates the metadata (unique keys, values of their declared types, u32 in range) and the
  // declarations (unique non-empty names, 1-4 non-negative dims) and opens `<out>.tmp`.
  // `alignment` (a power of two) is written as general.alignment when it is not 32.
  // Throws FormatError naming the output and the key or tensor, IoError when it cannot open.
  GgufWriter(std::string out_path, GgufMetadata metadata, std::vector<GgufTensorDecl> tensors,
             uint64_t alignment = 32);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Writes one declared tensor's data now: `bytes` must be exactly what `type` takes for the
  // declared shape (ne[0] a multiple of the type's block). FormatError otherwise, or for a name
  // that was not declared or is written twice.
  void add_tensor(const std::string& name, GgmlType type, const void* data, size_t bytes);
  // Every declared tensor must have been written. Returns the file's size.
  uint64_t finish();

  const std::string& path() const { return path_; }

 private:
  struct Slot {
    GgufTensorDecl decl;
    GgmlType type = GgmlType::kF32;
    uint64_t offset = 0;
    bool written = false;
  };
  [[noreturn]] void fail(const std::string& what) const;
  void pwrite_all(const void* p, size_t n, uint64_t at);
  std::string encode_header() const;

  std::string path_, tmp_path_;
  interrupt::RemoveOnSignal tmp_guard_;  // the .tmp goes if the run is interrupted
  GgufMetadata metadata_;
  std::vector<Slot> slots_;
  std::map<std::string, size_t, std::less<>> index_;
  uint64_t alignment_;
  uint64_t data_start_ = 0;  // absolute offset of the data section
  uint64_t data_end_ = 0;    // bytes of data written so far (relative)
  int fd_ = -1;
  bool finished_ = false;
};

}  // namespace dsq::formats
