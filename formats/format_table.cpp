#include "formats/format_table.h"

#include "formats/gguf/gguf.h"
#include "lib/core/error.h"

namespace dsq::formats {

const std::vector<FormatInfo>& format_table() {
  static const std::vector<FormatInfo> table = {
      // Rows are added by each formats/<fmt>/ reader: {name, extensions, sniff, open}.
      {"gguf", {".gguf"}, sniff_gguf, read_gguf},
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
