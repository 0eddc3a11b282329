// Calibration data: deterministic window draws, BOS handling, scaling down, text sources.
#include "calibration/calib_data.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "lib/core/error.h"
#include "tests/test_util.h"

namespace dsq::calibration {
namespace {

void write_u32(const std::string& path, const std::vector<uint32_t>& ids) {
  std::ofstream f(path, std::ios::binary);
  for (uint32_t v : ids) {
    const unsigned char b[4] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                                static_cast<unsigned char>(v >> 16), static_cast<unsigned char>(v >> 24)};
    f.write(reinterpret_cast<const char*>(b), 4);
  }
}

// Stream 1 (BOS), then 2, 3, ..., n+1 (ids mod 500 + 2 so they stay in a 512 vocab).
std::vector<uint32_t> ramp(int64_t n) {
  std::vector<uint32_t> v = {1};
  for (int64_t i = 0; i < n; ++i) v.push_back(static_cast<uint32_t>(2 + i % 500));
  return v;
}

TEST(CalibData, DrawSlotsIsDeterministicDistinctAndSorted) {
  const auto a = draw_slots(1000, 128, 7);
  EXPECT_EQ(a, draw_slots(1000, 128, 7));
  EXPECT_NE(a, draw_slots(1000, 128, 8));
  ASSERT_EQ(a.size(), 128u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 128u);
  EXPECT_GE(a.front(), 0);
  EXPECT_LT(a.back(), 1000);
  const auto all = draw_slots(50, 50, 3);  // every slot exactly once
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(all[static_cast<size_t>(i)], i);
  // Golden values from an independent Python splitmix64 + Fisher-Yates: the draw is part of the
  // recipe (same seed, same windows on every platform).
  EXPECT_EQ(draw_slots(10, 3, 0), (std::vector<int64_t>{1, 5, 9}));
  EXPECT_EQ(draw_slots(1000, 5, 7), (std::vector<int64_t>{212, 487, 720, 727, 842}));
}

TEST(CalibData, WindowsAreBosPlusContiguousSlices) {
  testing::TempDir tmp;
  const std::string path = tmp.file("c.u32");
  write_u32(path, ramp(10000));
  CalibOptions o;
  o.paths = {path};
  o.n_samples = 16;
  o.seq_len = 64;
  o.seed = 5;
  const CalibData d = load_calib_data(o, 512, 1, nullptr);
  ASSERT_EQ(d.n_samples, 16);
  ASSERT_EQ(d.seq_len, 64);
  std::set<int32_t> starts;
  for (int64_t i = 0; i < d.n_samples; ++i) {
    const auto w = d.window(i);
    EXPECT_EQ(w[0], 1);
    EXPECT_NE(w[1], 1) << "leading BOS of the stream must be dropped";
    for (size_t t = 2; t < w.size(); ++t) EXPECT_EQ((w[t] - 2) % 500, (w[t - 1] - 2 + 1) % 500);
    // Slots of 63 stream ids: a window's first stream id is 2 + (63 k) % 500.
    starts.insert(w[1]);
  }
  EXPECT_EQ(starts.size(), 16u);
  EXPECT_EQ(d.recipe.at("samples"), 16);
  EXPECT_EQ(d.recipe.at("files")[0].at("file"), "c.u32");
  EXPECT_EQ(d.recipe.at("files")[0].at("sha256").get<std::string>().size(), 64u);
  o.bos = false;
  const CalibData nb = load_calib_data(o, 512, 1, nullptr);
  EXPECT_NE(nb.tokens, d.tokens);
  EXPECT_EQ(nb.tokens.size(), d.tokens.size());
}

// Two files: windows come from both in proportion to their length (slots of 63 ids: 10000 ids
// give 158 slots, 3000 ids 47), never straddle a file, and the recipe names both.
TEST(CalibData, SeveralFilesMixInProportion) {
  testing::TempDir tmp;
  const std::string a = tmp.file("a.u32"), b = tmp.file("b.u32");
  write_u32(a, ramp(10000));
  std::vector<uint32_t> other(3000);
  for (size_t i = 0; i < other.size(); ++i) other[i] = 507;  // a constant stream, easy to spot
  write_u32(b, other);
  CalibOptions o;
  o.paths = {a, b};
  o.n_samples = 205;  // every slot of both files
  o.seq_len = 64;
  const CalibData d = load_calib_data(o, 512, 1, nullptr);
  ASSERT_EQ(d.n_samples, 205);
  int64_t from_b = 0;
  for (int64_t i = 0; i < d.n_samples; ++i) {
    const auto w = d.window(i);
    const bool in_b = w[1] == 507;
    from_b += in_b;
    for (size_t t = 2; t < w.size(); ++t) EXPECT_EQ(w[t] == 507, in_b) << "window straddles files";
  }
  EXPECT_EQ(from_b, 47);
  ASSERT_EQ(d.recipe.at("files").size(), 2u);
  EXPECT_EQ(d.recipe.at("files")[1].at("stream_tokens"), 3000);
  o.n_samples = 40;  // a draw mixes both
  const CalibData m = load_calib_data(o, 512, 1, nullptr);
  int64_t mixed_b = 0;
  for (int64_t i = 0; i < m.n_samples; ++i) mixed_b += m.window(i)[1] == 507;
  EXPECT_GT(mixed_b, 0);
  EXPECT_LT(mixed_b, 40);
}

TEST(CalibData, ShortFilesScaleDown) {
  testing::TempDir tmp;
  const std::string path = tmp.file("short.u32");
  write_u32(path, ramp(1000));  // 1000 ids after the BOS: 15 windows of 1 + 63
  CalibOptions o;
  o.paths = {path};
  o.seq_len = 64;
  const CalibData d = load_calib_data(o, 512, 1, nullptr);
  EXPECT_EQ(d.n_samples, 15);
  EXPECT_EQ(d.seq_len, 64);
  o.seq_len = 4096;  // longer than the stream: one shortened window
  const CalibData one = load_calib_data(o, 512, 1, nullptr);
  EXPECT_EQ(one.n_samples, 1);
  EXPECT_EQ(one.seq_len, 1001);
}

TEST(CalibData, BadInputsAreRejected) {
  testing::TempDir tmp;
  const std::string path = tmp.file("c.u32");
  write_u32(path, {1, 5, 600, 7});
  CalibOptions o;
  o.paths = {path};
  try {
    load_calib_data(o, 512, 1, nullptr);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("token 2 has id 600, outside the vocabulary [0, 512)"),
              std::string::npos) << e.what();
  }
  o.paths = {tmp.file("c.txt")};
  std::ofstream(o.paths.front()) << "hello";
  EXPECT_THROW(load_calib_data(o, 512, 1, nullptr), ConfigError);
  o.paths = {tmp.file("c.bin")};
  std::ofstream(o.paths.front()) << "x";
  EXPECT_THROW(load_calib_data(o, 512, 1, nullptr), UsageError);
  o.paths = {path};
  o.n_samples = 0;
  EXPECT_THROW(load_calib_data(o, 512, 1, nullptr), UsageError);
  o.n_samples = 4;
  o.paths = {tmp.file("odd.u32")};
  std::ofstream(o.paths.front()) << "abcde";
  EXPECT_THROW(load_calib_data(o, 512, 1, nullptr), FormatError);
}

