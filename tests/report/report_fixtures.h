// In-memory report fixtures shaped like `dsq eval --json` and `dsq quantize --json` output for
// stories260K-like models (5 blocks, 7 linears each), for three quantization methods. The numbers
// follow closed forms so each method differs in a known direction: drift RTN > AWQ > GPTQ.
#pragma once

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

namespace dsq::testing {

inline constexpr const char* kFixtureKinds[] = {"attn_q",   "attn_k", "attn_v", "attn_output",
                                                 "ffn_gate", "ffn_up", "ffn_down"};
inline constexpr int kFixtureBlocks = 5;

// How much worse than GPTQ each method is (drift multiplier).
inline double fixture_factor(const std::string& method) {
  return method == "rtn" ? 1.8 : method == "awq" ? 1.3 : 1.0;
}

// Shaped like calibration::QuantizeReport's JSON: recipe, tensors (unquantized ones included,
// marked "quantized": false), summary.
inline nlohmann::json quantize_fixture(const std::string& method, int bits = 4, int group = 32) {
  const double f = fixture_factor(method);
  const double bpw = bits + 16.0 / group + 8.0 / group;  // f16 scale + u8 zero per group
  const std::string scheme = "int" + std::to_string(bits) + "_asym g" + std::to_string(group);
  nlohmann::json tensors = nlohmann::json::array();
  tensors.push_back({{"name", "token_embd.weight"}, {"dtype", "f32"}, {"scheme", ""},
                     {"quantized", false}, {"params", 512 * 64}, {"bits_per_weight", 32.0}});
  for (int b = 0; b < kFixtureBlocks; ++b) {
    for (int k = 0; k < 7; ++k) {
      const double rel = f * std::pow(4.0, -bits) * (1.0 + 0.15 * k + 0.05 * b);
      tensors.push_back({{"name", "blk." + std::to_string(b) + "." + kFixtureKinds[k] + ".weight"},
                         {"dtype", "qint"},
                         {"scheme", scheme},
                         {"quantized", true},
                         {"bits_per_weight", bpw},
                         {"rel_err", rel},
                         {"sqnr_db", -10 * std::log10(rel)},
                         {"params", k >= 4 ? 64 * 172 : 64 * 64}});
      // Calibrated methods report the output error on calibration inputs, and RTN's.
      if (method == "gptq")
        tensors.back()["extra"] = {{"method", method},
                                   {"out_rel_err", 0.5 * rel},
                                   {"out_rel_err_rtn", 0.9 * rel * fixture_factor("rtn")}};
    }
  }
  return {{"recipe", {{"method", method}, {"bits", bits}, {"group", group}, {"scheme", scheme}}},
          {"tensors", tensors},
          {"summary",
           {{"quantized_bits_per_weight", bpw},
            {"file_bytes", 300000 + 1000 * bits},
            {"file_bits_per_weight", 9.1}}}};
}

inline nlohmann::json eval_fixture_for(const std::string& method, int bits = 4) {
  const double f = fixture_factor(method);
  const double kld = f * 0.02 * std::pow(2.0, 4 - bits);
  nlohmann::json layers = nlohmann::json::array();
  for (int b = 0; b < kFixtureBlocks; ++b) {
    const double rel = f * 0.01 * (1 + b) * std::pow(2.0, 4 - bits);
    layers.push_back({{"layer", b}, {"rel_l2", rel}, {"cosine", 1 - rel * rel / 2}});
  }
  const double ref = 3.7698;
  return {{"perplexity", ref * (1 + kld)},
          {"ref_perplexity", ref},
          {"ppl_ratio", 1 + kld},
          {"tokens_scored", 4087},
          {"kld_mean", kld},
          {"kld_stderr", kld * 0.03},
          {"kld_p99", kld * 9},
          {"kld_max", kld * 40},
          {"top1_agreement", 1 - kld * 2},
          {"tokens_per_second", 15000.0},
          {"bits_per_weight", 9.1},  // whole file, embeddings included
          {"layers", layers}};
}

}  // namespace dsq::testing
