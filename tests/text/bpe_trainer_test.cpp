// The byte-level BPE trainer: its tokenizer.json loads through the same loader as any checkpoint's,
// encodes every text (any bytes of UTF-8) and decodes it back exactly, compresses the training
// text, puts BOS first, and the same text gives the same file.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "lib/core/error.h"
#include "lib/text/bpe_trainer.h"
#include "lib/text/tokenizer.h"
#include "tests/test_util.h"

namespace dsq::text {
namespace {

std::string sample_text() {
  std::string t;
  for (int i = 0; i < 40; ++i)
    t += "Once upon a time, a little girl named Lily found a shiny needle in her room. She wanted "
         "to share it with her mom, so she ran to the kitchen.\n\n";
  t += "Numbers 12345 and 2026, punctuation!? Tabs\tand  double spaces, caf\xC3\xA9, "
       "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C.\n";
  return t;
}

std::unique_ptr<Tokenizer> load(const testing::TempDir& tmp, const TrainedBpe& b) {
  std::ofstream(tmp.file("tokenizer.json")) << b.tokenizer_json.dump();
  std::ofstream(tmp.file("tokenizer_config.json")) << b.config_json.dump();
  return load_tokenizer({{"kind", "hf-json"}, {"path", tmp.file("tokenizer.json")}});
}

TEST(BpeTrainer, TrainedTokenizerRoundTripsAndCompresses) {
  testing::TempDir tmp;
  const std::string text = sample_text();
  BpeTrainOptions o;
  o.vocab_size = 300;
  const TrainedBpe b = train_bpe(text, o);
  EXPECT_EQ(b.vocab_size, 300);
  EXPECT_EQ(b.merges, 300 - 258);
  const auto tok = load(tmp, b);
  EXPECT_EQ(tok->vocab_size(), 300u);
  EXPECT_EQ(tok->bos_id(), 0);
  EXPECT_EQ(tok->eos_id(), 1);
  EXPECT_TRUE(tok->adds_bos());
  const std::vector<int32_t> ids = tok->encode(text, false);
  EXPECT_EQ(tok->decode(ids), text);
  // Fewer tokens than bytes on the text it learned, with only 42 merges.
  EXPECT_LT(ids.size() * 3, text.size() * 2);
  // Deterministic: the same text gives the same document.
  EXPECT_TRUE(train_bpe(text, o).tokenizer_json == b.tokenizer_json);
  // Given room, every word of this repetitive text becomes one token, and then the pairs run out
  // (no pair occurs twice any more) before the vocabulary is full.
  o.vocab_size = 1000;
  const TrainedBpe all = train_bpe(text, o);
  EXPECT_LT(all.vocab_size, 1000);
  const auto tok_all = load(tmp, all);
  EXPECT_EQ(tok_all->encode(" little", false).size(), 1u);
  EXPECT_EQ(tok_all->decode(tok_all->encode(text, false)), text);
  EXPECT_LT(tok_all->encode(text, false).size() * 3, text.size());
  // Text it never saw, including bytes that are not UTF-8 letters, still round-trips.
  const std::string other = "Zebras \xF0\x9F\xA6\x93 quickly jumped; 3.14159\r\n";
  EXPECT_EQ(tok->decode(tok->encode(other, false)), other);
  const auto with_bos = tok->encode("Lily", true);
  ASSERT_FALSE(with_bos.empty());
  EXPECT_EQ(with_bos[0], 0);
}

TEST(BpeTrainer, StopsWhenPairsRunOutAndRejectsTinyVocabularies) {
  BpeTrainOptions o;
  o.vocab_size = 100000;
  const TrainedBpe b = train_bpe("abab abab", o);  // "ab", " ab"... only a few pairs
  EXPECT_LT(b.vocab_size, 300);
  EXPECT_GT(b.merges, 0);
  o.vocab_size = 258;
  EXPECT_THROW(train_bpe("abc", o), UsageError);
}

}  // namespace
}  // namespace dsq::text
