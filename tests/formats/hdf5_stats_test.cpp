// HDF5 statistics files: round trip, atomic commit, and rejection of malformed files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "formats/hdf5/hdf5_file.h"
#include "formats/hdf5/stats_file.h"
#include "lib/core/error.h"
#include "tests/test_util.h"

namespace dsq::formats::hdf5 {
namespace {

InputStats make_stats(int64_t layer, const std::string& group, int64_t n) {
  InputStats s;
  s.layer = layer;
  s.group = group;
  s.linears = {"attn_q", "attn_k", "attn_v"};
  s.n_in = n;
  s.n_tokens = 1000 + layer;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) s.hessian.push_back(1.0 / (1.0 + std::abs(i - j)) + 0.25 * layer);
    s.abs_mean.push_back(0.5 + 0.01 * static_cast<double>(i));
    s.abs_max.push_back(3.0 + std::sqrt(static_cast<double>(i)));
  }
  return s;
}

void write_file(const std::string& path, int64_t n) {
  Writer w(path);
  StatsHeader h;
  h.n_layers = 2;
  h.model = "synthetic";
  h.recipe = {{"calib_samples", 4}, {"bits", 4}};
  write_stats_header(w, h);
  write_input_stats(w, make_stats(0, "attn_in", n));
  write_input_stats(w, make_stats(1, "ffn_out", n));
  w.commit();
}

TEST(Hdf5Stats, RoundTripIsExact) {
  testing::TempDir tmp;
  const std::string path = tmp.file("s.h5");
  write_file(path, 5);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  Reader r(path);
  const StatsHeader h = read_stats_header(r);
  EXPECT_EQ(h.kind, "sequential");
  EXPECT_EQ(h.n_layers, 2);
  EXPECT_EQ(h.model, "synthetic");
  EXPECT_EQ(h.recipe.at("bits"), 4);
  const InputStats want = make_stats(1, "ffn_out", 5);
  const InputStats got = read_input_stats(r, 1, "ffn_out", 5);
  EXPECT_EQ(got.linears, want.linears);
  EXPECT_EQ(got.n_tokens, want.n_tokens);
  EXPECT_EQ(got.hessian, want.hessian);  // f64 stored bit for bit
  EXPECT_EQ(got.abs_mean, want.abs_mean);
  EXPECT_EQ(got.abs_max, want.abs_max);
  EXPECT_EQ(r.children("/"), (std::vector<std::string>{"blk.0", "blk.1"}));
  EXPECT_EQ(r.children("blk.0"), (std::vector<std::string>{"attn_in"}));
}

// AWQ results ride along a group: scales and per-linear clip ratios round-trip, their absence is
// reported as "no results", and bad values or shapes are rejected naming the dataset.
TEST(Hdf5Stats, AwqSearchRoundTripAndChecks) {
  testing::TempDir tmp;
  const std::string path = tmp.file("awq.h5");
  AwqSearch a;
  a.alpha = 0.35;
  a.scales = {0.5, 1.0, 2.0, 1.5, 0.75};
  a.clips = {{"attn_v", 2, 3, {1.0f, 0.95f, 0.9f, 0.85f, 0.8f, 0.55f}}};
  {
    Writer w(path);
    StatsHeader h;
    h.n_layers = 2;
    write_stats_header(w, h);
    write_input_stats(w, make_stats(0, "attn_in", 5));
    write_awq_search(w, 0, "attn_in", a);
    write_input_stats(w, make_stats(1, "ffn_out", 5));
    AwqSearch bad;
    bad.scales = {1.0, -1.0, 1.0, 1.0, 1.0};
    write_awq_search(w, 1, "ffn_out", bad);
    w.commit();
  }
  Reader r(path);
  const auto got = read_awq_search(r, 0, "attn_in", 5, {{"attn_v", 2, 3, {}}});
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->alpha, 0.35);
  EXPECT_EQ(got->scales, a.scales);
  ASSERT_EQ(got->clips.size(), 1u);
  EXPECT_EQ(got->clips[0].ratios, a.clips[0].ratios);
  // The input statistics of the group are untouched by the extra datasets.
  EXPECT_EQ(read_input_stats(r, 0, "attn_in", 5).hessian, make_stats(0, "attn_in", 5).hessian);
  write_file(tmp.file("plain.h5"), 5);
  EXPECT_FALSE(read_awq_search(Reader(tmp.file("plain.h5")), 0, "attn_in", 5, {}).has_value());
  EXPECT_THROW(read_awq_search(r, 0, "attn_in", 4, {}), ShapeError);                   // n_in
  EXPECT_THROW(read_awq_search(r, 0, "attn_in", 5, {{"attn_v", 3, 3, {}}}), ShapeError);  // rows
  EXPECT_THROW(read_awq_search(r, 0, "attn_in", 5, {{"attn_o", 2, 3, {}}}), FormatError);
  try {
    read_awq_search(r, 1, "ffn_out", 5, {});
    ADD_FAILURE() << "negative scale accepted";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("blk.1/ffn_out/awq_scales"), std::string::npos) << e.what();
  }
}

