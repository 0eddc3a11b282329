// The streaming quantize driver on a synthetic model written to disk: selection, report, recipe,
// determinism and option validation.
#include "jobs/quantize.h"

#include <omp.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "formats/dsq/dsq_writer.h"
#include "formats/format_table.h"
#include "lib/core/arch.h"
#include "lib/core/error.h"
#include "lib/core/synthetic.h"
#include "lib/quant/rtn.h"
#include "tests/jobs/quantize_options.h"
#include "tests/test_util.h"

namespace dsq::jobs {

using calibration::should_quantize;
namespace {

std::string write_source(const ::dsq::testing::TempDir& dir, DType dtype, bool wide = false) {
  ModelConfig c = tiny_llama_config();
  if (wide) {  // linears above the size at which quantization runs in parallel
    c.d_model = 256;
    c.head_dim = 64;
    c.d_ff = 512;
  }
  const WeightStore ws = make_synthetic_model(c, 7, dtype);
  const std::string path = dir.file("src.dsq");
  formats::DsqWriteOptions wo;
  wo.progress = false;
  formats::write_dsq(ws, path, wo);
  return path;
}


std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(QuantizeDriver, QuantizesBlockLinearsOnlyAndReportsTrueErrors) {
  ::dsq::testing::TempDir dir;
  const std::string src = write_source(dir, DType::kF16);
  const QuantDesc d{4, 32, false};
  const QuantizeReport r = run_quantize(quiet_quantize_options(src, dir.file("q.dsq"), d));

  const WeightStore in = formats::open_model(src);
  const WeightStore out = formats::open_model(dir.file("q.dsq"));
  ASSERT_EQ(out.names(), in.names());
  ASSERT_EQ(r.tensors.size(), in.size());
  int64_t n_linear = 0, linear_params = 0;
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    const TensorReport& t = r.tensors[i];
    const auto& name = in.names()[i];
    EXPECT_EQ(t.name, name);
    const Tensor a = in.get(name), b = out.get(name);
    if (is_block_linear(in.config, name)) {
      ++n_linear;
      linear_params += a.numel();
      ASSERT_TRUE(t.quantized) << name;
      ASSERT_EQ(b.dtype(), DType::kQInt) << name;
      EXPECT_EQ(b.quant(), d);
      EXPECT_EQ(t.scheme, "int4_asym_g32");
      EXPECT_DOUBLE_EQ(t.bits_per_weight, quant_bits_per_weight(d, a.dim(0), a.dim(1)));
      // The reported error is the real error of what was written.
      const quant::QuantErrorStats s = quant::quant_error(a, b);
      EXPECT_DOUBLE_EQ(t.error.err_sq, s.err_sq) << name;
      EXPECT_DOUBLE_EQ(t.error.norm_sq, s.norm_sq) << name;
      EXPECT_GT(t.error.sqnr_db(), 15.0) << name;  // 4-bit g32: about 20 dB on uniform weights
      EXPECT_LT(t.error.sqnr_db(), 30.0) << name;
    } else {
      EXPECT_FALSE(t.quantized) << name;
      ASSERT_EQ(b.dtype(), a.dtype()) << name;  // embeddings, norms, classifier: source precision
      ASSERT_EQ(b.nbytes(), a.nbytes());
      EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), a.nbytes()), 0) << name;
      EXPECT_EQ(t.error.err_sq, 0.0);
    }
  }
  EXPECT_EQ(n_linear, 2 * 7);  // tiny llama: 2 blocks x (q, k, v, o, gate, up, down)
  EXPECT_EQ(r.quantized_params, linear_params);
  EXPECT_EQ(r.file_bytes, std::filesystem::file_size(dir.file("q.dsq")));
  EXPECT_NEAR(r.quantized_bpw(), 4.0 + 24.0 / 32, 1e-12);  // every linear's width is a multiple of 32
  EXPECT_LT(r.file_bpw(), 16.0);
  EXPECT_FALSE(std::filesystem::exists(dir.file("q.dsq.tmp")));

  // The recipe is recorded in the output header.
  const auto& recipe = out.metadata.at("recipe");
  EXPECT_EQ(recipe.at("method"), "rtn");
  EXPECT_EQ(recipe.at("bits"), 4);
  EXPECT_EQ(recipe.at("group"), 32);
  EXPECT_EQ(recipe.at("sym"), false);
  EXPECT_EQ(recipe.at("mse_clip"), false);
  EXPECT_EQ(recipe.at("source"), src);
  EXPECT_EQ(recipe.at("dsq_version"), DSQ_VERSION);

  const nlohmann::json j = r;
  EXPECT_EQ(j.at("tensors").size(), in.size());
  EXPECT_NEAR(j.at("summary").at("quantized_bits_per_weight").get<double>(), 4.75, 1e-12);
  EXPECT_NE(format_report(r).find("blk.1.ffn_down.weight"), std::string::npos);
}

