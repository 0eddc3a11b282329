// The writer column of the "hf" row: a Hugging Face directory (config.json, safetensors shards,
// tokenizer files) in one of the layouts transformers and vLLM load (SinkOptions::hf_layout).
//
// Quantized linears (dsq's grouped-integer schemes) are repacked without requantization, code for
// code and f16 scale for f16 scale, following the published conventions (docs/EXPORT.md):
//   gptq / gptq-v2  qweight int32 [in/pf, out] packed along the input (first input in the lowest
//                   bits), qzeros int32 [groups, out/pf] packed along the output holding z - 1 (v1)
//                   or z (v2), scales f16 [groups, out], g_idx int32 [in] = i / group.
//   awq             qweight int32 [in, out/8] packed along the output, nibble k holding column
//                   kAwqOrder[k] of its eight; qzeros int32 [groups, out/8] the same way (z as
//                   is); scales f16 [groups, out]. 4 bits, groups only (GEMM kernels).
//   compressed-tensors (pack-quantized)  weight_packed int32 [out, ceil(in/pf)] along the input,
//                   signed values offset by 2^(bits-1) (which is dsq's code); weight_scale f16
//                   [out, groups]; weight_zero_point (asymmetric) int32 [ceil(out/pf), groups]
//                   packed along the output, z likewise; weight_shape int64 [2]. 4 or 8 bits.
// dsq's symmetric codes carry the implied zero 2^(bits-1), which is what GPTQ and AWQ store for
// them, so every scheme the layout's bit widths allow maps exactly. A linear whose shape the
// packing cannot hold (GPTQ needs in and out divisible by 32/bits, AWQ out by 8 and in by the
// group) is written dequantized in f32 (exact) and listed among the modules the loader must not
// convert, with a note. Other tensors are floats: the requested cast, else f16 for quantized
// layouts (the kernels' activation dtype) and the tensor's own dtype for "float".
//
// The directory is built as <out>.tmp/ (with a marker file, so a stale one from a killed run is
// recognised and replaced) and renamed into place by finish(); a sink destroyed before that
// removes it.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "formats/dsq/dsq_reader.h"
#include "formats/hf/hf.h"
#include "formats/hf/reader_util.h"
#include "formats/safetensors/safetensors_writer.h"
#include "formats/write_util.h"
#include "lib/core/error.h"
#include "lib/core/interrupt.h"
#include "lib/core/json_io.h"
#include "lib/core/log.h"
#include "lib/core/quant_view.h"

namespace dsq::formats {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // nibble k of a word holds column kAwqOrder[k]
constexpr const char* kMarker = ".dsq-export-in-progress";

std::string dtype_st(DType d) {
  switch (d) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    default: return "";
  }
}

std::string torch_dtype_name(DType d) {
  return d == DType::kF32 ? "float32" : d == DType::kBF16 ? "bfloat16" : "float16";
}

// Little-endian int32 words of a packed tensor, built by OR-ing codes in.
struct Words {
  std::vector<uint32_t> w;
  int64_t cols = 0;
  Words(int64_t rows, int64_t cols_) : w(static_cast<size_t>(rows * cols_)), cols(cols_) {}
  void put(int64_t r, int64_t c, uint32_t v, int shift) {
    w[static_cast<size_t>(r * cols + c)] |= v << shift;
  }
  const void* data() const { return w.data(); }
  size_t bytes() const { return w.size() * 4; }
};

struct Piece {
  std::string name, dtype;
  std::vector<int64_t> shape;
};

enum class Kind { kFloat, kPacked, kDequantized };

struct Plan {
  std::string canonical, module;  // module: the hf name without ".weight"
  Shape shape;                    // the source's
  Kind kind = Kind::kFloat;
  DType dtype = DType::kF32;  // kFloat / kDequantized
  QuantDesc quant;            // kPacked
  std::vector<Piece> pieces;
  size_t shard = 0;
  uint64_t bytes = 0;
};

// A small file of the directory (config, index, tokenizer files), synced.
void write_file(const fs::path& p, const std::string& text) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError("'" + p.string() + "': cannot create: " + std::strerror(errno));
  try {
    pwrite_all(fd, text.data(), text.size(), 0, p.string());
  } catch (...) {
    ::close(fd);
    throw;
  }
  const bool ok = ::fsync(fd) == 0;
  if (::close(fd) != 0 || !ok) throw IoError("'" + p.string() + "': write failed: " + std::strerror(errno));
}