TEST(Hdf5Stats, UncommittedWriterLeavesNothing) {
  testing::TempDir tmp;
  const std::string path = tmp.file("s.h5");
  {
    Writer w(path);
    write_input_stats(w, make_stats(0, "attn_in", 3));
  }
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Hdf5Stats, CopyFromMergesFiles) {
  testing::TempDir tmp;
  for (int l = 0; l < 2; ++l) {
    Writer w(tmp.file("part" + std::to_string(l) + ".h5"));
    write_input_stats(w, make_stats(l, "attn_in", 4));
    w.commit();
  }
  {
    Writer w(tmp.file("all.h5"));
    StatsHeader h;
    h.n_layers = 2;
    write_stats_header(w, h);
    w.copy_from(tmp.file("part0.h5"), "blk.0");
    w.copy_from(tmp.file("part1.h5"), "blk.1");
    w.commit();
  }
  Reader r(tmp.file("all.h5"));
  EXPECT_EQ(read_input_stats(r, 1, "attn_in", 4).hessian, make_stats(1, "attn_in", 4).hessian);
  EXPECT_EQ(read_input_stats(r, 0, "attn_in", 4).n_tokens, 1000);
}

TEST(Hdf5Stats, WriterRejectsNonFinite) {
  testing::TempDir tmp;
  Writer w(tmp.file("s.h5"));
  InputStats s = make_stats(0, "attn_in", 3);
  s.hessian[4] = std::numeric_limits<double>::quiet_NaN();
  try {
    write_input_stats(w, s);
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'blk.0/attn_in/hessian': element 4 is not finite"),
              std::string::npos)
        << e.what();
  }
}

// Named corruptions of a valid file; each must be rejected with a specific message.
enum class Corruption { kBadMagic, kTruncated, kNoVersion, kWrongVersion, kWrongWidth,
                        kMissingGroup, kWrongShape, kEmptyFile };

std::string corrupt(const testing::TempDir& tmp, Corruption c) {
  const std::string path = tmp.file("bad.h5");
  switch (c) {
    case Corruption::kBadMagic:
    case Corruption::kTruncated: {
      write_file(path, 16);
      std::string bytes;
      {
        std::ifstream f(path, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(f), {});
      }
      if (c == Corruption::kBadMagic) bytes[1] = 'X';
      else bytes.resize(bytes.size() / 2);
      std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
      break;
    }
    case Corruption::kNoVersion: {
      Writer w(path);
      w.set_attr("/", "kind", "sequential");
      w.commit();
      break;
    }
    case Corruption::kWrongVersion: {
      Writer w(path);
      w.set_attr("/", "dsq_stats_version", int64_t{99});
      w.commit();
      break;
    }
    case Corruption::kWrongWidth:
    case Corruption::kMissingGroup: write_file(path, 5); break;
    case Corruption::kWrongShape: {
      Writer w(path);
      write_stats_header(w, StatsHeader{"sequential", 1, "m", nlohmann::json::object()});
      InputStats s = make_stats(0, "attn_in", 4);
      w.write_f64("blk.0/attn_in/hessian", {4, 3}, s.hessian.data());
      w.set_attr("blk.0/attn_in", "n_in", int64_t{4});
      w.set_attr("blk.0/attn_in", "n_tokens", int64_t{10});
      w.commit();
      break;
    }
    case Corruption::kEmptyFile: std::ofstream(path, std::ios::binary); break;
  }
  return path;
}

