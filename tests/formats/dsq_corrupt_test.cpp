// Malformed .dsq files generated from a named corruption enum: each must give a one-line error
// naming the file (and the tensor where there is one), never a crash. Structural corruptions of
// the index re-seal the index checksum so the deeper validation is what rejects them.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>

#include "formats/dsq/dsq_format.h"
#include "formats/dsq/dsq_reader.h"
#include "formats/dsq/dsq_reader_standalone.h"
#include "formats/dsq/dsq_writer.h"
#include "formats/format_table.h"
#include "lib/core/error.h"
#include "lib/core/hash.h"
#include "tests/formats/dsq_test_util.h"
#include "tests/test_util.h"

namespace dsq::formats {
namespace {

using namespace dsqfile;
using dsq::testing::TempDir;

enum class Corruption {
  kTruncated,
  kTooShort,
  kBadMagic,
  kBadVersion,
  kTrailingBytes,
  kIndexPastEnd,
  kIndexChecksum,
  kBadIndexMagic,
  kIndexCountTooLarge,
  kNameOutsidePool,
  kOffsetOutOfRange,
  kOverlap,
  kMisaligned,
  kOverflowingShape,
  kNegativeDim,
  kUnknownDtype,
  kUnknownCompression,
  kDuplicateName,
  kByteSizeMismatch,
  kQuantBits,
  kUnknownScheme,
  kSchemeDisagrees,
  kSchemeOnFloat,
  kReservedIn10,
  kJsonGarbage,
  kDataChecksum,
  kCorruptZstd,
  kConfigMismatch,
};

struct Case {
  Corruption c;
  const char* name;
  const char* expect;  // error substring
  bool at_load;        // detected when the tensor is loaded rather than at open
};

const Case kCases[] = {
    {Corruption::kTruncated, "truncated", "truncated: the preamble says", false},
    {Corruption::kTooShort, "too_short", "truncated: 20 bytes", false},
    {Corruption::kBadMagic, "bad_magic", "bad magic", false},
    {Corruption::kBadVersion, "bad_version", "unsupported dsq format version 2.", false},
    {Corruption::kTrailingBytes, "trailing", "trailing bytes", false},
    {Corruption::kIndexPastEnd, "index_past_end", "lies outside the file", false},
    {Corruption::kIndexChecksum, "index_checksum", "index checksum mismatch", false},
    {Corruption::kBadIndexMagic, "index_magic", "bad index magic", false},
    {Corruption::kIndexCountTooLarge, "count", "index sizes disagree", false},
    {Corruption::kNameOutsidePool, "name_pool", "outside the name pool", false},
    {Corruption::kOffsetOutOfRange, "offset", "tensor 'output_norm.weight': data [", false},
    {Corruption::kOverlap, "overlap", "overlaps tensor 'token_embd.weight'", false},
    {Corruption::kMisaligned, "misaligned", "not a multiple of 64", false},
    {Corruption::kOverflowingShape, "overflow", "overflows int64", false},
    {Corruption::kNegativeDim, "negative_dim", "negative dimension", false},
    {Corruption::kUnknownDtype, "dtype", "tensor 'token_embd.weight': unknown dtype 11", false},
    {Corruption::kUnknownCompression, "compression", "unknown compression 7", false},
    {Corruption::kDuplicateName, "duplicate", "duplicate tensor 'token_embd.weight'", false},
    {Corruption::kByteSizeMismatch, "bytes", "raw size", false},
    {Corruption::kQuantBits, "quant_bits", "quant_bits 5 / quant_sym 0 disagree with scheme", false},
    {Corruption::kUnknownScheme, "scheme_id", "unknown quantization scheme id 200", false},
    {Corruption::kSchemeDisagrees, "scheme_bits", "disagree with scheme 'int8_sym'", false},
    {Corruption::kSchemeOnFloat, "scheme_float", "quantization fields set on a f32 tensor", false},
    {Corruption::kReservedIn10, "reserved_1_0", "reserved field is not 0 in a 1.0 file", false},
    {Corruption::kJsonGarbage, "json", "JSON header does not parse", false},
    {Corruption::kDataChecksum, "data_checksum", "tensor 'output_norm.weight': checksum mismatch",
     true},
    {Corruption::kCorruptZstd, "zstd", "corrupt zstd frame", true},
    {Corruption::kConfigMismatch, "config", "the config implies", false},
};

std::string read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}
void write_all(const std::string& p, const std::string& s) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
}

Preamble preamble(const std::string& f) {
  Preamble p;
  std::memcpy(&p, f.data(), sizeof p);
  return p;
}
void set_preamble(std::string& f, const Preamble& p) { std::memcpy(f.data(), &p, sizeof p); }

