// `dsq quantize` through the built binary: on stories260K, W8 g32 RTN must stay within KLD 1e-3
// and top-1 agreement 0.99 of the FP32 model (measured with `dsq eval --ref`), fewer bits must
// drift more, and bad flags give exit code 2 with no output left behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "formats/format_table.h"
#include "lib/quant/quant_types.h"
#include "tests/tools/cli_run.h"

namespace dsq {
namespace {

namespace fs = std::filesystem;
using testing::read_text;
using testing::run_dsq;
using testing::TempDir;

// Quantizes stories260K with `flags` and evaluates it against the FP32 model; returns eval's JSON.
nlohmann::json quantize_and_eval(const TempDir& tmp, const std::string& shared,
                                 const std::string& flags, const std::string& eval_flags,
                                 nlohmann::json* qreport) {
  const std::string hf = shared + "/models/stories260K/hf";
  const std::string q = tmp.file("q.dsq"), qj = tmp.file("q.json"), ej = tmp.file("e.json");
  const auto r = run_dsq(tmp, "-q quantize " + hf + " -o " + q + " " + flags + " --json " + qj);
  EXPECT_EQ(r.code, 0) << r.err;
  if (qreport) *qreport = nlohmann::json::parse(read_text(qj));
  const auto e = run_dsq(tmp, "-q eval " + q + " --ref " + hf + " --tokens " + shared +
                                 "/data/tinystories-eval.stories260K.u32 --ctx 512 --bos " +
                                 eval_flags + " --json " + ej);
  EXPECT_EQ(e.code, 0) << e.err;
  return nlohmann::json::parse(read_text(ej));
}

TEST(CliQuantize, Stories260KInt8G32StaysWithinKld1e3AndTop1Of099) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  nlohmann::json rep;
  const nlohmann::json ev = quantize_and_eval(tmp, shared, "--bits 8 --group 32", "", &rep);
  EXPECT_LT(ev.at("kld_mean").get<double>(), 1e-3) << ev.dump();
  EXPECT_GT(ev.at("top1_agreement").get<double>(), 0.99) << ev.dump();
  EXPECT_GT(ev.at("tokens_scored").get<int64_t>(), 16000);
  // 35 block linears of stories260K (5 blocks; q, o 64x64; k, v 32x64 (4 kv heads of 8); gate,
  // up 172x64; down 64x172). int8 asym g32 = 8.75 bits, a little more for the ragged last group
  // of ffn_down's 172 columns.
  const auto& s = rep.at("summary");
  constexpr int64_t kPerBlock = 2 * 64 * 64 + 2 * 32 * 64 + 3 * 172 * 64;
  EXPECT_EQ(s.at("quantized_params").get<int64_t>(), 5 * kPerBlock);
  EXPECT_GT(s.at("quantized_bits_per_weight").get<double>(), 8.75);
  EXPECT_LT(s.at("quantized_bits_per_weight").get<double>(), 8.80);
  EXPECT_EQ(rep.at("recipe").at("method"), "rtn");
  EXPECT_EQ(rep.at("recipe").at("bits"), 8);
}

TEST(CliQuantize, Stories260KFewerBitsDriftMore) {
  DSQ_REQUIRE_SHARED(shared);
  double prev_kld = 0;
  for (int bits : {8, 4, 3}) {
    TempDir tmp;
    const nlohmann::json ev = quantize_and_eval(
        tmp, shared, "--bits " + std::to_string(bits) + " --group 32", "--max-tokens 2048", nullptr);
    const double kld = ev.at("kld_mean").get<double>();
    EXPECT_GT(kld, prev_kld) << bits << " bits";
    prev_kld = kld;
  }
}

TEST(CliQuantize, HelpListsEverySchemeOfTheTable) {
  TempDir tmp;
  const auto r = run_dsq(tmp, "quantize --help");
  ASSERT_EQ(r.code, 0);
  for (size_t i = 0; i < quant::kNumQuantTypes; ++i)
    EXPECT_NE(r.out.find(std::string(quant::kQuantTraits[i].name)), std::string::npos)
        << quant::kQuantTraits[i].name;  // targets in the list, fp8_e4m3 as a source
  EXPECT_NE(r.out.find("--mse-clip"), std::string::npos);
}

TEST(CliQuantize, BadFlagsExitTwoAndLeaveNoOutput) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string hf = shared + "/models/stories260K/hf", out = tmp.file("q.dsq");
  const auto bits = run_dsq(tmp, "quantize " + hf + " -o " + out + " --bits 7");
  EXPECT_EQ(bits.code, 2);
  EXPECT_NE(bits.err.find("dsq quantize: error: unsupported scheme: 7 bits (supported bits: 2, 3, 4, 5, 6, 8)"),
            std::string::npos)
      << bits.err;
  const auto group = run_dsq(tmp, "quantize " + hf + " -o " + out + " --group 48");
  EXPECT_EQ(group.code, 2);
  EXPECT_NE(group.err.find("group size 48"), std::string::npos) << group.err;
  const auto both = run_dsq(tmp, "quantize " + hf + " -o " + out + " --sym --asym");
  EXPECT_EQ(both.code, 2);
  const auto regex = run_dsq(tmp, "quantize " + hf + " -o " + out + " --skip 'blk['");
  EXPECT_EQ(regex.code, 2);
  EXPECT_NE(regex.err.find("invalid regular expression"), std::string::npos) << regex.err;
  const auto missing = run_dsq(tmp, "quantize " + tmp.file("nope") + " -o " + out);
  EXPECT_EQ(missing.code, 1);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

// Mixed precision from the command line: --target-bpw with --keep and --tensor-type pins, the
// plan in the --json report, and one-line errors for bad mixed-precision flags.
TEST(CliQuantize, MixedPrecisionFlags) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string hf = shared + "/models/stories260K/hf", out = tmp.file("m.dsq");
  const std::string calib = " --method gptq --calib " + shared +
                            "/data/tinystories-calib.stories260K.u32 --calib-samples 8 "
                            "--calib-len 128 --kld-tokens 512";
  const auto r = run_dsq(tmp, "-q quantize " + hf + " -o " + out + calib +
                                  " --target-bpw 4.2 --keep 'blk\\.0\\.attn_v' --tensor-type "
                                  "'ffn_down=int8_sym_g64' --json " + tmp.file("m.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(read_text(tmp.file("m.json")));
  EXPECT_LE(j["summary"]["block_linear_bits_per_weight"].get<double>(), 4.2);
  EXPECT_EQ(j["recipe"]["tensor_schemes"]["blk.0.attn_v.weight"], "f16");
  EXPECT_EQ(j["recipe"]["tensor_schemes"]["blk.2.ffn_down.weight"], "int8_sym_g64");
  EXPECT_EQ(j["mixed"]["pinned"].size(), 6u);
  EXPECT_EQ(j["mixed"]["choices"].size(), 29u);  // 35 linears, 6 pinned
  EXPECT_GT(j["mixed"]["kld_calibration"]["units"].size(), 0u);
  const WeightStore ws = formats::open_model(out);
  EXPECT_EQ(ws.entry("blk.0.attn_v.weight").dtype, DType::kF16);
  for (const auto& e : fs::directory_iterator(tmp.path()))  // no probe, table or work directory
    EXPECT_TRUE(e.path().extension() == ".dsq" || e.path().extension() == ".json" ||
                e.path().extension() == ".txt")
        << e.path();

  const std::string o2 = tmp.file("x.dsq");
  for (const auto& [flags, want] : std::vector<std::pair<std::string, std::string>>{
           {" --target-bpw 4 --budget b.json", "excludes"},
           {" --target-bpw abc", "not a number"},
           {" --tensor-type ffn_down", "expected REGEX=SCHEME"},
           {" --tensor-type 'ffn_down=int7_sym_g32'", "unknown scheme"},
           {" --keep 'blk['", "invalid regular expression"},
           {" --candidates int4_sym_g64,bogus --target-bpw 4", "unknown scheme 'bogus'"},
           {" --target-bpw 1.5 --candidates int3_sym_g64", "smallest reachable is 3.2"},
           {" --budget " + tmp.file("none.json") + " --eval-tokens x.u32", "none.json"},
           {" --eval-ctx 256", "--eval-ctx requires --budget"},
       }) {
    const auto e = run_dsq(tmp, "quantize " + hf + " -o " + o2 + calib + flags);
    EXPECT_NE(e.code, 0) << flags;
    EXPECT_NE(e.err.find(want), std::string::npos) << flags << ": " << e.err;
    EXPECT_EQ(std::count(e.err.begin(), e.err.end(), '\n'), 1) << flags << ": " << e.err;
    EXPECT_FALSE(fs::exists(o2)) << flags;
  }
  const auto rtn = run_dsq(tmp, "quantize " + hf + " -o " + o2 + " --target-bpw 4");
  EXPECT_EQ(rtn.code, 2);
  EXPECT_NE(rtn.err.find("calibrated method"), std::string::npos) << rtn.err;
}

// AWQ's search and apply as two steps: the first run searches scales and clips and saves them,
// the second applies them from the statistics file without calibration data, byte for byte.
TEST(CliQuantize, AwqSearchOnceApplyFromStats) {
  DSQ_REQUIRE_SHARED(shared);
  TempDir tmp;
  const std::string hf = shared + "/models/stories260K/hf", a = tmp.file("a.dsq"),
                    b = tmp.file("b.dsq"), stats = tmp.file("awq.h5"), aj = tmp.file("a.json");
  const std::string common = "-q quantize " + hf + " --method awq --bits 3 --group 32 ";
  auto r = run_dsq(tmp, common + "-o " + a + " --calib " + shared +
                            "/data/tinystories-calib.stories260K.u32 --calib-samples 8 "
                            "--calib-len 128 --awq-grid 10 --save-stats " + stats + " --json " + aj);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run_dsq(tmp, common + "-o " + b + " --awq-grid 10 --load-stats " + stats);
  ASSERT_EQ(r.code, 0) << r.err;
  // Same tensors, byte for byte (the headers differ: the second recipe names the statistics).
  const WeightStore wa = formats::open_model(a), wb = formats::open_model(b);
  ASSERT_EQ(wa.names(), wb.names());
  for (const auto& name : wa.names()) {
    const Tensor ta = wa.get(name), tb = wb.get(name);
    ASSERT_EQ(ta.nbytes(), tb.nbytes()) << name;
    EXPECT_TRUE(std::memcmp(ta.bytes(), tb.bytes(), ta.nbytes()) == 0) << name;
  }
  const auto rep = nlohmann::json::parse(read_text(aj));
  int alphas = 0, replaced = 0;
  for (const auto& t : rep.at("tensors")) {
    const auto extra = t.value("extra", nlohmann::json::object());
    alphas += extra.contains("awq_alpha");
    replaced += extra.value("replaced", false);
  }
  EXPECT_EQ(alphas, 5 * 7);
  EXPECT_EQ(replaced, 5 * 2);  // attn_norm and ffn_norm of every block
  EXPECT_EQ(rep.at("recipe").at("method"), "awq");
  EXPECT_EQ(rep.at("recipe").at("method_options").at("awq_grid"), 10);

  const auto grid = run_dsq(tmp, common + "-o " + tmp.file("c.dsq") + " --calib x.u32 --awq-grid 0");
  EXPECT_EQ(grid.code, 2);
  const auto nocalib = run_dsq(tmp, common + "-o " + tmp.file("c.dsq"));
  EXPECT_EQ(nocalib.code, 2);
  EXPECT_NE(nocalib.err.find("needs calibration data"), std::string::npos) << nocalib.err;
  EXPECT_FALSE(fs::exists(tmp.file("c.dsq")));
}

}  // namespace
}  // namespace dsq
