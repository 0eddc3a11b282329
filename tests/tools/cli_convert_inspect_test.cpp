// `dsq convert` and `dsq inspect` through the built binary: real conversions of stories260K from
// all three source formats give bit-identical tensors, inspect reports what the model holds,
// and bad input / bad flags give exit codes 1 / 2 with no output file left behind.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "formats/dsq/dsq_writer.h"
#include "formats/format_table.h"
#include "tests/formats/dsq_test_util.h"
#include "tests/test_util.h"
#include "tests/tools/cli_run.h"

namespace dsq {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

using testing::read_text;
using testing::run_dsq;
using CliResult = testing::CliRun;

std::string synthetic_dsq(const TempDir& tmp) {
  formats::DsqWriteOptions o;
  o.progress = false;
  const std::string p = tmp.file("synthetic.dsq");
  formats::write_dsq(testing::tiny_model(), p, o);
  return p;
}

void expect_identical_tensors(const WeightStore& a, const WeightStore& b) {
  ASSERT_EQ(a.names(), b.names());
  for (const auto& n : a.names()) {
    const Tensor x = a.get(n), y = b.get(n);
    ASSERT_EQ(x.dtype(), y.dtype()) << n;
    ASSERT_EQ(x.shape(), y.shape()) << n;
    EXPECT_EQ(std::memcmp(x.bytes(), y.bytes(), x.nbytes()), 0) << n;
  }
}

TEST(CliConvertInspect, HfToDsqThenInspectReports260032Parameters) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string out = tmp.file("s.dsq");
  const CliResult c = run_dsq(tmp, "convert " + shared + "/models/stories260K/hf -o " + out);
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("parameters  260,032"), std::string::npos) << c.out;
  const CliResult r = run_dsq(tmp, "inspect " + out + " --json - --ctx 512 --batch 3");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["parameters"], 260032);
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["format"], "dsq");
  EXPECT_EQ(j["tensors"].size(), 47u);
  EXPECT_EQ(j["bytes"], 260032 * 4);
  EXPECT_EQ(j["config"]["n_kv_heads"], 4);
  // weights + 2 x layers x kv_heads x head_dim x ctx x batch x 2 bytes (f16)
  const auto& m = j["memory_estimate"];
  const uint64_t kv = 2ull * 5 * 4 * 8 * 512 * 3 * 2;
  EXPECT_EQ(m["kv_cache_bytes"], kv);
  EXPECT_EQ(m["total"]["f16"], m["weights"]["f16"].get<uint64_t>() + kv);
  // f16 weights: 35 matrices x 2 bytes, 11 norms x 64 x 4 bytes.
  EXPECT_EQ(m["weights"]["f16"], (260032ull - 11 * 64) * 2 + 11 * 64 * 4);
  EXPECT_LT(m["weights"]["int4_g128"], m["weights"]["int8"]);
  EXPECT_LT(m["weights"]["int8"], m["weights"]["f16"]);
  // The text form carries the same facts.
  const CliResult t = run_dsq(tmp, "inspect " + out);
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("parameters    260032"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("blk.4.ffn_down.weight"), std::string::npos);
}

TEST(CliConvertInspect, GgufLlama2cAndHfGiveBitIdenticalDsqTensors) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string m = shared + "/models/stories260K/";
  const std::pair<std::string, std::string> srcs[] = {
      {"hf", m + "hf"}, {"gguf", m + "stories260K.gguf"}, {"llama2c", m + "llama2c/stories260K.bin"}};
  for (const auto& [name, src] : srcs) {
    const CliResult c = run_dsq(tmp, "convert " + src + " -o " + tmp.file(name + ".dsq") + " --zstd 1");
    ASSERT_EQ(c.code, 0) << name << ": " << c.err;
  }
  const WeightStore hf = formats::open_model(tmp.file("hf.dsq"));
  EXPECT_EQ(hf.parameter_count(), 260032);
  for (const char* other : {"gguf", "llama2c"}) {
    SCOPED_TRACE(other);
    expect_identical_tensors(hf, formats::open_model(tmp.file(std::string(other) + ".dsq")));
  }
  // Each keeps its tokenizer: GGUF's vocabulary from its metadata, the others' files embedded.
  const WeightStore gg = formats::open_model(tmp.file("gguf.dsq"));
  EXPECT_EQ(gg.metadata["tokenizer"]["gguf_metadata"]["tokenizer.ggml.tokens"].size(), 512u);
  // Written again from the .dsq, the GGUF tokenizer stays its vocabulary: the GGUF model file it
  // came from is not embedded as a "tokenizer file" (it once was, 1.6 MB of base64).
  ASSERT_EQ(run_dsq(tmp, "convert " + tmp.file("gguf.dsq") + " -o " + tmp.file("again.dsq") + " --zstd 1").code, 0);
  const WeightStore again = formats::open_model(tmp.file("again.dsq"));
  EXPECT_FALSE(again.metadata["tokenizer"].contains("files"));
  EXPECT_EQ(again.metadata["tokenizer"]["gguf_metadata"], gg.metadata["tokenizer"]["gguf_metadata"]);
  EXPECT_LT(std::filesystem::file_size(tmp.file("again.dsq")),
            std::filesystem::file_size(tmp.file("gguf.dsq")) + 4096);
  EXPECT_EQ(hf.metadata["tokenizer"]["files"]["tokenizer.model"]["bytes"], 7522);
  // Compression changes nothing in the tensor data.
  ASSERT_EQ(run_dsq(tmp, "convert " + m + "hf -o " + tmp.file("plain.dsq")).code, 0);
  expect_identical_tensors(hf, formats::open_model(tmp.file("plain.dsq")));
}

