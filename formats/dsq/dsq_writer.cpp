#include "formats/dsq/dsq_writer.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "formats/dsq/dsq_format.h"
#include "formats/dsq/dsq_util.h"
#include "lib/core/error.h"
#include "lib/core/hash.h"
#include "lib/core/progress.h"

namespace dsq::formats {

using namespace dsqfile;

namespace {

// Index of the first NaN/Inf element in a float tensor's bytes, or -1.
int64_t first_non_finite(DType dt, const std::byte* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    bool bad = false;
    if (dt == DType::kF32) {
      uint32_t u;
      std::memcpy(&u, p + 4 * i, 4);
      bad = (u & 0x7f800000u) == 0x7f800000u;
    } else if (dt == DType::kF16 || dt == DType::kBF16) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      bad = dt == DType::kF16 ? (h & 0x7c00u) == 0x7c00u : (h & 0x7f80u) == 0x7f80u;
    } else if (dt == DType::kF64) {
      double d;
      std::memcpy(&d, p + 8 * i, 8);
      bad = !std::isfinite(d);
    }
    if (bad) return i;
  }
  return -1;
}

std::string non_finite_msg(const std::string& where, DType dt, const std::byte* p, int64_t i) {
  double v = 0;
  if (dt == DType::kF32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    v = f;
  } else if (dt == DType::kF16 || dt == DType::kBF16) {
    uint16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    v = dt == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
  } else {
    std::memcpy(&v, p + 8 * i, 8);
  }
  return where + ": element " + std::to_string(i) + " is " + (std::isnan(v) ? "nan" : "inf") +
         " (" + dtype_name(dt).data() + ")";
}

void validate_quant(const std::string& where, const Tensor& t) {
  const QuantDesc& q = t.quant();
  if (!scheme_from_id(static_cast<uint16_t>(q.scheme)))
    throw FormatError(where + ": unknown quantization scheme id " +
                      std::to_string(static_cast<int>(q.scheme)));
  if (t.ndim() != 2)
    throw FormatError(where + ": qint tensors must be 2-D, got " + shape_str(t.shape()));
  const QuantLayout L = quant_layout(q, t.dim(0), t.dim(1));
  const auto* scales = reinterpret_cast<const uint8_t*>(t.bytes()) + L.scales_offset;
  if (q.info().layout == SchemeLayout::kBlockFp8) {
    if (q.group == 0) throw FormatError(where + ": block FP8 needs a positive block edge");
    const int64_t n = static_cast<int64_t>(L.scales_bytes / 4);
    for (int64_t i = 0; i < n; ++i) {
      float v;
      std::memcpy(&v, scales + 4 * i, 4);
      if (!std::isfinite(v) || v < 0)
        throw FormatError(where + ": block scale " + std::to_string(i) + " is " + std::to_string(v) +
                          " (must be finite and non-negative)");
    }
    const auto* codes = reinterpret_cast<const uint8_t*>(t.bytes());
    for (size_t i = 0; i < L.codes_bytes; ++i)
      if (fp8_e4m3_is_nan(codes[i]))
        throw FormatError(where + ": element " + std::to_string(i) + " is an FP8 NaN code");
    return;
  }
  const int64_t n_scales = L.rows * L.n_groups;
  const int64_t bad = first_non_finite(DType::kF16, reinterpret_cast<const std::byte*>(scales),
                                       n_scales);
  if (bad >= 0)
    throw FormatError(where + ": scale " + std::to_string(bad) + " (row " +
                      std::to_string(bad / L.n_groups) + ", group " +
                      std::to_string(bad % L.n_groups) + ") is not finite");
  if (!q.sym()) {
    const auto* zeros = reinterpret_cast<const uint8_t*>(t.bytes()) + L.zeros_offset;
    for (int64_t i = 0; i < n_scales; ++i)
      if (zeros[i] >> q.bits())
        throw FormatError(where + ": zero point " + std::to_string(i) + " is " +
                          std::to_string(zeros[i]) + ", more than " + std::to_string(q.bits()) +
                          "-bit codes allow");
  }
}

}  // namespace

DsqWriter::DsqWriter(std::string out_path, nlohmann::json header, int zstd_level)
    : path_(std::move(out_path)), header_(std::move(header)), zstd_level_(zstd_level) {
  DSQ_ASSERT(header_.is_object(), "dsq header must be a JSON object");
  DSQ_ASSERT(zstd_level_ >= 0 && zstd_level_ <= ZSTD_maxCLevel(), "bad zstd level %d", zstd_level_);
  tmp_path_ = path_ + ".tmp";
  tmp_guard_ = interrupt::RemoveOnSignal(tmp_path_);
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError("'" + tmp_path_ + "': cannot create: " + std::strerror(errno));
  const Preamble zero{};
  write_all(&zero, sizeof zero);  // patched by finish()
}

