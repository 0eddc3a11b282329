#include "jobs/job_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "formats/gguf/gguf_writer.h"
#include "formats/sinks.h"
#include "lib/core/error.h"
#include "lib/core/json_io.h"
#include "lib/core/log.h"
#include "lib/text/gguf_vocab.h"

namespace dsq::jobs {

void write_json_file(const std::string& path, const nlohmann::json& j) {
  if (path == "-") {
    std::fputs((dump_json(j, 2) + "\n").c_str(), stdout);
    return;
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw IoError("'" + tmp + "': cannot open for writing");
    f << dump_json(j, 2) << "\n";
    if (!f.flush()) throw IoError("'" + tmp + "': write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    throw IoError("'" + path + "': cannot rename from '" + tmp + "': " + ec.message());
  }
}

namespace {

struct FileId {
  dev_t dev;
  ino_t ino;
  bool operator==(const FileId&) const = default;
};

std::optional<FileId> file_id(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileId{st.st_dev, st.st_ino};
}

// Every file an input stands for: itself, or each regular file of a directory.
std::vector<std::string> expand_input(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return {path};
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(path, ec))
    if (e.is_regular_file(ec)) out.push_back(e.path().string());
  return out;
}

}  // namespace

void IoPlan::input(const std::string& path) {
  if (path.empty() || path == "-") return;
  for (const auto& f : expand_input(path)) inputs_.push_back({f, path});
}

void IoPlan::inputs(const std::vector<std::string>& paths) {
  for (const auto& p : paths) input(p);
}

void IoPlan::model_inputs(const WeightStore& ws) {
  for (const auto& s : ws.sources) input(s.path);
}

void IoPlan::output(const std::string& path, const std::string& flag) {
  if (path.empty() || path == "-") return;
  outputs_.push_back({path, flag});
}

void IoPlan::model_output(const std::string& path, bool hf_dir) {
  outputs_.push_back({path, "-o", true, hf_dir});
}

void IoPlan::check() const {
  namespace fs = std::filesystem;
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const File& o = outputs_[i];
    std::error_code ec;
    if (fs::is_directory(o.path, ec))
      throw UsageError("'" + o.path + "' (" + o.flag + ") is a directory, not a file");
    const fs::path parent = fs::absolute(o.path, ec).parent_path();
    if (!fs::is_directory(parent, ec))
      throw UsageError("'" + o.path + "' (" + o.flag + "): the directory '" + parent.string() +
                       "' does not exist");
    if (::access(parent.c_str(), W_OK | X_OK) != 0)
      throw UsageError("'" + o.path + "' (" + o.flag + "): the directory '" + parent.string() +
                       "' is not writable");
    const auto oid = file_id(o.path);
    const fs::path ocanon = fs::weakly_canonical(o.path, ec);
    for (const File& in : inputs_) {
      const auto iid = file_id(in.path);
      if ((oid && iid && *oid == *iid) || ocanon == fs::weakly_canonical(in.path, ec))
        throw UsageError("'" + o.path + "' (" + o.flag + ") would overwrite the input '" +
                         in.flag + "'");
    }
    for (size_t k = 0; k < i; ++k) {
      const File& other = outputs_[k];
      const auto kid = file_id(other.path);
      if ((oid && kid && *oid == *kid) || ocanon == fs::weakly_canonical(other.path, ec))
        throw UsageError("'" + o.path + "' is given as both " + other.flag + " and " + o.flag);
    }
    if (o.model) formats::check_sink_path(o.path, o.hf_dir);
  }
}

std::unique_ptr<text::Tokenizer> model_tokenizer(const WeightStore& ws, const std::string& path,
                                                 const std::string& hint) {
  if (!ws.metadata.contains("tokenizer") || ws.metadata["tokenizer"].is_null())
    throw ConfigError("'" + path + "': the model has no tokenizer (" + hint + ")");
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

void set_sink_tokenizer(formats::SinkOptions& o, const WeightStore& ws) {
  if (!ws.metadata.contains("tokenizer") || ws.metadata["tokenizer"].is_null()) return;
  o.gguf_tokenizer = [ref = ws.metadata["tokenizer"]] {
    return std::make_shared<const formats::GgufMetadata>(text::gguf_tokenizer_metadata(ref));
  };
}

}  // namespace dsq::jobs