TEST(CliConvertInspect, DtypeF16KeepsNormsF32AndReportsJson) {
  TempDir tmp;
  const std::string src = synthetic_dsq(tmp), out = tmp.file("h.dsq");
  const CliResult c = run_dsq(tmp, "convert " + src + " -o " + out + " --dtype f16 --json -");
  ASSERT_EQ(c.code, 0) << c.err;
  const auto rep = nlohmann::json::parse(c.out);
  EXPECT_EQ(rep["source_format"], "dsq");
  // Matrices were f16/bf16 (2 bytes) and norms f32 before and after: the same byte count.
  EXPECT_EQ(rep["tensor_bytes_out"], rep["tensor_bytes_in"]);
  EXPECT_EQ(rep["tensors"], 21);
  const CliResult r = run_dsq(tmp, "inspect " + out + " --json -");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const auto& t : j["tensors"]) {
    const std::string name = t["name"];
    const std::string want = name.find("norm") != std::string::npos ? "f32"
                             : t.contains("scheme")                 ? "qint"
                                                                    : "f16";
    EXPECT_EQ(t["dtype"], want) << name;
  }
  // Quantized tensors report their bits per weight: q4 g16 sym on [48, 40] stores 20 code bytes
  // and 3 f16 scales (the last group is ragged) per row: (20 + 6) * 8 / 40 = 5.2 bits.
  int seen = 0;
  for (const auto& t : j["tensors"]) {
    if (t["name"] != "blk.1.ffn_down.weight") continue;
    EXPECT_DOUBLE_EQ(t["bits_per_weight"], 5.2);
    ++seen;
  }
  EXPECT_EQ(seen, 1);
}

TEST(CliConvertInspect, BadInputExitsOneAndLeavesNoOutput) {
  TempDir tmp;
  const std::string junk = tmp.file("junk.bin"), out = tmp.file("o.dsq");
  { std::ofstream(junk) << "this is not a model at all, just some text"; }
  const CliResult c = run_dsq(tmp, "convert " + junk + " -o " + out);
  EXPECT_EQ(c.code, 1) << c.err;
  EXPECT_NE(c.err.find("dsq convert: error: '" + junk + "'"), std::string::npos) << c.err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));

  // A truncated .dsq: inspect and convert both refuse with exit 1.
  const std::string good = synthetic_dsq(tmp), cut = tmp.file("cut.dsq");
  const std::string bytes = read_text(good);
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() - 200);
  const CliResult i = run_dsq(tmp, "inspect " + cut);
  EXPECT_EQ(i.code, 1);
  EXPECT_NE(i.err.find("truncated"), std::string::npos) << i.err;
  EXPECT_EQ(run_dsq(tmp, "convert " + cut + " -o " + out).code, 1);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  EXPECT_EQ(run_dsq(tmp, "inspect " + tmp.file("missing.dsq")).code, 1);
}

TEST(CliConvertInspect, BadFlagsExitTwo) {
  TempDir tmp;
  const std::string src = synthetic_dsq(tmp), out = tmp.file("o.dsq");
  for (const std::string& args : std::vector<std::string>{"convert " + src + " -o " + out + " --zstd 99",
                                 "convert " + src + " -o " + out + " --dtype f8",
                                 "convert " + src, "inspect " + src + " --batch 0",
                                 "convert " + src + " -o " + src}) {
    const CliResult r = run_dsq(tmp, args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
  EXPECT_EQ(read_text(src).substr(0, 8), "DSQMODEL");  // the input was not touched
}

// `dsq export --hf`: a quantized .dsq becomes a GPTQ directory with a JSON report; bad layouts,
// sizes and existing outputs exit 2 without touching anything.
TEST(CliExport, QuantizedDsqToGptqDirectoryWithJsonReport) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string q = tmp.file("q.dsq"), out = tmp.file("gptq"), js = tmp.file("r.json");
  ASSERT_EQ(run_dsq(tmp, "quantize " + shared + "/models/qwen2-tiny -o " + q +
                             " --bits 4 --group 128 --sym --method rtn -q").code, 0);
  const CliResult r = run_dsq(tmp, "export " + q + " -o " + out + "/ --hf gptq --json " + js);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("exported '" + q + "'"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_text(js));
  EXPECT_EQ(j["hf_layout"], "gptq");
  EXPECT_TRUE(j["notes"].empty());
  const auto cfg = nlohmann::json::parse(read_text(out + "/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["bits"], 4);
  EXPECT_EQ(cfg["quantization_config"]["group_size"], 128);
  EXPECT_EQ(cfg["quantization_config"]["sym"], true);
  EXPECT_TRUE(fs::exists(out + "/tokenizer.json"));
  EXPECT_EQ(cfg["architectures"][0], "Qwen2ForCausalLM");
  for (const std::string& args : {"export " + q + " -o " + tmp.file("x") + " --hf marlin",
                                  "export " + q + " -o " + tmp.file("x") + " --hf awq --shard-size 5XB",
                                  "export " + q + " -o " + out + " --hf awq"}) {
    const CliResult e = run_dsq(tmp, args);
    EXPECT_EQ(e.code, 2) << args << "\n" << e.err;
    EXPECT_FALSE(fs::exists(tmp.file("x"))) << args;
  }
  EXPECT_EQ(nlohmann::json::parse(read_text(out + "/config.json")), cfg);  // untouched
}

}  // namespace
}  // namespace dsq
