// `mpirun -n N dsq quantize` (lib/core/dist.h, docs/MPI.md): byte-identical to one process for
// N = 2 and 3 on stories260K, qwen2-tiny and deepseek-v3-tiny (its experts split among the ranks,
// AWQ included); a rank killed mid-run ends the whole job naming that rank, leaves no output, and
// --resume (with another N) completes it to the same bytes.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "lib/core/dist.h"
#include "tests/tools/cli_run.h"

namespace dsq {
namespace {

namespace fs = std::filesystem;
using testing::read_text;
using testing::run_dsq;
using testing::TempDir;

// mpirun for tests: root allowed (CI containers), more ranks than cores, shared memory only. In
// the sanitized test build the ranks run without LeakSanitizer: OpenMPI never frees parts of its
// own state (in libmpi and in components it dlopens, whose frames suppressions cannot name); the
// same dsq code is leak-checked in every one-process test. The other ASan checks stay on.
const char* const kMpirun =
    "mpirun --allow-run-as-root --oversubscribe --mca btl self,vader -x OMP_NUM_THREADS=1 "
    "-x ASAN_OPTIONS=detect_leaks=0 ";

#define DSQ_REQUIRE_MPI()                                                                  \
  if (!dist::built_with_mpi() || std::system("command -v mpirun > /dev/null 2>&1") != 0) { \
    if (::dsq::testing::in_ci()) FAIL() << "MPI missing but CI=true (scripts/install-deps.sh)"; \
    GTEST_SKIP() << "built without MPI or no mpirun: install libopenmpi-dev openmpi-bin";  \
  }

// Runs `dsq <args>` as `n` MPI ranks (n = 0: one plain process).
testing::CliRun run_ranks(const TempDir& tmp, int n, const std::string& args) {
  return run_dsq(tmp, args, n == 0 ? "" : std::string(kMpirun) + "-n " + std::to_string(n) + " ");
}

struct Case {
  const char* name;
  std::string model, calib;
};

std::vector<Case> cases(const std::string& shared) {
  const std::string text = shared + "/data/wikitext-2-valid.tokens.txt";
  return {{"stories260K", shared + "/models/stories260K/hf",
           shared + "/data/tinystories-calib.stories260K.u32"},
          {"qwen2-tiny", shared + "/models/qwen2-tiny", text},
          {"deepseek-v3-tiny", shared + "/models/deepseek-v3-tiny", text}};
}

TEST(CliMpi, RanksWriteTheSameBytesAsOneProcess) {
  DSQ_REQUIRE_SHARED(shared);
  DSQ_REQUIRE_MPI();
  TempDir tmp;
  for (const Case& c : cases(shared)) {
    SCOPED_TRACE(c.name);
    const std::string flags = " --method gptq --scheme int4_sym_g64 --calib " + c.calib +
                              " --calib-samples 8 --calib-len 128";
    std::string want;
    for (int n : {0, 2, 3}) {
      const std::string out = tmp.file(std::string(c.name) + std::to_string(n) + ".dsq");
      const auto r = run_ranks(tmp, n, "-q quantize " + c.model + " -o " + out + flags);
      ASSERT_EQ(r.code, 0) << r.err;
      const std::string got = read_text(out);
      ASSERT_GT(got.size(), 10000u);
      if (n == 0) want = got;
      EXPECT_TRUE(got == want) << n << " ranks wrote other bytes than one process";
      EXPECT_FALSE(fs::exists(out + ".partial"));
    }
  }
}

TEST(CliMpi, AKilledRankEndsTheJobAndResumeCompletesIt) {
  DSQ_REQUIRE_SHARED(shared);
  DSQ_REQUIRE_MPI();
  TempDir tmp;
  const Case c = cases(shared)[0];
  const std::string flags = " --method gptq --calib " + c.calib + " --calib-samples 8 --calib-len 128";
  const std::string one = tmp.file("one.dsq"), out = tmp.file("killed.dsq");
  ASSERT_EQ(run_dsq(tmp, "-q quantize " + c.model + " -o " + one + flags).code, 0);
  // Rank 1 kills itself half way through block 2; rank 0 is then waiting for its share.
  ::setenv("DSQ_PIPELINE_KILL", "during:2@1", 1);
  const auto r = run_ranks(tmp, 2, "-q quantize " + c.model + " -o " + out + flags);
  ::unsetenv("DSQ_PIPELINE_KILL");
  EXPECT_NE(r.code, 0);
  EXPECT_NE((r.out + r.err).find("rank 1"), std::string::npos) << r.out << r.err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));  // mpirun's SIGTERM reached rank 0, which removed it
  EXPECT_TRUE(fs::exists(out + ".partial/state.json"));
  // Resumed with three ranks: the same bytes as one process.
  const auto again = run_ranks(tmp, 3, "-q quantize " + c.model + " -o " + out + flags + " --resume");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_TRUE(read_text(out) == read_text(one));
  EXPECT_FALSE(fs::exists(out + ".partial"));
}