TEST(QuantizeDriver, SkipRegexKeepsMatchesInSourcePrecision) {
  ::dsq::testing::TempDir dir;
  const std::string src = write_source(dir, DType::kF32);
  QuantizeOptions o = quiet_quantize_options(src, dir.file("q.dsq"), QuantDesc{8, 0, true});
  o.skip = "blk\\.0\\.attn_q|ffn_down";
  const QuantizeReport r = run_quantize(o);
  const WeightStore out = formats::open_model(dir.file("q.dsq"));
  for (const auto& name : out.names()) {
    if (!is_block_linear(out.config, name)) continue;
    const bool skipped = name == "blk.0.attn_q.weight" || name.find("ffn_down") != std::string::npos;
    EXPECT_EQ(out.entry(name).dtype, skipped ? DType::kF32 : DType::kQInt) << name;
  }
  EXPECT_EQ(out.metadata.at("recipe").at("skip"), o.skip);
  const ModelConfig c = tiny_llama_config();
  EXPECT_TRUE(should_quantize(c, "blk.1.attn_q.weight", DType::kF16, o.skip));
  EXPECT_FALSE(should_quantize(c, "blk.0.attn_q.weight", DType::kF16, o.skip));
  EXPECT_FALSE(should_quantize(c, "token_embd.weight", DType::kF16, ""));
  EXPECT_FALSE(should_quantize(c, "output.weight", DType::kF16, ""));
}

TEST(QuantizeDriver, OutputBytesIndependentOfThreadCount) {
  ::dsq::testing::TempDir dir;
  const std::string src = write_source(dir, DType::kBF16, /*wide=*/true);
  QuantizeOptions o = quiet_quantize_options(src, dir.file("a.dsq"), QuantDesc{3, 64, false});
  o.mse_clip = true;
  const int prev = omp_get_max_threads();
  omp_set_num_threads(1);
  run_quantize(o);
  omp_set_num_threads(2);
  o.out_path = dir.file("b.dsq");
  run_quantize(o);
  omp_set_num_threads(prev);
  EXPECT_EQ(slurp(dir.file("a.dsq")).size(), slurp(dir.file("b.dsq")).size());
  EXPECT_TRUE(slurp(dir.file("a.dsq")) == slurp(dir.file("b.dsq")));
}

TEST(QuantizeDriver, MseClipLowersTotalError) {
  ::dsq::testing::TempDir dir;
  const std::string src = write_source(dir, DType::kF32);
  QuantizeOptions o = quiet_quantize_options(src, dir.file("a.dsq"), QuantDesc{3, 0, false});
  const QuantizeReport plain = run_quantize(o);
  o.mse_clip = true;
  o.out_path = dir.file("b.dsq");
  const QuantizeReport clip = run_quantize(o);
  EXPECT_LT(clip.error().err_sq, plain.error().err_sq);
  EXPECT_EQ(clip.error().norm_sq, plain.error().norm_sq);
}

TEST(QuantizeDriver, RejectsBadOptionsWithoutWritingOutput) {
  ::dsq::testing::TempDir dir;
  const std::string src = write_source(dir, DType::kF32);
  const std::string out = dir.file("q.dsq");
  auto expect_usage = [&](QuantizeOptions o, const std::string& needle) {
    try {
      run_quantize(o);
      ADD_FAILURE() << "expected UsageError containing '" << needle << "'";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(out));
    EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  };
  expect_usage(quiet_quantize_options(src, out, QuantDesc{4, 100, false}), "unsupported group size 100");
  QuantizeOptions bad_method = quiet_quantize_options(src, out, QuantDesc{4, 32, false});
  bad_method.method = "magic";
  expect_usage(bad_method, "unknown quantization method 'magic' (available: rtn");
  QuantizeOptions bad_regex = quiet_quantize_options(src, out, QuantDesc{4, 32, false});
  bad_regex.skip = "blk[";
  expect_usage(bad_regex, "--skip: invalid regular expression 'blk['");
  EXPECT_THROW(run_quantize(quiet_quantize_options(dir.file("missing.dsq"), out, QuantDesc{4, 32, false})), Error);
}

}  // namespace
}  // namespace dsq::jobs
