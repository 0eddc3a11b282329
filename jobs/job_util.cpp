#include "jobs/job_util.h"

#include <filesystem>
#include <fstream>

#include "lib/core/error.h"
#include "lib/core/log.h"

namespace dsq::jobs {

void write_json_file(const std::string& path, const nlohmann::json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw IoError("'" + tmp + "': cannot open for writing");
    f << j.dump(2) << "\n";
    if (!f.flush()) throw IoError("'" + tmp + "': write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw IoError("'" + path + "': cannot rename from '" + tmp + "': " + ec.message());
  }
}

std::unique_ptr<text::Tokenizer> model_tokenizer(const WeightStore& ws, const std::string& path) {
  if (!ws.metadata.contains("tokenizer") || ws.metadata["tokenizer"].is_null())
    throw ConfigError("'" + path + "': the model has no tokenizer (use --tokens FILE.u32)");
  return text::load_tokenizer(ws.metadata["tokenizer"]);
}

std::unique_ptr<text::Tokenizer> optional_tokenizer(const WeightStore& ws) {
  if (!ws.metadata.contains("tokenizer") || ws.metadata["tokenizer"].is_null()) return nullptr;
  try {
    return text::load_tokenizer(ws.metadata["tokenizer"]);
  } catch (const Error& e) {
    log_debug(std::string("no tokenizer: ") + e.what());  // only text inputs need it
    return nullptr;
  }
}

}  // namespace dsq::jobs
