// AdamW's schedule and update, its checkpoint round trip, and the teacher cache file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include "lib/core/error.h"
#include "lib/train/adamw.h"
#include "lib/train/teacher_cache.h"
#include "tests/test_util.h"

namespace dsq::train {
namespace {

TEST(AdamW, WarmupThenCosineToTheFloor) {
  AdamWOptions o;
  o.lr = 1e-2;
  o.warmup = 4;
  o.total = 14;
  o.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(lr_at(o, 0), 0.25e-2);
  EXPECT_DOUBLE_EQ(lr_at(o, 3), 1e-2);
  EXPECT_DOUBLE_EQ(lr_at(o, 4), 1e-2);                    // cosine starts at the peak
  EXPECT_NEAR(lr_at(o, 9), 0.5 * (1e-2 + 1e-3), 1e-15);   // half way
  EXPECT_NEAR(lr_at(o, 14), 1e-3, 1e-15);                 // ends at lr * min_lr_ratio
  EXPECT_NEAR(lr_at(o, 100), 1e-3, 1e-15);
}

std::vector<Param<float>> two_params() {
  std::vector<Param<float>> p(2);
  p[0] = {"blk.0.attn_q.weight", {2, 3}, {1, -2, 3, -4, 5, -6}, {0.5f, 0.1f, -0.2f, 0.3f, 0, -1}};
  p[0].decay = true;
  p[1] = {"blk.0.attn_norm.weight", {3}, {1, 1, 1}, {0.1f, -0.1f, 0.2f}};
  return p;
}

TEST(AdamW, FirstStepMovesEachWeightByTheLearningRate) {
  AdamWOptions o;
  o.lr = 0.01;
  o.clip = 0;
  auto p = two_params();
  AdamW opt(o, p);
  opt.step(p);
  // Step 1 of Adam: m_hat = g, v_hat = g^2, so the update is lr * sign(g) (zero where g = 0).
  EXPECT_NEAR(p[0].w[0], 1 - 0.01, 1e-6);
  EXPECT_NEAR(p[0].w[2], 3 + 0.01, 1e-6);
  EXPECT_NEAR(p[0].w[4], 5, 1e-6);
  EXPECT_NEAR(p[1].w[1], 1 + 0.01, 1e-6);
}

TEST(AdamW, WeightDecaySkipsNormsAndClipBoundsTheNorm) {
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  o.clip = 0.01;
  auto p = two_params();
  for (auto& q : p) std::fill(q.g.begin(), q.g.end(), 0.0f);
  AdamW opt(o, p);
  opt.step(p);
  EXPECT_NEAR(p[0].w[0], 1 * (1 - 0.05), 1e-6);  // decayed matrix
  EXPECT_EQ(p[1].w[0], 1.0f);                     // norm untouched
  p = two_params();
  AdamW clipped(o, p);
  const double norm = clipped.step(p);
  EXPECT_GT(norm, 1.0);  // reported before clipping
}

TEST(AdamW, CheckpointRestoresTheStateBitForBit) {
  testing::TempDir tmp;
  const std::string path = tmp.file("ckpt.bin");
  AdamWOptions o;
  o.total = 10;
  auto a = two_params();
  AdamW oa(o, a);
  oa.step(a);
  oa.save(path, a, {{"note", "x"}});
  auto b = two_params();  // other weights, fresh moments
  AdamW ob(o, b);
  EXPECT_EQ(ob.load(path, b)["note"], "x");
  EXPECT_EQ(ob.steps_done(), 1);
  EXPECT_EQ(a[0].w, b[0].w);
  // The next steps agree exactly.
  for (auto* p : {&a, &b})
    for (auto& q : *p) std::fill(q.g.begin(), q.g.end(), 0.25f);
  oa.step(a);
  ob.step(b);
  EXPECT_EQ(a[0].w, b[0].w);
  EXPECT_EQ(a[1].w, b[1].w);
  // A checkpoint of other parameters, or a truncated one, is refused.
  auto other = two_params();
  other[1].name = "blk.0.ffn_norm.weight";
  AdamW oc(o, other);
  EXPECT_THROW(oc.load(path, other), FormatError);
  // One flipped bit in the weights is caught by the checksum, and a refused checkpoint leaves
  // the state as it was.
  const auto before = b[0].w;
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(std::filesystem::file_size(path) - 12));
    char c = 0;
    f.read(&c, 1);
    c ^= 0x10;
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path) - 12));
    f.write(&c, 1);
  }
  try {
    ob.load(path, b);
    ADD_FAILURE() << "a corrupt checkpoint was loaded";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos) << e.what();
  }
  EXPECT_EQ(b[0].w, before);
  EXPECT_EQ(ob.steps_done(), 2);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 4);
  EXPECT_THROW(ob.load(path, b), FormatError);
  // A header that is not the parameter list (nested, other types) is a FormatError too.
  for (const std::string& head : {std::string(200, '[') + std::string(200, ']'),
                                 std::string(R"({"step": "x", "params": []})"),
                                 std::string(R"({"step": 1, "params": [{"name": 3, "n": "y"}, 1]})")}) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    const uint64_t len = head.size();
    f.write("DSQCKPT2", 8);
    f.write(reinterpret_cast<const char*>(&len), 8);
    f << head;
    f.close();
    std::filesystem::resize_file(path, 16 + len + 3 * 4 * (b[0].w.size() + b[1].w.size()) + 8);
    EXPECT_THROW(ob.load(path, b), FormatError) << head.substr(0, 40);
  }
}

