// WeightStore: the named tensors of one model plus its config and metadata. Readers fill it with
// lazy entries (mmap-backed views where the bytes can be used as they are; a loader that
// permutes or dequantizes on demand otherwise), so opening a model reads no tensor data.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/core/arch.h"
#include "lib/core/tensor.h"

namespace dsq {

// A read-only memory mapping of a whole file.
class MappedFile {
 public:
  // Throws IoError naming the path when it cannot be opened or mapped.
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

struct SourceFile {
  std::string path;
  uint64_t bytes = 0;
  std::string sha256;  // hex; filled by whoever needs provenance (convert), else empty
};

class WeightStore {
 public:
  using Loader = std::function<Tensor()>;
  struct Entry {
    std::string name;    // canonical name
    DType dtype = DType::kF32;
    Shape shape;
    QuantDesc quant{};   // for kQInt
    std::string source;  // file it comes from, for error messages
    nlohmann::json attrs = nlohmann::json::object();  // per-tensor extras (e.g. thresholds)
    Loader load;         // produces the tensor; cheap for mmap-backed entries
  };

  // Throws FormatError "'<source>': duplicate tensor '<name>'" on a repeated name.
  void add(Entry e);
  // Convenience: an in-memory tensor.
  void add_tensor(const std::string& name, Tensor t, const std::string& source = "<memory>");
  // Replace an existing entry's tensor (e.g. after quantizing it).
  void replace(const std::string& name, Tensor t);
  void remove(const std::string& name);

  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const Entry& entry(const std::string& name) const;  // throws FormatError when missing
  Entry& entry(const std::string& name);
  const std::vector<std::string>& names() const { return order_; }
  size_t size() const { return order_.size(); }

  // Materialise a tensor (a view for mmap-backed entries).
  Tensor get(const std::string& name) const;
  // Float tensors converted to f32 (throws FormatError for kQInt: dequantise through lib/quant).
  Tensor get_f32(const std::string& name) const;

  // Total parameter count (elements, quantized tensors counted by logical shape).
  int64_t parameter_count() const;

  ModelConfig config;
  bool has_config = false;
  // Free-form metadata: "tokenizer" (reference or embedded), "provenance", "recipe", "source_format".
  nlohmann::json metadata = nlohmann::json::object();
  std::vector<SourceFile> sources;

 private:
  std::vector<Entry> entries_;
  std::vector<std::string> order_;
  std::map<std::string, size_t> index_;
};

// Checks that the store holds exactly the tensors the config implies, with the expected shapes:
// throws ShapeError/FormatError naming `where` and the tensor. Extra unknown tensors are errors.
void validate_against_config(const WeightStore& ws, const std::string& where);

}  // namespace dsq
