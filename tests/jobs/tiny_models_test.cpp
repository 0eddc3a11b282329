// The engine against Hugging Face transformers on the trained tiny checkpoints of the families
// users deploy (../shared/models/MANIFEST.md, tiny-references/): perplexity on three held-out
// texts (ctx 512, the stories260K protocol, no extra BOS) within 1e-4 relative, the logits of the
// first 64 ids within 1e-3 absolute, and the greedy continuation of "Once upon a time".
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "formats/format_table.h"
#include "jobs/eval.h"
#include "jobs/generate.h"
#include "lib/model/model.h"
#include "lib/text/tokenizer.h"
#include "tests/test_util.h"

namespace dsq::jobs {
namespace {

struct Case {
  const char* model;
  const char* ids;  // id-file suffix
};
constexpr Case kCases[] = {{"qwen2-tiny", "qwen"},
                            {"qwen3-tiny", "qwen"},
                            {"deepseek-v3-tiny", "deepseek"},
                            {"deepseek-v3-tiny-fp8", "deepseek"}};

nlohmann::json reference(const std::string& shared) {
  return nlohmann::json::parse(
      text::load_text_file(shared + "/models/tiny-references/REFERENCE.json"));
}

class TinyModel : public ::testing::TestWithParam<Case> {};

TEST_P(TinyModel, PerplexityMatchesTransformers) {
  DSQ_REQUIRE_SHARED(shared);
  const Case c = GetParam();
  const auto ppl = reference(shared)["models"][c.model]["ppl"];
  for (const std::string set : {"tinystories", "wikitext2", "zh"}) {
    EvalOptions o;
    o.model = shared + "/models/" + c.model;
    o.tokens_file = shared + "/models/tiny-references/" + set + "." + c.ids + "-tok.u32";
    o.ctx = 512;
    o.batch = 4;
    o.progress = false;
    const EvalReport r = run_eval(o);
    EXPECT_EQ(r.tokens_scored, 16352);
    const double want = ppl[set].get<double>();
    EXPECT_NEAR(r.perplexity, want, 1e-4 * want) << set;
  }
}

TEST_P(TinyModel, First64LogitsMatchTransformers) {
  DSQ_REQUIRE_SHARED(shared);
  const Case c = GetParam();
  const std::string refs = shared + "/models/tiny-references/";
  std::vector<int32_t> ids = text::read_token_ids(refs + "tinystories." + c.ids + "-tok.u32");
  ids.resize(64);
  const WeightStore ws = formats::open_model(shared + "/models/" + c.model);
  const model::Model m = model::Model::load(ws);
  const std::vector<float> got = m.forward(ids, 1, 64);
  std::vector<float> want(got.size());
  std::ifstream f(refs + c.model + ".logits-tinystories-first64.f32", std::ios::binary);
  f.read(reinterpret_cast<char*>(want.data()), static_cast<std::streamsize>(want.size() * 4));
  ASSERT_TRUE(f) << "logits file";
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs(double(got[i]) - want[i]));
  EXPECT_LE(worst, 1e-3);
  // The incremental path (KV cache, one token at a time) agrees with the batched one.
  model::KVCache cache = m.new_cache(64);
  double worst_kv = 0;
  for (int t = 0; t < 64; ++t) {
    const std::vector<float> l = m.decode(std::span<const int32_t>(&ids[static_cast<size_t>(t)], 1), cache);
    for (size_t v = 0; v < l.size(); ++v)
      worst_kv = std::max(worst_kv, std::fabs(double(l[v]) - want[t * l.size() + v]));
  }
  EXPECT_LE(worst_kv, 1e-3);
}

TEST_P(TinyModel, GreedyContinuationMatchesTransformers) {
  DSQ_REQUIRE_SHARED(shared);
  const Case c = GetParam();
  const nlohmann::json ref = reference(shared);
  const nlohmann::json& entry = ref["models"][c.model];
  if (!entry.contains("greedy")) GTEST_SKIP() << "REFERENCE.json has no greedy ids for " << c.model;
  const auto greedy = entry["greedy"];
  GenerateOptions o;
  o.model = shared + "/models/" + c.model;
  o.prompt = "Once upon a time";
  const auto want_prompt = greedy["prompt_ids"].get<std::vector<int32_t>>();
  const auto want_all = greedy["ids"].get<std::vector<int32_t>>();
  o.n_new = static_cast<int64_t>(want_all.size() - want_prompt.size());
  const GenerateResult r = run_generate(o);
  EXPECT_EQ(r.prompt_ids, want_prompt);
  std::vector<int32_t> all = r.prompt_ids;
  all.insert(all.end(), r.new_ids.begin(), r.new_ids.end());
  EXPECT_EQ(all, want_all);
}

// Multi-head Latent Attention: the expanded form (every position at once, no cache) and the
// weight-absorbed decoding over the latent cache agree within 1e-4 on the trained checkpoint.
TEST(TinyDeepseek, AbsorbedDecodingMatchesExpandedAttention) {
  DSQ_REQUIRE_SHARED(shared);
  for (const char* name : {"deepseek-v3-tiny", "deepseek-v3-tiny-fp8"}) {
    SCOPED_TRACE(name);
    std::vector<int32_t> ids =
        text::read_token_ids(shared + "/models/tiny-references/wikitext2.deepseek-tok.u32");
    ids.resize(96);
    const WeightStore ws = formats::open_model(shared + "/models/" + name);
    const model::Model m = model::Model::load(ws);
    const std::vector<float> full = m.forward(ids, 1, 96);
    model::KVCache cache = m.new_cache(96);
    // The cache holds the latent and the rope key only: 128 + 16 floats per token and layer.
    EXPECT_EQ(cache.layers[0].k.size() + cache.layers[0].v.size(), size_t{96 * (128 + 16)});
    double worst = 0;
    // A prefill of 40 tokens, then one token at a time.
    std::vector<float> last = m.decode(std::span<const int32_t>(ids.data(), 40), cache);
    for (int t = 40; t <= 96; ++t) {
      const size_t V = last.size();
      for (size_t v = 0; v < V; ++v)
        worst = std::max(worst, std::fabs(double(last[v]) - full[static_cast<size_t>(t - 1) * V + v]));
      if (t < 96) last = m.decode(std::span<const int32_t>(&ids[static_cast<size_t>(t)], 1), cache);
    }
    EXPECT_LE(worst, 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, TinyModel, ::testing::ValuesIn(kCases), [](const auto& info) {
  std::string n = info.param.model;
  for (auto& ch : n)
    if (ch == '-') ch = '_';
  return n;
});

}  // namespace
}  // namespace dsq::jobs