DsqWriter::~DsqWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) ::unlink(tmp_path_.c_str());
}

void DsqWriter::write_all(const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t w = ::write(fd_, c, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw IoError("'" + tmp_path_ + "': write failed: " + std::strerror(errno));
    c += w;
    n -= static_cast<size_t>(w);
    pos_ += static_cast<uint64_t>(w);
  }
}

void DsqWriter::pad_to_alignment() {
  static const char kZeros[kAlign] = {};
  const uint64_t pad = align_up(pos_, kAlign) - pos_;
  if (pad) write_all(kZeros, pad);
}

void DsqWriter::add(const std::string& name, const Tensor& t, const nlohmann::json& attrs) {
  DSQ_ASSERT(!finished_, "DsqWriter::add after finish");
  const std::string where = "'" + path_ + "': tensor '" + name + "'";
  if (name.empty()) throw FormatError("'" + path_ + "': empty tensor name");
  if (name.size() > UINT32_MAX) throw FormatError(where + ": name too long");
  auto it = std::lower_bound(seen_.begin(), seen_.end(), name);
  if (it != seen_.end() && *it == name) throw FormatError(where + ": duplicate tensor");
  if (t.ndim() > kMaxDims)
    throw FormatError(where + ": " + std::to_string(t.ndim()) + " dims, at most 8 are supported");
  if (!attrs.is_object()) throw FormatError(where + ": attrs must be a JSON object");
  const bool qint = t.dtype() == DType::kQInt;
  const size_t want = tensor_nbytes(t.dtype(), t.shape(), qint ? &t.quant() : nullptr);
  if (t.nbytes() != want)
    throw FormatError(where + ": holds " + std::to_string(t.nbytes()) + " bytes, " +
                      describe_dtype(t.dtype(), t.quant()) + " x " + shape_str(t.shape()) +
                      " needs " + std::to_string(want));
  if (qint) {
    validate_quant(where, t);
  } else if (dtype_is_float(t.dtype())) {
    const int64_t bad = first_non_finite(t.dtype(), t.bytes(), t.numel());
    if (bad >= 0) throw FormatError(non_finite_msg(where, t.dtype(), t.bytes(), bad));
  }

  TensorRecord r{};
  r.name_offset = names_.size();
  r.name_bytes = static_cast<uint32_t>(name.size());
  r.dtype = static_cast<uint16_t>(t.dtype());
  r.ndim = static_cast<uint8_t>(t.ndim());
  for (size_t i = 0; i < t.ndim(); ++i) r.dims[i] = t.dim(i);
  r.raw_bytes = t.nbytes();
  r.checksum = xxh64(t.bytes(), t.nbytes());
  if (qint) {
    // bits and sym too, so 1.0 readers read grouped-integer schemes; 0 for other layouts, which
    // 1.0 readers must refuse.
    const bool grouped = t.quant().info().layout == SchemeLayout::kGroupedInt;
    r.quant_bits = grouped ? t.quant().bits() : 0;
    r.quant_sym = grouped && t.quant().sym() ? 1 : 0;
    r.quant_scheme = static_cast<uint16_t>(t.quant().scheme);
    r.quant_group = t.quant().group;
  }
  std::string packed;
  if (zstd_level_ > 0 && t.nbytes() > 0) {
    packed.resize(ZSTD_compressBound(t.nbytes()));
    std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), &ZSTD_freeCCtx);
    DSQ_ASSERT(cctx != nullptr, "ZSTD_createCCtx failed");
    ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, zstd_level_);
    ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_contentSizeFlag, 1);
    const size_t got = ZSTD_compress2(cctx.get(), packed.data(), packed.size(), t.bytes(),
                                      t.nbytes());
    if (ZSTD_isError(got))
      throw IoError(where + ": zstd compression failed: " + ZSTD_getErrorName(got));
    packed.resize(got);
    if (got >= t.nbytes()) packed.clear();  // incompressible: store as is
  }
  pad_to_alignment();
  r.data_offset = pos_;
  if (!packed.empty()) {
    r.compression = static_cast<uint8_t>(Compression::kZstd);
    r.stored_bytes = packed.size();
    write_all(packed.data(), packed.size());
    ++report_.compressed;
  } else {
    r.compression = static_cast<uint8_t>(Compression::kNone);
    r.stored_bytes = t.nbytes();
    write_all(t.bytes(), t.nbytes());
  }

  seen_.insert(it, name);
  names_ += name;
  records_.append(reinterpret_cast<const char*>(&r), sizeof r);
  nlohmann::json extra = nlohmann::json::object();
  if (!attrs.empty()) extra["attrs"] = attrs;
  if (qint) extra["scheme"] = scheme_name(t.quant());
  if (!extra.empty()) tensor_extras_[name] = extra;
  ++report_.tensors;
  report_.parameters += t.numel();
  report_.raw_bytes += r.raw_bytes;
  report_.stored_bytes += r.stored_bytes;
}

