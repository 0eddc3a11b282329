// DeepSeek-V3 at its real widths on this machine (bench/RESULTS.md, "DeepSeek-V3 widths"): a
// synthetic model with V3's layer shapes (hidden 7168, 128 heads, q_lora 1536, kv_lora 512, rope
// 64, nope 128, v 128, dense d_ff 18432, experts of 2048, 8 routed per token in 4 of 8 groups,
// 1 shared) stored like the release (linears FP8 e4m3 with 128x128 block scales, the rest bf16),
// with a chosen number of experts and of dense / MoE layers, then GPTQ W4 g128 on it.
//
//   bench_deepseek_v3_layer make E OUT.dsq CALIB.u32 [DENSE MOE VOCAB TOKENS]
//       writes the model tensor by tensor (never all of it in memory) and TOKENS pseudo-random
//       calibration ids (default 1 dense + 1 MoE layer, vocab 4096, 131072 ids)
//   bench_deepseek_v3_layer quant SRC.dsq OUT.dsq CALIB.u32 SAMPLES LEN
//       dsq quantize --method gptq --bits 4 --group 128 in this process; prints wall time and
//       peak RSS (ru_maxrss); per-block times are in the pipeline's log lines
// bench/deepseek_v3_layer.sh runs both for 16 and 64 experts and extrapolates to full R1.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "formats/sinks.h"
#include "jobs/quantize.h"
#include "lib/core/quant_layout.h"
#include "lib/core/synthetic.h"

namespace {

using namespace dsq;

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
// Uniform in (-1, 1) from (seed, index): any thread can draw any element.
float uniform(uint64_t seed, uint64_t i) {
  return static_cast<float>(static_cast<double>(mix(seed * 0x9e3779b97f4a7c15ULL + i) >> 11) *
                                0x1.0p-52 -
                            1.0);
}

// A linear [rows, cols] as FP8 e4m3 with 128x128 block scales: weights uniform with variance
// 1/cols (codes of u*448, scale sqrt(3/cols)/448 for every block).
Tensor fp8_linear(int64_t rows, int64_t cols, uint64_t seed) {
  const QuantDesc d(QuantScheme::kFp8E4M3, 128);
  Tensor t(DType::kQInt, Shape{rows, cols}, &d);
  const QuantLayout L = quant_layout(d, rows, cols);
  auto* codes = reinterpret_cast<uint8_t*>(t.mutable_bytes());
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      codes[r * cols + c] = f32_to_fp8_e4m3(448.0f * uniform(seed, static_cast<uint64_t>(r * cols + c)));
  auto* scales = reinterpret_cast<float*>(t.mutable_bytes() + L.scales_offset);
  const float s = static_cast<float>(std::sqrt(3.0 / static_cast<double>(cols)) / 448.0);
  for (size_t i = 0; i < L.scales_bytes / 4; ++i) scales[i] = s;
  return t;
}

Tensor float_tensor(const Shape& shape, double center, double hw, uint64_t seed, DType dt) {
  Tensor t(DType::kF32, shape);
  float* p = t.mutable_data<float>();
  const int64_t n = t.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i)
    p[i] = static_cast<float>(center + hw * uniform(seed, static_cast<uint64_t>(i)));
  return t.to(dt);
}

