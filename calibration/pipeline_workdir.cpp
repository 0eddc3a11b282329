#include "calibration/pipeline_workdir.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "formats/dsq/dsq_reader.h"
#include "formats/dsq/dsq_writer.h"
#include "lib/core/error.h"
#include "lib/core/json_io.h"

namespace dsq::calibration::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The work directory's files are tensor containers without a model config.
formats::OpenOptions work_file_options() {
  formats::OpenOptions o;
  o.require_config = false;
  return o;
}

std::string block_file(int64_t l) { return "blk." + std::to_string(l) + ".dsq"; }
std::string acts_file(int64_t l) { return "acts." + std::to_string(l) + ".dsq"; }

void write_json_atomic(const std::string& path, const json& j) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << dump_json(j, 1) << "\n";
    f.flush();
    if (!f) throw IoError("'" + tmp + "': cannot write (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw IoError("'" + path + "': cannot rename from '" + tmp + "': " + ec.message());
}

// A probe's per-linear costs, when present, as the sensitivity table reads them
// (jobs/quantize_mixed.cpp add_linear_costs; the statistics file's table): {"options": [{"scheme":
// S, "cost": C}...], "rtn": {"scheme": S, "cost": C}}.
bool sensitivity_record_ok(const json& extra) {
  const auto it = extra.find("sensitivity");
  if (it == extra.end()) return true;
  const auto entry_ok = [](const json& e) {
    return e.is_object() && e.contains("scheme") && e["scheme"].is_string() && e.contains("cost") &&
           e["cost"].is_number();
  };
  if (!it->is_object() || !it->contains("options") || !(*it)["options"].is_array() ||
      !it->contains("rtn") || !entry_ok((*it)["rtn"]))
    return false;
  for (const auto& o : (*it)["options"])
    if (!entry_ok(o)) return false;
  return true;
}

// A block's result from its file's tensors and header; json exceptions for malformed fields.
BlockResult block_result(const WeightStore& ws, const json& h, int64_t layer, const std::string& p);

}  // namespace

WorkDir::WorkDir(std::string dir, const json& recipe, bool resume, bool writer)
    : dir_(std::move(dir)), recipe_(recipe), writer_(writer) {
  const std::string state = path("state.json");
  if (!writer_ && !resume) return;  // rank 0 created it
  if (writer_ && fs::exists(dir_) && !resume) {
    throw UsageError("'" + dir_ + "' exists (an interrupted run?): pass --resume to continue it, "
                     "or delete it to start over");
  }
  if (resume && fs::exists(state)) {
    std::ifstream f(state);
    const std::string text((std::istreambuf_iterator<char>(f)), {});
    const json s = parse_json(text, state);
    if (!s.is_object() || !s.contains("completed") || !s.contains("recipe") ||
        !s["completed"].is_number_integer() || s["completed"].get<int64_t>() < 0)
      throw FormatError("'" + state + "': not a pipeline state file");
    if (s["recipe"] != recipe_) {
      throw ConfigError("'" + dir_ + "' was started with another recipe: rerun the original "
                        "command, or delete it to start over");
    }
    completed_ = s["completed"].get<int64_t>();
    return;
  }
  if (!writer_) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw IoError("'" + dir_ + "': cannot create: " + ec.message());
  write_json_atomic(state, json{{"recipe", recipe_}, {"completed", 0}});
}

std::string WorkDir::stats_path(int64_t layer) const {
  return path("stats." + std::to_string(layer) + ".h5");
}

void WorkDir::save_block(const BlockResult& r) const {
  if (!writer_) return;
  json reports = json::object();
  for (const auto& l : r.linears)
    reports[l.name] = {{"err_sq", l.error.err_sq}, {"norm_sq", l.error.norm_sq}, {"extra", l.extra}};
  json replaced = json::array();
  for (const auto& [name, t] : r.replaced) replaced.push_back(name);
  formats::DsqWriter w(path(block_file(r.layer)),
                       json{{"partial", {{"layer", r.layer}, {"linears", reports},
                                         {"replaced", replaced}, {"summary", r.summary}}}});
  for (const auto& l : r.linears) w.add(l.name, l.q);
  for (const auto& [name, t] : r.replaced) w.add(name, t);
  w.finish();
}

BlockResult WorkDir::load_block(int64_t layer) const {
  const std::string p = path(block_file(layer));
  const WeightStore ws = formats::open_dsq(p, work_file_options());
  const auto mf = MappedFile::open(p);
  const json h = formats::read_dsq_index(*mf).header;
  try {
    return block_result(ws, h, layer, p);
  } catch (const json::exception& e) {  // a field missing or of another type
    throw FormatError("'" + p + "': not the pipeline result of block " + std::to_string(layer) +
                      " (" + e.what() + ")");
  }
}

namespace {
BlockResult block_result(const WeightStore& ws, const json& h, int64_t layer, const std::string& p) {
  const json* part = h.contains("partial") ? &h["partial"] : nullptr;
  if (!part || part->value("layer", int64_t{-1}) != layer)
    throw FormatError("'" + p + "': not the pipeline result of block " + std::to_string(layer));
  BlockResult r;
  r.layer = layer;
  r.summary = part->value("summary", json::object());
  const json replaced = part->value("replaced", json::array());
  for (const auto& name : ws.names()) {
    if (std::find(replaced.begin(), replaced.end(), name) != replaced.end()) {
      r.replaced.emplace_back(name, ws.get(name));
      continue;
    }
    const json& rep = part->at("linears").at(name);
    LinearResult l;
    l.name = name;
    l.q = ws.get(name);
    l.error.err_sq = rep.at("err_sq").get<double>();
    l.error.norm_sq = rep.at("norm_sq").get<double>();
    l.extra = rep.at("extra");
    if (!l.extra.is_object() || !sensitivity_record_ok(l.extra))
      throw FormatError("'" + p + "': not the pipeline result of block " + std::to_string(layer) +
                        ": linear " + quoted_excerpt(name) + " has a malformed 'extra'");
    r.linears.push_back(std::move(l));
  }
  return r;
}
}  // namespace

void WorkDir::save_acts(int64_t layer, const std::vector<float>& h, int64_t rows,
                        int64_t d) const {
  if (!writer_) return;
  formats::DsqWriter w(path(acts_file(layer)), json{{"partial", {{"acts", layer}}}});
  w.add("hidden", Tensor::borrow(DType::kF32, {rows, d}, h.data(), h.size() * sizeof(float),
                                 nullptr));
  w.finish();
}

std::vector<float> WorkDir::load_acts(int64_t layer, int64_t rows, int64_t d) const {
  const std::string p = path(acts_file(layer));
  const WeightStore ws = formats::open_dsq(p, work_file_options());
  if (!ws.has("hidden") || ws.entry("hidden").shape != Shape{rows, d} ||
      ws.entry("hidden").dtype != DType::kF32) {
    throw FormatError("'" + p + "': expected tensor 'hidden' f32 " + shape_str({rows, d}));
  }
  const Tensor t = ws.get("hidden");
  return std::vector<float>(t.data<float>(), t.data<float>() + rows * d);
}

void WorkDir::commit(int64_t completed) {
  if (!writer_) {
    completed_ = completed;
    return;
  }
  write_json_atomic(path("state.json"), json{{"recipe", recipe_}, {"completed", completed}});
  completed_ = completed;
  std::error_code ec;
  for (int64_t l = 0; l < completed; ++l) fs::remove(path(acts_file(l)), ec);
}

void WorkDir::remove() {
  if (!writer_) return;
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

}  // namespace dsq::calibration::detail
