// Issue 19's block target: a GPTQ block at real widths against the sum of its unavoidable parts,
// measured in one run (bench/RESULTS.md, "GPTQ: where the time goes").
//
//   bench_calib_block DIR [SAMPLES LEN SHAPE]      (defaults 128 512 1b; SHAPE 1b or 7b)
//
// Writes a one-block synthetic model of the shape's widths (TinyLlama-1.1B: d_model 2048, 32
// heads of 64, 4 KV heads, d_ff 5632) and SAMPLES x LEN pseudo-random calibration ids to DIR, runs
// `dsq quantize --method gptq --bits 4 --group 128` on it in this process (the report's profile
// says where the block's time went), then times the parts no calibrated method can skip, on the
// same hidden states in the pipeline's chunks of rows: one forward of the block (f32 weights), the
// Hessian GEMMs of its four input groups (X^T X, linalg::gram_accumulate_f32, timed inside that
// forward and subtracted from it), and the solves (the profile's solve_seconds). Prints both and
// their ratio (target: at most 1.3).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "formats/dsq/dsq_writer.h"
#include "formats/format_table.h"
#include "jobs/quantize.h"
#include "lib/core/linalg.h"
#include "lib/core/memory.h"
#include "lib/core/synthetic.h"
#include "lib/model/block.h"
#include "lib/model/model.h"
#include "lib/model/observer.h"

namespace {

using namespace dsq;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Accumulates X^T X of the first linear of each input group, timing only that.
class Hessians : public model::Observer {
 public:
  double seconds = 0;
  void on_linear_input(int64_t, std::string_view name, model::ActView x) override {
    if (name != "attn_q" && name != "attn_output" && name != "ffn_gate" && name != "ffn_down")
      return;
    auto& h = h_[std::string(name)];
    h.resize(static_cast<size_t>(x.cols * x.cols));
    const auto t0 = Clock::now();
    linalg::gram_accumulate_f32(x.data, x.rows, x.cols, 1.0, h.data());
    seconds += since(t0);
  }

 private:
  std::map<std::string, std::vector<double>> h_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_calib_block DIR [SAMPLES LEN SHAPE]\n");
    return 2;
  }
  configure_malloc();
  const std::string dir = argv[1];
  const int64_t samples = argc > 2 ? std::atoll(argv[2]) : 128;
  const int64_t len = argc > 3 ? std::atoll(argv[3]) : 512;
  const std::string shape = argc > 4 ? argv[4] : "1b";
  SyntheticShape s = shape == "7b" ? kLlama7BShape : kLlama1BShape;
  s.n_layers = 1;
  s.vocab = 4096;  // the embedding and head are not part of a block
  const ModelConfig c = synthetic_config("llama", s);
  const std::string model = dir + "/block.dsq", calib = dir + "/calib.u32", out = dir + "/q.dsq";
  {
    formats::DsqWriteOptions wo;
    wo.progress = false;
    formats::write_dsq(make_synthetic_model(c, 7, DType::kF16), model, wo);
  }
  std::vector<int32_t> ids(static_cast<size_t>(samples * len));
  {
    uint64_t x = 11;
    std::ofstream f(calib, std::ios::binary);
    for (auto& id : ids) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      id = 3 + static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(c.vocab_size - 3));
      const auto u = static_cast<uint32_t>(id);
      f.write(reinterpret_cast<const char*>(&u), 4);
    }
  }
  calibration::QuantizeOptions o;
  o.model_path = model;
  o.out_path = out;
  o.method = "gptq";
  o.desc = QuantDesc{4, 128, false};
  o.progress = false;
  o.method_options = {{"calib", calib}, {"calib_samples", samples}, {"calib_len", len}};
  const auto tq = Clock::now();
  const jobs::QuantizeReport r = jobs::run_quantize(o);
  const double run_s = since(tq);
  const nlohmann::json& p = r.profile;

  // The unavoidable parts, on the same rows in the pipeline's chunks (4096 rows).
  const WeightStore ws = formats::open_model(model);
  const model::BlockWeights bw = model::BlockWeights::load(ws, 0, {.f32 = true});
  const int64_t per = std::max<int64_t>(1, 4096 / len), d = c.d_model;
  std::vector<float> h(static_cast<size_t>(samples * len * d));
  model::Embedding::load(ws).lookup(ids, h.data());
  Hessians hs;
  const auto tf = Clock::now();
  for (int64_t s0 = 0; s0 < samples; s0 += per) {
    const int64_t nb = std::min(per, samples - s0);
    model::block_forward(bw, c, h.data() + s0 * len * d, nb, len, &hs);
  }
  const double forward_s = since(tf) - hs.seconds;
  const double solve_s = p.value("solve_seconds", 0.0), block_s = p.value("block_seconds", 0.0);
  const double parts = forward_s + hs.seconds + solve_s;
  std::printf("shape %s (d_model %lld, d_ff %lld), %lld x %lld calibration tokens, GPTQ W4 g128\n",
              shape.c_str(), static_cast<long long>(d), static_cast<long long>(c.d_ff),
              static_cast<long long>(samples), static_cast<long long>(len));
  std::printf("pipeline: run %.2f s, block %.2f s; profile %s\n", run_s, block_s, p.dump().c_str());
  std::printf("unavoidable: forward %.2f s + Hessians %.2f s + solves %.2f s = %.2f s\n", forward_s,
              hs.seconds, solve_s, parts);
  std::printf("ratio block / unavoidable: %.3f (target <= 1.3)\n",
              parts > 0 ? block_s / parts : 0.0);
  return 0;
}
