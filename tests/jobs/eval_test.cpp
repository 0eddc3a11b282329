// dsq eval / generate orchestration on the real stories260K model (shared/models/MANIFEST.md) and
// on synthetic models for the error paths.
#include "jobs/eval.h"
#include "jobs/generate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "lib/text/tokenizer.h"
#include "formats/dsq/dsq_writer.h"
#include "formats/format_table.h"
#include "lib/core/error.h"
#include "lib/core/synthetic.h"
#include "tests/test_util.h"

namespace dsq::jobs {

using model::evaluate;
using model::to_json;
using text::load_text_file;
using text::read_token_ids;
namespace {

using dsq::testing::TempDir;

// shared/data/MANIFEST.md: 32 windows x 511 scored ids, ppl 3.7698 (NLL 1.32702).
constexpr double kStoriesPpl = 3.7698;
constexpr double kStoriesPplTol = 0.0005;
constexpr int64_t kStoriesScored = 32 * 511;
static_assert(kStoriesScored == 16352);

std::string eval_ids(const std::string& shared) {
  return shared + "/data/tinystories-eval.stories260K.u32";
}

EvalReport eval_stories(const std::string& model_path, const std::string& shared,
                        int64_t max_tokens = 0, int64_t batch = 1) {
  EvalOptions o;
  o.model = model_path;
  o.tokens_file = eval_ids(shared);
  o.ctx = 512;
  o.bos = true;
  o.max_tokens = max_tokens;
  o.batch = batch;
  o.progress = false;
  return run_eval(o);
}

void expect_reference_ppl(const EvalReport& r) {
  EXPECT_EQ(r.windows, 32);
  EXPECT_EQ(r.tokens_scored, kStoriesScored);
  EXPECT_EQ(r.tokens_dropped, 0);
  EXPECT_NEAR(r.perplexity, kStoriesPpl, kStoriesPplTol) << r.model;
  EXPECT_NEAR(r.mean_nll, 1.32702, 2e-5) << r.model;
}

TEST(EvalStories, PerplexityMatchesManifestFromEverySourceFormat) {
  DSQ_REQUIRE_SHARED(shared);
  const std::string m = shared + "/models/stories260K/";
  for (const std::string& p : {m + "hf", m + "stories260K.gguf", m + "llama2c/stories260K.bin"})
    expect_reference_ppl(eval_stories(p, shared));
}

TEST(EvalStories, PerplexityMatchesManifestFromConvertedDsq) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string out = tmp.file("stories.dsq");
  formats::DsqWriteOptions wo;
  wo.progress = false;
  formats::write_dsq(formats::open_model(shared + "/models/stories260K/hf"), out, wo);
  // Batched windows must give the same numbers as one window at a time.
  const EvalReport r = eval_stories(out, shared, 0, /*batch=*/4);
  expect_reference_ppl(r);
}

TEST(EvalStories, TextGivesTheSameIdsAsTheU32File) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  // The eval part of the excerpt: bytes [712780, end) (shared/data/MANIFEST.md).
  const std::string all = load_text_file(shared + "/data/tinystories-train-excerpt.txt");
  ASSERT_EQ(all.size(), 944426u);
  const std::string text_path = tmp.file("eval.txt");
  std::ofstream(text_path, std::ios::binary) << all.substr(712780);
  const WeightStore ws = formats::open_model(shared + "/models/stories260K/hf");
  EvalOptions o;
  o.model = shared + "/models/stories260K/hf";
  o.text_file = text_path;
  o.bos = true;
  o.max_tokens = 16384;
  const auto from_text = eval_token_stream(o, ws);
  const auto from_ids = read_token_ids(eval_ids(shared));
  ASSERT_EQ(from_text.size(), from_ids.size());
  EXPECT_EQ(from_text, from_ids);
  // --bos does not add a second BOS to a stream that already starts with one.
  EvalOptions t = o;
  t.text_file.clear();
  t.tokens_file = eval_ids(shared);
  EXPECT_EQ(eval_token_stream(t, ws), from_ids);
}

