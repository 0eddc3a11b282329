// Calibration data files: token ids (.u32), text (.txt) and JSON lines (.jsonl, a "text" field per
// line), chosen by the first byte, tokenized with a small byte-level BPE and drawn into windows.
#include "calibration/calib_data.h"
#include "fuzz/fuzz_util.h"
#include "lib/text/tokenizer_bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dsq;
  static const std::unique_ptr<text::Tokenizer> tok = [] {
    text::BpeModel m;  // the 256 byte tokens of the GPT-2 alphabet, two merges, a BOS
    for (int b = 0; b < 256; ++b) {
      std::string s;
      const int cp = (b >= 33 && b <= 126) || (b >= 161 && b <= 255 && b != 173) ? b : 256 + b;
      if (cp < 0x80) s += static_cast<char>(cp);
      else s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
      m.tokens.push_back(s);
    }
    m.tokens.push_back("th");
    m.tokens.push_back("<s>");
    m.kinds.assign(m.tokens.size(), text::BpeTokenKind::kNormal);
    m.kinds.back() = text::BpeTokenKind::kControl;
    m.merges = {{"t", "h"}};
    m.splits = {{text::kGpt2SplitPattern, text::SplitBehavior::kIsolated}};
    m.bos_id = 258;
    m.source = "fuzz-bpe";
    return text::make_bpe_tokenizer(std::move(m));
  }();
  const char* ext = size == 0 ? ".u32" : data[0] == '{' ? ".jsonl" : data[0] < 0x20 ? ".u32" : ".txt";
  const std::string path = fuzz::write_input(std::string("calib") + ext, data, size);
  fuzz::expect_clean([&] {
    calibration::CalibOptions o;
    o.paths = {path};
    o.n_samples = 4;
    o.seq_len = 16;
    (void)calibration::load_calib_data(o, 259, 258, tok.get());
  });
  return 0;
}
