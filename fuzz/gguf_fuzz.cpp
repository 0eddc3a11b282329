// GGUF files: the model reader (metadata, tensor table, block types, the Meta RoPE permutation)
// and the tokenizer stored in the metadata.
#include "formats/gguf/gguf.h"
#include "fuzz/fuzz_util.h"
#include "lib/text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsq;
  const std::string path = fuzz::write_input("in.gguf", data, size);
  fuzz::expect_clean([&] {
    const WeightStore ws = formats::read_gguf(path, {});
    for (const auto& n : ws.names()) (void)ws.get_f32(n);
  });
  fuzz::expect_clean([&] {
    const auto tok = text::load_tokenizer({{"kind", "gguf"}, {"path", path}});
    (void)tok->decode(tok->encode("Once upon a time, 123 \xe5\xb0\x8f", true));
  });
  return 0;
}
