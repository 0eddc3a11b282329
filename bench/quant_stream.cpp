// Peak RSS of `dsq quantize`'s streaming driver as the model grows: run it on synthetic Llama
// models of 4 and 16 blocks (d_model 1024, d_ff 2816, f16) in separate processes and compare
// ru_maxrss. The driver holds one tensor at a time, so the two peaks should be about equal.
//
//   bench_quant_stream make  N_LAYERS SRC.dsq    # write the synthetic source (its own process)
//   bench_quant_stream quant SRC.dsq OUT.dsq     # quantize W4 g128 RTN, print peak RSS
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "calibration/quantize.h"
#include "formats/dsq/dsq_writer.h"
#include "lib/model/synthetic.h"

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "make") == 0) {
    dsq::ModelConfig c = dsq::model::tiny_llama_config();
    c.n_layers = std::atoi(argv[2]);
    c.d_model = 1024;
    c.n_heads = 16;
    c.n_kv_heads = 16;
    c.head_dim = 64;
    c.d_ff = 2816;
    c.vocab_size = 4096;
    dsq::formats::DsqWriteOptions wo;
    wo.progress = false;
    const auto r = dsq::formats::write_dsq(dsq::model::make_synthetic_model(c, 1, dsq::DType::kF16),
                                           argv[3], wo);
    std::printf("wrote %s: %lld parameters, %llu bytes\n", argv[3],
                static_cast<long long>(r.parameters), static_cast<unsigned long long>(r.file_bytes));
    return 0;
  }
  if (argc == 4 && std::strcmp(argv[1], "quant") == 0) {
    dsq::calibration::QuantizeOptions o;
    o.model_path = argv[2];
    o.out_path = argv[3];
    o.desc = dsq::QuantDesc{4, 128, false};
    o.progress = false;
    const auto r = dsq::calibration::quantize_model(o);
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf("quantized %lld weights (%zu tensors) in %.2fs; peak RSS %.1f MiB\n",
                static_cast<long long>(r.quantized_params), r.tensors.size(), r.seconds,
                static_cast<double>(ru.ru_maxrss) / 1024.0);
    return 0;
  }
  std::fprintf(stderr, "usage: %s make N_LAYERS SRC.dsq | quant SRC.dsq OUT.dsq\n", argv[0]);
  return 2;
}
