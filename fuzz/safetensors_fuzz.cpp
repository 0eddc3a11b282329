// A safetensors file beside a fixed valid config.json, the Llama shape of fuzz/tiny_seeds.py (whose
// seeds then map whole, so mutations reach the mapping and the dtype conversions, not only the
// header): the header (JSON, offsets, dtypes, shapes) and its mapping onto the architecture table.
#include "formats/hf/hf.h"
#include "formats/safetensors/safetensors.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsq;
  static const std::string config = [] {
    std::ofstream(fuzz::work_dir() + "/config.json")
        << R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
              "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 288, "rms_norm_eps": 1e-5,
              "tie_word_embeddings": true})";
    return fuzz::work_dir() + "/config.json";
  }();
  const std::string path = fuzz::write_input("model.safetensors", data, size);
  fuzz::expect_clean([&] {  // opens the file with SafetensorsFile::open first
    const WeightStore ws = formats::read_safetensors_model(path, {});
    for (const auto& n : ws.names()) (void)ws.get_f32(n);
  });
  return 0;
}