// Opens and reads the corrupted file the way --load-stats does; returns the error message.
std::string load_error(const std::string& path) {
  try {
    Reader r(path);
    read_stats_header(r);
    read_input_stats(r, 0, "attn_in", 5);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Hdf5Stats, MalformedFilesAreRejected) {
  const std::pair<Corruption, const char*> cases[] = {
      {Corruption::kBadMagic, "not an HDF5 file"},
      {Corruption::kTruncated, "truncated"},
      {Corruption::kNoVersion, "not a dsq statistics file"},
      {Corruption::kWrongVersion, "statistics version 99 is not supported"},
      {Corruption::kWrongShape, "n_in is 4, the model needs 5"},
      {Corruption::kEmptyFile, "not an HDF5 file"},
  };
  for (const auto& [c, want] : cases) {
    testing::TempDir tmp;
    const std::string msg = load_error(corrupt(tmp, c));
    EXPECT_NE(msg.find(want), std::string::npos) << static_cast<int>(c) << ": " << msg;
  }
  testing::TempDir tmp;
  const std::string path = corrupt(tmp, Corruption::kWrongWidth);
  Reader r(path);
  EXPECT_THROW(read_input_stats(r, 0, "attn_in", 7), ShapeError);
  EXPECT_THROW(read_input_stats(r, 0, "ffn_in", 5), FormatError);
  EXPECT_THROW(read_input_stats(r, 4, "attn_in", 5), FormatError);
}

// The recipe the pipeline compares with its own (--load-stats): its 'quantize' and that one's
// 'method_options' must be objects, or the file is refused on open (not an nlohmann exception
// from the comparison, in the child that reads the file first or in the run).
TEST(Hdf5Stats, RecipeOfTheWrongShapeIsRefused) {
  for (const nlohmann::json& recipe :
       {nlohmann::json{{"quantize", 5}}, nlohmann::json{{"quantize", {{"method_options", "x"}}}}}) {
    testing::TempDir tmp;
    const std::string path = tmp.file("s.h5");
    {
      Writer w(path);
      write_stats_header(w, StatsHeader{"sequential", 1, "m", recipe});
      w.commit();
    }
    try {
      const Reader r(path);
      read_stats_header(r);
      ADD_FAILURE() << recipe.dump() << ": no error";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("must be JSON objects"), std::string::npos) << e.what();
    }
  }
}

TEST(Hdf5Stats, ShapeMismatchNamesDataset) {
  testing::TempDir tmp;
  const std::string path = corrupt(tmp, Corruption::kWrongShape);
  Reader r(path);
  try {
    read_input_stats(r, 0, "attn_in", 4);
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("'blk.0/attn_in/hessian': expected shape [4, 4], "
                                         "found [4, 3]"),
              std::string::npos)
        << e.what();
  }
}

// Every handle a Reader or Writer opens is closed again, also when a read of a malformed file
// throws halfway (the fuzz harness checks the same after every input).
TEST(Hdf5Stats, NoObjectStaysOpen) {
  ASSERT_EQ(open_object_count(), 0);
  testing::TempDir tmp;
  const std::string path = tmp.file("s.h5");
  {
    Writer w(path);
    write_stats_header(w, StatsHeader{"sequential", 1, "m", nlohmann::json::object()});
    write_input_stats(w, make_stats(0, "attn_in", 5));
    EXPECT_GE(open_object_count(), 1);
    w.commit();
  }
  EXPECT_EQ(open_object_count(), 0);
  {
    const Reader r(path);
    EXPECT_EQ(open_object_count(), 1);  // the file
    (void)read_input_stats(r, 0, "attn_in", 5);
    EXPECT_EQ(open_object_count(), 1);
  }
  EXPECT_EQ(open_object_count(), 0);
  for (const Corruption c : {Corruption::kBadMagic, Corruption::kTruncated, Corruption::kNoVersion,
                             Corruption::kWrongVersion, Corruption::kWrongShape}) {
    testing::TempDir t;
    EXPECT_FALSE(load_error(corrupt(t, c)).empty());
    EXPECT_EQ(open_object_count(), 0) << static_cast<int>(c);
  }
}

TEST(Hdf5Stats, MissingFileIsIoError) {
  EXPECT_THROW(Reader("/nonexistent/dir/s.h5"), IoError);
}

}  // namespace
}  // namespace dsq::formats::hdf5
