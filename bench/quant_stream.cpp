// Peak RSS of `dsq quantize`'s streaming driver as the model grows: run it on synthetic Llama
// models of 4 and 16 blocks (d_model 1024, d_ff 2816, f16) in separate processes and compare
// ru_maxrss. The driver holds one tensor at a time, so the two peaks should be about equal.
//
//   bench_quant_stream make  N_LAYERS SRC.dsq [WIDTH]   # write the synthetic source (own process)
//   bench_quant_stream quant SRC.dsq OUT.dsq            # quantize W4 g128 RTN, print peak RSS
// WIDTH: `small` (default: d_model 1024, d_ff 2816, 16 heads, vocab 4096), `1b` (TinyLlama-1.1B:
// d_model 2048, d_ff 5632, 32 heads / 4 kv heads of 64, vocab 32000) or `7b` (Llama-2-7B: 4096,
// 11008, 32 / 32 heads of 128, vocab 32000). bench/calib_rss.sh uses `make` for the calibrated
// methods' peak-RSS comparison.
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "jobs/quantize.h"
#include "formats/dsq/dsq_writer.h"
#include "lib/core/memory.h"
#include "lib/core/synthetic.h"

int main(int argc, char** argv) {
  dsq::configure_malloc();  // as the dsq executable does (lib/core/memory.h)
  if ((argc == 4 || argc == 5) && std::strcmp(argv[1], "make") == 0) {
    const std::string width = argc == 5 ? argv[4] : "small";
    dsq::SyntheticShape s;
    if (width == "small") {
      s = {.d_model = 1024, .n_heads = 16, .n_kv_heads = 16, .head_dim = 64, .d_ff = 2816,
           .vocab = 4096};
    } else if (width == "1b") {
      s = dsq::kLlama1BShape;
    } else if (width == "7b") {
      s = dsq::kLlama7BShape;
    } else {
      std::fprintf(stderr, "unknown width '%s' (small, 1b or 7b)\n", width.c_str());
      return 2;
    }
    s.n_layers = std::atoi(argv[2]);
    const dsq::ModelConfig c = dsq::synthetic_config("llama", s);
    dsq::formats::DsqWriteOptions wo;
    wo.progress = false;
    const auto r = dsq::formats::write_dsq(dsq::make_synthetic_model(c, 1, dsq::DType::kF16),
                                           argv[3], wo);
    std::printf("wrote %s (%s width, %d blocks, vocab %d): %lld parameters, %llu bytes\n", argv[3],
                width.c_str(), static_cast<int>(c.n_layers), static_cast<int>(c.vocab_size),
                static_cast<long long>(r.parameters), static_cast<unsigned long long>(r.file_bytes));
    return 0;
  }
  if (argc == 4 && std::strcmp(argv[1], "quant") == 0) {
    dsq::jobs::QuantizeOptions o;
    o.model_path = argv[2];
    o.out_path = argv[3];
    o.desc = dsq::QuantDesc{4, 128, false};
    o.progress = false;
    const auto r = dsq::jobs::run_quantize(o);
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf("quantized %lld weights (%zu tensors) in %.2fs; peak RSS %.1f MiB\n",
                static_cast<long long>(r.quantized_params), r.tensors.size(), r.seconds,
                static_cast<double>(ru.ru_maxrss) / 1024.0);
    return 0;
  }
  std::fprintf(stderr, "usage: %s make N_LAYERS SRC.dsq [small|1b|7b] | quant SRC.dsq OUT.dsq\n", argv[0]);
  return 2;
}