TEST(EvalStories, ReferenceAgainstItselfHasZeroKldAndFullAgreement) {
  DSQ_REQUIRE_SHARED(shared);
  EvalOptions o;
  o.model = shared + "/models/stories260K/hf";
  o.ref = shared + "/models/stories260K/stories260K.gguf";  // same weights, another reader
  o.tokens_file = eval_ids(shared);
  o.bos = true;
  o.max_tokens = 4 * 512;
  o.progress = false;
  const EvalReport r = run_eval(o);
  EXPECT_EQ(r.tokens_scored, 4 * 511);
  EXPECT_EQ(r.kld_mean, 0.0);
  EXPECT_EQ(r.kld_max, 0.0);
  EXPECT_EQ(r.top1_agreement, 1.0);
  EXPECT_EQ(r.ppl_ratio, 1.0);
  ASSERT_EQ(r.layers.size(), 5u);
  for (const auto& l : r.layers) {
    EXPECT_EQ(l.rel_l2, 0.0);
    EXPECT_NEAR(l.cosine, 1.0, 1e-12);
  }
}

TEST(EvalStories, PerturbedCopyDriftsFromThePerturbedBlockOn) {
  DSQ_REQUIRE_SHARED(shared);
  const WeightStore ws = formats::open_model(shared + "/models/stories260K/hf");
  // A copy with blk.2.ffn_down scaled by 1.1.
  WeightStore pert;
  pert.config = ws.config;
  pert.has_config = true;
  for (const auto& n : ws.names()) {
    Tensor t = ws.get(n);
    if (n == "blk.2.ffn_down.weight") {
      t = t.clone();
      for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] *= 1.1f;
    }
    pert.add_tensor(n, t);
  }
  const model::Model ref = model::Model::load(ws), m = model::Model::load(pert);
  auto ids = read_token_ids(eval_ids(shared));
  ids.resize(4 * 512);
  const EvalReport r = evaluate(m, &ref, ids, 512, 2);
  EXPECT_GT(r.kld_mean, 0.0);
  EXPECT_GT(r.kld_max, r.kld_mean);
  EXPECT_GE(r.kld_p99, 0.0);
  EXPECT_GT(r.kld_stderr, 0.0);
  EXPECT_LT(r.top1_agreement, 1.0);
  EXPECT_GT(r.top1_agreement, 0.5);
  EXPECT_NE(r.perplexity, r.ref_perplexity);
  ASSERT_EQ(r.layers.size(), 5u);
  for (int l = 0; l < 2; ++l) EXPECT_EQ(r.layers[static_cast<size_t>(l)].rel_l2, 0.0) << l;
  for (int l = 2; l < 5; ++l) {
    EXPECT_GT(r.layers[static_cast<size_t>(l)].rel_l2, 1e-4) << l;
    EXPECT_LT(r.layers[static_cast<size_t>(l)].cosine, 1.0) << l;
  }
}

TEST(EvalStories, GenerateReproducesTheManifestGreedyContinuation) {
  DSQ_REQUIRE_SHARED(shared);
  const std::vector<int32_t> want = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317,
                                     426, 338, 401, 396, 267, 337, 410, 408, 419, 292,
                                     411, 322, 265, 282, 295, 433, 426, 385, 328, 432};
  GenerateOptions o;
  o.model = shared + "/models/stories260K/stories260K.gguf";
  o.prompt = "Once upon a time";
  o.n_new = 30;
  const GenerateResult r = run_generate(o);
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(r.new_ids, want);
  EXPECT_EQ(r.text,
            "Once upon a time, there was a little girl named Lily. She loved to play outside in "
            "the park. One day,");
  // Sampling is reproducible from the seed and differs from greedy.
  o.temperature = 1.0;
  o.seed = 7;
  const auto a = run_generate(o), b = run_generate(o);
  EXPECT_EQ(a.new_ids, b.new_ids);
  EXPECT_NE(a.new_ids, want);
}

// --- error paths on synthetic models -------------------------------------------------------

