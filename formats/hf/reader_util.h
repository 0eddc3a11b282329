// Pieces shared by the checkpoint readers (hf, safetensors, gguf, llama2c): strict JSON, source ->
// canonical name maps from the architecture table, mmap-backed and permuting loaders, tied
// classifier detection, tokenizer discovery, and the common end of every reader.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lib/core/arch.h"
#include "lib/core/weight_store.h"

namespace dsq::formats::detail {

// Whole file as text; IoError naming the path when it cannot be read.
std::string read_text_file(const std::string& path);
// Parses JSON (lib/core/json_io.h: syntax errors, duplicate keys and deep nesting are one-line
// FormatErrors naming `path`).
nlohmann::json parse_json_strict(std::string_view text, const std::string& path);

// Where a source tensor name lands: the canonical name and the table row it came from.
struct NameTarget {
  std::string canonical;
  const ArchTensor* row = nullptr;
  int64_t layer = -1;   // -1 for tensors outside the blocks
  int64_t expert = -1;  // -1 for tensors of no routed expert
};
enum class NameColumn { kHf, kGguf };
// Every source name the architecture defines under config c (each row's instances: its layers,
// its experts), from the ArchInfo table. Rows without a name in the column are left out.
std::map<std::string, NameTarget, std::less<>> source_name_map(const ArchInfo& arch,
                                                               const ModelConfig& c,
                                                               NameColumn col);

// A loader for `nbytes` at `data` inside `map`: a zero-copy view when the address is aligned for
// the element type, else an owned copy (never hands out misaligned float pointers).
WeightStore::Loader mapped_loader(std::shared_ptr<const MappedFile> map, const std::byte* data,
                                  DType dtype, Shape shape);
// One mapped source tensor, named for messages.
struct MappedTensor {
  std::shared_ptr<const MappedFile> map;
  const std::byte* data = nullptr;
  DType dtype = DType::kF32;
  Shape shape;
  std::string path, name;
};
// A loader pairing an F8_E4M3 weight [rows, cols] with its f32 block scales [ceil(rows/B),
// ceil(cols/B)] into one kQInt tensor of scheme fp8_e4m3_b<B> (lib/core/quant_layout.h). The
// scales are checked now (dtype, shape, every value finite and >= 0: FormatError naming the scale
// tensor); the loader copies codes and scales into the tensor and rejects NaN codes (FormatError
// naming the weight and the element).
WeightStore::Loader fp8_block_loader(MappedTensor weight, MappedTensor scale, int64_t block);
// Wraps `base` so the rows (dim 0) come out permuted from Meta interleaved RoPE order to the
// canonical rotate_half order (lib/core/arch.h), for `heads` heads of `head_dim` rows each.
WeightStore::Loader meta_to_canonical_loader(WeightStore::Loader base, int64_t heads,
                                             int64_t head_dim);
// Number of heads whose rows a Meta-ordered source permutes for this row of layer `layer`
// (0: no permutation).
int64_t permute_heads(const ArchTensor& row, const ModelConfig& c, int64_t layer);

// True when both entries load to the same dtype, shape and bytes.
bool same_tensor_bytes(const WeightStore::Entry& a, const WeightStore::Entry& b);

// The classifier (TensorRole::kClassifier row) among `entries`, compared with the embedding.
enum class Classifier { kAbsent, kSameAsEmbedding, kDistinct };
Classifier classifier_state(const std::vector<WeightStore::Entry>& entries, const ArchInfo& arch);
// Removes the classifier entry (a tied model stores only the embedding).
void drop_classifier(std::vector<WeightStore::Entry>& entries, const ArchInfo& arch);

// Adds entries to `ws` in canonical table order (globals, then layer by layer in table order),
// so every format lists tensors identically.
void add_in_canonical_order(WeightStore& ws, std::vector<WeightStore::Entry> entries,
                            const ModelConfig& c);

// Number of pieces in a SentencePiece ModelProto (repeated field 1), or -1 when `path` is not a
// readable, well-formed protobuf of that shape.
int64_t sentencepiece_piece_count(const std::string& path);
// Tokenizer reference for a Hugging Face style directory: {"kind":"sentencepiece","path":...}
// for tokenizer.model, else {"kind":"hf-json","path":...} for tokenizer.json, plus
// "add_bos_token" from tokenizer_config.json when it says so. Null when nothing is there.
nlohmann::json hf_tokenizer_reference(const std::string& dir);

// Validates a config read from a file before anything is sized from it: validate_config, every
// width at most 2^31 (so products of two fit int64), and at most `n_tensors` layers (a file
// cannot hold more layers than tensors). Throws ConfigError naming `where`.
void check_config_from_file(const ModelConfig& c, size_t n_tensors, const std::string& where);

// The common end of every reader: records the source format and files, marks the config as
// present, and validates the store against it (throws naming `where`).
void finish_store(WeightStore& ws, const std::string& where, std::string_view format,
                  const std::vector<std::string>& files);

std::string absolute_path(const std::string& path);

}  // namespace dsq::formats::detail
