#include "lib/core/tensor.h"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <tuple>
#include <vector>

#include "lib/core/arch.h"
#include "lib/core/error.h"
#include "lib/core/synthetic.h"
#include "lib/core/weight_store.h"

namespace dsq {
namespace {

TEST(Tensor, ShapeOverflowThrows) {
  EXPECT_THROW(shape_numel({int64_t{1} << 40, int64_t{1} << 40}), ShapeError);
  EXPECT_THROW(shape_numel({-1, 4}), ShapeError);
  EXPECT_EQ(shape_numel({0, int64_t{1} << 62, 4}), 0);
  EXPECT_EQ(shape_numel({3, 5, 7}), 105);
}

TEST(Tensor, OwnedStorageIsAlignedAndZeroed) {
  Tensor t(DType::kF16, {3, 5});
  EXPECT_EQ(t.nbytes(), 30u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.bytes()) % 64, 0u);
  for (size_t i = 0; i < t.nbytes(); ++i) EXPECT_EQ(t.bytes()[i], std::byte{0});
}

TEST(Tensor, ConversionF32F16RoundTrip) {
  std::vector<float> v(257);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.25f - 30.0f;  // exact in f16
  Tensor t = Tensor::from_f32({257}, v);
  Tensor back = t.to(DType::kF16).to(DType::kBF16).to(DType::kF32);
  // bf16 keeps 8 significant bits: values here need at most 9 (e.g. 63.75) -> compare to bf16.
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_EQ(back.data<float>()[i], bf16_to_f32(f32_to_bf16(v[i])));
  Tensor h = t.to(DType::kF16).to(DType::kF32);
  EXPECT_EQ(std::memcmp(h.bytes(), t.bytes(), t.nbytes()), 0);
}

TEST(Tensor, BorrowedTensorsShareBytesAndRefuseWrites) {
  auto buf = std::make_shared<std::vector<float>>(6, 1.5f);
  Tensor t = Tensor::borrow(DType::kF32, {2, 3}, buf->data(), 24, buf);
  EXPECT_FALSE(t.owned());
  EXPECT_EQ(t.data<float>(), buf->data());
  Tensor c = t.clone();
  EXPECT_TRUE(c.owned());
  EXPECT_NE(c.data<float>(), buf->data());
  EXPECT_EQ(c.data<float>()[5], 1.5f);
}

TEST(QuantLayout, SectionsAreAlignedAndRaggedGroupsCounted) {
  QuantDesc d{3, 32, false};
  QuantLayout L = quant_layout(d, 64, 172);
  EXPECT_EQ(L.n_groups, 6);              // 5 full groups of 32 + one of 12
  EXPECT_EQ(L.row_code_bytes, 65);       // ceil(172*3/8)
  EXPECT_EQ(L.codes_bytes, 64u * 65u);
  EXPECT_EQ(L.scales_offset % 64, 0u);
  EXPECT_EQ(L.zeros_offset % 64, 0u);
  EXPECT_EQ(L.scales_bytes, 64u * 6u * 2u);
  EXPECT_EQ(L.zeros_bytes, 64u * 6u);
  QuantDesc s{4, 0, true};
  QuantLayout P = quant_layout(s, 10, 100);
  EXPECT_EQ(P.n_groups, 1);
  EXPECT_EQ(P.zeros_bytes, 0u);
  EXPECT_EQ(P.total_bytes, P.scales_offset + P.scales_bytes);
}

TEST(QuantLayout, CodeBitStreamRoundTripsForEveryWidth) {
  for (int bits : {2, 3, 4, 5, 6, 8}) {
    const int64_t n = 37;
    std::vector<uint8_t> row(static_cast<size_t>((n * bits + 7) / 8), 0xff);
    for (int64_t c = 0; c < n; ++c) quant_code_set(row.data(), c, bits, (c * 7 + 3) % (1 << bits));
    for (int64_t c = 0; c < n; ++c)
      EXPECT_EQ(quant_code_at(row.data(), c, bits), static_cast<uint32_t>((c * 7 + 3) % (1 << bits)))
          << "bits " << bits << " col " << c;
  }
}

TEST(Arch, MetaToHfPermutationMatchesTheHfConverter) {
  // HF: W.reshape(n_heads, hd/2, 2, in).transpose(1, 2).reshape(out, in). With hd = 8 the HF rows
  // of one head are Meta rows 0,2,4,6,1,3,5,7.
  const int64_t heads = 2, hd = 8, cols = 3;
  std::vector<float> meta(static_cast<size_t>(heads * hd * cols));
  std::iota(meta.begin(), meta.end(), 0.0f);
  std::vector<float> hf(meta.size());
  permute_meta_to_hf(reinterpret_cast<const std::byte*>(meta.data()),
                     reinterpret_cast<std::byte*>(hf.data()), heads, hd, cols, 4);
  const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  for (int64_t h = 0; h < heads; ++h)
    for (int r = 0; r < hd; ++r)
      for (int64_t c = 0; c < cols; ++c)
        EXPECT_EQ(hf[static_cast<size_t>((h * hd + r) * cols + c)],
                  meta[static_cast<size_t>((h * hd + order[r]) * cols + c)]);
}

TEST(Arch, HfToMetaInvertsMetaToHf) {
  // Both ways, for bf16-sized and f32 elements and a bias-shaped (1-column) matrix.
  for (const auto& [hd, cols, elem] : {std::tuple<int64_t, int64_t, size_t>{8, 3, 4},
                                       {64, 1, 2}, {6, 5, 2}}) {
    const int64_t heads = 3;
    std::vector<std::byte> a(static_cast<size_t>(heads * hd * cols) * elem);
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::byte>(i * 37 + 11);
    std::vector<std::byte> hf(a.size()), meta(a.size()), back(a.size());
    permute_meta_to_hf(a.data(), hf.data(), heads, hd, cols, elem);
    permute_hf_to_meta(hf.data(), meta.data(), heads, hd, cols, elem);
    EXPECT_EQ(meta, a) << "head_dim " << hd;
    permute_hf_to_meta(a.data(), meta.data(), heads, hd, cols, elem);
    permute_meta_to_hf(meta.data(), back.data(), heads, hd, cols, elem);
    EXPECT_EQ(back, a) << "head_dim " << hd;
    EXPECT_NE(hf, a) << "head_dim " << hd;  // a real permutation, not the identity
  }
}

ModelConfig tiny_config() {
  ModelConfig c = synthetic_config("llama", {.n_layers = 2, .d_model = 8, .n_heads = 2,
                                             .n_kv_heads = 1, .head_dim = 4, .d_ff = 12, .vocab = 16});
  c.tied_embeddings = true;
  return c;
}

WeightStore tiny_store(const ModelConfig& c) { return make_synthetic_model(c, 1); }

TEST(Arch, ConfigJsonRoundTripsAndValidates) {
  ModelConfig c = tiny_config();
  c.layers = {{2, 1, 12}, {0, 0, 5}};
  nlohmann::json j = c;
  ModelConfig back = j.get<ModelConfig>();
  EXPECT_EQ(back, c);
  EXPECT_NO_THROW(validate_config(c, "x"));
  c.layers[0] = {3, 2, 12};  // 3 q heads cannot share 2 kv heads evenly
  EXPECT_THROW(validate_config(c, "x"), ConfigError);
  nlohmann::json bad = {{"arch", "llama"}, {"n_layers", "five"}};
  EXPECT_THROW(bad.get<ModelConfig>(), ConfigError);
}

TEST(WeightStore, ValidatesTensorsAgainstConfig) {
  const ModelConfig c = tiny_config();
  WeightStore ws = tiny_store(c);
  EXPECT_NO_THROW(validate_against_config(ws, "tiny"));
  EXPECT_EQ(ws.parameter_count(), 16 * 8 + 8 + 2 * (8 + 8 + 8 * 8 + 4 * 8 * 2 + 8 * 8 + 3 * 12 * 8));

  WeightStore missing = tiny_store(c);
  missing.remove("blk.1.ffn_down.weight");
  try {
    validate_against_config(missing, "tiny");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("blk.1.ffn_down.weight"), std::string::npos);
  }
  WeightStore wrong = tiny_store(c);
  wrong.replace("blk.0.attn_k.weight", Tensor(DType::kF32, {8, 8}));
  EXPECT_THROW(validate_against_config(wrong, "tiny"), ShapeError);
  EXPECT_THROW(wrong.add_tensor("blk.0.attn_k.weight", Tensor(DType::kF32, {4, 8})), FormatError);
}

TEST(Arch, BlockNamesParse) {
  int64_t l = -1;
  std::string s;
  ASSERT_TRUE(parse_block_name("blk.12.ffn_down.weight", &l, &s));
  EXPECT_EQ(l, 12);
  EXPECT_EQ(s, "ffn_down");
  const ModelConfig c = tiny_llama_config();
  EXPECT_TRUE(is_block_linear(c, "blk.0.attn_q.weight"));
  EXPECT_FALSE(is_block_linear(c, "blk.0.attn_q.bias"));
  EXPECT_FALSE(is_block_linear(c, "blk.0.attn_norm.weight"));
  EXPECT_FALSE(is_block_linear(c, "token_embd.weight"));
  EXPECT_FALSE(is_block_linear(c, "blk.2.attn_q.weight"));  // layer out of range
  EXPECT_FALSE(parse_block_name("blk.x.attn_q.weight", &l, &s));
}

}  // namespace
}  // namespace dsq