TEST(CalibData, TextAndJsonlUseTheModelTokenizer) {
  DSQ_REQUIRE_SHARED(shared);
  const auto tok = text::load_tokenizer_file(shared + "/models/stories260K/tok512.model");
  testing::TempDir tmp;
  const std::string a = "Once upon a time, there was a little girl named Lily.";
  const std::string b = "She loved to play outside in the park.";
  const std::string jl = tmp.file("c.jsonl");
  std::ofstream(jl) << nlohmann::json{{"text", a}, {"id", 1}}.dump() << "\n\n"
                    << nlohmann::json{{"text", b}}.dump() << "\n";
  std::vector<int32_t> want = tok->encode(a, false);
  const auto wb = tok->encode(b, false);
  want.insert(want.end(), wb.begin(), wb.end());
  EXPECT_EQ(read_calib_stream(jl, tok.get(), 512), want);
  // The shared .u32 files are [BOS] + encode(text) of the TinyStories excerpt: the text path
  // reproduces the calibration ids for a prefix that ends at a story boundary.
  std::string text = text::load_text_file(shared + "/data/tinystories-train-excerpt.txt");
  text.resize(text.find('\n', 4000) + 1);
  const std::string txt = tmp.file("c.txt");
  std::ofstream(txt) << text;
  const auto ids = read_calib_stream(txt, tok.get(), 512);
  const auto ref = text::read_token_ids(shared + "/data/tinystories-calib.stories260K.u32");
  ASSERT_GT(ids.size(), 500u);
  EXPECT_TRUE(std::equal(ids.begin(), ids.end(), ref.begin() + 1));
  const std::string bad = tmp.file("bad.jsonl");
  std::ofstream(bad) << "{\"txt\": \"x\"}\n";
  try {
    read_calib_stream(bad, tok.get(), 512);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("line 1 has no string field 'text'"), std::string::npos);
  }
}

}  // namespace
}  // namespace dsq::calibration
