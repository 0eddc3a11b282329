// The GGUF column of the format table: a model written as llama.cpp loads it (GGUF v3).
//
// Metadata: general.architecture and the hyperparameters llama.cpp reads for the family
// (block_count, context_length, embedding_length, feed_forward_length, attention.head_count(_kv),
// key/value_length, rope.dimension_count, rope.freq_base, attention.layer_norm_rms_epsilon,
// vocab_size), then the tokenizer.* keys the job supplies (SinkOptions::gguf_tokenizer).
// Tensors: GGUF names from the architecture table's GGUF column; q/k rows of families whose GGUF
// files store Meta's interleaved RoPE order (llama) are permuted back to it; 1-D tensors are F32
// (as llama.cpp's converters write them), float matrices keep their dtype or SinkOptions::cast.
// Quantized matrices map onto ggml block types (Q4_0, Q4_1, Q8_0) without requantization where the codes allow it
// (ggml_block_for); a matrix whose rows no block divides is written as F16, with a note.
#include <cstring>
#include <map>
#include <optional>

#include "formats/gguf/gguf.h"
#include "formats/gguf/gguf_writer.h"
#include "formats/hf/reader_util.h"
#include "formats/write_util.h"
#include "lib/core/error.h"
#include "lib/core/log.h"
#include "lib/core/quant_view.h"

namespace dsq::formats {

namespace {

constexpr int64_t kBlock = 32;  // QK4_0 == QK8_0: ggml_type_traits' block of both

// The ggml block type a grouped-integer scheme is exactly, for rows of `cols` weights:
// ggml's Q4_0 is w = d * (q - 8) with q a 4-bit code and d an f16 per 32 weights, and Q8_0 is
// w = d * q with q an int8; dsq's symmetric rows are w = scale * (code - 2^(bits-1)) with an f16
// scale per group. So int4_sym and int8_sym with a group that is a multiple of 32 (per-channel
// included) are the same numbers, block by block, each block carrying its group's scale.
// Q4_1 is w = d * q + m with f16 d and m; dsq's asymmetric rows are w = scale * (code - zero),
// i.e. m = -scale * zero, which is an f16 exactly for the f16_min row int4_asymf (its fitting
// keeps it so) and in general not for int4_asym (refused: not exact).
std::optional<GgmlType> ggml_block_for(const QuantDesc& q, int64_t cols) {
  if (q.info().layout != SchemeLayout::kGroupedInt || cols % kBlock != 0) return std::nullopt;
  if (q.group != 0 && q.group % kBlock != 0) return std::nullopt;
  if (q.bits() == 4 && q.sym()) return GgmlType::kQ4_0;
  if (q.bits() == 8 && q.sym()) return GgmlType::kQ8_0;
  if (q.bits() == 4 && q.info().f16_min) return GgmlType::kQ4_1;
  return std::nullopt;
}

// Re-blocks a grouped-integer matrix as Q4_0 / Q4_1 / Q8_0 (ggml_block_for said which).
// FormatError naming the tensor when a Q4_1 min is not an exact f16 (a hand-made file).
std::vector<std::byte> to_ggml_blocks(const Tensor& t, GgmlType type, const std::string& what) {
  const GroupedIntView v(t);
  const QuantLayout& L = v.L;
  const int64_t rows = L.rows, cols = L.cols;
  const auto block_bytes = static_cast<size_t>(ggml_type_traits(static_cast<uint32_t>(type))->block_bytes);
  const int64_t blocks = cols / kBlock;
  std::vector<std::byte> out(static_cast<size_t>(rows * blocks) * block_bytes);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = v.row_codes(r);
    for (int64_t b = 0; b < blocks; ++b) {
      std::byte* dst = out.data() + static_cast<size_t>(r * blocks + b) * block_bytes;
      const int64_t c0 = b * kBlock, g = c0 / L.group;
      // The group's f16 scale, bit for bit.
      const uint16_t d = v.scale_bits(r, g);
      std::memcpy(dst, &d, 2);
      auto* qs = reinterpret_cast<uint8_t*>(dst + 2);
      if (type == GgmlType::kQ4_1) {
        const float s = f16_to_f32(d);
        const uint32_t z = v.zero(r, g);
        if (!f16_min_exact(s, z))
          throw FormatError(what + ": row " + std::to_string(r) + ", group " + std::to_string(g) +
                            ": -scale x zero is not an f16, so Q4_1 cannot hold it exactly");
        const uint16_t mh = f32_to_f16(z == 0 ? 0.0f : -(s * static_cast<float>(z)));
        std::memcpy(dst + 2, &mh, 2);
        qs += 2;
      }
      if (type == GgmlType::kQ8_0) {
        for (int j = 0; j < 32; ++j)
          qs[j] = static_cast<uint8_t>(static_cast<int>(row[c0 + j]) - 128);
      } else {
        // Byte j: weight j in the low nibble, weight j + 16 in the high one (Q4_0's offset of 8
        // is dsq's symmetric code; Q4_1's codes are dsq's as they are).
        for (int j = 0; j < 16; ++j)
          qs[j] = static_cast<uint8_t>(quant_code_at(row, c0 + j, 4) |
                                       (quant_code_at(row, c0 + j + 16, 4) << 4));
      }
    }
  }
  return out;
}

class GgufSink final : public ModelSink {
 public:
  GgufSink(const std::string& path, const WeightStore& src, const SinkOptions& opts)
      : path_(path), c_(src.config), arch_(arch_of(src.config)), opts_(opts) {
    check_exportable();
    for (const auto& [gguf_name, nt] : detail::source_name_map(arch_, c_, detail::NameColumn::kGguf))
      targets_[nt.canonical] = {gguf_name, nt.row ? detail::permute_heads(*nt.row, c_, nt.layer) : 0};
    std::vector<GgufTensorDecl> decls;
    for (const auto& name : src.names()) {
      const Target& t = target_of(name);
      const auto& shape = src.entry(name).shape;
      decls.push_back({t.gguf_name, std::vector<int64_t>(shape.rbegin(), shape.rend())});
    }
    writer_.emplace(path, metadata(), std::move(decls));
  }

