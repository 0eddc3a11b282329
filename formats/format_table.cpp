#include "formats/format_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include "formats/dsq/dsq_reader.h"
#include "formats/dsq/dsq_writer.h"
#include "formats/gguf/gguf.h"
#include "formats/hf/hf.h"
#include "formats/llama2c/llama2c.h"
#include "formats/safetensors/safetensors.h"
#include "lib/core/error.h"
#include "lib/core/progress.h"

namespace dsq::formats {

const std::vector<FormatInfo>& format_table() {
  static const std::vector<FormatInfo> table = {
      // Rows are added by each formats/<fmt>/ reader: {name, extensions, sniff, open, sink}.
      {"dsq", {".dsq"}, sniff_dsq, open_dsq, dsq_sink},
      {"gguf", {".gguf"}, sniff_gguf, read_gguf, gguf_sink},
      {"safetensors", {".safetensors"}, sniff_safetensors, read_safetensors_model},
      {"hf", {}, sniff_hf_dir, read_hf_dir, hf_sink},
      // Last: llama2.c files have no magic (sniffed by header plausibility and exact size).
      {"llama2c", {".bin"}, sniff_llama2c, read_llama2c},
  };
  return table;
}

const FormatInfo& detect_format(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw IoError("'" + path + "': no such file or directory");
  for (const auto& f : format_table())
    if (f.sniff(path)) return f;
  std::string known;
  for (const auto& f : format_table()) known += (known.empty() ? "" : ", ") + std::string(f.name);
  throw FormatError("'" + path + "': not a recognised model (supported: " + known + ")");
}

WeightStore open_model(const std::string& path, const OpenOptions& opts) {
  return detect_format(path).open(path, opts);
}

DType sink_cast_dtype(DType dtype, size_t ndim, std::optional<DType> cast, const QuantDesc* q) {
  // Storage schemes of released checkpoints (block FP8) are dequantized by a cast; quantized
  // results of dsq (grouped integers) are never.
  const bool storage = dtype == DType::kQInt && q && !q->info().quantize_target();
  if (!cast || (!dtype_is_float(dtype) && !storage)) return dtype;
  return ndim >= 2 ? *cast : DType::kF32;
}

namespace {
// The format whose writer takes `path`: the hf row for a Hugging Face directory, else the row with
// the path's extension.
const FormatInfo& sink_format(const std::string& path, bool hf_dir) {
  const std::string ext = std::filesystem::path(path).extension().string();
  std::string writable;
  for (const auto& f : format_table()) {
    if (!f.sink) continue;
    if (hf_dir) {
      if (f.name == "hf") return f;
      continue;
    }
    for (const auto e : f.extensions) {
      if (e == ext) return f;
      writable += (writable.empty() ? "" : ", ") + std::string(e);
    }
  }
  if (hf_dir) throw Error("the format table has no Hugging Face writer");
  throw UsageError("'" + path + "': cannot write '" + (ext.empty() ? std::string("(no extension)") : ext) +
                   "' files (writable: " + writable + ", or a Hugging Face directory with dsq "
                   "export --hf)");
}
}  // namespace

std::unique_ptr<ModelSink> open_sink(const std::string& path, const WeightStore& src,
                                     const SinkOptions& opts) {
  return sink_format(path, opts.hf_layout != HfLayout::kNone).sink(path, src, opts);
}

void check_sink_path(const std::string& path, bool hf_dir) { (void)sink_format(path, hf_dir); }

std::string_view hf_layout_name(HfLayout l) {
  switch (l) {
    case HfLayout::kNone: return "none";
    case HfLayout::kFloat: return "float";
    case HfLayout::kGptq: return "gptq";
    case HfLayout::kGptqV2: return "gptq-v2";
    case HfLayout::kAwq: return "awq";
    case HfLayout::kCompressedTensors: return "compressed-tensors";
  }
  return "none";
}

HfLayout parse_hf_layout(std::string_view name) {
  for (HfLayout l : {HfLayout::kFloat, HfLayout::kGptq, HfLayout::kGptqV2, HfLayout::kAwq,
                     HfLayout::kCompressedTensors})
    if (hf_layout_name(l) == name) return l;
  return HfLayout::kNone;
}

void commit_output(int* fd, const std::string& tmp, const std::string& path) {
  if (::fsync(*fd) != 0) throw IoError("'" + tmp + "': fsync failed: " + std::strerror(errno));
  const int rc = ::close(*fd);
  *fd = -1;
  if (rc != 0) throw IoError("'" + tmp + "': close failed: " + std::strerror(errno));
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw IoError("'" + path + "': cannot rename from .tmp: " + ec.message());
}

SinkReport stream_model(const WeightStore& ws, ModelSink& sink, bool progress) {
  std::optional<Progress> bar;
  if (progress) bar.emplace("writing", static_cast<int64_t>(ws.size()), "tensors");
  for (const auto& name : ws.names()) {
    const auto& e = ws.entry(name);
    sink.add(name, e.load(), e.attrs);
    if (bar) bar->add();
  }
  return sink.finish();
}

SinkReport write_model(const WeightStore& ws, const std::string& path, const SinkOptions& opts) {
  return stream_model(ws, *open_sink(path, ws, opts), opts.progress);
}

}  // namespace dsq::formats
