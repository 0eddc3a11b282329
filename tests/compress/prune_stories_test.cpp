// Importance on the real model: pruning 20% of stories260K's FFN channels by activation
// importance (Wanda: |W| x input channel norm from calibration) must drift less from the FP32
// model than pruning by weight magnitude alone (a smaller run of the bench/RESULTS.md table).
#include <gtest/gtest.h>

#include "jobs/eval.h"
#include "jobs/prune.h"
#include "tests/test_util.h"

namespace dsq::compress {
namespace {

double kld_after_pruning(const std::string& shared, const testing::TempDir& tmp, Importance imp) {
  jobs::PruneModelOptions o;
  o.model_path = shared + "/models/stories260K/hf";
  o.out_path = tmp.file(std::string(importance_name(imp)) + ".dsq");
  o.prune.ffn_ratio = 0.2;
  o.prune.importance = imp;
  o.calib.paths = {shared + "/data/tinystories-calib.stories260K.u32"};
  o.calib.n_samples = 16;
  o.calib.seq_len = 256;
  o.drift_samples = 0;
  o.progress = false;
  const jobs::PruneModelReport r = jobs::run_prune(o);
  EXPECT_EQ(r.params_before - r.params_after, 5 * 34 * 3 * 64);  // round(0.2 * 172) = 34
  jobs::EvalOptions e;
  e.model = o.out_path;
  e.ref = o.model_path;
  e.tokens_file = shared + "/data/tinystories-eval.stories260K.u32";
  e.ctx = 512;
  e.bos = true;
  e.max_tokens = 4096;
  e.progress = false;
  return jobs::run_eval(e).kld_mean;
}

TEST(PruneStories260K, ActivationImportanceBeatsMagnitudeAt20PercentFfn) {
  DSQ_REQUIRE_SHARED(shared);
  testing::TempDir tmp;
  const double act = kld_after_pruning(shared, tmp, Importance::kActivation);
  const double mag = kld_after_pruning(shared, tmp, Importance::kMagnitude);
  EXPECT_GT(act, 0.0);
  EXPECT_LT(act, mag) << "activation KLD " << act << ", magnitude KLD " << mag;
}

}  // namespace
}  // namespace dsq::compress
