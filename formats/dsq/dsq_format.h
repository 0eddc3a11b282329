// The on-disk structures of a .dsq file (docs/FORMAT.md is the normative description; this header
// and formats/dsq/dsq_reader_standalone.h must agree with it). Little-endian, fixed-size records.
//
//   [0, 64)                 Preamble: magic, version, file size, where the index is
//   [64, index_offset)      tensor data, each tensor at a multiple of 64 bytes, zero padding
//   [index_offset, EOF)     index: IndexHeader, TensorRecord[n], name pool, JSON header
//
// The index is at the end so a streaming writer can emit tensors as they come (compressed sizes
// are unknown ahead) and patch the fixed-size preamble when it finishes.
#pragma once

#include <bit>
#include <cstdint>

#include "lib/core/quant_layout.h"

namespace dsq::formats::dsqfile {

static_assert(std::endian::native == std::endian::little, "the dsq format is little-endian");

inline constexpr char kMagic[8] = {'D', 'S', 'Q', 'M', 'O', 'D', 'E', 'L'};
inline constexpr char kIndexMagic[4] = {'D', 'S', 'Q', 'I'};
inline constexpr uint16_t kVersionMajor = 1;  // readers reject any other major version
// 1.1 added TensorRecord::quant_scheme. Minor bumps only add fields that 1.x readers may ignore:
// schemes whose layout a 1.0 reader does not know are written with quant_bits 0, which it rejects.
inline constexpr uint16_t kVersionMinor = 1;
inline constexpr uint64_t kAlign = 64;        // tensor data offsets are multiples of this
inline constexpr uint32_t kMaxDims = 8;

// On-disk enum: explicit values, never reused.
enum class Compression : uint8_t { kNone = 0, kZstd = 1 };

struct Preamble {                  // 64 bytes at offset 0
  char magic[8];                   // "DSQMODEL"
  uint16_t version_major;          // 1
  uint16_t version_minor;          // 1 (files of 1.0 are read too)
  uint32_t flags;                  // 0 (reserved)
  uint64_t file_bytes;             // total file size: catches truncation
  uint64_t index_offset;           // absolute offset of the IndexHeader, multiple of 64
  uint64_t index_bytes;            // IndexHeader + records + name pool + JSON header
  uint64_t index_checksum;         // XXH64 (seed 0) of the index_bytes bytes at index_offset
  uint64_t reserved[2];            // 0
};
static_assert(sizeof(Preamble) == 64);

struct IndexHeader {               // 32 bytes at index_offset
  char magic[4];                   // "DSQI"
  uint32_t n_tensors;
  uint64_t names_bytes;            // size of the name pool (UTF-8 names, not NUL-terminated)
  uint64_t json_bytes;             // size of the JSON header (UTF-8)
  uint64_t reserved;               // 0
};
static_assert(sizeof(IndexHeader) == 32);

struct TensorRecord {              // 128 bytes each, after the IndexHeader
  uint64_t name_offset;            // into the name pool
  uint32_t name_bytes;
  uint16_t dtype;                  // DType (lib/core/dtype.h)
  uint8_t ndim;                    // 0..8
  uint8_t compression;             // Compression
  int64_t dims[kMaxDims];          // dims[0..ndim), outermost first (row-major); rest 0
  uint64_t data_offset;            // absolute, multiple of 64
  uint64_t stored_bytes;           // bytes on disk (== raw_bytes when uncompressed)
  uint64_t raw_bytes;              // bytes of the tensor once decompressed
  uint64_t checksum;               // XXH64 (seed 0) of the raw (decompressed) bytes
  uint8_t quant_bits;              // kQInt grouped-integer schemes: 2, 3, 4 or 8; else 0
  uint8_t quant_sym;               // kQInt: 1 symmetric, 0 asymmetric; else 0
  uint16_t quant_scheme;           // kQInt: QuantScheme id (1.1; 0 in 1.0 files); else 0
  uint32_t quant_group;            // kQInt: group size along cols, 0 = per row; else 0
  uint64_t reserved1;              // 0
};
static_assert(sizeof(TensorRecord) == 128);

}  // namespace dsq::formats::dsqfile
