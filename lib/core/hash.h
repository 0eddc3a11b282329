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

// Incremental SHA-256 (FIPS 180-4). On x86 CPUs with the SHA extensions (Intel since Ice Lake /
// Goldmont, AMD since Zen) whole blocks go through the SHA-NI instructions, about 5x the portable
// code: provenance hashes a multi-GB source file before writing (bench/RESULTS.md).
class Sha256 {
 public:
  // hardware = false forces the portable code (tests compare the two).
  explicit Sha256(bool hardware = true);
  void update(const void* data, size_t n);
  std::array<uint8_t, 32> digest();  // finalises; the object must not be updated afterwards
  std::string hex_digest();          // lowercase hex of digest()
  static bool hardware_available();  // the SHA-NI path exists on this CPU

 private:
  void blocks(const uint8_t* p, size_t n);  // n whole 64-byte blocks
  void block(const uint8_t* p);             // one block, portable
  bool hw_;
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(const void* data, size_t n);
// SHA-256 of a whole file, read in chunks; throws IoError naming the path. A large file's digest
// (>= 64 MiB) is remembered until the file changes (its device, inode, size and modification time):
// within the process, and across runs in the digest cache, one small file per source under
// $DSQ_CACHE_DIR (default $XDG_CACHE_HOME/dsq, else ~/.cache/dsq; DSQ_CACHE_DIR=off disables it),
// so quantizing one checkpoint many times hashes it once (a 1.3 TB DeepSeek-R1 takes ~17 minutes
// of a core). A cache that cannot be written is skipped silently.
std::string sha256_file(const std::string& path);
// Starts hashing a large file (>= 64 MiB) on a background thread, so that a later sha256_file of
// it returns at once or waits only for the rest; a no-op for small files or one already known.
// Writers start it when they open and ask for the digest when they finish (formats/dsq).
void sha256_file_prefetch(const std::string& path);

}  // namespace dsq
