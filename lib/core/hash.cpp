#include "lib/core/hash.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "lib/core/error.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace dsq {

namespace {

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kP3 = 0x165667B19E3779F9ull;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ull;

inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t load_le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);  // the dsq format is little-endian only (static_assert in the writer)
  return v;
}
inline uint32_t load_le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t xxh_round(uint64_t acc, uint64_t lane) {
  acc += lane * kP2;
  return rotl64(acc, 31) * kP1;
}
inline uint64_t xxh_merge(uint64_t acc, uint64_t v) {
  acc ^= xxh_round(0, v);
  return acc * kP1 + kP4;
}

}  // namespace

uint64_t xxh64(const void* data, size_t n, uint64_t seed) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint8_t* const end = p + n;
  uint64_t h;
  if (n >= 32) {
    uint64_t v1 = seed + kP1 + kP2, v2 = seed + kP2, v3 = seed, v4 = seed - kP1;
    const uint8_t* const limit = end - 32;
    do {
      v1 = xxh_round(v1, load_le64(p));
      v2 = xxh_round(v2, load_le64(p + 8));
      v3 = xxh_round(v3, load_le64(p + 16));
      v4 = xxh_round(v4, load_le64(p + 24));
      p += 32;
    } while (p <= limit);
    h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
    h = xxh_merge(h, v1);
    h = xxh_merge(h, v2);
    h = xxh_merge(h, v3);
    h = xxh_merge(h, v4);
  } else {
    h = seed + kP5;
  }
  h += static_cast<uint64_t>(n);
  for (; p + 8 <= end; p += 8) h = rotl64(h ^ xxh_round(0, load_le64(p)), 27) * kP1 + kP4;
  if (p + 4 <= end) {
    h = rotl64(h ^ (static_cast<uint64_t>(load_le32(p)) * kP1), 23) * kP2 + kP3;
    p += 4;
  }
  for (; p < end; ++p) h = rotl64(h ^ (*p * kP5), 11) * kP1;
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

namespace {
constexpr uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
inline uint32_t rotr32(uint32_t x, int r) { return (x >> r) | (x << (32 - r)); }
}  // namespace

#if defined(__x86_64__)
namespace {

// SHA-256 compression of n blocks with the SHA-NI instructions (Intel's "SHA extensions"
// reference flow): the state lives as ABEF / CDGH, each sha256rnds2 does two rounds, and the
// message schedule of quad i + 1 is built by sha256msg1 / sha256msg2 four quads ahead.
__attribute__((target("sha,sse4.1,ssse3"))) void sha256_blocks_ni(uint32_t* state, const uint8_t* p,
                                                                   size_t n) {
  const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state)), 0xB1);
  __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state + 4)), 0x1B);
  __m128i s0 = _mm_alignr_epi8(tmp, s1, 8);  // ABEF
  s1 = _mm_blend_epi16(s1, tmp, 0xF0);       // CDGH
  for (; n > 0; --n, p += 64) {
    const __m128i abef = s0, cdgh = s1;
    __m128i w[4];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) {
      if (i < 4)
        w[i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i)), mask);
      __m128i msg = _mm_add_epi32(w[i % 4], _mm_loadu_si128(reinterpret_cast<const __m128i*>(kK + 4 * i)));
      s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
      if (i >= 3 && i <= 14) {  // the schedule of quad i + 1
        __m128i& next = w[(i + 1) % 4];
        next = _mm_add_epi32(next, _mm_alignr_epi8(w[i % 4], w[(i + 3) % 4], 4));
        next = _mm_sha256msg2_epu32(next, w[i % 4]);
      }
      msg = _mm_shuffle_epi32(msg, 0x0E);
      s0 = _mm_sha256rnds2_epu32(s0, s1, msg);
      if (i >= 1 && i <= 12) w[(i + 3) % 4] = _mm_sha256msg1_epu32(w[(i + 3) % 4], w[i % 4]);
    }
    s0 = _mm_add_epi32(s0, abef);
    s1 = _mm_add_epi32(s1, cdgh);
  }
  tmp = _mm_shuffle_epi32(s0, 0x1B);   // FEBA
  s1 = _mm_shuffle_epi32(s1, 0xB1);    // DCHG
  s0 = _mm_blend_epi16(tmp, s1, 0xF0);  // DCBA
  s1 = _mm_alignr_epi8(s1, tmp, 8);     // HGFE
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state), s0);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state + 4), s1);
}

