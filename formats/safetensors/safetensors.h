// safetensors: a bounds-checked parser of one .safetensors file.
//
// Layout: u64 little-endian header length N | N bytes of JSON | data section. The JSON maps
// tensor names to {"dtype": "F32"|"F16"|"BF16"|..., "shape": [...], "data_offsets": [begin, end]}
// (offsets relative to the data section) and may hold "__metadata__": {string: string}.
// dsq reads F32, F16, BF16 and F8_E4M3 (block-scaled FP8 weights, paired with their scales by the
// Hugging Face reader); any other dtype is rejected naming the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/core/weight_store.h"

namespace dsq::formats {

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t begin = 0;  // byte range inside the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps and parses the file: header length inside the file, JSON valid with no duplicate keys,
  // every tensor's dtype supported, shape non-negative with an int64 product, data_offsets inside
  // the data section, matching dtype x shape, and not overlapping another tensor. Throws
  // IoError / FormatError (one line naming the file and tensor).
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  // "__metadata__", or an empty object when absent.
  const nlohmann::json& metadata() const { return metadata_; }
  // In header order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find_tensor(std::string_view name) const;
  uint64_t data_offset() const { return data_offset_; }  // 8 + header length
  const std::byte* tensor_data(const SafetensorsTensor& t) const {
    return map_->data() + data_offset_ + t.begin;
  }
  const std::shared_ptr<const MappedFile>& mapping() const { return map_; }

 private:
  std::string path_;
  nlohmann::json metadata_ = nlohmann::json::object();
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  uint64_t data_offset_ = 0;
  std::shared_ptr<const MappedFile> map_;
};

// True when `path` is a regular file whose first 8 bytes are a header length that fits the file
// and whose header starts with '{'.
bool sniff_safetensors(const std::string& path);

}  // namespace dsq::formats
