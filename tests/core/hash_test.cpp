// XXH64 and SHA-256 against reference values (XXH64 from the reference libxxhash 0.8.1,
// SHA-256 from Python hashlib) on a deterministic byte pattern, covering every tail path.
#include "lib/core/hash.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "lib/core/error.h"
#include "tests/test_util.h"

namespace dsq {
namespace {

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>((i * 31 + 7) & 255);
  return d;
}

TEST(Xxh64, MatchesReferenceForEveryTailLength) {
  struct Case {
    size_t n;
    uint64_t seed0, seed_golden;
  };
  // Lengths hit: <4, 4..7 (one u32 tail), 8 (one u64), 15, 31 (no stripes), 32, 33, 64, 100, 1000.
  const Case cases[] = {
      {4, 0xc60d15b1e3ff8f04ull, 0x7d51d5e2461732b3ull},
      {7, 0xafbefc3d6c6f9a8eull, 0x2ce9adec2b2c8104ull},
      {8, 0x3da5c7aa269683e0ull, 0x758848f033fa76a2ull},
      {15, 0xae2a37eb9357caa7ull, 0xa18d5c90d722cee3ull},
      {31, 0x4a74f3a1a39ad4a1ull, 0x8137041f5af88413ull},
      {32, 0x8d57d6a4671cc43dull, 0x184ebcf3745cd46cull},
      {33, 0x62c9fd21ed857664ull, 0x52fac3c981f3cc2eull},
      {64, 0x7bbabbc45729d17eull, 0xf7f22435fe1ab128ull},
      {100, 0xefa0ad2d3e70c151ull, 0xbc7ab33be7528c18ull},
      {1000, 0x99594f4828043d35ull, 0xda717f741f399f3full},
  };
  const auto d = pattern(1000);
  for (const auto& c : cases) {
    EXPECT_EQ(xxh64(d.data(), c.n, 0), c.seed0) << "n=" << c.n;
    EXPECT_EQ(xxh64(d.data(), c.n, 0x9E3779B97F4A7C15ull), c.seed_golden) << "n=" << c.n;
  }
  EXPECT_EQ(xxh64("", 0, 0), 0xef46db3751d8e999ull);
  EXPECT_EQ(xxh64("a", 1, 0), 0xd24ec4f1a98c6e5bull);
  EXPECT_EQ(xxh64("abc", 3, 0), 0x44bc2cf5ad770999ull);
  EXPECT_EQ(xxh64("abc", 3, 12345), 0x01700e64f6f23509ull);
}

TEST(Sha256, MatchesReferenceDigests) {
  EXPECT_EQ(sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const auto d = pattern(1000);
  // 55 bytes: the padding fits one block; 64: exactly one block plus a padding block.
  EXPECT_EQ(sha256_hex(d.data(), 55), "8aa994584139d128848eeebc4e815639ba5ab6e6e39574195a63ac4f14f7c43b");
  EXPECT_EQ(sha256_hex(d.data(), 64), "c6ab9724ade5b6a7a1edfffb12f3aa9181351355af8fd08c919952ad211339dd");
  EXPECT_EQ(sha256_hex(d.data(), 1000),
            "5097e7d587352f5097062ae679f37bda5802d9f875aba14c8cb4d1a188ada179");
  // Incremental updates in odd-sized pieces give the same digest.
  Sha256 h;
  for (size_t i = 0; i < 1000; i += 37) h.update(d.data() + i, std::min<size_t>(37, 1000 - i));
  EXPECT_EQ(h.hex_digest(), "5097e7d587352f5097062ae679f37bda5802d9f875aba14c8cb4d1a188ada179");
}

// The SHA-NI path (the default where the CPU has it) and the portable code agree on every
// length around block and padding boundaries and on a long input fed in odd pieces.
TEST(Sha256, HardwareAndPortablePathsAgree) {
  if (!Sha256::hardware_available()) GTEST_SKIP() << "this CPU has no SHA extensions";
  const auto d = pattern(70000);
  for (size_t n = 0; n <= 300; ++n) {
    Sha256 hw(true), sw(false);
    hw.update(d.data(), n);
    sw.update(d.data(), n);
    ASSERT_EQ(hw.hex_digest(), sw.hex_digest()) << n << " bytes";
  }
  Sha256 hw(true), sw(false);
  for (size_t i = 0; i < d.size(); i += 1021) {
    hw.update(d.data() + i, std::min<size_t>(1021, d.size() - i));
    sw.update(d.data() + i, std::min<size_t>(1021, d.size() - i));
  }
  EXPECT_EQ(hw.hex_digest(), sw.hex_digest());
}

// A large file's digest is remembered within the process, keyed by its identity, size and
// modification time: a second call agrees, and a changed file is hashed again (also when a
// prefetch started it).
TEST(Sha256, RemembersLargeFilesUntilTheyChange) {
  testing::TempDir tmp;
  const std::string path = tmp.file("big.bin");
  std::vector<uint8_t> d = pattern(size_t{65} << 20);
  auto write = [&] {
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(d.data(), 1, d.size(), f), d.size());
    std::fclose(f);
  };
  write();
  const std::string first = sha256_file(path);
  EXPECT_EQ(first, sha256_hex(d.data(), d.size()));
  EXPECT_EQ(sha256_file(path), first);
  d.push_back(1);  // another size: hashed again, here by a prefetch on a background thread
  write();
  sha256_file_prefetch(path);
  sha256_file_prefetch(path);  // already under way: no second thread
  EXPECT_EQ(sha256_file(path), sha256_hex(d.data(), d.size()));
  EXPECT_NE(sha256_file(path), first);
}

// Across runs: a large file's digest goes to the digest cache ($DSQ_CACHE_DIR), one small file
// per source holding its identity key and digest, and is taken from there (an entry planted with
// another digest is what comes back: the source is not read again); a changed file gets a new
// entry; an unwritable cache is skipped; DSQ_CACHE_DIR=off writes nothing.
TEST(Sha256, DigestCacheAcrossRuns) {
  testing::TempDir tmp;
  const std::string cache = tmp.file("cache");
  const char* saved = std::getenv("DSQ_CACHE_DIR");
  const std::string saved_value = saved ? saved : "";
  ::setenv("DSQ_CACHE_DIR", cache.c_str(), 1);
  std::vector<uint8_t> d = pattern(size_t{64} << 20);
  auto write = [&](const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fwrite(d.data(), 1, d.size(), f), d.size());
    std::fclose(f);
  };
  auto entries = [&] {
    std::vector<std::string> v;
    if (std::filesystem::exists(cache + "/sha256"))
      for (const auto& e : std::filesystem::directory_iterator(cache + "/sha256")) v.push_back(e.path());
    return v;
  };
  const std::string a = tmp.file("a.bin");
  write(a);
  const std::string digest = sha256_hex(d.data(), d.size());
  EXPECT_EQ(sha256_file(a), digest);
  ASSERT_EQ(entries().size(), 1u);
  std::string key, hex;
  {
    std::ifstream in(entries()[0]);
    std::getline(in, key);
    std::getline(in, hex);
  }
  EXPECT_EQ(hex, digest);
  const std::string planted(64, 'a');
  std::ofstream(entries()[0], std::ios::trunc) << key << '\n' << planted << '\n';
  EXPECT_EQ(sha256_file(a), planted);
  std::ofstream(entries()[0], std::ios::trunc) << key << '\n' << "not a digest" << '\n';
  EXPECT_EQ(sha256_file(a), digest);  // a bad entry is ignored (the process still knows a)
  d[0] ^= 1;  // another file: its own entry
  const std::string b = tmp.file("b.bin");
  write(b);
  EXPECT_EQ(sha256_file(b), sha256_hex(d.data(), d.size()));
  EXPECT_EQ(entries().size(), 2u);
  ::setenv("DSQ_CACHE_DIR", "off", 1);
  d[0] ^= 2;
  const std::string c = tmp.file("c.bin");
  write(c);
  EXPECT_EQ(sha256_file(c), sha256_hex(d.data(), d.size()));
  EXPECT_EQ(entries().size(), 2u);
  ::setenv("DSQ_CACHE_DIR", (a + "/not-a-dir").c_str(), 1);  // unwritable: skipped
  d[0] ^= 4;
  const std::string e = tmp.file("e.bin");
  write(e);
  EXPECT_EQ(sha256_file(e), sha256_hex(d.data(), d.size()));
  if (saved) ::setenv("DSQ_CACHE_DIR", saved_value.c_str(), 1);
  else ::unsetenv("DSQ_CACHE_DIR");
}

TEST(Sha256, FileMatchesBufferAndMissingFileThrows) {
  testing::TempDir tmp;
  const auto d = pattern(1000);
  const std::string path = tmp.file("x.bin");
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  std::fwrite(d.data(), 1, d.size(), f);
  std::fclose(f);
  EXPECT_EQ(sha256_file(path), sha256_hex(d.data(), d.size()));
  EXPECT_THROW(sha256_file(tmp.file("missing.bin")), IoError);
}

}  // namespace
}  // namespace dsq
