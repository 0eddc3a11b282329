#include "lib/core/tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "lib/core/error.h"
#include "lib/core/memory.h"
#include "lib/core/quant_view.h"

namespace dsq {

int64_t shape_numel(const Shape& s, const std::string& what) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw ShapeError(what + ": negative dimension in shape " + shape_str(s));
    if (d != 0 && n > INT64_MAX / d)
      throw ShapeError(what + ": shape " + shape_str(s) + " overflows int64");
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(s[i]);
  }
  return out + "]";
}

size_t tensor_nbytes(DType t, const Shape& s, const QuantDesc* q) {
  if (t == DType::kQInt) {
    DSQ_ASSERT(q != nullptr && s.size() == 2, "qint tensor needs a QuantDesc and a 2-D shape");
    return quant_layout(*q, s[0], s[1]).total_bytes;
  }
  const int64_t n = shape_numel(s);
  const size_t es = dtype_size(t);
  if (n != 0 && static_cast<uint64_t>(n) > SIZE_MAX / es) throw ShapeError("shape too large");
  return static_cast<size_t>(n) * es;
}

namespace {
struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
std::shared_ptr<void> alloc_aligned(size_t n) {
  const size_t sz = align_up(n == 0 ? 1 : n, 64);
  void* p = std::aligned_alloc(64, sz);
  if (!p) throw IoError(strprintf("out of memory allocating %zu bytes", n));
  advise_huge_pages(p, sz);
  std::memset(p, 0, sz);
  return std::shared_ptr<void>(p, AlignedFree{});
}
}  // namespace

Tensor::Tensor(DType dtype, Shape shape, const QuantDesc* q)
    : dtype_(dtype), shape_(std::move(shape)) {
  if (q) quant_ = *q;
  numel_ = shape_numel(shape_);
  nbytes_ = tensor_nbytes(dtype_, shape_, q);
  auto mem = alloc_aligned(nbytes_);
  data_ = mem.get();
  holder_ = std::move(mem);
  owned_ = true;
}

Tensor Tensor::borrow(DType dtype, Shape shape, const void* data, size_t nbytes,
                      std::shared_ptr<const void> keepalive, const QuantDesc* q) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  if (q) t.quant_ = *q;
  t.numel_ = shape_numel(t.shape_);
  t.nbytes_ = nbytes;
  DSQ_ASSERT(nbytes == tensor_nbytes(dtype, t.shape_, q), "borrow: byte count mismatch");
  t.data_ = data;
  t.holder_ = std::move(keepalive);
  t.owned_ = false;
  return t;
}

Tensor Tensor::from_f32(Shape shape, std::span<const float> values) {
  Tensor t(DType::kF32, std::move(shape));
  DSQ_ASSERT(static_cast<int64_t>(values.size()) == t.numel(), "from_f32: size mismatch");
  std::memcpy(t.mutable_bytes(), values.data(), values.size() * 4);
  return t;
}

std::byte* Tensor::mutable_bytes() {
  DSQ_ASSERT(owned_, "mutable access to a borrowed tensor");
  return static_cast<std::byte*>(const_cast<void*>(data_));
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, shape_, dtype_ == DType::kQInt ? &quant_ : nullptr);
  if (nbytes_) std::memcpy(t.mutable_bytes(), data_, nbytes_);
  return t;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype_) return *this;
  if (dtype_ == DType::kQInt) {
    DSQ_ASSERT(shape_.size() == 2 && dtype_is_float(t), "a quantized tensor converts to a float dtype");
    Tensor f(DType::kF32, shape_);
    if (quant_.info().layout == SchemeLayout::kBlockFp8)
      dequantize_block_fp8(*this, 0, shape_[0], f.mutable_data<float>());
    else
      dequantize_grouped_int(*this, 0, shape_[0], f.mutable_data<float>());
    return f.to(t);
  }
  Tensor out(t, shape_);
  convert_elements(dtype_, data_, t, out.mutable_bytes(), static_cast<size_t>(numel_));
  return out;
}

void dequantize_block_fp8(const Tensor& t, int64_t r0, int64_t r1, float* out) {
  DSQ_ASSERT(t.dtype() == DType::kQInt && t.quant().info().layout == SchemeLayout::kBlockFp8 &&
                 t.ndim() == 2 && 0 <= r0 && r0 <= r1 && r1 <= t.dim(0),
             "dequantize_block_fp8: not a block-FP8 tensor or bad rows");
  const int64_t cols = t.dim(1);
  const QuantLayout L = quant_layout(t.quant(), t.dim(0), cols);
  const auto* codes = reinterpret_cast<const uint8_t*>(t.bytes());
  const auto* scales = reinterpret_cast<const float*>(t.bytes() + L.scales_offset);
#pragma omp parallel for schedule(static) if ((r1 - r0) * cols > (1 << 18))
  for (int64_t r = r0; r < r1; ++r) {
    const float* srow = scales + (r / L.group) * L.n_groups;
    const uint8_t* c = codes + r * cols;
    float* o = out + (r - r0) * cols;
    for (int64_t j = 0; j < cols; ++j) o[j] = fp8_e4m3_to_f32(c[j]) * srow[j / L.group];
  }
}

void dequantize_grouped_int(const Tensor& t, int64_t r0, int64_t r1, float* out) {
  DSQ_ASSERT(t.dtype() == DType::kQInt && t.quant().info().layout == SchemeLayout::kGroupedInt &&
                 t.ndim() == 2 && 0 <= r0 && r0 <= r1 && r1 <= t.dim(0),
             "dequantize_grouped_int: not a grouped-integer tensor or bad rows");
  const GroupedIntView v(t);
  const int64_t cols = v.L.cols;
  for (int64_t r = r0; r < r1; ++r) {
    float* o = out + (r - r0) * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t g = c / v.L.group;
      o[c] = f16_to_f32(v.scale_bits(r, g)) *
             static_cast<float>(static_cast<int>(v.code(r, c)) - static_cast<int>(v.zero(r, g)));
    }
  }
}

void release_mapped_pages(const Tensor& t) {
  if (t.owned() || t.nbytes() == 0) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(t.bytes());
  const uintptr_t first = (begin + page - 1) / page * page;  // whole pages inside the tensor only
  const uintptr_t last = (begin + t.nbytes()) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

Tensor Tensor::reshape(Shape s) const {
  Tensor t = *this;
  DSQ_ASSERT(shape_numel(s) == numel_, "reshape changes element count");
  t.shape_ = std::move(s);
  return t;
}

}  // namespace dsq
