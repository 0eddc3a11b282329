#include "formats/hf/hf.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "formats/hf/reader_util.h"
#include "formats/safetensors/safetensors.h"
#include "lib/core/error.h"
#include "lib/core/json_io.h"
#include "lib/core/log.h"

namespace dsq::formats {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Tensors HF checkpoints may carry that hold no weights (buffers recomputed at load time).
constexpr std::string_view kWeightlessSuffixes[] = {"rotary_emb.inv_freq"};

bool is_weightless(std::string_view name) {
  for (auto s : kWeightlessSuffixes)
    if (name.size() >= s.size() && name.substr(name.size() - s.size()) == s) return true;
  return false;
}

// Typed access to config.json fields; JSON null counts as absent (HF writes "head_dim": null).
class Fields {
 public:
  Fields(const json& j, const std::string& where) : j_(j), where_(where) {}

  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  std::optional<int64_t> get_int(const char* key) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (v->is_array() && !v->empty()) v = &(*v)[0];  // e.g. eos_token_id: [128001, 128009]
    if (v->is_number_integer() &&
        (!v->is_number_unsigned() || v->get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)))
      return v->get<int64_t>();
    fail(key, "expected an integer, found " + json_excerpt(*v));
  }
  int64_t require_int(const char* key) const {
    if (auto v = get_int(key)) return *v;
    fail(key, "missing");
  }
  std::optional<double> get_float(const char* key) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) fail(key, "expected a number, found " + json_excerpt(*v));
    return v->get<double>();
  }
  std::optional<bool> get_bool(const char* key) const {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) fail(key, "expected true or false, found " + json_excerpt(*v));
    return v->get<bool>();
  }
  std::string get_string(const char* key) const {
    const json* v = find(key);
    if (v && v->is_array() && !v->empty()) v = &(*v)[0];  // "architectures": ["..."]
    return v && v->is_string() ? v->get<std::string>() : std::string();
  }
  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw ConfigError("'" + where_ + "': field '" + key + "': " + what);
  }

 private:
  const json& j_;
  const std::string& where_;
};

struct Checkpoint {
  std::string where;          // directory or file named in whole-model messages
  std::string config_path;
  std::string format;         // "hf" or "safetensors"
  std::vector<std::string> shards;  // paths
  std::string index_path;     // sharded checkpoints only
  json weight_map = json::object();  // sharded: tensor name -> shard file name
};

// Shard file names from the index: unique, in first-appearance order, never escaping the dir.
std::vector<std::string> index_shards(const std::string& index_path, const json& index,
                                      json* weight_map) {
  auto wm = index.find("weight_map");
  if (!index.is_object() || wm == index.end() || !wm->is_object())
    throw FormatError("'" + index_path + "': missing 'weight_map' object");
  std::vector<std::string> files;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string())
      throw FormatError("'" + index_path + "': tensor '" + name + "': shard is not a string");
    const std::string s = shard.get<std::string>();
    const fs::path p(s);
    bool escapes = s.empty() || p.is_absolute();
    for (const auto& part : p)
      if (part == "..") escapes = true;
    if (escapes)
      throw FormatError("'" + index_path + "': tensor '" + name + "': shard '" + s +
                        "' is not a file inside the checkpoint directory");
    if (std::find(files.begin(), files.end(), s) == files.end()) {
      const fs::path full = fs::path(index_path).parent_path() / p;
      if (!fs::is_regular_file(full))
        throw FormatError("'" + index_path + "': shard '" + s + "' is missing (it should hold " +
                          "tensor '" + name + "')");
      files.push_back(s);
    }
  }
  *weight_map = *wm;
  return files;
}

WeightStore load_checkpoint(const Checkpoint& ck) {
  const json cfg_json = detail::parse_json_strict(detail::read_text_file(ck.config_path),
                                                  ck.config_path);
  ModelConfig c = hf_config_from_json(cfg_json, ck.config_path);
  const ArchInfo& arch = require_arch(c.arch, ck.config_path);

  std::vector<SafetensorsFile> files;
  size_t n_tensors = 0;
  for (const auto& p : ck.shards) {
    files.push_back(SafetensorsFile::open(p));
    n_tensors += files.back().tensors().size();
  }
  detail::check_config_from_file(c, n_tensors, ck.config_path);
  const auto names = detail::source_name_map(arch, c.n_layers, detail::NameColumn::kHf);

  std::map<std::string, std::string> seen;  // HF name -> shard path
  std::vector<WeightStore::Entry> entries;
  for (const auto& f : files) {
    const std::string shard_name = fs::path(f.path()).filename().string();
    for (const auto& t : f.tensors()) {
      const std::string w = "'" + f.path() + "': tensor '" + t.name + "'";
      if (auto [it, fresh] = seen.emplace(t.name, f.path()); !fresh)
        throw FormatError(w + ": duplicate tensor (also in '" + it->second + "')");
      if (!ck.index_path.empty()) {
        auto wm = ck.weight_map.find(t.name);
        if (wm == ck.weight_map.end())
          throw FormatError(w + ": not listed in '" + ck.index_path + "'");
        if (wm->get<std::string>() != shard_name)
          throw FormatError(w + ": the index places it in shard '" + wm->get<std::string>() + "'");
      }
      if (is_weightless(t.name)) continue;
      auto nt = names.find(t.name);
      if (nt == names.end())
        throw FormatError(strprintf("%s: not part of a %s model with %lld layers", w.c_str(),
                                    c.arch.c_str(), static_cast<long long>(c.n_layers)));
      WeightStore::Entry e;
      e.name = nt->second.canonical;
      e.dtype = t.dtype;
      e.shape = t.shape;
      e.source = f.path();
      e.load = detail::mapped_loader(f.mapping(), f.tensor_data(t), t.dtype, t.shape);
      entries.push_back(std::move(e));
    }
  }
  for (const auto& [name, shard] : ck.weight_map.items())
    if (!seen.count(name))
      throw FormatError("'" + ck.index_path + "': tensor '" + name + "' should be in shard '" +
                        shard.get<std::string>() + "' but is not there");

  const detail::Classifier cls = detail::classifier_state(entries, arch);
  if (c.tied_embeddings && cls == detail::Classifier::kDistinct)
    throw ConfigError("'" + ck.config_path + "': tie_word_embeddings is true but the checkpoint " +
                      "holds a classifier that differs from the embedding");
  if (c.tied_embeddings) detail::drop_classifier(entries, arch);

  WeightStore ws;
  ws.config = c;
  detail::add_in_canonical_order(ws, std::move(entries), arch);
  const json tok = detail::hf_tokenizer_reference(fs::path(ck.config_path).parent_path().string());
  if (!tok.is_null()) ws.metadata["tokenizer"] = tok;
  if (auto rs = cfg_json.find("rope_scaling"); rs != cfg_json.end() && !rs->is_null()) {
    ws.metadata["rope_scaling"] = *rs;
    log_warn("'" + ck.config_path + "': rope_scaling is recorded but not applied by dsq's engine");
  }
  std::vector<std::string> sources = {ck.config_path};
  if (!ck.index_path.empty()) sources.push_back(ck.index_path);
  sources.insert(sources.end(), ck.shards.begin(), ck.shards.end());
  detail::finish_store(ws, ck.where, ck.format, sources);
  return ws;
}

}  // namespace