class HfSink final : public ModelSink {
 public:
  HfSink(const std::string& path, const WeightStore& src, const SinkOptions& opts)
      : path_(path), c_(src.config), arch_(arch_of(src.config)), opts_(opts),
        tokenizer_(src.metadata.value("tokenizer", json())) {
    if (opts_.cast && !dtype_is_float(*opts_.cast))
      throw UsageError("'" + path_ + "': cast to a non-float dtype");
    check_exportable();
    std::map<std::string, std::pair<std::string, const ArchTensor*>, std::less<>> by_canonical;
    for (auto& [hf_name, nt] : detail::source_name_map(arch_, c_, detail::NameColumn::kHf))
      by_canonical.emplace(nt.canonical, std::pair{hf_name, nt.row});
    std::optional<QuantDesc> uniform;
    std::string uniform_of;
    for (const auto& name : src.names()) {
      const auto& e = src.entry(name);
      auto it = by_canonical.find(name);
      if (it == by_canonical.end())
        throw FormatError("'" + path_ + "': tensor '" + name + "' is not part of a " + c_.arch +
                          " model (no Hugging Face name)");
      Plan p = plan(e, it->second.first, *it->second.second);
      if (p.kind == Kind::kPacked && layout() != HfLayout::kCompressedTensors) {
        if (!uniform) {
          uniform = e.quant;
          uniform_of = name;
        } else if (!(*uniform == e.quant)) {
          refuse(name, scheme_name(e.quant) + " differs from '" + uniform_of + "' (" +
                 scheme_name(*uniform) + "): " + std::string(hf_layout_name(layout())) +
                 " has one scheme per model (compressed-tensors takes mixed schemes)");
        }
      }
      plans_.push_back(std::move(p));
      index_[name] = plans_.size() - 1;
    }
    scheme_ = uniform;
    if (layout() != HfLayout::kFloat) {
      if (std::none_of(plans_.begin(), plans_.end(), [](const Plan& p) { return p.kind == Kind::kPacked; }))
        throw UsageError("'" + path_ + "': the model has no quantized linear that " +
                         std::string(hf_layout_name(layout())) + " can pack (quantize it first, "
                         "or export with --hf float)");
      auto out = index_.find("output.weight");
      if (out == index_.end() || plans_[out->second].kind != Kind::kPacked)
        unconverted_.insert("lm_head");  // tied or float
    }
    assign_shards();
    prepare_tmp_dir();
  }

  ~HfSink() override {
    writers_.clear();
    if (!finished_ && !tmp_.empty()) {
      std::error_code ec;
      fs::remove_all(tmp_, ec);
    }
  }

  void add(const std::string& name, const Tensor& t, const json& attrs) override {
    auto it = index_.find(name);
    if (it == index_.end())
      throw FormatError("'" + path_ + "': tensor '" + name + "' was not declared by the source");
    const Plan& p = plans_[it->second];
    // The plan (and the header of every shard) was made from the source's entries: a tensor must
    // arrive as declared (a quantizer streaming into this sink would change it).
    const bool grouped = t.dtype() == DType::kQInt && t.quant().info().quantize_target();
    if (t.shape() != p.shape || grouped != (p.kind != Kind::kFloat) ||
        (p.kind == Kind::kPacked && !(t.quant() == p.quant)))
      refuse(name, "arrived in another form than the source declared (write the model to .dsq "
             "first, then dsq export it)");
    if (attrs.is_object() && !attrs.empty()) dropped_attrs_.push_back(name);
    SafetensorsWriter& w = writer(p.shard);
    switch (p.kind) {
      case Kind::kFloat:
      case Kind::kDequantized: {
        const Tensor d = t.to(p.dtype);
        w.add(p.pieces[0].name, d.bytes(), d.nbytes());
        break;
      }
      case Kind::kPacked: write_packed(p, t, w); break;
    }
    ++report_.tensors;
    report_.parameters += t.numel();
    report_.raw_bytes += p.bytes;
    report_.stored_bytes += p.bytes;
    if (--pending_[p.shard] == 0) report_.file_bytes += close_shard(p.shard);
  }

