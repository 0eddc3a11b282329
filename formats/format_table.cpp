#include "formats/format_table.h"

#include "formats/dsq/dsq_reader.h"
#include "formats/gguf/gguf.h"
#include "formats/hf/hf.h"
#include "formats/llama2c/llama2c.h"
#include "formats/safetensors/safetensors.h"
#include "lib/core/error.h"

namespace dsq::formats {

const std::vector<FormatInfo>& format_table() {
  static const std::vector<FormatInfo> table = {
      // Rows are added by each formats/<fmt>/ reader: {name, extensions, sniff, open}.
      {"dsq", {".dsq"}, sniff_dsq, open_dsq},
      {"gguf", {".gguf"}, sniff_gguf, read_gguf},
      {"safetensors", {".safetensors"}, sniff_safetensors, read_safetensors_model},
      {"hf", {}, sniff_hf_dir, read_hf_dir},
      // Last: llama2.c files have no magic (sniffed by header plausibility and exact size).
      {"llama2c", {".bin"}, sniff_llama2c, read_llama2c},
  };
  return table;
}

const FormatInfo& detect_format(const std::string& path) {
  for (const auto& f : format_table())
    if (f.sniff(path)) return f;
  std::string known;
  for (const auto& f : format_table()) known += (known.empty() ? "" : ", ") + std::string(f.name);
  throw FormatError("'" + path + "': not a recognised model (supported: " + known + ")");
}

WeightStore open_model(const std::string& path, const OpenOptions& opts) {
  return detect_format(path).open(path, opts);
}

}  // namespace dsq::formats