  void add(const std::string& name, const Tensor& t, const nlohmann::json& attrs) override {
    const Target& target = target_of(name);
    if (attrs.is_object() && !attrs.empty()) dropped_attrs_.push_back(name);
    GgmlType type = GgmlType::kF32;
    std::vector<std::byte> blocks;
    Tensor dense;
    const std::byte* data = nullptr;
    size_t nbytes = 0;
    if (t.dtype() == DType::kQInt && t.quant().info().quantize_target()) {
      const auto block = ggml_block_for(t.quant(), t.dim(1));
      if (block) {
        type = *block;
        blocks = to_ggml_blocks(t, type, "'" + path_ + "': tensor '" + name + "'");
        data = blocks.data();
        nbytes = blocks.size();
      } else if (t.dim(1) % kBlock != 0) {
        // As llama.cpp's own converter does for rows no block divides (stories260K's 172-wide
        // FFN): the tensor in F16.
        dense = t.to(DType::kF16);
        f16_fallback_.push_back(target.gguf_name);
      } else {
        throw FormatError("'" + path_ + "': tensor '" + name + "': " + scheme_name(t.quant()) +
                          " has no exact ggml block type (exact: int4_sym, int4_asymf and "
                          "int8_sym with a group of 32, 64, 128... or per channel, as Q4_0, Q4_1 "
                          "and Q8_0; quantize with -o *.gguf to get int4_asymf for --asym)");
      }
    } else {
      // Floats (and storage schemes such as block FP8, dequantized): 1-D tensors in F32 as
      // llama.cpp's converters write them, matrices in their dtype or the requested cast.
      DType dt = t.ndim() < 2 ? DType::kF32 : sink_cast_dtype(t.dtype(), t.ndim(), opts_.cast, &t.quant());
      if (dt == DType::kQInt) dt = DType::kBF16;  // a storage scheme with no cast: bf16 keeps its range
      if (dt == DType::kF64) dt = DType::kF32;
      if (!dtype_is_float(dt))
        throw FormatError("'" + path_ + "': tensor '" + name + "': dtype " +
                          std::string(dtype_name(dt)) + " cannot be written to GGUF");
      dense = t.to(dt);
    }
    if (!dense.empty()) {
      type = dense.dtype() == DType::kF32 ? GgmlType::kF32
             : dense.dtype() == DType::kF16 ? GgmlType::kF16
                                            : GgmlType::kBF16;
      data = dense.bytes();
      nbytes = dense.nbytes();
    }
    std::vector<std::byte> permuted;
    if (arch_.meta_rope_in_gguf && target.heads > 0) {
      // Canonical rotate_half rows back to Meta's interleaved order, whole ggml rows at a time
      // (a quantized row is its blocks), so the same permutation serves every type.
      const int64_t rows = t.dim(0);
      permuted.resize(nbytes);
      permute_hf_to_meta(data, permuted.data(), target.heads, rows / target.heads, 1,
                         nbytes / static_cast<size_t>(rows));
      data = permuted.data();
    }
    writer_->add_tensor(target.gguf_name, type, data, nbytes);
    ++report_.tensors;
    report_.parameters += t.numel();
    report_.raw_bytes += nbytes;
    report_.stored_bytes += nbytes;
  }

  SinkReport finish() override {
    report_.file_bytes = writer_->finish();
    if (!f16_fallback_.empty()) {
      report_.notes.push_back("'" + path_ + "': " + std::to_string(f16_fallback_.size()) +
                              " quantized tensor(s) written as F16 (dequantized): no 32-weight "
                              "block divides their rows (" + name_sample(f16_fallback_) + ")");
    }
    if (!dropped_attrs_.empty())
      report_.notes.push_back("'" + path_ + "': GGUF has no place for per-tensor attributes (dsq "
                              "sparsify's activation thresholds): dropped from " +
                              std::to_string(dropped_attrs_.size()) + " tensor(s), e.g. '" +
                              dropped_attrs_.front() + "'; llama.cpp runs the dense model");
    for (const auto& n : report_.notes) log_warn(n);
    return report_;
  }