DsqWriteReport DsqWriter::finish() {
  DSQ_ASSERT(!finished_, "DsqWriter::finish called twice");
  header_["format"] = "dsq";
  header_["format_version"] = std::to_string(kVersionMajor) + "." + std::to_string(kVersionMinor);
  header_["tensors"] = tensor_extras_;
  // Source digests dsq_header_for left to the end (computed, or prefetched while the tensors
  // were written).
  if (header_.contains("provenance") && header_["provenance"].contains("sources"))
    for (auto& src : header_["provenance"]["sources"])
      if (src.is_object() && src.contains("sha256") && src["sha256"].is_null() && src.contains("path"))
        src["sha256"] = sha256_file(src["path"].get<std::string>());
  std::string json;
  try {
    json = header_.dump(1);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError("'" + path_ + "': the JSON header cannot be written: " + e.what());
  }

  pad_to_alignment();
  Preamble pre{};
  std::memcpy(pre.magic, kMagic, sizeof kMagic);
  pre.version_major = kVersionMajor;
  pre.version_minor = kVersionMinor;
  pre.index_offset = pos_;
  IndexHeader ih{};
  std::memcpy(ih.magic, kIndexMagic, sizeof kIndexMagic);
  ih.n_tensors = static_cast<uint32_t>(report_.tensors);
  ih.names_bytes = names_.size();
  ih.json_bytes = json.size();
  std::string index(reinterpret_cast<const char*>(&ih), sizeof ih);
  index += records_;
  index += names_;
  index += json;
  pre.index_bytes = index.size();
  pre.index_checksum = xxh64(index.data(), index.size());
  write_all(index.data(), index.size());
  pre.file_bytes = pos_;
  if (::pwrite(fd_, &pre, sizeof pre, 0) != static_cast<ssize_t>(sizeof pre))
    throw IoError("'" + tmp_path_ + "': write failed: " + std::strerror(errno));
  commit_output(&fd_, tmp_path_, path_);
  tmp_guard_.release();
  finished_ = true;
  report_.file_bytes = pos_;
  return report_;
}

int max_zstd_level() { return ZSTD_maxCLevel(); }

namespace {

class DsqSink : public ModelSink {
 public:
  DsqSink(const std::string& path, const WeightStore& src, const DsqWriteOptions& o)
      : cast_(checked_cast(o.cast)), w_(path, dsq_header_for(src, o), o.zstd_level) {}
  DsqSink(const std::string& path, const WeightStore& src, const SinkOptions& o)
      : DsqSink(path, src, write_options(o)) {}
  void add(const std::string& name, const Tensor& t, const nlohmann::json& attrs) override {
    const DType to = sink_cast_dtype(t.dtype(), t.ndim(), cast_,
                                     t.dtype() == DType::kQInt ? &t.quant() : nullptr);
    w_.add(name, to == t.dtype() ? t : t.to(to), attrs);
  }
  SinkReport finish() override { return w_.finish(); }

 private:
  static std::optional<DType> checked_cast(std::optional<DType> c) {
    if (c && *c != DType::kF32 && *c != DType::kF16 && *c != DType::kBF16)
      throw UsageError("cast dtype must be f32, f16 or bf16");
    return c;
  }
  static DsqWriteOptions write_options(const SinkOptions& o) {
    DsqWriteOptions w;
    w.zstd_level = o.zstd_level;
    w.cast = o.cast;
    w.recipe = o.recipe;
    w.progress = o.progress;
    return w;
  }
  std::optional<DType> cast_;
  DsqWriter w_;
};

}  // namespace

std::unique_ptr<ModelSink> dsq_sink(const std::string& path, const WeightStore& src,
                                    const SinkOptions& opts) {
  return std::make_unique<DsqSink>(path, src, opts);
}

DsqWriteReport write_dsq(const WeightStore& ws, const std::string& path,
                         const DsqWriteOptions& opts) {
  DsqSink sink(path, ws, opts);
  return stream_model(ws, sink, opts.progress);
}

}  // namespace dsq::formats
