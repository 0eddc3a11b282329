// .dsq files (float and quantized tensors, the JSON header, the embedded tokenizer): open, load and
// checksum every tensor, run the model when the config allows one, and read the file with the
// standalone reader too.
#include "formats/dsq/dsq_reader.h"
#include "formats/dsq/dsq_reader_standalone.h"
#include "fuzz/fuzz_util.h"
#include "lib/model/model.h"
#include "lib/text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsq;
  const std::string path = fuzz::write_input("in.dsq", data, size);
  fuzz::expect_clean([&] {
    formats::OpenOptions o;
    o.require_config = false;
    const WeightStore ws = formats::open_dsq(path, o);
    for (const auto& n : ws.names()) (void)ws.get(n);
    if (ws.metadata.contains("tokenizer"))
      fuzz::expect_clean([&] { (void)text::load_tokenizer(ws.metadata["tokenizer"])->encode("Once upon a time", true); });
    if (ws.has_config && ws.config.n_layers * ws.config.d_model < (int64_t{1} << 16)) {
      const model::Model m = model::Model::load(ws);
      const int32_t ids[4] = {0, 1, 0, 1};
      if (m.vocab() > 1) (void)m.forward(std::span<const int32_t>(ids, 4), 1, 4);
    }
  });
  try {
    dsq_standalone::Reader r(path);
    for (const auto& t : r.tensors())
      if (t.raw_bytes < (uint64_t{1} << 24) && t.compression == 0) (void)r.read(t);
  } catch (const dsq_standalone::Error&) {
  }
  return 0;
}