bool cpu_has_sha_ni() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 29))) return false;  // SHA
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  return (c & (1u << 19)) && (c & (1u << 9));  // SSE4.1, SSSE3
}

}  // namespace
#endif

bool Sha256::hardware_available() {
#if defined(__x86_64__)
  static const bool has = cpu_has_sha_ni();
  return has;
#else
  return false;
#endif
}

Sha256::Sha256(bool hardware)
    : hw_(hardware && hardware_available()),
      h_{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
         0x5be0cd19} {}

void Sha256::blocks(const uint8_t* p, size_t n) {
#if defined(__x86_64__)
  if (hw_) {
    sha256_blocks_ni(h_, p, n);
    return;
  }
#endif
  for (; n > 0; --n, p += 64) block(p);
}

void Sha256::block(const uint8_t* p) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = (uint32_t{p[4 * i]} << 24) | (uint32_t{p[4 * i + 1]} << 16) |
           (uint32_t{p[4 * i + 2]} << 8) | uint32_t{p[4 * i + 3]};
  for (int i = 16; i < 64; ++i) {
    const uint32_t s0 = rotr32(w[i - 15], 7) ^ rotr32(w[i - 15], 18) ^ (w[i - 15] >> 3);
    const uint32_t s1 = rotr32(w[i - 2], 17) ^ rotr32(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 = h + (rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25)) + ((e & f) ^ (~e & g)) +
                        kK[i] + w[i];
    const uint32_t t2 = (rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h_[0] += a;
  h_[1] += b;
  h_[2] += c;
  h_[3] += d;
  h_[4] += e;
  h_[5] += f;
  h_[6] += g;
  h_[7] += h;
}

void Sha256::update(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  total_ += n;
  if (buf_len_) {
    const size_t take = std::min(n, 64 - buf_len_);
    std::memcpy(buf_ + buf_len_, p, take);
    buf_len_ += take;
    p += take;
    n -= take;
    if (buf_len_ < 64) return;
    blocks(buf_, 1);
    buf_len_ = 0;
  }
  blocks(p, n / 64);
  p += n / 64 * 64;
  n %= 64;
  std::memcpy(buf_, p, n);
  buf_len_ = n;
}

std::array<uint8_t, 32> Sha256::digest() {
  const uint64_t bits = total_ * 8;
  const uint8_t pad = 0x80;
  update(&pad, 1);
  const uint8_t zero = 0;
  while (buf_len_ != 56) update(&zero, 1);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
  update(len, 8);
  std::array<uint8_t, 32> out{};
  for (int i = 0; i < 8; ++i)
    for (int k = 0; k < 4; ++k) out[4 * i + k] = static_cast<uint8_t>(h_[i] >> (24 - 8 * k));
  return out;
}

std::string Sha256::hex_digest() {
  static const char* const kHex = "0123456789abcdef";
  std::string s;
  for (uint8_t b : digest()) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

std::string sha256_hex(const void* data, size_t n) {
  Sha256 h;
  h.update(data, n);
  return h.hex_digest();
}

namespace {

std::string hash_file_now(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw IoError("'" + path + "': cannot open: " + std::strerror(errno));
  Sha256 h;
  std::vector<uint8_t> buf(1 << 20);
  size_t got;
  while ((got = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) h.update(buf.data(), got);
  if (std::ferror(f.get())) throw IoError("'" + path + "': read error");
  return h.hex_digest();
}

// One process may hash the same source many times (a --budget search writes a model per step),
// and may start hashing early (sha256_file_prefetch): the digest of a large file is remembered,
// keyed by its identity, size and modification time. File times tick coarsely, so small files,
// cheap to hash and quick to rewrite, are not remembered.
constexpr long long kMemoMinBytes = 64ll << 20;

std::string memo_key(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < kMemoMinBytes) return {};
  return strprintf("%llu:%llu:%lld:%lld.%09ld", static_cast<unsigned long long>(st.st_dev),
                   static_cast<unsigned long long>(st.st_ino), static_cast<long long>(st.st_size),
                   static_cast<long long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec);
}

// The digest cache across runs (hash.h): <dir>/sha256/<first 32 hex digits of sha256(key)>
// holding "<key>\n<digest>\n".
std::string digest_cache_file(const std::string& key) {
  std::string dir;
  if (const char* d = std::getenv("DSQ_CACHE_DIR")) {
    if (std::strcmp(d, "off") == 0 || !*d) return {};
    dir = d;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    dir = std::string(x) + "/dsq";
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    dir = std::string(h) + "/.cache/dsq";
  } else {
    return {};
  }
  return dir + "/sha256/" + sha256_hex(key.data(), key.size()).substr(0, 32);
}

std::string cached_digest(const std::string& key) {
  const std::string file = digest_cache_file(key);
  if (file.empty()) return {};
  std::ifstream in(file);
  std::string k, hex;
  if (!std::getline(in, k) || !std::getline(in, hex) || k != key || hex.size() != 64 ||
      hex.find_first_not_of("0123456789abcdef") != std::string::npos)
    return {};
  return hex;
}

void store_digest(const std::string& key, const std::string& hex) {
  const std::string file = digest_cache_file(key);
  if (file.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(file).parent_path(), ec);
  const std::string tmp = file + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << key << '\n' << hex << '\n';
    if (!out.flush()) {
      std::filesystem::remove(tmp, ec);
      return;
    }
  }
  std::filesystem::rename(tmp, file, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

// A large file's digest, hashed now and written to the cache across runs (the callers looked
// there first).
std::string hash_and_cache(const std::string& path, const std::string& key) {
  std::string hex = hash_file_now(path);
  store_digest(key, hex);
  return hex;
}

struct Memo {
  std::mutex mu;
  std::map<std::string, std::shared_future<std::string>> digests;
};
// Never destroyed: a prefetch thread may still run when the program exits.
Memo& memo() {
  static Memo* m = new Memo;
  return *m;
}

}  // namespace

void sha256_file_prefetch(const std::string& path) {
  const std::string key = memo_key(path);
  // Known from an earlier run: sha256_file reads it from the cache, no thread needed.
  if (key.empty() || !cached_digest(key).empty()) return;
  Memo& m = memo();
  const std::lock_guard<std::mutex> lock(m.mu);
  if (m.digests.count(key)) return;
  auto done = std::make_shared<std::promise<std::string>>();
  m.digests[key] = done->get_future().share();
  std::thread([done, path, key] {
    try {
      done->set_value(hash_and_cache(path, key));
    } catch (...) {
      done->set_exception(std::current_exception());
    }
  }).detach();
}

std::string sha256_file(const std::string& path) {
  const std::string key = memo_key(path);
  if (key.empty()) return hash_file_now(path);
  if (std::string hex = cached_digest(key); !hex.empty()) return hex;  // an earlier run's
  Memo& m = memo();
  std::shared_future<std::string> known;
  {
    const std::lock_guard<std::mutex> lock(m.mu);
    if (const auto it = m.digests.find(key); it != m.digests.end()) known = it->second;
  }
  if (known.valid()) return known.get();  // rethrows the prefetch's IoError
  std::string hex = hash_and_cache(path, key);
  std::promise<std::string> ready;
  ready.set_value(hex);
  const std::lock_guard<std::mutex> lock(m.mu);
  m.digests.emplace(key, ready.get_future().share());
  return hex;
}

}  // namespace dsq
