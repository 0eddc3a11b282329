// Hugging Face exports (`dsq export MODEL -o DIR --hf LAYOUT`) on stories260K- and
// qwen2-tiny-shaped real models. Three independent checks close the loop:
//   - the float export (dequantized weights in f32) read back by dsq's HF reader equals dsq's own
//     dequantization of the .dsq, tensor by tensor, bit for bit, with the same config;
//   - tests/oracles/hf_dequant.py, a numpy dequantizer written from the published GPTQ / AWQ /
//     compressed-tensors conventions, rebuilds every tensor of that float export from the
//     quantized directory, bit for bit;
//   - the exported tokenizer files give the same ids (greedy continuation of the float export).
// Bad requests fail in one line and leave neither the directory nor its .tmp.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "formats/format_table.h"
#include "formats/hf/hf.h"
#include "jobs/convert.h"
#include "jobs/quantize.h"
#include "lib/core/error.h"
#include "tests/jobs/greedy.h"
#include "tests/jobs/quantize_options.h"
#include "tests/test_util.h"

namespace dsq::jobs {
namespace {

namespace fs = std::filesystem;

ConvertReport export_hf(const std::string& src, const std::string& out, const std::string& layout,
                        const std::string& dtype = "f32", uint64_t shard = uint64_t{5} << 30) {
  ConvertOptions o;
  o.src = src;
  o.out = out;
  o.hf = layout;
  o.dtype = dtype;
  o.shard_bytes = shard;
  o.command = "export";
  o.progress = false;
  return run_convert(o);
}

// Runs the numpy oracle; returns its output, and its exit status in *rc.
std::string oracle(const std::string& qdir, const std::string& ref, int* rc) {
  const std::string cmd = "/usr/bin/python3 '" + std::string(DSQ_SOURCE_DIR) +
                          "/tests/oracles/hf_dequant.py' '" + qdir + "' '" + ref + "' 2>&1";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[512];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  const int st = p ? ::pclose(p) : -1;
  *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

struct Case {
  const char* model;
  QuantDesc scheme;
  std::vector<const char*> layouts;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.model << " " << scheme_name(c.scheme); }

class HfExport : public ::testing::TestWithParam<Case> {};

TEST_P(HfExport, EveryLayoutDequantizesToDsqsWeightsBitForBit) {
  DSQ_REQUIRE_SHARED(shared);
  DSQ_REQUIRE_GGUF_PY();  // Debian's numpy, for the oracle
  const Case c = GetParam();
  ::dsq::testing::TempDir tmp;
  const std::string q = tmp.file("q.dsq"), ref = tmp.file("ref");
  run_quantize(quiet_quantize_options(shared + "/models/" + c.model, q, c.scheme));

  // The float export is dsq's dequantization, read back through the HF reader.
  const ConvertReport fr = export_hf(q, ref, "float");
  EXPECT_EQ(fr.hf_layout, "float");
  const WeightStore a = formats::open_model(q), b = formats::open_model(ref);
  EXPECT_TRUE(b.config == a.config) << nlohmann::json(b.config).dump();
  ASSERT_EQ(b.names(), a.names());
  int quantized = 0;
  for (const auto& name : a.names()) {
    const Tensor ta = a.entry(name).load();
    quantized += ta.dtype() == DType::kQInt;
    const Tensor want = ta.to(DType::kF32), got = b.entry(name).load();
    ASSERT_EQ(got.dtype(), DType::kF32) << name;
    ASSERT_EQ(got.shape(), want.shape()) << name;
    EXPECT_EQ(std::memcmp(got.bytes(), want.bytes(), want.nbytes()), 0) << name;
  }
  EXPECT_GT(quantized, 0);

  for (const char* layout : c.layouts) {
    SCOPED_TRACE(layout);
    const std::string dir = tmp.file(layout);
    const ConvertReport r = export_hf(q, dir, layout);
    const nlohmann::json cfg = nlohmann::json::parse(std::ifstream(dir + "/config.json"));
    const nlohmann::json& qc = cfg["quantization_config"];
    EXPECT_EQ(qc["quant_method"], std::string(layout).rfind("gptq", 0) == 0 ? "gptq" : layout);
    // The config.json is the model's (quantization_config aside).
    EXPECT_TRUE(formats::hf_config_from_json(formats::hf_config_to_json(a.config), dir) == a.config);
    int rc = -1;
    const std::string out = oracle(dir, ref, &rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_EQ(out.rfind("ok ", 0), 0u) << out;
    // Linears the packing cannot hold (stories260K's 172-wide FFN for GPTQ and AWQ) are named.
    const bool ragged = a.config.d_ff % (32 / c.scheme.bits()) != 0 &&
                        std::string(layout) != "compressed-tensors";
    ASSERT_EQ(r.written.notes.size(), ragged ? 1u : 0u);
    if (ragged) {
      EXPECT_NE(r.written.notes[0].find("mlp.gate_proj"), std::string::npos) << r.written.notes[0];
    }
    EXPECT_FALSE(fs::exists(dir + ".tmp"));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, HfExport,
    ::testing::Values(Case{"stories260K/hf", QuantDesc{4, 32, false}, {"gptq", "gptq-v2", "awq", "compressed-tensors"}},
                      Case{"stories260K/hf", QuantDesc{8, 0, true}, {"gptq", "compressed-tensors"}},
                      Case{"qwen2-tiny", QuantDesc{4, 128, true}, {"gptq", "awq", "compressed-tensors"}},
                      Case{"qwen2-tiny", QuantDesc{4, 64, false}, {"gptq-v2", "awq", "compressed-tensors"}},
                      Case{"qwen2-tiny", QuantDesc{2, 32, true}, {"gptq"}}),
    [](const auto& info) {
      std::string n = info.param.model;
      n = n.substr(0, n.find_first_of("/-")) + "_" + scheme_name(info.param.scheme);
      for (char& ch : n)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

// config.json written by dsq reads back into the same config, for every family (DeepSeek's MLA
// and MoE fields included), and a float export of the real checkpoints is the same model.
TEST(HfExportFloat, EveryFamilyReadsBackAsTheSameModel) {
  DSQ_REQUIRE_SHARED(shared);
  ::dsq::testing::TempDir tmp;
  for (const char* m : {"stories260K/hf", "qwen2-tiny", "qwen3-tiny", "deepseek-v3-tiny"}) {
    SCOPED_TRACE(m);
    const std::string src = shared + "/models/" + m, out = tmp.file(fs::path(m).parent_path().empty()
                                                                        ? m : "stories");
    const WeightStore a = formats::open_model(src);
    EXPECT_TRUE(formats::hf_config_from_json(formats::hf_config_to_json(a.config), m) == a.config);
    // Shards of at most 256 KB: the index names every tensor's shard.
    const ConvertReport r = export_hf(src, out, "float", "keep", uint64_t{1} << 18);
    EXPECT_TRUE(r.written.notes.empty()) << r.written.notes.front();
    EXPECT_TRUE(fs::exists(out + "/model.safetensors.index.json"));
    const WeightStore b = formats::open_model(out);
    EXPECT_TRUE(b.config == a.config) << nlohmann::json(b.config).dump();
    ASSERT_EQ(b.names(), a.names());
    for (const auto& name : a.names()) {
      const Tensor ta = a.entry(name).load(), tb = b.entry(name).load();
      ASSERT_EQ(tb.dtype(), ta.dtype()) << name;
      ASSERT_EQ(tb.shape(), ta.shape()) << name;
      EXPECT_EQ(std::memcmp(tb.bytes(), ta.bytes(), ta.nbytes()), 0) << name;
    }
  }
}

// The tokenizer files travel: the exported directory tokenizes and continues like the source.
TEST(HfExportFloat, TokenizerFilesGiveTheSameIds) {
  DSQ_REQUIRE_SHARED(shared);
  ::dsq::testing::TempDir tmp;
  for (const char* m : {"stories260K/hf", "qwen2-tiny"}) {
    SCOPED_TRACE(m);
    const std::string src = shared + "/models/" + m, q = tmp.file("q.dsq"), out = tmp.file("out");
    fs::remove_all(out);
    // Through a .dsq (tokenizer files embedded in its header), as a user's pipeline goes.
    ConvertOptions o;
    o.src = src;
    o.out = q;
    o.progress = false;
    run_convert(o);
    export_hf(q, out, "float", "keep");
    EXPECT_TRUE(fs::exists(out + (std::string(m) == "qwen2-tiny" ? "/tokenizer.json" : "/tokenizer.model")));
    EXPECT_TRUE(fs::exists(out + "/tokenizer_config.json"));
    EXPECT_EQ(greedy(out), greedy(src));
  }
}

TEST(HfExportErrors, BadRequestsFailInOneLineAndLeaveNothing) {
  DSQ_REQUIRE_SHARED(shared);
  ::dsq::testing::TempDir tmp;
  const std::string src = shared + "/models/stories260K/hf";
  const std::string q2 = tmp.file("q2.dsq"), q3 = tmp.file("q3.dsq"), out = tmp.file("out");
  run_quantize(quiet_quantize_options(src, q2, QuantDesc{2, 32, false}));
  run_quantize(quiet_quantize_options(src, q3, QuantDesc{3, 32, true}));
  auto expect_error = [&](const std::string& model, const std::string& layout, const char* needle) {
    try {
      export_hf(model, out, layout);
      ADD_FAILURE() << layout << ": no error";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(needle), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
    EXPECT_FALSE(fs::exists(out)) << layout;
    EXPECT_FALSE(fs::exists(out + ".tmp")) << layout;
  };
  // GPTQ v1 stores z - 1: a zero point of 0 has no encoding (2-bit asymmetric groups have them).
  expect_error(q2, "gptq", "zero point of 0");
  expect_error(q3, "gptq", "int3_sym_g32 cannot be written as gptq");
  expect_error(q3, "compressed-tensors", "packs 4 or 8 bits");
  expect_error(q2, "awq", "packs 4 bits only");
  expect_error(src, "gptq", "no quantized linear");
  expect_error(q2, "marlin", "--hf must be");
  // v2 stores z as it is: the same model exports.
  export_hf(q2, out, "gptq-v2");
  EXPECT_TRUE(fs::exists(out + "/config.json"));
  // An existing output is never replaced.
  const auto before = fs::last_write_time(out + "/config.json");
  EXPECT_THROW(export_hf(q2, out, "compressed-tensors"), UsageError);
  EXPECT_EQ(fs::last_write_time(out + "/config.json"), before);
  fs::remove_all(out);

  // A pruned model's per-layer widths have no config.json spelling.
  WeightStore ws = formats::open_model(src);
  ws.config.layers.assign(static_cast<size_t>(ws.config.n_layers), ws.config.layer(0));
  ws.config.layers[1].d_ff -= 4;
  formats::SinkOptions so;
  so.hf_layout = formats::HfLayout::kFloat;
  EXPECT_THROW(formats::open_sink(out, ws, so), ConfigError);
  EXPECT_FALSE(fs::exists(out + ".tmp"));

  // The shards' headers are planned from the source's entries: a tensor that arrives quantized
  // where the source declared a float is refused, and the sink leaves nothing behind.
  {
    const WeightStore fl = formats::open_model(src), qs = formats::open_model(q2);
    auto sink = formats::open_sink(out, fl, so);
    EXPECT_TRUE(fs::exists(out + ".tmp"));
    EXPECT_THROW(sink->add("blk.0.attn_q.weight", qs.entry("blk.0.attn_q.weight").load()), FormatError);
  }
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  EXPECT_FALSE(fs::exists(out));

  // A .tmp left by a killed export is replaced; one that dsq did not make is refused.
  fs::create_directories(out + ".tmp");
  std::ofstream(out + ".tmp/.dsq-export-in-progress").flush();
  std::ofstream(out + ".tmp/model.safetensors") << "half";
  export_hf(q2, out, "gptq-v2");
  EXPECT_TRUE(fs::exists(out + "/model.safetensors"));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  fs::remove_all(out);
  fs::create_directories(out + ".tmp");
  std::ofstream(out + ".tmp/mine.txt") << "keep";
  EXPECT_THROW(export_hf(q2, out, "gptq-v2"), UsageError);
  EXPECT_TRUE(fs::exists(out + ".tmp/mine.txt"));
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace dsq::jobs
