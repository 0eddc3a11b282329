// SafetensorsWriter: one .safetensors file written in a single streaming pass.
//
// The header (u64 length | JSON {name: {dtype, shape, data_offsets}} | "__metadata__") comes
// before the data and names every tensor's byte range, so the caller declares every tensor up
// front (name, safetensors dtype, shape); the writer lays the data section out in declaration
// order with no holes (as the format requires), pads the JSON with spaces to a multiple of 8 so
// every tensor starts 8-aligned, writes the header at once, and add() then writes each tensor's
// bytes at its offset, in any order. finish() checks that every tensor was written, syncs and
// closes. The file is written in place: callers that need atomicity write into a temporary
// directory (the Hugging Face sink does) or rename themselves.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsq::formats {

struct SafetensorsDecl {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "I32", "I64", "I8", "U8"
  std::vector<int64_t> shape;
};

// Bytes per element of a safetensors dtype name; 0 when dsq does not write it.
size_t safetensors_dtype_bytes(std::string_view dtype);

class SafetensorsWriter {
 public:
  // Validates the declarations (unique non-empty names, known dtypes, non-negative dims) and
  // creates `path` with its header. `metadata` is a flat {string: string} object (may be empty).
  // Throws FormatError naming the file and tensor, IoError when it cannot write.
  SafetensorsWriter(std::string path, std::vector<SafetensorsDecl> tensors,
                    const nlohmann::json& metadata = nlohmann::json::object());
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Writes one declared tensor: `bytes` must equal its dtype x shape. FormatError otherwise, or
  // for an undeclared name or a second write.
  void add(const std::string& name, const void* data, size_t bytes);
  // Every declared tensor must have been written; syncs and closes. Returns the file's size.
  uint64_t finish();

  const std::string& path() const { return path_; }
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  struct Slot {
    SafetensorsDecl decl;
    uint64_t begin = 0, end = 0;
    bool written = false;
  };
  [[noreturn]] void fail(const std::string& what) const;
  void pwrite_all(const void* p, size_t n, uint64_t at);

  std::string path_;
  std::vector<Slot> slots_;
  std::map<std::string, size_t, std::less<>> index_;
  uint64_t data_start_ = 0, data_bytes_ = 0;
  int fd_ = -1;
  bool finished_ = false;
};

}  // namespace dsq::formats