// Edits record i and re-seals the index checksum.
void edit_record(std::string& f, int i, const std::function<void(TensorRecord&)>& fn) {
  Preamble p = preamble(f);
  char* rec = f.data() + p.index_offset + sizeof(IndexHeader) + i * sizeof(TensorRecord);
  TensorRecord r;
  std::memcpy(&r, rec, sizeof r);
  fn(r);
  std::memcpy(rec, &r, sizeof r);
  p.index_checksum = xxh64(f.data() + p.index_offset, p.index_bytes);
  set_preamble(f, p);
}

TensorRecord record(const std::string& f, int i) {
  const Preamble p = preamble(f);
  TensorRecord r;
  std::memcpy(&r, f.data() + p.index_offset + sizeof(IndexHeader) + i * sizeof(TensorRecord),
              sizeof r);
  return r;
}

// Writes the corrupted file for `c` and returns its path. Record 0 is token_embd.weight (f16),
// record 1 output_norm.weight (f32), record 5 blk.0.attn_q.weight, record 6 the first kQInt.
std::string make_corrupt(const TempDir& tmp, const Case& k) {
  const std::string path = tmp.file(std::string(k.name) + ".dsq");
  WeightStore ws = dsq::testing::tiny_model();
  DsqWriteOptions o;
  o.progress = false;
  if (k.c == Corruption::kCorruptZstd) o.zstd_level = 3;
  if (k.c == Corruption::kConfigMismatch) ws.config.d_ff = 41;  // the tensors say 40
  if (k.c == Corruption::kConfigMismatch) {
    DsqWriter w(path, dsq_header_for(ws, o));
    for (const auto& n : ws.names()) w.add(n, ws.get(n));
    w.finish();
    return path;
  }
  write_dsq(ws, path, o);
  std::string f = read_all(path);
  Preamble p = preamble(f);
  switch (k.c) {
    case Corruption::kTruncated: f.resize(f.size() - 100); break;
    case Corruption::kTooShort: f.resize(20); break;
    case Corruption::kBadMagic: f[3] = 'X'; break;
    case Corruption::kBadVersion: p.version_major = 2; set_preamble(f, p); break;
    case Corruption::kTrailingBytes: f += "junk"; break;
    case Corruption::kIndexPastEnd: p.index_bytes += 64; set_preamble(f, p); break;
    case Corruption::kIndexChecksum: f[p.index_offset + sizeof(IndexHeader) + 20] ^= 1; break;
    case Corruption::kBadIndexMagic:
      f[p.index_offset] = 'X';
      p.index_checksum = xxh64(f.data() + p.index_offset, p.index_bytes);
      set_preamble(f, p);
      break;
    case Corruption::kIndexCountTooLarge:
      f[p.index_offset + 4] = static_cast<char>(0xff);
      f[p.index_offset + 5] = static_cast<char>(0xff);
      p.index_checksum = xxh64(f.data() + p.index_offset, p.index_bytes);
      set_preamble(f, p);
      break;
    case Corruption::kNameOutsidePool: edit_record(f, 2, [](auto& r) { r.name_offset = 1u << 30; }); break;
    case Corruption::kOffsetOutOfRange:
      edit_record(f, 1, [&](auto& r) { r.data_offset = p.index_offset; });
      break;
    case Corruption::kOverlap: {
      const uint64_t off0 = record(f, 0).data_offset;
      edit_record(f, 1, [&](auto& r) { r.data_offset = off0 + 64; });
      break;
    }
    case Corruption::kMisaligned: edit_record(f, 1, [](auto& r) { r.data_offset += 4; }); break;
    case Corruption::kOverflowingShape:
      edit_record(f, 5, [](auto& r) { r.dims[0] = r.dims[1] = int64_t{1} << 40; });
      break;
    case Corruption::kNegativeDim: edit_record(f, 1, [](auto& r) { r.dims[0] = -64; }); break;
    case Corruption::kUnknownDtype: edit_record(f, 0, [](auto& r) { r.dtype = 11; }); break;
    case Corruption::kUnknownCompression: edit_record(f, 0, [](auto& r) { r.compression = 7; }); break;
    case Corruption::kDuplicateName: {
      const TensorRecord r0 = record(f, 0);
      edit_record(f, 1, [&](auto& r) {
        r.name_offset = r0.name_offset;
        r.name_bytes = r0.name_bytes;
      });
      break;
    }
    case Corruption::kByteSizeMismatch:
      edit_record(f, 1, [](auto& r) { r.dims[0] = 65; });  // 48 -> 65 floats, bytes unchanged
      break;
    case Corruption::kQuantBits: edit_record(f, 6, [](auto& r) { r.quant_bits = 5; }); break;
    case Corruption::kUnknownScheme: edit_record(f, 6, [](auto& r) { r.quant_scheme = 200; }); break;
    case Corruption::kSchemeDisagrees: edit_record(f, 6, [](auto& r) { r.quant_scheme = 0; }); break;
    case Corruption::kSchemeOnFloat: edit_record(f, 1, [](auto& r) { r.quant_scheme = 3; }); break;
    case Corruption::kReservedIn10:
      p.version_minor = 0;
      set_preamble(f, p);
      edit_record(f, 6, [](auto& r) { r.quant_scheme = 3; });
      break;
    case Corruption::kJsonGarbage:
      f[p.index_offset + p.index_bytes - 1] = '{';
      p.index_checksum = xxh64(f.data() + p.index_offset, p.index_bytes);
      set_preamble(f, p);
      break;
    case Corruption::kDataChecksum: f[record(f, 1).data_offset + 10] ^= 0x40; break;
    case Corruption::kCorruptZstd: {
      const TensorRecord r = record(f, 0);
      EXPECT_EQ(r.compression, 1);
      f[r.data_offset + r.stored_bytes / 2] ^= 0x5a;
      break;
    }
    case Corruption::kConfigMismatch: break;
  }
  write_all(path, f);
  return path;
}

