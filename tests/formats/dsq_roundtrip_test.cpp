// .dsq round trips: every tensor comes back bit-exactly (with and without zstd), uncompressed
// tensors are zero-copy 64-byte-aligned views, header fields survive, and the streaming writer
// never leaves a partial file behind.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "formats/dsq/dsq_reader.h"
#include "formats/dsq/dsq_writer.h"
#include "formats/format_table.h"
#include "lib/core/error.h"
#include "tests/formats/dsq_test_util.h"
#include "tests/test_util.h"

namespace dsq::formats {
namespace {

namespace fs = std::filesystem;
using dsq::testing::TempDir;
using dsq::testing::tiny_model;
using dsq::testing::float_tensor;
using dsq::testing::qint_tensor;

void expect_same_tensors(const WeightStore& a, const WeightStore& b) {
  ASSERT_EQ(a.names(), b.names());
  for (const auto& name : a.names()) {
    SCOPED_TRACE(name);
    const Tensor x = a.get(name), y = b.get(name);
    EXPECT_EQ(x.dtype(), y.dtype());
    EXPECT_EQ(x.shape(), y.shape());
    if (x.dtype() == DType::kQInt) {
      EXPECT_EQ(x.quant(), y.quant());
    }
    ASSERT_EQ(x.nbytes(), y.nbytes());
    EXPECT_EQ(std::memcmp(x.bytes(), y.bytes(), x.nbytes()), 0);
    EXPECT_EQ(a.entry(name).attrs, b.entry(name).attrs);
  }
}

class DsqRoundTrip : public ::testing::TestWithParam<int> {};

TEST_P(DsqRoundTrip, EveryTensorBitExact) {
  TempDir tmp;
  const WeightStore ws = tiny_model();
  const std::string out = tmp.file("m.dsq");
  DsqWriteOptions o;
  o.zstd_level = GetParam();
  o.progress = false;
  const DsqWriteReport rep = write_dsq(ws, out, o);
  EXPECT_EQ(rep.tensors, static_cast<int64_t>(ws.size()));
  EXPECT_EQ(rep.parameters, ws.parameter_count());
  EXPECT_EQ(rep.file_bytes, fs::file_size(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  if (o.zstd_level > 0) {
    EXPECT_GT(rep.compressed, 0);
    EXPECT_LT(rep.stored_bytes, rep.raw_bytes);
  } else {
    EXPECT_EQ(rep.compressed, 0);
    EXPECT_EQ(rep.stored_bytes, rep.raw_bytes);
  }

  EXPECT_EQ(detect_format(out).name, "dsq");
  const WeightStore back = open_model(out);
  expect_same_tensors(ws, back);
  ASSERT_TRUE(back.has_config);
  EXPECT_EQ(back.config, ws.config);
  EXPECT_EQ(back.metadata["recipe"], ws.metadata["recipe"]);
  EXPECT_EQ(back.metadata["tokenizer"], ws.metadata["tokenizer"]);
  EXPECT_EQ(back.metadata["source_format"], "dsq");
  EXPECT_EQ(back.metadata["provenance"]["dsq_version"], DSQ_VERSION);

  // Uncompressed tensors are views into the mapping, 64-byte aligned; compressed ones are owned.
  auto m = MappedFile::open(out);
  const DsqIndex idx = read_dsq_index(*m);
  for (const auto& t : idx.tensors) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.data_offset % 64, 0u);
    const Tensor x = back.get(t.name);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(x.bytes()) % 64, 0u);
    EXPECT_EQ(x.owned(), t.compression != 0);
  }
  EXPECT_EQ(idx.header["tensors"]["blk.0.attn_k.weight"]["scheme"], "int4_asym_g16");
  EXPECT_EQ(idx.header["tensors"]["blk.0.attn_v.weight"]["scheme"], "int3_sym_perchannel");
}

INSTANTIATE_TEST_SUITE_P(Zstd, DsqRoundTrip, ::testing::Values(0, 3, 19));

// Every grouped-integer row of the scheme table (5- and 6-bit included) is written and read back
// byte for byte, with a group that divides the row and one per channel on a ragged width.
TEST(DsqWriter, EveryGroupedIntegerSchemeRoundTrips) {
  TempDir tmp;
  int checked = 0;
  for (const SchemeInfo& s : kSchemes) {
    if (!s.quantize_target()) continue;
    for (uint32_t g : {32u, 0u}) {
      const QuantDesc q{s.id, g};
      SCOPED_TRACE(scheme_name(q));
      WeightStore ws = tiny_model();
      const std::string name = "blk.0.attn_k.weight";
      const auto shape = ws.entry(name).shape;
      ws.replace(name, qint_tensor(q, shape[0], shape[1], 40 + checked));
      DsqWriteOptions o;
      o.progress = false;
      write_dsq(ws, tmp.file("s.dsq"), o);
      const WeightStore back = open_model(tmp.file("s.dsq"));
      expect_same_tensors(ws, back);
      EXPECT_EQ(back.entry(name).quant, q);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2 * 13);  // every row but block FP8
}

TEST(DsqWriter, SameInputGivesByteIdenticalFiles) {
  TempDir tmp;
  const WeightStore ws = tiny_model();
  DsqWriteOptions o;
  o.zstd_level = 5;
  o.progress = false;
  write_dsq(ws, tmp.file("a.dsq"), o);
  write_dsq(ws, tmp.file("b.dsq"), o);
  std::ifstream a(tmp.file("a.dsq"), std::ios::binary), b(tmp.file("b.dsq"), std::ios::binary);
  const std::string sa((std::istreambuf_iterator<char>(a)), {});
  const std::string sb((std::istreambuf_iterator<char>(b)), {});
  EXPECT_FALSE(sa.empty());
  EXPECT_EQ(sa, sb);
}

TEST(DsqWriter, CastKeepsOneDimTensorsF32AndQuantizedUntouched) {
  TempDir tmp;
  const WeightStore ws = tiny_model();
  DsqWriteOptions o;
  o.cast = DType::kF16;
  o.progress = false;
  write_dsq(ws, tmp.file("h.dsq"), o);
  const WeightStore back = open_model(tmp.file("h.dsq"));
  for (const auto& name : ws.names()) {
    SCOPED_TRACE(name);
    const auto& e = ws.entry(name);
    const DType want = e.dtype == DType::kQInt ? DType::kQInt
                       : e.shape.size() == 1  ? DType::kF32
                                              : DType::kF16;
    EXPECT_EQ(back.entry(name).dtype, want);
    if (want == DType::kF16 || want == DType::kF32) {
      // The cast is the library's exact conversion of the original values.
      const Tensor expect = ws.get(name).to(want);
      const Tensor got = back.get(name);
      EXPECT_EQ(std::memcmp(expect.bytes(), got.bytes(), got.nbytes()), 0);
    }
  }
}

TEST(DsqWriter, NanAbortsAndLeavesNoFile) {
  TempDir tmp;
  const std::string out = tmp.file("nan.dsq");
  {
    DsqWriter w(out, nlohmann::json::object());
    w.add("a", float_tensor(DType::kF32, {4, 4}, 1));
    Tensor bad = float_tensor(DType::kF32, {3, 5}, 2);
    bad.mutable_data<float>()[7] = std::numeric_limits<float>::quiet_NaN();
    try {
      w.add("blk.0.bad", bad);
      FAIL() << "NaN accepted";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("tensor 'blk.0.bad': element 7 is nan"), std::string::npos)
          << e.what();
    }
    EXPECT_TRUE(fs::exists(out + ".tmp"));  // still streaming until finish or destruction
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST(DsqWriter, FailedWriteKeepsThePreviousOutput) {
  TempDir tmp;
  const std::string out = tmp.file("m.dsq");
  { std::ofstream(out) << "previous"; }
  WeightStore ws = tiny_model();
  Tensor bad = float_tensor(DType::kF16, {64, 48}, 3);
  bad.mutable_data<uint16_t>()[100] = 0x7c00;  // f16 +inf
  ws.replace("token_embd.weight", bad);
  DsqWriteOptions o;
  o.progress = false;
  EXPECT_THROW(write_dsq(ws, out, o), FormatError);
  std::ifstream f(out);
  std::string s;
  f >> s;
  EXPECT_EQ(s, "previous");
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST(DsqWriter, RejectsBadQuantScalesZerosAndDuplicates) {
  TempDir tmp;
  DsqWriter w(tmp.file("q.dsq"), nlohmann::json::object());
  const QuantDesc q{4, 16, false};
  Tensor t = qint_tensor(q, 8, 40, 5);
  const QuantLayout L = quant_layout(q, 8, 40);
  Tensor nan_scale = t.clone();
  const uint16_t nan16 = 0x7e00;
  std::memcpy(nan_scale.mutable_bytes() + L.scales_offset + 2 * 4, &nan16, 2);
  try {
    w.add("s", nan_scale);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 's': scale 4 (row 1, group 1) is not finite"),
              std::string::npos)
        << e.what();
  }
  Tensor big_zero = t.clone();
  big_zero.mutable_bytes()[L.zeros_offset + 2] = std::byte{16};
  EXPECT_THROW(w.add("z", big_zero), FormatError);
  w.add("ok", t);
  EXPECT_THROW(w.add("ok", t), FormatError);
  const DsqWriteReport r = w.finish();
  EXPECT_EQ(r.tensors, 1);
  EXPECT_THROW(open_model(tmp.file("q.dsq")), FormatError);  // a model needs a config
  OpenOptions no_config;
  no_config.require_config = false;
  const WeightStore back = open_model(tmp.file("q.dsq"), no_config);
  EXPECT_EQ(back.names(), std::vector<std::string>{"ok"});
  EXPECT_FALSE(back.has_config);
}

TEST(DsqWriter, EmbedsTokenizerFilesAsBase64) {
  TempDir tmp;
  const std::string tok = tmp.file("tokenizer.model");
  std::string bytes;
  for (int i = 0; i < 1000; ++i) bytes += static_cast<char>(i * 7);
  { std::ofstream(tok, std::ios::binary) << bytes; }
  WeightStore ws;
  ws.add_tensor("x", float_tensor(DType::kF32, {2, 3}, 1));
  ws.sources.push_back({tmp.file("model.safetensors"), 0, ""});  // a sibling of the tokenizer
  ws.metadata["tokenizer"] = {{"type", "sentencepiece"}};
  DsqWriteOptions o;
  o.progress = false;
  write_dsq(ws, tmp.file("t.dsq"), o);
  OpenOptions no_config;
  no_config.require_config = false;
  const WeightStore back = open_model(tmp.file("t.dsq"), no_config);
  EXPECT_EQ(back.metadata["tokenizer"]["type"], "sentencepiece");
  EXPECT_EQ(dsq_embedded_file(back.metadata["tokenizer"], "tokenizer.model"), bytes);
  EXPECT_EQ(dsq_embedded_file(back.metadata["tokenizer"], "tokenizer.json"), std::nullopt);
  // Re-writing a store read from .dsq keeps the embedded file and chains provenance.
  write_dsq(back, tmp.file("t2.dsq"), o);
  const WeightStore again = open_model(tmp.file("t2.dsq"), no_config);
  EXPECT_EQ(dsq_embedded_file(again.metadata["tokenizer"], "tokenizer.model"), bytes);
  EXPECT_EQ(again.metadata["provenance"]["parent"]["dsq_version"], DSQ_VERSION);
  EXPECT_EQ(again.metadata["provenance"]["source_format"], "dsq");
}

}  // namespace
}  // namespace dsq::formats
