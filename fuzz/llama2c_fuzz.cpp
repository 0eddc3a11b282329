// llama2.c checkpoints (.bin: a 7 x int32 header, then float arrays) and llama2.c tokenizer files.
#include "formats/llama2c/llama2c.h"
#include "fuzz/fuzz_util.h"
#include "lib/text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsq;
  const std::string path = fuzz::write_input("in.bin", data, size);
  fuzz::expect_clean([&] {
    if (!formats::sniff_llama2c(path)) return;
    const WeightStore ws = formats::read_llama2c(path, {});
    for (const auto& n : ws.names()) (void)ws.get_f32(n);
  });
  fuzz::expect_clean([&] {
    const auto tok = text::load_tokenizer({{"kind", "llama2c"}, {"path", path}});
    (void)tok->decode(tok->encode("Once upon a time", true));
  });
  return 0;
}