  SinkReport finish() override {
    for (size_t s = 0; s < pending_.size(); ++s)
      if (pending_[s] != 0)
        throw FormatError("'" + path_ + "': shard " + shard_name(s) + " is missing tensors");
    if (shard_count_ > 1) {
      json wm = json::object();
      uint64_t total = 0;
      for (const Plan& p : plans_) {
        total += p.bytes;
        for (const Piece& pc : p.pieces) wm[pc.name] = shard_name(p.shard);
      }
      emit("model.safetensors.index.json", json{{"metadata", {{"total_size", total}}}, {"weight_map", wm}});
    }
    emit("config.json", config_json());
    if (c_.bos_id >= 0 || c_.eos_id >= 0) {
      json g = json::object();
      if (c_.bos_id >= 0) g["bos_token_id"] = c_.bos_id;
      if (c_.eos_id >= 0) g["eos_token_id"] = c_.eos_id;
      emit("generation_config.json", g);
    }
    write_tokenizer_files();
    if (!dequantized_.empty()) {
      report_.notes.push_back("'" + path_ + "': " + std::to_string(dequantized_.size()) +
                              " quantized linear(s) written dequantized in f32 (exact) and left "
                              "unconverted: " + std::string(hf_layout_name(layout())) +
                              " cannot pack their shape (" + name_sample(dequantized_) + ")");
    }
    if (!dropped_attrs_.empty())
      report_.notes.push_back("'" + path_ + "': Hugging Face layouts have no place for per-tensor "
                              "attributes (dsq sparsify's activation thresholds): dropped from " +
                              std::to_string(dropped_attrs_.size()) + " tensor(s), e.g. '" +
                              dropped_attrs_.front() + "'");
    for (const auto& n : report_.notes) log_warn(n);
    fs::remove(tmp_ / kMarker);
    std::error_code ec;
    fs::rename(tmp_, path_, ec);
    if (ec) throw IoError("'" + path_ + "': cannot rename from .tmp: " + ec.message());
    tmp_guard_.release();
    finished_ = true;
    for (const auto& f : fs::directory_iterator(path_))
      if (f.path().extension() != ".safetensors") report_.file_bytes += fs::file_size(f.path());
    return report_;
  }

 private:
  HfLayout layout() const { return opts_.hf_layout; }

  [[noreturn]] void refuse(const std::string& tensor, const std::string& why) const {
    throw FormatError("'" + path_ + "': tensor '" + tensor + "': " + why);
  }

  void check_exportable() const {
    for (int64_t l = 0; l < static_cast<int64_t>(c_.layers.size()); ++l)
      if (c_.layer(l) != c_.layer(0) || c_.layer(0).d_ff != c_.d_ff ||
          c_.layer(0).n_heads != c_.n_heads || c_.layer(0).n_kv_heads != c_.n_kv_heads)
        throw ConfigError("'" + path_ + "': cannot write a " + c_.arch + " model as a Hugging Face "
                          "directory: config.json has no per-layer widths (a pruned model)");
    if (fs::exists(path_))
      throw UsageError("'" + path_ + "' exists: an export writes a new directory (remove it or "
                       "choose another name)");
  }

  // Float dtype of a float tensor (or a dequantized one) under the layout and cast.
  DType float_dtype(const WeightStore::Entry& e) const {
    if (opts_.cast) return *opts_.cast;
    if (layout() != HfLayout::kFloat) return DType::kF16;
    if (e.dtype == DType::kQInt) return DType::kBF16;  // a storage scheme (block FP8)
    if (!dtype_is_float(e.dtype) || e.dtype == DType::kF64) return DType::kF32;
    return e.dtype;
  }

  // Bits the layout packs, or an empty string with the reason when the scheme cannot be expressed.
  std::string scheme_problem(const QuantDesc& q) const {
    const int b = q.bits();
    switch (layout()) {
      case HfLayout::kGptq:
      case HfLayout::kGptqV2:
        return b == 2 || b == 4 || b == 8 ? "" : "GPTQ packs 2, 4 or 8 bits (other widths straddle int32 words)";
      case HfLayout::kAwq:
        if (b != 4) return "AWQ (GEMM) packs 4 bits only";
        return q.group == 0 ? "AWQ (GEMM) needs groups (a group size, not per channel)" : "";
      case HfLayout::kCompressedTensors:
        return b == 4 || b == 8 ? "" : "compressed-tensors pack-quantized packs 4 or 8 bits";
      default: return "";
    }
  }