 private:
  struct Target {
    std::string gguf_name;
    int64_t heads = 0;  // heads whose rows are permuted to Meta order (0: none)
  };

  void check_exportable() const {
    auto refuse = [&](const std::string& why) {
      throw ConfigError("'" + path_ + "': cannot write a " + c_.arch + " model as GGUF: " + why);
    };
    if (arch_.attn != AttnKind::kGqa || arch_.ffn != FfnKind::kDense)
      refuse("GGUF export supports the dense families (llama, qwen2, qwen3)");
    for (int64_t l = 0; l < static_cast<int64_t>(c_.layers.size()); ++l)
      if (c_.layer(l) != c_.layer(0) || c_.layer(0).d_ff != c_.d_ff ||
          c_.layer(0).n_heads != c_.n_heads || c_.layer(0).n_kv_heads != c_.n_kv_heads)
        refuse("per-layer widths (a pruned model) are not written to GGUF yet");
    if (!c_.rope_scaling.type.empty()) refuse("rope_scaling '" + c_.rope_scaling.type + "'");
  }

  const Target& target_of(const std::string& canonical) const {
    auto it = targets_.find(canonical);
    if (it == targets_.end())
      throw FormatError("'" + path_ + "': tensor '" + canonical + "' is not part of a " + c_.arch +
                        " model (no GGUF name)");
    return it->second;
  }

  GgufMetadata metadata() {
    const std::string p = std::string(arch_.gguf_arch) + ".";
    GgufMetadata md = {
        {"general.architecture", gguf_string(std::string(arch_.gguf_arch))},
        {p + "block_count", gguf_u32(static_cast<uint64_t>(c_.n_layers))},
        {p + "context_length", gguf_u32(static_cast<uint64_t>(c_.max_ctx))},
        {p + "embedding_length", gguf_u32(static_cast<uint64_t>(c_.d_model))},
        {p + "feed_forward_length", gguf_u32(static_cast<uint64_t>(c_.d_ff))},
        {p + "attention.head_count", gguf_u32(static_cast<uint64_t>(c_.n_heads))},
        {p + "attention.head_count_kv", gguf_u32(static_cast<uint64_t>(c_.n_kv_heads))},
        {p + "rope.freq_base", gguf_f32(c_.rope_theta)},
        {p + "attention.layer_norm_rms_epsilon", gguf_f32(c_.rms_eps)},
        {p + "rope.dimension_count", gguf_u32(static_cast<uint64_t>(c_.rope_dims()))},
        {p + "vocab_size", gguf_u32(static_cast<uint64_t>(c_.vocab_size))},
    };
    if (c_.head_dim * c_.n_heads != c_.d_model || arch_.qk_norm) {
      md.emplace_back(p + "attention.key_length", gguf_u32(static_cast<uint64_t>(c_.head_dim)));
      md.emplace_back(p + "attention.value_length", gguf_u32(static_cast<uint64_t>(c_.head_dim)));
    }
    std::shared_ptr<const GgufMetadata> tok;
    if (opts_.gguf_tokenizer) tok = opts_.gguf_tokenizer();
    if (tok) {
      md.insert(md.end(), tok->begin(), tok->end());
      // Special ids the tokenizer file does not name come from the model's config, as
      // llama.cpp's converter takes them (Qwen2's tokenizer.json has no BOS; config.json does).
      auto add_id = [&](const char* key, int64_t id) {
        for (const auto& kv : md)
          if (kv.first == key) return;
        if (id >= 0) md.emplace_back(key, gguf_u32(static_cast<uint64_t>(id)));
      };
      add_id("tokenizer.ggml.bos_token_id", c_.bos_id);
      add_id("tokenizer.ggml.eos_token_id", c_.eos_id);
    } else {
      // llama.cpp's marker for a model without a vocabulary: it loads such a file with dummy
      // tokens (vocab_size above), enough for token-id work such as llama-bench.
      md.emplace_back("tokenizer.ggml.model", gguf_string("no_vocab"));
      report_.notes.push_back("'" + path_ +
                              "': the model references no tokenizer: the GGUF is marked "
                              "tokenizer.ggml.model = no_vocab (llama.cpp runs it on token ids only)");
    }
    return md;
  }

  std::string path_;
  ModelConfig c_;
  const ArchInfo& arch_;
  SinkOptions opts_;
  std::map<std::string, Target, std::less<>> targets_;  // by canonical name
  std::optional<GgufWriter> writer_;
  SinkReport report_;
  std::vector<std::string> f16_fallback_;  // GGUF names
  std::vector<std::string> dropped_attrs_;  // canonical names
};

}  // namespace

std::unique_ptr<ModelSink> gguf_sink(const std::string& path, const WeightStore& src,
                                     const SinkOptions& opts) {
  return std::make_unique<GgufSink>(path, src, opts);
}

}  // namespace dsq::formats