TEST(Eval, RejectsBadInputsWithClearErrors) {
  const WeightStore ws = make_synthetic_model(tiny_llama_config(), 1);
  const model::Model m = model::Model::load(ws);
  std::vector<int32_t> ids(300);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>(i % 128);
  EXPECT_THROW(evaluate(m, nullptr, ids, 1, 1), UsageError);     // ctx < 2
  EXPECT_THROW(evaluate(m, nullptr, ids, 400, 1), UsageError);   // shorter than a window
  ModelConfig c = tiny_llama_config();
  c.vocab_size = 200;
  const model::Model other = model::Model::load(make_synthetic_model(c, 2));
  EXPECT_THROW(evaluate(m, &other, ids, 100, 1), ConfigError);  // vocabulary mismatch

  TempDir tmp;
  EvalOptions o;
  o.model = "synthetic";
  o.tokens_file = tmp.file("empty.u32");
  std::ofstream(o.tokens_file, std::ios::binary).close();
  try {
    eval_token_stream(o, ws);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("empty.u32': no tokens"), std::string::npos) << e.what();
  }
  o.tokens_file = tmp.file("big.u32");
  const uint32_t bad[3] = {1, 5, 128};
  std::ofstream(o.tokens_file, std::ios::binary).write(reinterpret_cast<const char*>(bad), 12);
  try {
    eval_token_stream(o, ws);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("token id 128 at position 2"), std::string::npos)
        << e.what();
  }
  EvalOptions both;
  both.model = "x";
  both.text_file = "a.txt";
  both.tokens_file = "a.u32";
  EXPECT_THROW(run_eval(both), UsageError);
}

// --llama-ppl: llama-perplexity's protocol. Every window starts with BOS (stories260K's tokenizer
// adds one) and only its second half is scored; the same numbers come from evaluating a stream
// whose window starts were set to BOS by hand, scoring from ctx/2.
TEST(Eval, LlamaProtocolScoresSecondHalvesOfWindowsThatStartWithBos) {
  DSQ_REQUIRE_SHARED(shared);
  EvalOptions o;
  o.model = shared + "/models/stories260K/hf";
  o.tokens_file = eval_ids(shared);
  o.ctx = 128;
  o.max_tokens = 1024;
  o.progress = false;
  o.llama_protocol = true;
  const EvalReport r = run_eval(o);
  EXPECT_EQ(r.score_from, 64);
  EXPECT_EQ(r.tokens_scored, 8 * (127 - 64));

  const WeightStore ws = formats::open_model(o.model);
  const model::Model m = model::Model::load(ws);
  std::vector<int32_t> ids = read_token_ids(o.tokens_file);
  ids.resize(1024);
  const int32_t bos = static_cast<int32_t>(ws.config.bos_id);
  ASSERT_GE(bos, 0);
  std::vector<int32_t> with_bos = ids;
  for (size_t w = 0; w < with_bos.size(); w += 128) with_bos[w] = bos;
  EXPECT_EQ(evaluate(m, nullptr, with_bos, 128, 1, false, 64).mean_nll, r.mean_nll);
  // Without the BOS rule the later windows start mid-text: another number.
  EXPECT_NE(evaluate(m, nullptr, ids, 128, 1, false, 64).mean_nll, r.mean_nll);
  // The second half of a window sees more context than the average position: lower perplexity.
  EXPECT_LT(r.perplexity, evaluate(m, nullptr, with_bos, 128, 1).perplexity);
  EXPECT_THROW(evaluate(m, nullptr, ids, 128, 1, false, 127), UsageError);
  o.ctx = 2;
  EXPECT_THROW(run_eval(o), UsageError);
}

TEST(Eval, WindowsBosAndTrailingIdsFollowTheProtocol) {
  const WeightStore ws = make_synthetic_model(tiny_llama_config(), 3);
  const model::Model m = model::Model::load(ws);
  std::vector<int32_t> ids(250);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7 + 3) % 128);
  const EvalReport r = evaluate(m, nullptr, ids, 64, 3);
  EXPECT_EQ(r.windows, 3);
  EXPECT_EQ(r.tokens_scored, 3 * 63);
  EXPECT_EQ(r.tokens_dropped, 250 - 192);
  // Batch size does not change the result beyond rounding of the batched GEMM.
  const EvalReport one = evaluate(m, nullptr, ids, 64, 1);
  EXPECT_NEAR(one.mean_nll, r.mean_nll, 1e-5);
  // The JSON report has the agreed top-level keys.
  const auto j = to_json(r);
  for (const char* k : {"perplexity", "tokens_scored", "ref_perplexity", "kld_mean", "kld_stderr",
                        "kld_p99", "kld_max", "top1_agreement", "tokens_per_second", "layers"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_TRUE(j["kld_mean"].is_null());
}

}  // namespace
}  // namespace dsq::jobs