// A MoE layer's experts are split among the ranks (each solves its share, AWQ's shared ffn_norm
// search included); the block's output is accumulated in one order on every rank. A rank killed
// among the experts ends the job; resumed with another N the bytes are one process's.
TEST(CliMpi, SplitExpertsGiveTheSameBytesAndResume) {
  DSQ_REQUIRE_SHARED(shared);
  DSQ_REQUIRE_MPI();
  TempDir tmp;
  const Case c = cases(shared)[2];
  ASSERT_STREQ(c.name, "deepseek-v3-tiny");
  const std::string flags = " --method awq+gptq --scheme int4_asym_g32 --calib " + c.calib +
                            " --calib-samples 8 --calib-len 128";
  const std::string one = tmp.file("one.dsq"), two = tmp.file("two.dsq"), out = tmp.file("killed.dsq");
  ASSERT_EQ(run_dsq(tmp, "-q quantize " + c.model + " -o " + one + flags).code, 0);
  const auto r2 = run_ranks(tmp, 2, "-q quantize " + c.model + " -o " + two + flags);
  ASSERT_EQ(r2.code, 0) << r2.err;
  EXPECT_TRUE(read_text(two) == read_text(one)) << "2 ranks wrote other bytes than one process";
  // Block 1 is the first MoE layer: rank 1 dies once expert 0 is accumulated.
  ::setenv("DSQ_PIPELINE_KILL", "during-experts:1@1", 1);
  const auto r = run_ranks(tmp, 2, "-q quantize " + c.model + " -o " + out + flags);
  ::unsetenv("DSQ_PIPELINE_KILL");
  EXPECT_NE(r.code, 0);
  EXPECT_NE((r.out + r.err).find("rank 1"), std::string::npos) << r.out << r.err;
  EXPECT_FALSE(fs::exists(out));
  const auto again = run_ranks(tmp, 3, "-q quantize " + c.model + " -o " + out + flags + " --resume");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_TRUE(read_text(out) == read_text(one));
  // Experts with a linear kept in float: the other ranks read that one from the source.
  const std::string skip = " --method gptq --skip 'ffn_down_exps\\.1\\b|ffn_gate_shexp|ffn_up_exps\\.3\\b'"
                           " --calib " + c.calib + " --calib-samples 8 --calib-len 128";
  ASSERT_EQ(run_dsq(tmp, "-q quantize " + c.model + " -o " + tmp.file("s1.dsq") + skip).code, 0);
  const auto s2 = run_ranks(tmp, 2, "-q quantize " + c.model + " -o " + tmp.file("s2.dsq") + skip);
  ASSERT_EQ(s2.code, 0) << s2.err;
  EXPECT_TRUE(read_text(tmp.file("s2.dsq")) == read_text(tmp.file("s1.dsq")));
  const auto info = run_dsq(tmp, "inspect " + tmp.file("s2.dsq") + " --json -");
  ASSERT_EQ(info.code, 0) << info.err;
  int floats = 0;
  const auto j = nlohmann::json::parse(info.out);
  for (const auto& t : j["tensors"])
    floats += t["name"] == "blk.1.ffn_down_exps.1.weight" && t["dtype"] != "qint";
  EXPECT_EQ(floats, 1);
}

TEST(CliMpi, OnlyQuantizeRunsUnderMpirun) {
  DSQ_REQUIRE_SHARED(shared);
  DSQ_REQUIRE_MPI();
  TempDir tmp;
  const auto r = run_ranks(tmp, 2, "convert " + shared + "/models/stories260K/hf -o " + tmp.file("x.dsq"));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("only dsq quantize runs under mpirun"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp.file("x.dsq")));
}

}  // namespace
}  // namespace dsq
