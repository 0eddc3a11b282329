// Tokenizer files: SentencePiece tokenizer.model (protobuf) and Hugging Face tokenizer.json (BPE
// model, normalizers, pre-tokenizer regexes, post-processor), chosen by the first byte; the
// tokenizer built from them encodes and decodes a mixed sample.
#include "fuzz/fuzz_util.h"
#include "lib/text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsq;
  const bool json = size > 0 && data[0] == '{';
  const std::string path = fuzz::write_input(json ? "tokenizer.json" : "tokenizer.model", data, size);
  fuzz::expect_clean([&] {
    const auto tok = text::load_tokenizer(
        {{"kind", json ? "hf-json" : "sentencepiece"}, {"path", path}});
    const auto ids = tok->encode("Once upon a time, \xe5\xb0\x8f\xe6\x98\x8e found 123456 <s>\n\n", true);
    (void)tok->decode(ids);
  });
  return 0;
}
