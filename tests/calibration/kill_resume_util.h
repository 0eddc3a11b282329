// Helpers of the kill -9 / --resume tests of the calibrated pipeline (pipeline_test.cpp,
// pipeline_moe_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <optional>
#include <string>

#include "calibration/pipeline.h"
#include "jobs/quantize.h"
#include "tests/test_util.h"

namespace dsq::calibration::testing_util {

// Parent and re-executed death-test child must share one directory: the parent names it in the
// environment variable `env` before the first EXPECT_EXIT, the child finds it there.
inline std::string shared_test_dir(const char* env, std::optional<dsq::testing::TempDir>& tmp) {
  if (const char* d = std::getenv(env)) return d;
  tmp.emplace();
  ::setenv(env, tmp->path().c_str(), 1);
  return tmp->path().string();
}

// Runs `o` (with mixed-precision options `m`, if any) in a re-executed death-test child that
// SIGKILLs itself at `when` (pipeline.h).
inline void run_killed(const QuantizeOptions& o, const char* when, const jobs::MixedOptions& m = {}) {
  EXPECT_EXIT(
      {
        ::setenv(kPipelineKillEnv, when, 1);
        jobs::run_quantize(o, "", m);
      },
      ::testing::KilledBySignal(SIGKILL), "");
}

}  // namespace dsq::calibration::testing_util
