// Hashes: SHA-256 (provenance of source files) and XXH64 (per-tensor checksums in .dsq files).
//
// XXH64 is Yann Collet's xxHash64 (https://github.com/Cyan4973/xxHash, doc/xxhash_spec.md),
// implemented here from the specification: 64-bit little-endian lanes, primes P1..P5, four
// accumulators for inputs of 32 bytes or more, then 8/4/1-byte tails and the final avalanche.
// Output equals the reference XXH64(data, len, seed). docs/FORMAT.md restates the algorithm so a
// runtime can verify checksums without this file.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace dsq {

// One-shot XXH64 of `n` bytes.
uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);

// Incremental SHA-256 (FIPS 180-4).
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::array<uint8_t, 32> digest();  // finalises; the object must not be updated afterwards
  std::string hex_digest();          // lowercase hex of digest()

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(const void* data, size_t n);
// SHA-256 of a whole file, read in chunks; throws IoError naming the path.
std::string sha256_file(const std::string& path);

}  // namespace dsq
