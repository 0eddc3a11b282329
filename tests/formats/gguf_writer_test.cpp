// GgufWriter: files it writes read back through dsq's GGUF parser and through llama.cpp's own
// Python GGUF package (../shared/oracles/gguf-py, an outside oracle): every metadata value with
// its type, every tensor's shape, type, offset alignment and bytes. Bad requests leave no file.
#include "formats/gguf/gguf_writer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "lib/core/error.h"
#include "tests/test_util.h"

namespace dsq::formats {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = static_cast<uint8_t>(g());
  return b;
}

// A small file: typed metadata of every kind dsq writes, an f32 matrix, a Q4_0 matrix, an f16
// vector and a 3-D i32 tensor, written in an order other than declared.
struct Sample {
  GgufMetadata md = {
      {"general.architecture", gguf_string("llama")},
      {"general.name", gguf_string("näive \"quoted\" name")},
      {"llama.block_count", gguf_u32(2)},
      {"llama.context_length", gguf_u32(4096)},
      {"llama.rope.freq_base", gguf_f32(10000.0)},
      {"llama.attention.layer_norm_rms_epsilon", gguf_f32(1e-5)},
      {"tokenizer.ggml.add_bos_token", gguf_bool(true)},
      {"some.signed", gguf_i32(-7)},
      {"tokenizer.ggml.tokens", gguf_array(GgufValueType::kString, json::array({"<unk>", "▁the", "<0x0A>"}))},
      {"tokenizer.ggml.scores", gguf_array(GgufValueType::kF32, json::array({0.0, -1.5, -2.25}))},
      {"tokenizer.ggml.token_type", gguf_array(GgufValueType::kI32, json::array({2, 1, 6}))},
  };
  std::vector<GgufTensorDecl> decls = {{"a.weight", {64, 3}},  // f32 [3, 64]
                                       {"b.weight", {64, 5}},  // q4_0: 2 blocks per row
                                       {"c.norm", {10}},       // f16
                                       {"d.ids", {2, 3, 4}}};  // i32
  std::vector<uint8_t> a = random_bytes(64 * 3 * 4, 1), b = random_bytes(2 * 18 * 5, 2),
                       c = random_bytes(10 * 2, 3), d = random_bytes(24 * 4, 4);
  void write(const std::string& path, uint64_t alignment) const {
    GgufWriter w(path, md, decls, alignment);
    w.add_tensor("c.norm", GgmlType::kF16, c.data(), c.size());
    w.add_tensor("b.weight", GgmlType::kQ4_0, b.data(), b.size());
    w.add_tensor("a.weight", GgmlType::kF32, a.data(), a.size());
    w.add_tensor("d.ids", GgmlType::kI32, d.data(), d.size());
    w.finish();
  }
};

TEST(GgufWriter, ReadsBackThroughDsqsParser) {
  dsq::testing::TempDir tmp;
  const Sample s;
  for (const uint64_t alignment : {uint64_t{32}, uint64_t{64}}) {
    const std::string path = tmp.file("x" + std::to_string(alignment) + ".gguf");
    s.write(path, alignment);
    ASSERT_FALSE(fs::exists(path + ".tmp"));
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), alignment);
    EXPECT_EQ(f.metadata()["general.name"], "näive \"quoted\" name");
    EXPECT_EQ(f.metadata()["llama.block_count"], 2);
    EXPECT_EQ(f.metadata_type("llama.block_count")->type, GgufValueType::kU32);
    EXPECT_EQ(f.metadata_type("some.signed")->type, GgufValueType::kI32);
    EXPECT_EQ(f.metadata()["some.signed"], -7);
    EXPECT_EQ(f.metadata_type("llama.rope.freq_base")->type, GgufValueType::kF32);
    EXPECT_FLOAT_EQ(f.metadata()["llama.attention.layer_norm_rms_epsilon"].get<float>(), 1e-5f);
    EXPECT_EQ(f.metadata()["tokenizer.ggml.add_bos_token"], true);
    EXPECT_EQ(f.metadata()["tokenizer.ggml.tokens"], json::array({"<unk>", "▁the", "<0x0A>"}));
    EXPECT_EQ(f.metadata_type("tokenizer.ggml.scores")->elem, GgufValueType::kF32);
    EXPECT_EQ(f.metadata()["tokenizer.ggml.token_type"], json::array({2, 1, 6}));
    ASSERT_EQ(f.tensors().size(), 4u);
    EXPECT_EQ(f.tensors()[0].name, "a.weight");  // table in declared order
    const std::pair<const char*, const std::vector<uint8_t>*> want[] = {
        {"a.weight", &s.a}, {"b.weight", &s.b}, {"c.norm", &s.c}, {"d.ids", &s.d}};
    for (const auto& [name, bytes] : want) {
      const GgufTensorInfo* t = f.find_tensor(name);
      ASSERT_NE(t, nullptr) << name;
      EXPECT_EQ(t->offset % alignment, 0u) << name;
      ASSERT_EQ(t->nbytes, bytes->size()) << name;
      EXPECT_EQ(std::memcmp(f.tensor_data(*t), bytes->data(), bytes->size()), 0) << name;
    }
    EXPECT_EQ(f.find_tensor("b.weight")->type, GgmlType::kQ4_0);
    EXPECT_EQ(f.find_tensor("d.ids")->ne, (std::vector<int64_t>{2, 3, 4}));
  }
}

