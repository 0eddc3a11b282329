// Tensors: a dtype, a shape and bytes that are either owned or borrowed from a mapping.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lib/core/dtype.h"
#include "lib/core/quant_layout.h"

namespace dsq {

using Shape = std::vector<int64_t>;

// Product of dims; throws ShapeError naming `what` when a dim is negative or the product
// overflows int64.
int64_t shape_numel(const Shape& s, const std::string& what = "tensor");
std::string shape_str(const Shape& s);  // "[64, 172]"

// Bytes a tensor of this dtype/shape occupies (kQInt needs the QuantDesc and a 2-D shape).
size_t tensor_nbytes(DType t, const Shape& s, const QuantDesc* q = nullptr);

// A tensor. Copying a Tensor shares its bytes (like a shared_ptr); use clone() for a deep copy.
// Data is either owned (allocated, 64-byte aligned) or borrowed from a mapping kept alive by
// `keepalive` (e.g. an mmap of the source file: reading never copies).
class Tensor {
 public:
  Tensor() = default;
  // Allocate zero-initialised storage.
  Tensor(DType dtype, Shape shape, const QuantDesc* q = nullptr);
  // Borrow `nbytes` at `data`, kept alive by `keepalive`.
  static Tensor borrow(DType dtype, Shape shape, const void* data, size_t nbytes,
                       std::shared_ptr<const void> keepalive, const QuantDesc* q = nullptr);
  static Tensor from_f32(Shape shape, std::span<const float> values);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_.at(i); }
  size_t ndim() const { return shape_.size(); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return nbytes_; }
  bool empty() const { return data_ == nullptr && nbytes_ == 0; }
  const QuantDesc& quant() const { return quant_; }  // meaningful for kQInt only

  const std::byte* bytes() const { return static_cast<const std::byte*>(data_); }
  // Mutable access; only valid for owned tensors (asserts otherwise).
  std::byte* mutable_bytes();

  template <class T> const T* data() const { return static_cast<const T*>(data_); }
  template <class T> T* mutable_data() { return reinterpret_cast<T*>(mutable_bytes()); }

  bool owned() const { return owned_; }
  Tensor clone() const;
  // Float conversion (f32/f16/bf16/f64 -> any float dtype; a kQInt tensor is dequantized by the
  // reference formulas below). Returns *this when dtype matches.
  Tensor to(DType t) const;
  // Same bytes, new shape of equal element count.
  Tensor reshape(Shape s) const;

 private:
  DType dtype_ = DType::kF32;
  Shape shape_;
  QuantDesc quant_{};
  int64_t numel_ = 0;
  size_t nbytes_ = 0;
  const void* data_ = nullptr;
  bool owned_ = false;
  std::shared_ptr<const void> holder_;  // owns or keeps the mapping alive
};

// Rows [r0, r1) of a block-FP8 kQInt tensor (lib/core/quant_layout.h) as f32 into
// out[(r1 - r0), cols]: w = fp8(code) * scale[r / B][c / B].
void dequantize_block_fp8(const Tensor& t, int64_t r0, int64_t r1, float* out);
// Rows [r0, r1) of a grouped-integer kQInt tensor as f32: w = scale * (code - zero), the file
// format's formula (docs/FORMAT.md), computed as lib/quant's codecs compute it (bit-identical to
// quant::dequantize_rows, which is the fast path: this scalar one serves conversions).
void dequantize_grouped_int(const Tensor& t, int64_t r0, int64_t r1, float* out);

// Drops this process's mapping of a borrowed (mmap-backed) tensor's whole pages: they stay in the
// page cache but leave the process's RSS, so streaming through a model larger than RAM does not
// grow the peak RSS with every tensor read. A no-op for owned tensors.
void release_mapped_pages(const Tensor& t);

}  // namespace dsq