ModelConfig hf_config_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) throw ConfigError("'" + where + "': not a JSON object");
  const Fields f(j, where);
  const std::string hf_arch = f.get_string("architectures");
  const std::string model_type = f.get_string("model_type");
  const ArchInfo* arch = find_arch_by_hf(hf_arch, model_type);
  if (!arch) {
    std::string known;
    for (const auto& a : arch_table())
      for (auto n : a.hf_architectures) known += (known.empty() ? "" : ", ") + std::string(n);
    throw ConfigError("'" + where + "': unsupported architecture '" + hf_arch + "' (model_type '" +
                      model_type + "'; supported: " + known + ")");
  }
  if (f.find("quantization_config"))
    throw ConfigError("'" + where + "': quantized checkpoints (quantization_config) are not "
                      "supported as input");
  if (!arch->qkv_bias && f.get_bool("attention_bias").value_or(false))
    f.fail("attention_bias", "biases on this architecture are not supported");
  if (f.get_bool("mlp_bias").value_or(false)) f.fail("mlp_bias", "MLP biases are not supported");
  if (const std::string act = f.get_string("hidden_act"); !act.empty() && act != "silu")
    f.fail("hidden_act", "'" + act + "' is not supported (only silu)");

  ModelConfig c;
  c.arch = std::string(arch->name);
  c.d_model = f.require_int("hidden_size");
  c.n_layers = f.require_int("num_hidden_layers");
  c.n_heads = f.require_int("num_attention_heads");
  c.n_kv_heads = f.get_int("num_key_value_heads").value_or(c.n_heads);
  c.d_ff = f.require_int("intermediate_size");
  c.vocab_size = f.require_int("vocab_size");
  if (c.n_heads <= 0) f.fail("num_attention_heads", "must be positive");
  c.head_dim = f.get_int("head_dim").value_or(c.d_model / c.n_heads);
  c.max_ctx = f.get_int("max_position_embeddings").value_or(c.max_ctx);
  c.rms_eps = f.get_float("rms_norm_eps").value_or(1e-6);
  c.rope_theta = f.get_float("rope_theta").value_or(10000.0);
  c.tied_embeddings = f.get_bool("tie_word_embeddings").value_or(false);
  c.qkv_bias = arch->qkv_bias;
  c.bos_id = f.get_int("bos_token_id").value_or(-1);
  c.eos_id = f.get_int("eos_token_id").value_or(-1);
  return c;
}

bool sniff_hf_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::is_regular_file(fs::path(path) / "config.json", ec);
}

WeightStore read_hf_dir(const std::string& path, const OpenOptions& /*opts*/) {
  const fs::path dir(path);
  Checkpoint ck;
  ck.where = path;
  ck.format = "hf";
  ck.config_path = (dir / "config.json").string();
  if (!fs::is_regular_file(ck.config_path))
    throw ConfigError("'" + path + "': no config.json in the directory");
  const fs::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  if (fs::is_regular_file(single)) {
    ck.shards = {single.string()};
  } else if (fs::is_regular_file(index)) {
    ck.index_path = index.string();
    const json idx = detail::parse_json_strict(detail::read_text_file(ck.index_path), ck.index_path);
    for (const auto& s : index_shards(ck.index_path, idx, &ck.weight_map))
      ck.shards.push_back((dir / s).string());
  } else {
    throw FormatError("'" + path + "': neither model.safetensors nor "
                      "model.safetensors.index.json (pytorch_model.bin is not supported)");
  }
  return load_checkpoint(ck);
}

WeightStore read_safetensors_model(const std::string& path, const OpenOptions& /*opts*/) {
  Checkpoint ck;
  ck.where = path;
  ck.format = "safetensors";
  ck.config_path = (fs::path(detail::absolute_path(path)).parent_path() / "config.json").string();
  if (!fs::is_regular_file(ck.config_path))
    throw ConfigError("'" + path + "': no config.json beside it (head counts cannot be inferred " +
                      "from tensor shapes)");
  ck.shards = {path};
  return load_checkpoint(ck);
}

}  // namespace dsq::formats