  // Whether the packing holds a [rows, cols] matrix: GPTQ packs in and out by 32/bits, AWQ out by
  // 8 and in by the group; compressed-tensors pads.
  bool packs_shape(const QuantDesc& q, int64_t rows, int64_t cols) const {
    const int64_t pf = 32 / q.bits();
    switch (layout()) {
      case HfLayout::kGptq:
      case HfLayout::kGptqV2: return rows % pf == 0 && cols % pf == 0;
      case HfLayout::kAwq: return rows % 8 == 0 && cols % q.group == 0;
      default: return true;
    }
  }

  Plan plan(const WeightStore::Entry& e, const std::string& hf, const ArchTensor& row) {
    Plan p;
    p.canonical = e.name;
    p.shape = e.shape;
    const bool weight = hf.ends_with(".weight");
    p.module = weight ? hf.substr(0, hf.size() - 7) : hf;
    const bool grouped = e.dtype == DType::kQInt && e.quant.info().quantize_target();
    if (grouped && layout() != HfLayout::kFloat) {
      const std::string bad = scheme_problem(e.quant);
      if (!bad.empty()) refuse(e.name, scheme_name(e.quant) + " cannot be written as " +
                               std::string(hf_layout_name(layout())) + ": " + bad);
      const bool linear = row.role == TensorRole::kLinear && e.shape.size() == 2;
      if (linear && packs_shape(e.quant, e.shape[0], e.shape[1])) {
        p.kind = Kind::kPacked;
        p.quant = e.quant;
        packed_pieces(p, e);
      } else {
        p.kind = Kind::kDequantized;
        dequantized_.push_back(hf);
      }
    } else {
      p.kind = grouped ? Kind::kDequantized : Kind::kFloat;
    }
    if (p.kind != Kind::kPacked) {
      p.dtype = p.kind == Kind::kDequantized && !opts_.cast ? DType::kF32 : float_dtype(e);
      p.pieces.push_back({hf, dtype_st(p.dtype), std::vector<int64_t>(e.shape.begin(), e.shape.end())});
      if (weight && (p.kind == Kind::kDequantized || row.role == TensorRole::kLinear ||
                     row.role == TensorRole::kClassifier))
        unconverted_.insert(p.module);
      if (e.shape.size() >= 2 && model_dtype_.empty() && p.kind == Kind::kFloat)
        model_dtype_ = torch_dtype_name(p.dtype);
    }
    for (const Piece& pc : p.pieces) {
      uint64_t n = safetensors_dtype_bytes(pc.dtype);
      for (const int64_t x : pc.shape) n *= static_cast<uint64_t>(x);
      p.bytes += n;
    }
    return p;
  }

  void packed_pieces(Plan& p, const WeightStore::Entry& e) const {
    const QuantDesc& q = e.quant;
    const int64_t rows = e.shape[0], cols = e.shape[1];
    const int64_t pf = 32 / q.bits();
    const int64_t ng = quant_layout(q, rows, cols).n_groups;
    const std::string& m = p.module;
    switch (layout()) {
      case HfLayout::kGptq:
      case HfLayout::kGptqV2:
        p.pieces = {{m + ".qweight", "I32", {cols / pf, rows}},
                    {m + ".qzeros", "I32", {ng, rows / pf}},
                    {m + ".scales", "F16", {ng, rows}},
                    {m + ".g_idx", "I32", {cols}}};
        break;
      case HfLayout::kAwq:
        p.pieces = {{m + ".qweight", "I32", {cols, rows / 8}},
                    {m + ".qzeros", "I32", {ng, rows / 8}},
                    {m + ".scales", "F16", {ng, rows}}};
        break;
      case HfLayout::kCompressedTensors:
        p.pieces = {{m + ".weight_packed", "I32", {rows, (cols + pf - 1) / pf}},
                    {m + ".weight_scale", "F16", {rows, ng}}};
        if (!q.sym()) p.pieces.push_back({m + ".weight_zero_point", "I32", {(rows + pf - 1) / pf, ng}});
        p.pieces.push_back({m + ".weight_shape", "I64", {2}});
        break;
      default: break;
    }
  }