int make(int argc, char** argv) {
  const int64_t experts = std::atoll(argv[2]);
  const std::string out = argv[3], calib = argv[4];
  const int64_t dense = argc > 5 ? std::atoll(argv[5]) : 1, moe = argc > 6 ? std::atoll(argv[6]) : 1;
  const int64_t vocab = argc > 7 ? std::atoll(argv[7]) : 4096;
  const int64_t tokens = argc > 8 ? std::atoll(argv[8]) : 131072;
  SyntheticShape s = kDeepseekV3Shape;
  s.n_layers = dense + moe;
  s.first_dense = dense;
  s.n_experts = experts;
  s.vocab = vocab;
  ModelConfig c = synthetic_config("deepseek_v3", s);
  c.rope_scaling = {"yarn", 40.0, 4096, 32.0, 1.0, 1.0, 1.0, 0.0, true};  // as the release
  c.max_ctx = 163840;
  validate_config(c, "bench");
  WeightStore header;  // the sink takes the config and metadata from a store
  header.config = c;
  header.has_config = true;
  header.metadata["source_format"] = "synthetic";
  formats::SinkOptions so;
  so.recipe = {{"command", "bench_deepseek_v3_layer make"}, {"experts", experts}};
  const auto sink = formats::open_sink(out, header, so);
  const ArchInfo& a = arch_of(c);
  uint64_t seed = 1;
  int64_t params = 0;
  auto add = [&](const ArchTensor& row, int64_t l, int64_t e) {
    const Shape shape = row_shape(row, c, l);
    Tensor t;
    switch (row.role) {
      case TensorRole::kLinear: t = fp8_linear(shape[0], shape[1], seed); break;
      case TensorRole::kNorm: t = float_tensor(shape, 1.0, 0.2, seed, DType::kBF16); break;
      case TensorRole::kRouterBias: t = float_tensor(shape, 0.0, 0.05, seed, DType::kF32); break;
      default:
        t = float_tensor(shape, 0.0, std::sqrt(3.0 / static_cast<double>(shape.back())), seed,
                         DType::kBF16);
    }
    ++seed;
    params += t.numel();
    sink->add(expand_name(row.canonical, l, e), t, nlohmann::json::object());
  };
  for (const auto& row : a.tensors)
    if (row.role == TensorRole::kEmbedding) add(row, -1, -1);
  for (int64_t l = 0; l < c.n_layers; ++l)
    for (const auto& row : a.tensors) {
      if (!row.per_layer() || !row_required(row, c) || !row_in_layer(row, c, l)) continue;
      for (int64_t e = 0; e < (row.per_expert() ? experts : 1); ++e) add(row, l, row.per_expert() ? e : -1);
    }
  for (const auto& row : a.tensors)
    if (!row.per_layer() && row.role != TensorRole::kEmbedding && row_required(row, c)) add(row, -1, -1);
  const auto r = sink->finish();
  std::ofstream f(calib, std::ios::binary);
  for (int64_t i = 0; i < tokens; ++i) {
    const auto id = static_cast<uint32_t>(mix(0x1234 + static_cast<uint64_t>(i)) % static_cast<uint64_t>(vocab));
    f.write(reinterpret_cast<const char*>(&id), 4);
  }
  std::printf("wrote %s: %lld dense + %lld MoE layers, %lld experts, %lld parameters, %llu bytes; "
              "%s: %lld ids\n",
              out.c_str(), static_cast<long long>(dense), static_cast<long long>(moe),
              static_cast<long long>(experts), static_cast<long long>(params),
              static_cast<unsigned long long>(r.file_bytes), calib.c_str(), static_cast<long long>(tokens));
  return 0;
}

int run_quant(char** argv) {
  jobs::QuantizeOptions o;
  o.model_path = argv[2];
  o.out_path = argv[3];
  o.method = "gptq";
  o.desc = QuantDesc{4, 128, false};
  o.progress = false;
  o.method_options = {{"calib", nlohmann::json::array({argv[4]})},
                      {"calib_samples", std::atoll(argv[5])},
                      {"calib_len", std::atoll(argv[6])}};
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = jobs::run_quantize(o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double expert_solve = 0;
  int64_t expert_linears = 0;
  for (const auto& t : r.tensors) {
    if (t.name.find("_exps.") != std::string::npos) {
      expert_solve += t.extra.value("solve_seconds", 0.0);
      ++expert_linears;
    } else if (t.extra.contains("solve_seconds")) {  // where a block's time goes
      std::printf("  %-34s %8.1f s\n", t.name.c_str(), t.extra["solve_seconds"].get<double>());
    }
  }
  std::printf("gptq W4 g128: %lld weights quantized in %.1f s; peak RSS %.2f GiB; %lld expert "
              "linears, solves %.2f s per expert\n",
              static_cast<long long>(r.quantized_params), s,
              static_cast<double>(ru.ru_maxrss) / (1024.0 * 1024.0),
              static_cast<long long>(expert_linears), expert_linears ? 3 * expert_solve / expert_linears : 0.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 5 && std::strcmp(argv[1], "make") == 0) return make(argc, argv);
  if (argc == 7 && std::strcmp(argv[1], "quant") == 0) return run_quant(argv);
  std::fprintf(stderr,
               "usage: %s make E OUT.dsq CALIB.u32 [DENSE MOE VOCAB TOKENS]\n"
               "       %s quant SRC.dsq OUT.dsq CALIB.u32 SAMPLES LEN\n",
               argv[0], argv[0]);
  return 2;
}
