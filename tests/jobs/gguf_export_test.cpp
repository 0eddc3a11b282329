// GGUF export through the sink table (`dsq convert/quantize ... -o out.gguf`) on the real small
// models of the families llama.cpp runs: the file reads back into the same model (config,
// tensors, tokenizer), evaluates to the same perplexity, and quantized linears are ggml blocks
// holding dsq's exact codes and scales. llama.cpp's gguf-py (../shared/oracles) dequantizes the
// blocks independently. Models GGUF export does not cover fail in one line and leave no file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "formats/format_table.h"
#include "formats/gguf/gguf.h"
#include "jobs/convert.h"
#include "jobs/eval.h"
#include "jobs/quantize.h"
#include "lib/core/arch.h"
#include "lib/core/error.h"
#include "lib/core/synthetic.h"
#include "formats/dsq/dsq_writer.h"
#include "tests/jobs/greedy.h"
#include "tests/jobs/quantize_options.h"
#include "tests/test_util.h"

namespace dsq::jobs {
namespace {

namespace fs = std::filesystem;

struct Case {
  const char* model;  // under ../shared/models
  const char* ids;    // token ids for eval, under ../shared
};
constexpr Case kCases[] = {
    {"stories260K/hf", "data/tinystories-eval.stories260K.u32"},
    {"qwen2-tiny", "models/tiny-references/wikitext2.qwen-tok.u32"},
    {"qwen3-tiny", "models/tiny-references/wikitext2.qwen-tok.u32"},
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.model; }

double perplexity(const std::string& model, const std::string& ids) {
  EvalOptions o;
  o.model = model;
  o.tokens_file = ids;
  o.ctx = 256;
  o.max_tokens = 2048;
  o.batch = 4;
  o.progress = false;
  return run_eval(o).perplexity;
}

class GgufExport : public ::testing::TestWithParam<Case> {};

TEST_P(GgufExport, ConvertedModelReadsBackAndEvaluatesTheSame) {
  DSQ_REQUIRE_SHARED(shared);
  const Case c = GetParam();
  const std::string src = shared + "/models/" + c.model;
  ::dsq::testing::TempDir tmp;
  ConvertOptions o;
  o.src = src;
  o.out = tmp.file("m.gguf");
  o.progress = false;
  const ConvertReport r = run_convert(o);
  EXPECT_TRUE(r.written.notes.empty()) << r.written.notes.front();

  const WeightStore a = formats::open_model(src);
  const WeightStore b = formats::open_model(o.out);
  // Every config field survives (GGUF keys, the tokenizer's special ids, the tie detected from
  // the missing classifier).
  EXPECT_TRUE(b.config == a.config) << nlohmann::json(b.config).dump() << "\n"
                                    << nlohmann::json(a.config).dump();
  ASSERT_EQ(b.names(), a.names());
  for (const auto& name : a.names()) {
    // The reader undoes the writer's Meta-order permutation of llama's q/k rows: values are
    // the source's, in the source's dtype (1-D tensors in f32, as llama.cpp's converters write).
    const Tensor ta = a.entry(name).load(), tb = b.entry(name).load();
    const Tensor want = ta.ndim() < 2 ? ta.to(DType::kF32) : ta;
    ASSERT_EQ(tb.dtype(), want.dtype()) << name;
    ASSERT_EQ(tb.shape(), want.shape()) << name;
    EXPECT_EQ(std::memcmp(tb.bytes(), want.bytes(), want.nbytes()), 0) << name;
  }
  const std::string ids = shared + "/" + c.ids;
  EXPECT_EQ(perplexity(o.out, ids), perplexity(src, ids));
  // The tokenizer travels in the file: the same prompt ids and greedy continuation.
  EXPECT_EQ(greedy(o.out), greedy(src));
}

TEST_P(GgufExport, SymmetricGroupsAreGgmlBlocksWithTheSameNumbers) {
  DSQ_REQUIRE_SHARED(shared);
  const Case c = GetParam();
  const std::string src = shared + "/models/" + c.model;
  ::dsq::testing::TempDir tmp;
  for (const QuantDesc d : {QuantDesc{4, 32, true}, QuantDesc{4, 128, true}, QuantDesc{8, 0, true},
                           QuantDesc{QuantScheme::kInt4AsymF, 64}}) {
    SCOPED_TRACE(scheme_name(d));
    const std::string qdsq = tmp.file("q.dsq"), qgguf = tmp.file("q.gguf");
    run_quantize(quiet_quantize_options(src, qdsq, d));
    const QuantizeReport qr = run_quantize(quiet_quantize_options(src, qgguf, d));
    const WeightStore a = formats::open_model(qdsq);
    const WeightStore b = formats::open_model(qgguf);
    const formats::GgufFile f = formats::GgufFile::open(qgguf);
    ASSERT_EQ(b.names(), a.names());
    int blocks = 0;
    for (const auto& name : a.names()) {
      const Tensor ta = a.entry(name).load();
      if (ta.dtype() != DType::kQInt) continue;
      const Tensor want = ta.to(DType::kF32);
      const Tensor got = b.entry(name).load().to(DType::kF32);
      ASSERT_EQ(got.shape(), want.shape()) << name;
      const int64_t cols = ta.dim(1);
      if (cols % 32 != 0 || (d.group != 0 && d.group % 32 != 0)) {
        // No block divides the rows (stories260K's 172-wide FFN): F16, as llama.cpp's converter.
        for (int64_t i = 0; i < want.numel(); ++i)
          ASSERT_EQ(got.data<float>()[i], f16_to_f32(f32_to_f16(want.data<float>()[i]))) << name;
        continue;
      }
      ++blocks;
      // Exactly the dequantized codes: the blocks carry dsq's f16 scales and codes unchanged.
      EXPECT_EQ(std::memcmp(got.bytes(), want.bytes(), want.nbytes()), 0) << name;
    }
    EXPECT_GT(blocks, 0);
    // The report names what was not written as blocks (only stories260K has such rows).
    const bool ragged = a.config.d_ff % 32 != 0;
    ASSERT_EQ(qr.notes.size(), ragged ? 1u : 0u);
    if (ragged) {
      EXPECT_NE(qr.notes[0].find("blk.0.ffn_down.weight"), std::string::npos) << qr.notes[0];
    }
    for (const auto& t : f.tensors()) {
      if (t.ne.size() != 2 || t.name.rfind("blk.", 0) != 0 || t.ne[0] % 32 != 0) continue;
      EXPECT_EQ(t.type, d.bits() == 8 ? formats::GgmlType::kQ8_0
                        : d.sym()   ? formats::GgmlType::kQ4_0
                                    : formats::GgmlType::kQ4_1)
          << t.name;
    }
    const std::string ids = shared + "/" + c.ids;
    EXPECT_NEAR(perplexity(qgguf, ids), perplexity(qdsq, ids), 1e-5 * perplexity(qdsq, ids));
  }
}

// An asymmetric 4-bit request written to GGUF is fitted on int4_asymf's grid and becomes Q4_1
// blocks with the same numbers as the .dsq of int4_asymf; the report says so.
TEST(GgufExportQ4_1, AsymmetricRequestsBecomeExactQ4_1) {
  DSQ_REQUIRE_SHARED(shared);
  ::dsq::testing::TempDir tmp;
  const std::string src = shared + "/models/qwen2-tiny", g = tmp.file("q.gguf"), d = tmp.file("q.dsq");
  const QuantizeReport r = run_quantize(quiet_quantize_options(src, g, QuantDesc{4, 32, false}));
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("int4_asym became int4_asymf_g32"), std::string::npos) << r.notes[0];
  EXPECT_EQ(r.recipe["scheme"], "int4_asymf_g32");
  run_quantize(quiet_quantize_options(src, d, QuantDesc{QuantScheme::kInt4AsymF, 32}));
  const formats::GgufFile f = formats::GgufFile::open(g);
  int q41 = 0;
  for (const auto& t : f.tensors()) q41 += t.type == formats::GgmlType::kQ4_1;
  EXPECT_EQ(q41, 7 * 4);
  const WeightStore a = formats::open_model(d), b = formats::open_model(g);
  for (const auto& name : a.names()) {
    const Tensor ta = a.entry(name).load();
    if (ta.dtype() != DType::kQInt) continue;
    const Tensor want = ta.to(DType::kF32), got = b.entry(name).load().to(DType::kF32);
    EXPECT_EQ(std::memcmp(got.bytes(), want.bytes(), want.nbytes()), 0) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GgufExport, ::testing::ValuesIn(kCases),
                         [](const auto& info) {
                           std::string n = info.param.model;
                           return n.substr(0, n.find_first_of("/-"));
                         });

// llama.cpp's own GGUF package reads every tensor of dsq's GGUF (Q4_0 / Q8_0 blocks, F32 norms,
// BF16 embedding) and dequantizes it to the same floats as dsq.
TEST(GgufExportOracle, GgufPyDequantizesTheSameFloats) {
  DSQ_REQUIRE_SHARED(shared);
  DSQ_REQUIRE_GGUF_PY();
  ::dsq::testing::TempDir tmp;
  const std::string src = shared + "/models/qwen2-tiny";
  for (const QuantDesc d : {QuantDesc{4, 64, true}, QuantDesc{8, 32, true},
                           QuantDesc{QuantScheme::kInt4AsymF, 32}}) {
    SCOPED_TRACE(scheme_name(d));
    const std::string q = tmp.file("q.gguf"), dir = tmp.file("deq");
    fs::create_directories(dir);
    run_quantize(quiet_quantize_options(src, q, d));
    const std::string script = tmp.file("deq.py");
    std::ofstream(script) << R"(import sys
import numpy as np
import gguf
from gguf import quants
r = gguf.GGUFReader(sys.argv[1])
for t in r.tensors:
    x = quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
    x.tofile(sys.argv[2] + "/" + t.name + "." + t.tensor_type.name)
)";
    const std::string cmd = "PYTHONPATH='" + shared + "/oracles/gguf-py' /usr/bin/python3 '" +
                            script + "' '" + q + "' '" + dir + "' 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const WeightStore ws = formats::open_model(q);
    const formats::GgufFile f = formats::GgufFile::open(q);
    int quantized = 0;
    for (const auto& t : f.tensors()) {
      const std::string type(formats::ggml_type_traits(static_cast<uint32_t>(t.type))->name);
      std::string upper;
      for (const char ch : type) upper += static_cast<char>(std::toupper(ch));
      std::ifstream in(dir + "/" + t.name + "." + upper, std::ios::binary);
      ASSERT_TRUE(in) << t.name << " " << upper;
      std::vector<float> oracle(static_cast<size_t>(t.ne[0] * (t.ne.size() > 1 ? t.ne[1] : 1)));
      in.read(reinterpret_cast<char*>(oracle.data()), static_cast<std::streamsize>(oracle.size() * 4));
      ASSERT_TRUE(in) << t.name;
      quantized += t.type == formats::GgmlType::kQ4_0 || t.type == formats::GgmlType::kQ4_1 ||
                   t.type == formats::GgmlType::kQ8_0;
      // dsq's reading of the GGUF (qwen2 stores q/k unpermuted: the canonical order).
      int64_t layer = -1;
      std::string canonical = t.name;
      ASSERT_NE(find_tensor_row(ws.config, canonical, &layer), nullptr) << t.name;
      const Tensor got = ws.entry(canonical).load().to(DType::kF32);
      ASSERT_EQ(got.nbytes(), oracle.size() * 4) << t.name;
      EXPECT_EQ(std::memcmp(got.bytes(), oracle.data(), got.nbytes()), 0) << t.name;
    }
    EXPECT_EQ(f.tensors().size(), ws.names().size());
    EXPECT_EQ(quantized, 7 * ws.config.n_layers);
  }
}

// A model without a tokenizer (dsq's synthetic benchmark models) is written with llama.cpp's
// vocabulary-less marker, so llama.cpp loads it for token-id work; dsq reads it back and runs it on
// ids, and asking it for text is a one-line error.
TEST(GgufExport, ModelWithoutTokenizerIsMarkedNoVocab) {
  ::dsq::testing::TempDir tmp;
  ModelConfig c = tiny_llama_config();
  const WeightStore ws = make_synthetic_model(c, 3, DType::kF16);
  const std::string src = tmp.file("s.dsq"), out = tmp.file("s.gguf");
  formats::DsqWriteOptions wo;
  wo.progress = false;
  formats::write_dsq(ws, src, wo);
  ConvertOptions o;
  o.src = src;
  o.out = out;
  o.progress = false;
  run_convert(o);
  const formats::GgufFile f = formats::GgufFile::open(out);
  EXPECT_EQ(f.metadata().at("tokenizer.ggml.model"), "no_vocab");
  EXPECT_FALSE(f.metadata().contains("tokenizer.ggml.tokens"));
  // The same numbers as the .dsq on token ids.
  std::vector<uint32_t> ids(65);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<uint32_t>((i * 7919) % c.vocab_size);
  const std::string idf = tmp.file("ids.u32");
  std::ofstream(idf, std::ios::binary).write(reinterpret_cast<const char*>(ids.data()), ids.size() * 4);
  EvalOptions e;
  e.model = out;
  e.ref = src;
  e.tokens_file = idf;
  e.ctx = 32;
  e.progress = false;
  const EvalReport r = run_eval(e);
  EXPECT_LT(r.kld_mean, 1e-6);
  EXPECT_GT(r.perplexity, 1.0);
  e.tokens_file.clear();
  e.text_file = tmp.file("t.txt");
  std::ofstream(e.text_file) << "Once upon a time there was a model without a vocabulary.\n";
  try {
    run_eval(e);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& err) {
    EXPECT_NE(std::string(err.what()).find("no tokenizer"), std::string::npos) << err.what();
  }
}

TEST(GgufExportErrors, UnmappableSchemesAndFamiliesFailInOneLineAndLeaveNoFile) {
  DSQ_REQUIRE_SHARED(shared);
  ::dsq::testing::TempDir tmp;
  const std::string out = tmp.file("x.gguf");
  auto expect_error = [&](auto&& fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_NE(msg.find(out), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out + ".tmp"));
  };
  // int4_asym groups fitted for a .dsq are not Q4_1's numbers (its min is an f16, and
  // scale x integer zero in general is not); quantize -o x.gguf fits int4_asymf instead.
  const std::string asym = tmp.file("asym.dsq");
  run_quantize(quiet_quantize_options(shared + "/models/qwen2-tiny", asym, QuantDesc{4, 128, false}));
  ConvertOptions c;
  c.src = asym;
  c.out = out;
  c.progress = false;
  expect_error([&] { run_convert(c); }, "int4_asym_g128 has no exact ggml block type");
  expect_error([&] { run_quantize(quiet_quantize_options(shared + "/models/qwen2-tiny", out, QuantDesc{3, 32, true})); },
               "int3_sym_g32 has no exact ggml block type");
  ConvertOptions o;
  o.src = shared + "/models/deepseek-v3-tiny";
  o.out = out;
  o.progress = false;
  expect_error([&] { run_convert(o); }, "cannot write a deepseek_v3 model as GGUF");
}

}  // namespace
}  // namespace dsq::jobs