TEST(TeacherCache, RoundTripAndAnythingElseIsRecomputed) {
  testing::TempDir tmp;
  const std::string path = tmp.file("t.topk");
  const nlohmann::json key = {{"teacher", "x"}};
  const std::vector<float> logits = {0.f, 3.f, 1.f, 2.f, -1.f, 2.f, 2.f, 0.5f};  // 2 rows of 4
  TeacherCacheWriter w(path, 2, 4, 2, 1.0, key);
  w.add(logits.data(), 2);
  w.finish();
  auto c = TeacherCache::open_if_matches(path, key);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->rows(), 2);
  const TeacherRow r0 = c->row(0), r1 = c->row(1);
  EXPECT_EQ(r0.ids[0], 1);
  EXPECT_EQ(r0.ids[1], 3);
  EXPECT_EQ(r1.ids[0], 1);  // a tie goes to the lower id
  EXPECT_EQ(r1.ids[1], 2);
  const double z0 = std::exp(0.) + std::exp(3.) + std::exp(1.) + std::exp(2.);
  EXPECT_NEAR(r0.logp[0], 3.0 - std::log(z0), 1e-6);
  EXPECT_NEAR(r0.p_rest, (std::exp(0.) + std::exp(1.)) / z0, 1e-12);
  EXPECT_FALSE(TeacherCache::open_if_matches(path, {{"teacher", "y"}}).has_value());
  EXPECT_FALSE(TeacherCache::open_if_matches(tmp.file("absent"), key).has_value());
  // An id outside the vocabulary (a corrupt file) is not trusted.
  c.reset();
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path) - 24));
    const int32_t bad = 99;
    f.write(reinterpret_cast<const char*>(&bad), 4);
  }
  EXPECT_FALSE(TeacherCache::open_if_matches(path, key).has_value());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 3);
  EXPECT_FALSE(TeacherCache::open_if_matches(path, key).has_value());
  // A log-probability that is NaN or positive (a corrupt file) would poison the loss: recomputed.
  for (const float bad : {std::nanf(""), 0.5f}) {
    TeacherCacheWriter w2(path, 2, 4, 2, 1.0, key);
    w2.add(logits.data(), 2);
    w2.finish();
    ASSERT_TRUE(TeacherCache::open_if_matches(path, key).has_value());
    {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path) - 16));  // row 1, logp[0]
      f.write(reinterpret_cast<const char*>(&bad), 4);
    }
    EXPECT_FALSE(TeacherCache::open_if_matches(path, key).has_value()) << bad;
  }
}

}  // namespace
}  // namespace dsq::train