  // t is a grouped-integer matrix of p's scheme and shape (add() checked).
  void write_packed(const Plan& p, const Tensor& t, SafetensorsWriter& w) {
    const GroupedIntView v(t);
    const int b = v.q.bits();
    const int64_t rows = t.dim(0), cols = t.dim(1), pf = 32 / b, ng = v.L.n_groups;
    const uint32_t mask = (1u << b) - 1u;
    std::vector<uint16_t> scales_t;  // [groups, out] for GPTQ and AWQ
    if (layout() != HfLayout::kCompressedTensors) {
      scales_t.resize(static_cast<size_t>(ng * rows));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t g = 0; g < ng; ++g) scales_t[static_cast<size_t>(g * rows + r)] = v.scale_bits(r, g);
    }
    switch (layout()) {
      case HfLayout::kGptq:
      case HfLayout::kGptqV2: {
        const bool v1 = layout() == HfLayout::kGptq;
        Words qw(cols / pf, rows), qz(ng, rows / pf);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) qw.put(c / pf, r, v.code(r, c), static_cast<int>(c % pf) * b);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t g = 0; g < ng; ++g) {
            const uint32_t z = v.zero(r, g);
            if (v1 && z == 0)
              refuse(p.canonical, "a zero point of 0 (row " + std::to_string(r) + ", group " +
                     std::to_string(g) + ") cannot be stored in GPTQ v1, which stores z - 1; "
                     "use --hf gptq-v2 or a symmetric scheme");
            qz.put(g, r / pf, ((v1 ? z - 1 : z) & mask), static_cast<int>(r % pf) * b);
          }
        std::vector<int32_t> g_idx(static_cast<size_t>(cols));
        for (int64_t c = 0; c < cols; ++c) g_idx[static_cast<size_t>(c)] = static_cast<int32_t>(c / v.L.group);
        w.add(p.pieces[0].name, qw.data(), qw.bytes());
        w.add(p.pieces[1].name, qz.data(), qz.bytes());
        w.add(p.pieces[2].name, scales_t.data(), scales_t.size() * 2);
        w.add(p.pieces[3].name, g_idx.data(), g_idx.size() * 4);
        break;
      }
      case HfLayout::kAwq: {
        int slot[8];  // the nibble that holds column j of an eight
        for (int k = 0; k < 8; ++k) slot[kAwqOrder[k]] = k;
        Words qw(cols, rows / 8), qz(ng, rows / 8);
        for (int64_t r = 0; r < rows; ++r) {
          const int shift = 4 * slot[r % 8];
          for (int64_t c = 0; c < cols; ++c) qw.put(c, r / 8, v.code(r, c), shift);
          for (int64_t g = 0; g < ng; ++g) qz.put(g, r / 8, v.zero(r, g), shift);
        }
        w.add(p.pieces[0].name, qw.data(), qw.bytes());
        w.add(p.pieces[1].name, qz.data(), qz.bytes());
        w.add(p.pieces[2].name, scales_t.data(), scales_t.size() * 2);
        break;
      }
      case HfLayout::kCompressedTensors: {
        Words qw(rows, (cols + pf - 1) / pf);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) qw.put(r, c / pf, v.code(r, c), static_cast<int>(c % pf) * b);
        w.add(p.pieces[0].name, qw.data(), qw.bytes());
        w.add(p.pieces[1].name, v.scales, static_cast<size_t>(rows * ng) * 2);
        size_t next = 2;
        if (!v.q.sym()) {
          Words qz((rows + pf - 1) / pf, ng);
          for (int64_t r = 0; r < rows; ++r)
            for (int64_t g = 0; g < ng; ++g) qz.put(r / pf, g, v.zero(r, g), static_cast<int>(r % pf) * b);
          w.add(p.pieces[next++].name, qz.data(), qz.bytes());
        }
        const int64_t shape[2] = {rows, cols};
        w.add(p.pieces[next].name, shape, sizeof shape);
        break;
      }
      default: break;
    }
  }

  void assign_shards() {
    uint64_t in_shard = 0;
    size_t shard = 0;
    for (Plan& p : plans_) {
      if (in_shard > 0 && in_shard + p.bytes > opts_.hf_shard_bytes) {
        ++shard;
        in_shard = 0;
      }
      p.shard = shard;
      in_shard += p.bytes;
    }
    shard_count_ = plans_.empty() ? 1 : shard + 1;
    pending_.assign(shard_count_, 0);
    for (const Plan& p : plans_) ++pending_[p.shard];
  }

  std::string shard_name(size_t s) const {
    if (shard_count_ == 1) return "model.safetensors";
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", s + 1, shard_count_);
    return buf;
  }

  void prepare_tmp_dir() {
    tmp_ = fs::path(path_ + ".tmp");
    std::error_code ec;
    if (fs::exists(tmp_, ec)) {
      if (!fs::exists(tmp_ / kMarker, ec))
        throw UsageError("'" + tmp_.string() + "' exists and was not left by dsq: remove it");
      fs::remove_all(tmp_, ec);  // a killed export's leftovers
    }
    tmp_guard_ = interrupt::RemoveOnSignal(tmp_.string(), /*directory=*/true);
    if (!fs::create_directory(tmp_, ec) || ec)
      throw IoError("'" + tmp_.string() + "': cannot create the directory: " + ec.message());
    write_file(tmp_ / kMarker, "");
  }

  SafetensorsWriter& writer(size_t s) {
    auto it = writers_.find(s);
    if (it != writers_.end()) return *it->second;
    std::vector<SafetensorsDecl> decls;
    for (const Plan& p : plans_)
      if (p.shard == s)
        for (const Piece& pc : p.pieces) decls.push_back({pc.name, pc.dtype, pc.shape});
    return *writers_.emplace(s, std::make_unique<SafetensorsWriter>(
        (tmp_ / shard_name(s)).string(), std::move(decls), json{{"format", "pt"}})).first->second;
  }

  uint64_t close_shard(size_t s) {
    const uint64_t n = writer(s).finish();
    writers_.erase(s);
    return n;
  }

  void emit(const std::string& name, const json& j) { write_file(tmp_ / name, dump_json(j, 2) + "\n"); }

  json quantization_config() const {
    std::vector<std::string> skip(unconverted_.begin(), unconverted_.end());
    if (layout() == HfLayout::kGptq || layout() == HfLayout::kGptqV2) {
      json q = {{"quant_method", "gptq"},
                {"bits", scheme_->bits()},
                {"group_size", scheme_->group == 0 ? -1 : static_cast<int64_t>(scheme_->group)},
                {"desc_act", false},
                {"sym", scheme_->sym()},
                {"static_groups", false},
                {"true_sequential", true},
                {"checkpoint_format", layout() == HfLayout::kGptq ? "gptq" : "gptq_v2"},
                {"quantizer", "dsq"}};
      // GPTQModel's and vLLM's per-module override: "-:" + regex skips a module.
      json dyn = json::object();
      for (const auto& m : skip)
        if (m != "lm_head") dyn["-:^" + regex_escape(m) + "$"] = json::object();
      if (!dyn.empty()) q["dynamic"] = dyn;
      return q;
    }
    if (layout() == HfLayout::kAwq)
      return {{"quant_method", "awq"},
              {"bits", 4},
              {"group_size", static_cast<int64_t>(scheme_->group)},
              {"zero_point", true},
              {"version", "gemm"},
              {"modules_to_not_convert", skip}};
    // compressed-tensors: one config group per scheme, targeting module names unless a single
    // scheme covers every converted linear ("Linear").
    std::map<std::string, std::pair<QuantDesc, std::vector<std::string>>> groups;
    for (const Plan& p : plans_)
      if (p.kind == Kind::kPacked) {
        auto& g = groups[scheme_name(p.quant)];
        g.first = p.quant;
        g.second.push_back(p.module);
      }
    json cg = json::object();
    int i = 0;
    for (const auto& [name, g] : groups) {
      const QuantDesc& q = g.first;
      json weights = {{"num_bits", q.bits()},
                      {"type", "int"},
                      {"symmetric", q.sym()},
                      {"strategy", q.group == 0 ? "channel" : "group"},
                      {"group_size", q.group == 0 ? json(nullptr) : json(static_cast<int64_t>(q.group))},
                      {"dynamic", false},
                      {"actorder", nullptr},
                      {"observer", "minmax"}};
      json targets = groups.size() == 1 ? json::array({"Linear"}) : json(g.second);
      cg["group_" + std::to_string(i++)] = {{"targets", targets},
                                            {"weights", weights},
                                            {"input_activations", nullptr},
                                            {"output_activations", nullptr}};
    }
    return {{"quant_method", "compressed-tensors"},
            {"format", "pack-quantized"},
            {"quantization_status", "compressed"},
            {"config_groups", cg},
            {"ignore", skip},
            {"kv_cache_scheme", nullptr}};
  }

  static std::string regex_escape(const std::string& s) {
    std::string out;
    for (char ch : s) {
      if (std::strchr(".^$|()[]{}*+?\\", ch)) out += '\\';
      out += ch;
    }
    return out;
  }

  json config_json() const {
    json j = hf_config_to_json(c_);
    j["torch_dtype"] = model_dtype_.empty() ? std::string("float16") : model_dtype_;
    // Quantized layouts hold at least one packed linear (the constructor refuses others).
    if (layout() != HfLayout::kFloat) j["quantization_config"] = quantization_config();
    return j;
  }

  // Tokenizer files from the model's reference: the file it names (as tokenizer.model or
  // tokenizer.json) and the sidecars beside it, taken from a .dsq's embedded copies when present.
  void write_tokenizer_files() {
    const json& ref = tokenizer_;
    const std::string kind = ref.is_object() ? ref.value("kind", "") : "";
    const std::string path = ref.is_object() ? ref.value("path", "") : "";
    std::string main_name;
    if (kind == "sentencepiece") main_name = "tokenizer.model";
    if (kind == "hf-json") main_name = "tokenizer.json";
    if (main_name.empty()) {
      report_.notes.push_back("'" + path_ + "': " +
                              (kind.empty() ? std::string("the model references no tokenizer")
                                            : "a " + kind + " tokenizer has no Hugging Face file") +
                              ": the directory has no tokenizer files");
      return;
    }
    auto bytes_of = [&](const std::string& embedded_name, const fs::path& file) -> std::optional<std::string> {
      if (ref.contains("files"))
        if (auto b = dsq_embedded_file(ref, embedded_name)) return b;
      std::error_code ec;
      if (!fs::is_regular_file(file, ec)) return std::nullopt;
      return detail::read_text_file(file.string());
    };
    const fs::path src(path);
    const auto main = bytes_of(src.filename().string(), src);
    if (!main) {
      report_.notes.push_back("'" + path_ + "': the tokenizer file '" + path +
                              "' is gone: the directory has no tokenizer files");
      return;
    }
    write_file(tmp_ / main_name, *main);
    bool has_config = false;
    for (const char* side : {"tokenizer_config.json", "special_tokens_map.json"}) {
      if (auto b = bytes_of(side, src.parent_path() / side)) {
        write_file(tmp_ / side, *b);
        has_config |= std::string(side) == "tokenizer_config.json";
      }
    }
    if (!has_config && kind == "sentencepiece")
      emit("tokenizer_config.json", json{{"tokenizer_class", "LlamaTokenizer"},
                                         {"add_bos_token", ref.value("add_bos_token", true)},
                                         {"add_eos_token", false},
                                         {"model_max_length", c_.max_ctx}});
  }

  std::string path_;
  ModelConfig c_;
  const ArchInfo& arch_;
  SinkOptions opts_;
  json tokenizer_;
  std::vector<Plan> plans_;
  std::map<std::string, size_t, std::less<>> index_;
  std::optional<QuantDesc> scheme_;
  std::set<std::string> unconverted_;  // modules the loader keeps in floats
  std::string model_dtype_;
  size_t shard_count_ = 1;
  std::vector<size_t> pending_;  // tensors still to write per shard
  std::map<size_t, std::unique_ptr<SafetensorsWriter>> writers_;
  fs::path tmp_;
  interrupt::RemoveOnSignal tmp_guard_;  // <out>.tmp/ goes if the run is interrupted
  bool finished_ = false;
  SinkReport report_;
  std::vector<std::string> dequantized_, dropped_attrs_;
};

}  // namespace

std::unique_ptr<ModelSink> hf_sink(const std::string& path, const WeightStore& src,
                                   const SinkOptions& opts) {
  return std::make_unique<HfSink>(path, src, opts);
}

}  // namespace dsq::formats
