// Hugging Face config.json and model.safetensors.index.json: the input is both files, split at the
// first NUL byte (config first), next to a fixed one-tensor shard.
#include <cstring>

#include "formats/hf/hf.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsq;
  const std::string dir = fuzz::work_dir() + "/hf";
  std::filesystem::create_directories(dir);
  const auto* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t n_cfg = nul ? static_cast<size_t>(nul - data) : size;
  { std::ofstream(dir + "/config.json", std::ios::binary).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n_cfg)); }
  std::filesystem::remove(dir + "/model.safetensors.index.json");
  if (nul) {
    std::ofstream f(dir + "/model.safetensors.index.json", std::ios::binary);
    f.write(reinterpret_cast<const char*>(nul + 1), static_cast<std::streamsize>(size - n_cfg - 1));
    // The shard the index names most often in the seeds.
    static const bool shard = [&] {
      const std::string h = R"({"model.norm.weight":{"dtype":"F32","shape":[64],"data_offsets":[0,256]}})";
      std::ofstream s(dir + "/model-00001-of-00001.safetensors", std::ios::binary);
      const uint64_t n = h.size();
      s.write(reinterpret_cast<const char*>(&n), 8);
      s << h << std::string(256, '\0');
      return true;
    }();
    (void)shard;
  }
  fuzz::expect_clean([&] {
    const WeightStore ws = formats::read_hf_dir(dir, {});
    for (const auto& n : ws.names()) (void)ws.get_f32(n);
  });
  return 0;
}