// The outside oracle: llama.cpp's gguf-py reads the same file; its view is printed as JSON.
TEST(GgufWriter, LlamaCppsGgufPyReadsIt) {
  DSQ_REQUIRE_SHARED(shared);
  DSQ_REQUIRE_GGUF_PY();
  dsq::testing::TempDir tmp;
  const Sample s;
  const std::string path = tmp.file("x.gguf");
  s.write(path, 32);
  const std::string script = tmp.file("read.py"), out = tmp.file("out.json");
  std::ofstream(script) << R"(import json, sys
import numpy as np
import gguf
r = gguf.GGUFReader(sys.argv[1])
def value(f, i):
    part = f.parts[i]
    if f.types[-1] == gguf.GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    return part.tolist()[0]
md = {}
for k, f in r.fields.items():
    if k.startswith("GGUF."):
        continue
    v = [value(f, i) for i in f.data]
    md[k] = {"type": int(f.types[0]), "value": v if f.types[0] == gguf.GGUFValueType.ARRAY else v[0]}
ts = [{"name": t.name, "type": int(t.tensor_type), "shape": [int(x) for x in t.shape],
       "offset": int(t.data_offset), "hex": np.asarray(t.data).tobytes().hex()} for t in r.tensors]
json.dump({"metadata": md, "tensors": ts, "alignment": int(r.alignment)}, open(sys.argv[2], "w"))
)";
  const std::string cmd = "PYTHONPATH='" + shared + "/oracles/gguf-py' /usr/bin/python3 '" + script +
                          "' '" + path + "' '" + out + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "gguf-py failed (python3-numpy installed?): " << cmd;
  std::ifstream in(out);
  const json r = json::parse(in);
  const json& md = r["metadata"];
  EXPECT_EQ(md["general.architecture"]["value"], "llama");
  EXPECT_EQ(md["general.name"]["value"], "näive \"quoted\" name");
  EXPECT_EQ(md["llama.block_count"]["type"], 4);  // GGUFValueType.UINT32
  EXPECT_EQ(md["llama.block_count"]["value"], 2);
  EXPECT_EQ(md["some.signed"]["type"], 5);  // INT32
  EXPECT_EQ(md["some.signed"]["value"], -7);
  EXPECT_FLOAT_EQ(md["llama.attention.layer_norm_rms_epsilon"]["value"].get<float>(), 1e-5f);
  EXPECT_EQ(md["tokenizer.ggml.add_bos_token"]["value"], true);
  EXPECT_EQ(md["tokenizer.ggml.tokens"]["value"], json::array({"<unk>", "▁the", "<0x0A>"}));
  EXPECT_EQ(md["tokenizer.ggml.scores"]["value"], json::array({0.0, -1.5, -2.25}));
  EXPECT_EQ(md["tokenizer.ggml.token_type"]["value"], json::array({2, 1, 6}));
  ASSERT_EQ(r["tensors"].size(), 4u);
  auto hex = [](const std::vector<uint8_t>& b) {
    std::ostringstream o;
    for (const uint8_t x : b) {
      char buf[3];
      std::snprintf(buf, sizeof buf, "%02x", x);
      o << buf;
    }
    return o.str();
  };
  const json& t = r["tensors"];
  EXPECT_EQ(t[0]["name"], "a.weight");
  EXPECT_EQ(t[0]["type"], 0);  // F32
  EXPECT_EQ(t[0]["shape"], json::array({64, 3}));
  EXPECT_EQ(t[0]["hex"], hex(s.a));
  EXPECT_EQ(t[1]["type"], 2);  // Q4_0
  EXPECT_EQ(t[1]["hex"], hex(s.b));
  EXPECT_EQ(t[2]["type"], 1);  // F16
  EXPECT_EQ(t[2]["hex"], hex(s.c));
  EXPECT_EQ(t[3]["type"], 26);  // I32
  EXPECT_EQ(t[3]["shape"], json::array({2, 3, 4}));
  EXPECT_EQ(t[3]["hex"], hex(s.d));
}

TEST(GgufWriter, BadRequestsAreOneLineErrorsAndLeaveNoFile) {
  dsq::testing::TempDir tmp;
  const Sample s;
  const std::string path = tmp.file("bad.gguf");
  auto no_file = [&] { return !fs::exists(path) && !fs::exists(path + ".tmp"); };
  auto expect_error = [&](auto&& fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error for: " << needle;
    } catch (const FormatError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(needle), std::string::npos) << m;
      EXPECT_NE(m.find(path), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    EXPECT_TRUE(no_file()) << needle;
  };
  expect_error([&] {  // a ragged row: 172 is not a multiple of Q4_0's 32
    GgufWriter w(path, s.md, {{"r", {172, 2}}});
    const std::vector<uint8_t> b(1000);
    w.add_tensor("r", GgmlType::kQ4_0, b.data(), b.size());
  }, "172");
  expect_error([&] {
    GgufWriter w(path, s.md, s.decls);
    w.add_tensor("a.weight", GgmlType::kF32, s.a.data(), s.a.size() - 4);
  }, "a.weight");
  expect_error([&] {
    GgufWriter w(path, s.md, s.decls);
    w.add_tensor("zzz", GgmlType::kF32, s.a.data(), 4);
  }, "zzz");
  expect_error([&] {
    GgufWriter w(path, s.md, s.decls);
    w.add_tensor("a.weight", GgmlType::kF32, s.a.data(), s.a.size());
    w.finish();  // the others are missing
  }, "declared but not written");
  expect_error([&] { GgufWriter w(path, {{"k", gguf_u32(1ull << 33)}}, {}); }, "u32");
  expect_error([&] { GgufWriter w(path, {{"k", gguf_u32(1)}, {"k", gguf_u32(2)}}, {}); }, "repeated");
  expect_error([&] { GgufWriter w(path, s.md, {{"t", {4}}, {"t", {4}}}); }, "declared twice");
}

}  // namespace
}  // namespace dsq::formats
