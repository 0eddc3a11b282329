// The canonical optional output biases that pruning's bias compensation writes
// (blk.{L}.attn_output.bias, blk.{L}.ffn_down.bias): known to expected_shape, accepted by
// validate_against_config with the right shape (in every family that has them), rejected with a
// wrong one.
#include <gtest/gtest.h>

#include "lib/core/error.h"
#include "lib/core/weight_store.h"
#include "lib/core/synthetic.h"

namespace dsq {
namespace {

TEST(ArchOutputBias, KnownOptionalAndShapeChecked) {
  ModelConfig c = tiny_llama_config();
  EXPECT_EQ(expected_shape(c, "blk.1.attn_output.bias"), (Shape{64}));
  EXPECT_EQ(expected_shape(c, "blk.0.ffn_down.bias"), (Shape{64}));
  EXPECT_FALSE(expected_shape(c, "blk.0.ffn_up.bias").has_value());
  EXPECT_FALSE(expected_shape(c, "blk.2.ffn_down.bias").has_value());  // layer out of range
  for (const ArchInfo& a : arch_table()) {
    if (!a.find("blk.{L}.ffn_down.bias")) continue;  // only the families pruning supports
    WeightStore ws = make_synthetic_model(synthetic_config(a.name), 1);
    validate_against_config(ws, "test");  // absent: fine
    ws.add_tensor("blk.1.ffn_down.bias", Tensor(DType::kF32, {64}));
    ws.add_tensor("blk.0.attn_output.bias", Tensor(DType::kF32, {64}));
    validate_against_config(ws, "test");  // present: fine
    ws.add_tensor("blk.0.ffn_down.bias", Tensor(DType::kF32, {63}));
    EXPECT_THROW(validate_against_config(ws, "test"), ShapeError);
  }
}

}  // namespace
}  // namespace dsq
