// `dsq train` through the built binary on a generated text (no ../shared needed): it trains a BPE
// and a small model whose held-out perplexity falls well below the uniform one, and the model is
// a citizen of every other command (eval --text with its embedded tokenizer, generate, quantize,
// prune, distill); a killed run resumes to the same bytes; bad requests are one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "tests/tools/cli_run.h"

namespace dsq {
namespace {

using testing::CliRun;
using testing::TempDir;
namespace fs = std::filesystem;

CliRun run_cli(const TempDir& tmp, const std::string& args) { return testing::run_dsq(tmp, args); }

// About 120 kB of little stories from a fixed grammar: learnable structure, a few hundred words.
std::string write_text(const TempDir& tmp) {
  const char* names[] = {"Lily", "Tom", "Ben", "Mia", "Sam", "Anna"};
  const char* things[] = {"ball", "cat", "dog", "tree", "box", "cake", "bird", "boat"};
  const char* adjs[] = {"big", "red", "little", "happy", "shiny", "old"};
  const char* verbs[] = {"found", "liked", "saw", "took", "made", "lost"};
  std::mt19937 rng(7);
  auto pick = [&](const auto& a) { return a[rng() % (sizeof(a) / sizeof(a[0]))]; };
  std::string t;
  while (t.size() < 120000) {
    const std::string n = pick(names), th = pick(things);
    t += std::string("Once upon a time, ") + n + " " + pick(verbs) + " a " + pick(adjs) + " " + th +
         ". " + n + " was very happy. The " + th + " was " + pick(adjs) + ", and " + n +
         " said: \"I like my " + th + "!\"\n";
  }
  const std::string path = tmp.file("stories.txt");
  std::ofstream(path) << t;
  return path;
}

std::string train_args(const std::string& text, const std::string& out, int steps) {
  return "train --text " + text + " -o " + out + " --vocab 320 --d-model 32 --layers 2 --heads 2 "
         "--kv-heads 1 --seq-len 64 --batch 4 --heldout 4 --lr 3e-3 --steps " + std::to_string(steps);
}

TEST(CliTrain, TrainsAModelEveryCommandReads) {
  TempDir tmp;
  const std::string text = write_text(tmp), out = tmp.file("m.dsq"), rep = tmp.file("r.json");
  const CliRun r = run_cli(tmp, "-q " + train_args(text, out, 60) + " --json " + rep);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(testing::read_text(rep));
  EXPECT_EQ(j["vocab"], 320);
  EXPECT_GT(j["bpe_merges"].get<int>(), 0);
  // Uniform guessing is a perplexity of about the vocabulary; the trained model is far below.
  EXPECT_GT(j["heldout_ppl_before"].get<double>(), 150.0);
  EXPECT_LT(j["heldout_ppl_after"].get<double>(), 0.1 * j["heldout_ppl_before"].get<double>());
  EXPECT_FALSE(fs::exists(out + ".partial"));
  // eval tokenizes the text with the embedded tokenizer; its perplexity agrees with training's.
  const std::string ej = tmp.file("e.json");
  ASSERT_EQ(run_cli(tmp, "-q eval " + out + " --text " + text + " --ctx 64 --max-tokens 4096 --json " + ej).code, 0);
  const double ppl = nlohmann::json::parse(testing::read_text(ej))["perplexity"].get<double>();
  EXPECT_LT(ppl, 2.0 * j["heldout_ppl_after"].get<double>());
  const CliRun g = run_cli(tmp, "-q generate " + out + " --prompt 'Once upon a time' -n 8");
  EXPECT_EQ(g.code, 0) << g.err;
  EXPECT_NE(g.out.find("Once upon a time"), std::string::npos) << g.out;
  EXPECT_EQ(run_cli(tmp, "-q quantize " + out + " -o " + tmp.file("q.dsq") + " --bits 8 --group 32").code, 0);
  ASSERT_EQ(run_cli(tmp, "-q prune " + out + " -o " + tmp.file("p.dsq") + " --ffn 0.25 --importance magnitude").code, 0);
  const CliRun d = run_cli(tmp, "-q distill " + tmp.file("p.dsq") + " --teacher " + out + " --data " + text +
                                    " -o " + tmp.file("d.dsq") + " --samples 32 --seq-len 64 --heldout 4 --steps 5");
  EXPECT_EQ(d.code, 0) << d.err;
}

TEST(CliTrain, KilledRunResumesToTheSameBytes) {
  TempDir tmp;
  const std::string text = write_text(tmp), a = tmp.file("a.dsq"), b = tmp.file("b.dsq");
  ASSERT_EQ(run_cli(tmp, "-q " + train_args(text, a, 12) + " --checkpoint-every 5").code, 0);
  const CliRun k = testing::run_dsq(tmp, "-q " + train_args(text, b, 12) + " --checkpoint-every 5",
                                    "DSQ_TRAIN_KILL=7 ");
  EXPECT_NE(k.code, 0);
  EXPECT_FALSE(fs::exists(b));
  ASSERT_TRUE(fs::exists(b + ".partial/checkpoint.bin"));
  ASSERT_EQ(run_cli(tmp, "-q " + train_args(text, b, 12) + " --checkpoint-every 5 --resume").code, 0);
  EXPECT_TRUE(testing::read_text(a) == testing::read_text(b));  // (no 3 MB diff on failure)
}

TEST(CliTrain, BadRequestsAreOneLineErrors) {
  TempDir tmp;
  const std::string text = write_text(tmp), out = tmp.file("o.dsq");
  // One line, from dsq's checks and from CLI11's (a flag out of its range) alike.
  auto expect_refused = [&](const std::string& args, const std::string& needle) {
    SCOPED_TRACE(args);
    const CliRun r = run_cli(tmp, "-q train --text " + text + " -o " + out + " " + args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out + ".partial"));
  };
  expect_refused("--arch deepseek_v3", "not trainable");
  expect_refused("--heads 3 --kv-heads 2", "multiple");
  expect_refused("--vocab 100", "--vocab");
  std::ofstream(tmp.file("ids.u32")) << "abcd";
  const CliRun r = run_cli(tmp, "-q train --text " + tmp.file("ids.u32") + " -o " + out);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--tokenizer-from"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace dsq
