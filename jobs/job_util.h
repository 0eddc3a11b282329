// Plumbing the jobs share: atomic JSON reports, timing, the model's tokenizer.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/sinks.h"
#include "lib/core/weight_store.h"
#include "lib/text/tokenizer.h"

namespace dsq::jobs {

// The --output help of every command that writes a model (the format table's writers).
inline constexpr const char* kOutputModelHelp =
    "Output model; the extension picks the writer: .dsq (any model), or .gguf for llama.cpp "
    "(llama, qwen2, qwen3: floats as they are; int4_sym / int8_sym with groups of 32, 64, 128... "
    "or per channel become Q4_0 / Q8_0 blocks with the same codes and scales, int4_asym (fitted as "
    "int4_asymf) Q4_1; other schemes are refused; rows no 32-weight block divides are written as "
    "F16, with a note)";

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Writes `j` (pretty-printed) to `path` through <path>.tmp + rename; IoError naming the path.
// "-" writes to stdout.
void write_json_file(const std::string& path, const nlohmann::json& j);

// The files a job reads and writes, checked before any work, so that inputs are never destroyed
// and nothing fails after hours of work because a destination is wrong:
//   - no output may be one of the inputs or another output (the same file after resolving
//     symlinks and hard links: device and inode; a model directory counts as every file in it);
//   - every output's directory must exist and be writable, and an output must not be a directory.
// "-" (stdout) and empty paths are skipped. check() throws UsageError naming the flag and files.
class IoPlan {
 public:
  void input(const std::string& path);
  void inputs(const std::vector<std::string>& paths);
  // The files a reader opened for a model (WeightStore::sources).
  void model_inputs(const WeightStore& ws);
  void output(const std::string& path, const std::string& flag);
  // The model a command writes (-o), which must also have a writer for its extension
  // (formats::check_sink_path), or be a new Hugging Face directory when `hf_dir`.
  void model_output(const std::string& path, bool hf_dir = false);
  void check() const;

 private:
  struct File {
    std::string path, flag;
    bool model = false, hf_dir = false;
  };
  std::vector<File> inputs_, outputs_;
};

// The tokenizer the model's reader found (metadata "tokenizer"); ConfigError naming `path` and
// `hint` (what the user can do instead) when the model has none.
std::unique_ptr<text::Tokenizer> model_tokenizer(const WeightStore& ws, const std::string& path,
                                                 const std::string& hint);

// The tokenizer when the model has a usable one, else null (only text inputs need it).
std::unique_ptr<text::Tokenizer> optional_tokenizer(const WeightStore& ws);

// Lets the sink of a model written from `ws` ask for its tokenizer in the output's terms (GGUF's
// tokenizer.* keys, text::gguf_tokenizer_metadata); only a GGUF sink asks, so other outputs never
// parse the tokenizer. No-op when ws references no tokenizer.
void set_sink_tokenizer(formats::SinkOptions& o, const WeightStore& ws);

}  // namespace dsq::jobs
