// The dependency-free reader header agrees with the library on every tensor (names, dtypes,
// shapes, quant descriptions, bytes) and compiles on its own as C++17 with only the standard
// library. The library is used only to write files and as the reference.
#include "formats/dsq/dsq_reader_standalone.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "formats/dsq/dsq_reader.h"
#include "formats/dsq/dsq_writer.h"
#include "formats/format_table.h"
#include "lib/core/hash.h"
#include "tests/formats/dsq_test_util.h"
#include "tests/test_util.h"

namespace dsq::formats {
namespace {

using dsq::testing::TempDir;

// Library view of a .dsq: one line per tensor "name dtype [dims] bits/group/sym raw_bytes xxh64".
std::string library_listing(const std::string& path) {
  const WeightStore ws = open_model(path);
  std::ostringstream out;
  for (const auto& n : ws.names()) {
    const Tensor t = ws.get(n);
    out << n << ' ' << dtype_name(t.dtype()) << ' ' << shape_str(t.shape()) << ' ';
    if (t.dtype() == DType::kQInt)
      out << int(t.quant().bits()) << '/' << t.quant().group << '/' << t.quant().sym();
    else
      out << '-';
    out << ' ' << t.nbytes() << ' ' << std::hex << xxh64(t.bytes(), t.nbytes()) << std::dec << '\n';
  }
  return out.str();
}

// The same listing from the standalone reader (kept in sync with kProgram below).
std::string standalone_listing(const std::string& path) {
  dsq_standalone::Reader r(path);
  std::ostringstream out;
  for (const auto& t : r.tensors()) {
    out << t.name << ' ' << dsq_standalone::dtype_name(t.dtype) << " [";
    for (size_t i = 0; i < t.shape.size(); ++i) out << (i ? ", " : "") << t.shape[i];
    out << "] ";
    if (t.dtype == dsq_standalone::QINT)
      out << t.quant_bits << '/' << t.quant_group << '/' << t.quant_sym;
    else
      out << '-';
    const auto bytes = r.read(t);
    out << ' ' << bytes.size() << ' ' << std::hex << dsq_standalone::xxh64(bytes.data(), bytes.size())
        << std::dec << '\n';
  }
  return out.str();
}

std::string write_synthetic(const TempDir& tmp, int zstd) {
  DsqWriteOptions o;
  o.progress = false;
  o.zstd_level = zstd;
  const std::string path = tmp.file("s" + std::to_string(zstd) + ".dsq");
  write_dsq(dsq::testing::tiny_model(), path, o);
  return path;
}

TEST(DsqStandalone, AgreesWithLibraryOnSyntheticModel) {
  TempDir tmp;
  const std::string path = write_synthetic(tmp, 0);
  const std::string lib = library_listing(path);
  EXPECT_NE(lib.find("blk.1.ffn_down.weight qint [48, 40] 4/16/1"), std::string::npos) << lib;
  EXPECT_EQ(standalone_listing(path), lib);

  dsq_standalone::Reader r(path);
  EXPECT_EQ(r.version_major(), 1);
  const auto& cfg = r.header()["config"];
  const ModelConfig want = dsq::testing::tiny_config();
  EXPECT_EQ(cfg["n_layers"].as_int(), want.n_layers);
  EXPECT_EQ(cfg["n_kv_heads"].as_int(), want.n_kv_heads);
  EXPECT_EQ(cfg["arch"].as_string(), "llama");
  EXPECT_DOUBLE_EQ(cfg["rms_eps"].as_double(), want.rms_eps);
  EXPECT_EQ(cfg["tied_embeddings"].as_bool(), false);
  EXPECT_EQ(r.header()["tensors"]["blk.1.ffn_down.weight"]["attrs"]["note"].as_string(),
            "ragged last group");
  // The kQInt layout helper agrees with lib/core/quant_layout.h.
  const auto* t = r.find("blk.0.ffn_up.weight");
  ASSERT_NE(t, nullptr);
  const auto q = dsq_standalone::qint_layout(t->quant_bits, t->quant_group, t->quant_sym, 40, 48);
  const QuantLayout L = quant_layout({2, 16, false}, 40, 48);
  EXPECT_EQ(q.scales_offset, L.scales_offset);
  EXPECT_EQ(q.zeros_offset, L.zeros_offset);
  EXPECT_EQ(q.total_bytes, L.total_bytes);
}

// The standalone reader (the companion runtime's) knows every grouped-integer row of the table.
TEST(DsqStandalone, ReadsEveryGroupedIntegerScheme) {
  TempDir tmp;
  int checked = 0;
  for (const SchemeInfo& s : kSchemes) {
    if (!s.quantize_target()) continue;
    const QuantDesc q{s.id, 32};
    WeightStore ws = dsq::testing::tiny_model();
    const std::string name = "blk.0.attn_k.weight";
    const auto shape = ws.entry(name).shape;
    ws.replace(name, dsq::testing::qint_tensor(q, shape[0], shape[1], 60 + checked));
    DsqWriteOptions o;
    o.progress = false;
    const std::string path = tmp.file("q.dsq");
    write_dsq(ws, path, o);
    EXPECT_EQ(standalone_listing(path), library_listing(path)) << scheme_name(q);
    ++checked;
  }
  EXPECT_EQ(checked, 13);
}

TEST(DsqStandalone, ListsCompressedTensorsButRefusesToDecompress) {
  TempDir tmp;
  const std::string path = write_synthetic(tmp, 3);
  dsq_standalone::Reader r(path);
  const WeightStore ws = open_model(path);
  ASSERT_EQ(r.tensors().size(), ws.size());
  const auto idx = read_dsq_index(*MappedFile::open(path));
  int compressed = 0;
  for (const auto& t : idx.tensors) {
    const auto* s = r.find(t.name);
    ASSERT_NE(s, nullptr) << t.name;
    EXPECT_EQ(s->compression, t.compression);
    EXPECT_EQ(s->stored_bytes, t.stored_bytes);
    EXPECT_EQ(s->checksum, t.checksum);
    if (t.compression) {
      ++compressed;
      try {
        r.read(*s);
        ADD_FAILURE() << "read a compressed tensor";
      } catch (const dsq_standalone::Error& e) {
        EXPECT_NE(std::string(e.what()).find("is zstd-compressed"), std::string::npos) << e.what();
      }
    }
  }
  EXPECT_GT(compressed, 0);
}

TEST(DsqStandalone, HashBase64AndJsonMatchTheLibrary) {
  std::vector<uint8_t> d(300);
  uint32_t s = 1;
  for (auto& b : d) b = static_cast<uint8_t>(dsq::testing::lcg_value(s) * 127 + 128);
  for (size_t n = 0; n <= d.size(); n += 7)
    EXPECT_EQ(dsq_standalone::xxh64(d.data(), n, n), xxh64(d.data(), n, n)) << n;
  EXPECT_EQ(dsq_standalone::base64_decode("aGVsbG8="), "hello");
  EXPECT_EQ(dsq_standalone::base64_decode("aGVsbA=="), "hell");
  EXPECT_EQ(dsq_standalone::base64_decode("aGV*bA=="), std::nullopt);
  const auto j = dsq_standalone::Json::parse(
      R"({"a": [1, -2.5e3, true, null], "s": "\u00e9\ud83d\ude00\n", "big": 9007199254740993})");
  EXPECT_EQ(j["a"].items().size(), 4u);
  EXPECT_DOUBLE_EQ(j["a"].items()[1].as_double(), -2500.0);
  EXPECT_TRUE(j["a"].items()[2].as_bool());
  EXPECT_EQ(j["s"].as_string(), "\xc3\xa9\xf0\x9f\x98\x80\n");
  EXPECT_EQ(j["big"].as_int(), 9007199254740993);  // exact beyond 2^53
  EXPECT_TRUE(j["missing"]["deeper"].is_null());
  EXPECT_THROW(dsq_standalone::Json::parse("{\"a\": }"), dsq_standalone::Error);
  EXPECT_THROW(dsq_standalone::Json::parse("[1, 2"), dsq_standalone::Error);
  EXPECT_THROW(dsq_standalone::Json::parse(std::string(1000, '[')), dsq_standalone::Error);
}

// A runtime's view: compiled alone with -std=c++17 -pedantic and no include path.
constexpr const char* kProgram = R"(#include "HEADER"
#include <cstdio>
int main(int argc, char** argv) {
  try {
    dsq_standalone::Reader r(argv[1]);
    for (const auto& t : r.tensors()) {
      std::printf("%s %s [", t.name.c_str(), dsq_standalone::dtype_name(t.dtype));
      for (size_t i = 0; i < t.shape.size(); ++i)
        std::printf("%s%lld", i ? ", " : "", static_cast<long long>(t.shape[i]));
      std::printf("] ");
      if (t.dtype == dsq_standalone::QINT) std::printf("%u/%u/%d", t.quant_bits, t.quant_group, t.quant_sym ? 1 : 0);
      else std::printf("-");
      const auto b = r.read(t);
      std::printf(" %zu %llx\n", b.size(), static_cast<unsigned long long>(dsq_standalone::xxh64(b.data(), b.size())));
    }
  } catch (const dsq_standalone::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return argc > 2 ? 3 : 0;
}
)";

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

TEST(DsqStandalone, CompilesAloneAsCxx17AndAgrees) {
  if (std::system("command -v c++ >/dev/null 2>&1") != 0) GTEST_SKIP() << "no c++ compiler on PATH";
  TempDir tmp;
  std::string prog = kProgram;
  prog.replace(prog.find("HEADER"), 6,
               std::string(DSQ_SOURCE_DIR) + "/formats/dsq/dsq_reader_standalone.h");
  std::ofstream(tmp.file("main.cpp")) << prog;
  const std::string exe = tmp.file("reader");
  const std::string compile = "c++ -std=c++17 -O1 -Wall -Wextra -Werror -pedantic " +
                              tmp.file("main.cpp") + " -o " + exe + " 2>&1";
  const std::string diag = run(compile);
  ASSERT_TRUE(std::filesystem::exists(exe)) << diag;
  const std::string path = write_synthetic(tmp, 0);
  EXPECT_EQ(run(exe + " " + path), library_listing(path));
}

TEST(DsqStandalone, AgreesOnConvertedStories260K) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string hf = shared + "/models/stories260K/hf";
  const std::string path = tmp.file("s.dsq");
  DsqWriteOptions o;
  o.progress = false;
  write_dsq(open_model(hf), path, o);
  EXPECT_EQ(standalone_listing(path), library_listing(path));
  dsq_standalone::Reader r(path);
  EXPECT_EQ(r.tensors().size(), 47u);  // tied: no output.weight
  std::ifstream tok(hf + "/tokenizer.model", std::ios::binary);
  const std::string want((std::istreambuf_iterator<char>(tok)), {});
  EXPECT_EQ(want.size(), 7522u);
  EXPECT_EQ(r.embedded_file("tokenizer.model"), want);
}

}  // namespace
}  // namespace dsq::formats