class DsqCorrupt : public ::testing::TestWithParam<Case> {};

TEST_P(DsqCorrupt, OneLineErrorNamingFile) {
  const Case k = GetParam();
  TempDir tmp;
  const std::string path = make_corrupt(tmp, k);
  std::string msg;
  try {
    const WeightStore ws = open_dsq(path, {});
    ASSERT_TRUE(k.at_load) << "opened without error";
    for (const auto& n : ws.names()) (void)ws.get(n);
    FAIL() << "loaded every tensor without error";
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find(k.expect), std::string::npos) << msg;
  EXPECT_NE(msg.find("'" + path + "'"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  if (k.c == Corruption::kDataChecksum) {  // without verification the bytes load as they are
    OpenOptions o;
    o.verify_checksums = false;
    const WeightStore ws = open_dsq(path, o);
    EXPECT_NO_THROW(ws.get("output_norm.weight"));
  }
  // The standalone reader rejects the same files (it leaves config checks to the runtime and
  // does not decompress zstd).
  if (k.c != Corruption::kConfigMismatch && k.c != Corruption::kCorruptZstd) {
    EXPECT_THROW(
        {
          dsq_standalone::Reader r(path);
          for (const auto& t : r.tensors()) (void)r.read(t);
        },
        dsq_standalone::Error);
  }
}

INSTANTIATE_TEST_SUITE_P(All, DsqCorrupt, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

// Files of format 1.0 (no quant_scheme field: the scheme follows from bits and sym) still read,
// with the same schemes and bytes, in the library and in the standalone reader.
TEST(DsqFormat, ReadsVersion10Files) {
  TempDir tmp;
  const std::string path = tmp.file("v11.dsq"), old = tmp.file("v10.dsq");
  DsqWriteOptions o;
  o.progress = false;
  write_dsq(dsq::testing::tiny_model(), path, o);
  std::string f = read_all(path);
  Preamble p = preamble(f);
  ASSERT_EQ(p.version_minor, 1);
  p.version_minor = 0;
  set_preamble(f, p);
  int qint = 0;
  for (uint32_t i = 0; i < dsq::testing::tiny_model().size(); ++i)
    if (record(f, static_cast<int>(i)).dtype == static_cast<uint16_t>(DType::kQInt)) {
      edit_record(f, static_cast<int>(i), [](auto& r) { r.quant_scheme = 0; });
      ++qint;
    }
  ASSERT_GT(qint, 1);
  write_all(old, f);
  const WeightStore a = open_dsq(path, {}), b = open_dsq(old, {});
  ASSERT_EQ(a.names(), b.names());
  for (const auto& n : a.names()) {
    const Tensor ta = a.get(n), tb = b.get(n);
    ASSERT_EQ(ta.dtype(), tb.dtype()) << n;
    if (ta.dtype() == DType::kQInt) {
      EXPECT_EQ(ta.quant(), tb.quant()) << n;
    }
    ASSERT_EQ(ta.nbytes(), tb.nbytes()) << n;
    EXPECT_EQ(std::memcmp(ta.bytes(), tb.bytes(), ta.nbytes()), 0) << n;
  }
  dsq_standalone::Reader r(old);
  EXPECT_EQ(r.version_minor(), 0);
  for (const auto& t : r.tensors()) {
    EXPECT_NO_THROW((void)r.read(t)) << t.name;
  }
}

}  // namespace
}  // namespace dsq::formats
