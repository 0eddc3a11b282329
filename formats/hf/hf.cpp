#include "formats/hf/hf.h"

#include <cmath>
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
  Fields(const json& j, const std::string& where, std::string prefix = "")
      : j_(j), where_(where), prefix_(std::move(prefix)) {}
  // The fields of sub-object `obj` of key `key`, named "key.field" in errors.
  Fields sub(const json& obj, const char* key) const { return Fields(obj, where_, prefix_ + key + "."); }

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
    throw ConfigError("'" + where_ + "': field '" + prefix_ + key + "': " + what);
  }

 private:
  const json& j_;
  const std::string& where_;
  std::string prefix_;
};

// rope_scaling (legacy name) or rope_parameters (transformers 5): YaRN is applied; "default" or
// absent is plain RoPE. Other types are refused for latent attention (the DeepSeek row relies on
// its scaling) and recorded with a warning elsewhere, as before.
void read_rope_scaling(const Fields& f, const ArchInfo& arch, ModelConfig* c) {
  const char* key = f.find("rope_scaling") ? "rope_scaling" : "rope_parameters";
  const json* r = f.find(key);
  if (!r) return;
  if (!r->is_object()) f.fail(key, "expected an object, found " + json_excerpt(*r));
  std::string type;
  for (const char* k : {"type", "rope_type"})
    if (auto it = r->find(k); it != r->end() && it->is_string()) type = it->get<std::string>();
  if (type.empty() || type == "default") return;
  if (type != "yarn") {
    if (arch.attn == AttnKind::kMla)
      f.fail(key, "type '" + type + "' is not supported (only yarn)");
    log_warn("field '" + std::string(key) + "': type '" + type +
             "' is recorded but not applied by dsq's engine (only yarn is)");
    return;
  }
  const Fields s = f.sub(*r, key);
  RopeScaling y;
  y.type = "yarn";
  y.factor = s.get_float("factor").value_or(0.0);
  y.original_max_position = s.get_int("original_max_position_embeddings").value_or(0);
  if (y.factor <= 0 && y.original_max_position > 0)  // transformers' fallback
    y.factor = static_cast<double>(c->max_ctx) / static_cast<double>(y.original_max_position);
  if (y.original_max_position <= 0)
    y.original_max_position = c->max_ctx;
  y.beta_fast = s.get_float("beta_fast").value_or(32.0);
  y.beta_slow = s.get_float("beta_slow").value_or(1.0);
  y.mscale = s.get_float("mscale").value_or(0.0);
  y.mscale_all_dim = s.get_float("mscale_all_dim").value_or(0.0);
  y.attention_factor = s.get_float("attention_factor").value_or(0.0);
  y.truncate = s.get_bool("truncate").value_or(true);
  if (auto t = s.get_float("rope_theta")) c->rope_theta = *t;
  c->rope_scaling = y;
}

void read_mla(const Fields& f, ModelConfig* c) {
  MlaDims& m = c->mla;
  m.q_lora_rank = f.get_int("q_lora_rank").value_or(0);  // null: a plain q_proj (V2-Lite)
  if (f.find("q_lora_rank") && m.q_lora_rank <= 0) f.fail("q_lora_rank", "must be positive or null");
  m.kv_lora_rank = f.require_int("kv_lora_rank");
  m.qk_nope_head_dim = f.require_int("qk_nope_head_dim");
  m.qk_rope_head_dim = f.require_int("qk_rope_head_dim");
  m.v_head_dim = f.require_int("v_head_dim");
  for (const auto& [k, v] : {std::pair{"kv_lora_rank", m.kv_lora_rank},
                             {"qk_nope_head_dim", m.qk_nope_head_dim},
                             {"qk_rope_head_dim", m.qk_rope_head_dim}, {"v_head_dim", m.v_head_dim}})
    if (v <= 0 || v > kMaxWidth) f.fail(k, "must be positive");
  if (m.qk_rope_head_dim % 2 != 0) f.fail("qk_rope_head_dim", "must be even");
  if (c->n_kv_heads != c->n_heads)
    f.fail("num_key_value_heads", "latent attention needs it equal to num_attention_heads");
  c->head_dim = m.qk_nope_head_dim + m.qk_rope_head_dim;
  c->rope_interleave = f.get_bool("rope_interleave").value_or(true);
  if (f.get_bool("attention_bias").value_or(false))
    f.fail("attention_bias", "biases on latent attention are not supported");
}

// transformers' DeepseekV3Config defaults for absent keys; V2's routing (softmax scores, greedy
// or group-limited greedy top-k) is refused by name.
void read_moe(const Fields& f, const std::string& model_type, ModelConfig* c) {
  MoeConfig& m = c->moe;
  const bool v2 = model_type == "deepseek_v2";
  const std::string scoring = f.find("scoring_func") ? f.get_string("scoring_func")
                                                     : (v2 ? "softmax" : "sigmoid");
  if (scoring != "sigmoid")
    f.fail("scoring_func", "'" + scoring + "' routing is not supported (only sigmoid, as in "
           "DeepSeek-V3/R1)");
  const std::string topk = f.find("topk_method") ? f.get_string("topk_method")
                                                 : (v2 ? "greedy" : "noaux_tc");
  if (topk != "noaux_tc")
    f.fail("topk_method", "'" + topk + "' is not supported (only noaux_tc, as in DeepSeek-V3/R1)");
  m.n_experts = f.get_int("n_routed_experts").value_or(256);
  m.n_experts_per_tok = f.get_int("num_experts_per_tok").value_or(8);
  m.n_group = f.get_int("n_group").value_or(8);
  m.topk_group = f.get_int("topk_group").value_or(4);
  m.n_shared_experts = f.get_int("n_shared_experts").value_or(1);
  m.d_expert = f.get_int("moe_intermediate_size").value_or(2048);
  m.first_dense = f.get_int("first_k_dense_replace").value_or(3);
  m.layer_freq = f.get_int("moe_layer_freq").value_or(1);
  m.norm_topk_prob = f.get_bool("norm_topk_prob").value_or(true);
  m.routed_scaling_factor = f.get_float("routed_scaling_factor").value_or(2.5);
  auto range = [&](const char* k, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
      f.fail(k, strprintf("%lld is outside [%lld, %lld]", static_cast<long long>(v),
                          static_cast<long long>(lo), static_cast<long long>(hi)));
  };
  range("n_routed_experts", m.n_experts, 1, int64_t{1} << 20);
  range("num_experts_per_tok", m.n_experts_per_tok, 1, m.n_experts);
  range("n_group", m.n_group, 1, m.n_experts);
  if (m.n_experts % m.n_group != 0) f.fail("n_group", "does not divide n_routed_experts");
  range("topk_group", m.topk_group, 1, m.n_group);
  if (m.topk_group * (m.n_experts / m.n_group) < m.n_experts_per_tok)
    f.fail("topk_group", "the kept groups hold fewer experts than num_experts_per_tok");
  range("n_shared_experts", m.n_shared_experts, 0, 1024);
  range("moe_intermediate_size", m.d_expert, 1, kMaxWidth);
  range("first_k_dense_replace", m.first_dense, 0, kMaxLayers);
  range("moe_layer_freq", m.layer_freq, 1, kMaxLayers);
  if (!std::isfinite(m.routed_scaling_factor) || m.routed_scaling_factor <= 0)
    f.fail("routed_scaling_factor", "must be finite and positive");
}

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
    // Names and shards are quoted as short excerpts: an index may hold anything.
    const std::string tensor = "tensor " + quoted_excerpt(name);
    if (!shard.is_string())
      throw FormatError("'" + index_path + "': " + tensor + ": shard is not a string");
    const std::string s = shard.get<std::string>();
    const fs::path p(s);
    bool escapes = s.empty() || p.is_absolute();
    for (const auto& part : p)
      if (part == "..") escapes = true;
    if (escapes)
      throw FormatError("'" + index_path + "': " + tensor + ": shard " + quoted_excerpt(s) +
                        " is not a file inside the checkpoint directory");
    if (std::find(files.begin(), files.end(), s) == files.end()) {
      // Without an error code a name the file system refuses (too long) throws filesystem_error.
      const fs::path full = fs::path(index_path).parent_path() / p;
      std::error_code ec;
      if (!fs::is_regular_file(full, ec))
        throw FormatError("'" + index_path + "': shard " + quoted_excerpt(s) +
                          (ec && ec != std::errc::no_such_file_or_directory
                               ? " cannot be opened (" + ec.message() + ")"
                               : std::string(" is missing")) +
                          " (it should hold " + tensor + ")");
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
  const auto names = detail::source_name_map(arch, c, detail::NameColumn::kHf);

  const Fields top(cfg_json, ck.config_path);
  const int64_t nextn = std::max<int64_t>(0, top.get_int("num_nextn_predict_layers").value_or(0));
  const int64_t fp8_block = hf_fp8_block_size(cfg_json, ck.config_path);

  // Every tensor by name (checked against the index), then each one mapped.
  struct Src {
    const SafetensorsFile* file;
    const SafetensorsTensor* t;
  };
  std::map<std::string, Src, std::less<>> all;
  std::vector<std::string> order;  // file order
  for (const auto& f : files) {
    const std::string shard_name = fs::path(f.path()).filename().string();
    for (const auto& t : f.tensors()) {
      const std::string w = "'" + f.path() + "': tensor '" + t.name + "'";
      if (auto [it, fresh] = all.emplace(t.name, Src{&f, &t}); !fresh)
        throw FormatError(w + ": duplicate tensor (also in '" + it->second.file->path() + "')");
      if (!ck.index_path.empty()) {
        auto wm = ck.weight_map.find(t.name);
        if (wm == ck.weight_map.end())
          throw FormatError(w + ": not listed in '" + ck.index_path + "'");
        if (wm->get<std::string>() != shard_name)
          throw FormatError(w + ": the index places it in shard '" + wm->get<std::string>() + "'");
      }
      order.push_back(t.name);
    }
  }
  for (const auto& [name, shard] : ck.weight_map.items())
    if (!all.count(name))
      throw FormatError("'" + ck.index_path + "': tensor '" + name + "' should be in shard '" +
                        shard.get<std::string>() + "' but is not there");

  constexpr std::string_view kScaleSuffix = "_scale_inv";
  auto is_mtp = [&](const std::string& name) {  // model.layers.<N>.* with N past the blocks
    constexpr std::string_view p = "model.layers.";
    if (nextn == 0 || name.rfind(p, 0) != 0) return false;
    int64_t n = 0;
    size_t i = p.size();
    for (; i < name.size() && i < p.size() + 9 && std::isdigit(static_cast<unsigned char>(name[i])); ++i)
      n = n * 10 + (name[i] - '0');
    return i > p.size() && i < name.size() && name[i] == '.' && n >= c.n_layers &&
           n < c.n_layers + nextn;
  };
  std::vector<WeightStore::Entry> entries;
  int64_t skipped_mtp = 0;
  for (const auto& name : order) {
    const Src& s = all.at(name);
    const SafetensorsTensor& t = *s.t;
    const std::string w = "'" + s.file->path() + "': tensor '" + name + "'";
    if (is_weightless(name)) continue;
    if (is_mtp(name)) {
      ++skipped_mtp;
      continue;
    }
    if (name.size() > kScaleSuffix.size() &&
        std::string_view(name).substr(name.size() - kScaleSuffix.size()) == kScaleSuffix) {
      const std::string base = name.substr(0, name.size() - kScaleSuffix.size());
      auto b = all.find(base);
      if (b == all.end()) throw FormatError(w + ": a scale without its weight '" + base + "'");
      if (b->second.t->dtype != DType::kF8E4M3)
        throw FormatError(w + ": a scale for '" + base + "', which is " +
                          std::string(dtype_name(b->second.t->dtype)) + ", not F8_E4M3");
      continue;  // read with its weight
    }
    auto nt = names.find(name);
    if (nt == names.end())
      throw FormatError(strprintf("%s: not part of a %s model with %lld layers", w.c_str(),
                                  c.arch.c_str(), static_cast<long long>(c.n_layers)));
    WeightStore::Entry e;
    e.name = nt->second.canonical;
    e.dtype = t.dtype;
    e.shape = t.shape;
    e.source = s.file->path();
    if (t.dtype == DType::kF8E4M3) {
      if (nt->second.row->role != TensorRole::kLinear || t.shape.size() != 2)
        throw FormatError(w + ": F8_E4M3 is only read for 2-D linear weights");
      auto sc = all.find(name + std::string(kScaleSuffix));
      if (sc == all.end())
        throw FormatError(w + ": an F8_E4M3 weight without its '" + name +
                          std::string(kScaleSuffix) + "'");
      const int64_t block = fp8_block > 0 ? fp8_block : 128;
      e.dtype = DType::kQInt;
      e.quant = QuantDesc(QuantScheme::kFp8E4M3, static_cast<uint32_t>(block));
      const Src& ss = sc->second;
      e.load = detail::fp8_block_loader(
          {s.file->mapping(), s.file->tensor_data(t), DType::kF8E4M3, t.shape, s.file->path(), name},
          {ss.file->mapping(), ss.file->tensor_data(*ss.t), ss.t->dtype, ss.t->shape,
           ss.file->path(), ss.t->name},
          block);
    } else {
      e.load = detail::mapped_loader(s.file->mapping(), s.file->tensor_data(t), t.dtype, t.shape);
    }
    entries.push_back(std::move(e));
  }
  if (skipped_mtp > 0)
    log_info(strprintf("'%s': skipped %lld tensors of the multi-token-prediction layer%s "
                       "(num_nextn_predict_layers = %lld; not used for inference)",
                       ck.where.c_str(), static_cast<long long>(skipped_mtp), nextn > 1 ? "s" : "",
                       static_cast<long long>(nextn)));

  const detail::Classifier cls = detail::classifier_state(entries, arch);
  if (c.tied_embeddings && cls == detail::Classifier::kDistinct)
    throw ConfigError("'" + ck.config_path + "': tie_word_embeddings is true but the checkpoint " +
                      "holds a classifier that differs from the embedding");
  if (c.tied_embeddings) detail::drop_classifier(entries, arch);

  WeightStore ws;
  ws.config = c;
  detail::add_in_canonical_order(ws, std::move(entries), c);
  const json tok = detail::hf_tokenizer_reference(fs::path(ck.config_path).parent_path().string());
  if (!tok.is_null()) ws.metadata["tokenizer"] = tok;
  if (auto rs = cfg_json.find("rope_scaling"); rs != cfg_json.end() && !rs->is_null()) {
    ws.metadata["rope_scaling"] = *rs;  // provenance; yarn is in the config and applied
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
  hf_fp8_block_size(j, where);  // validates quantization_config (only FP8 block scales are read)
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
  read_rope_scaling(f, *arch, &c);
  if (arch->attn == AttnKind::kMla) read_mla(f, &c);
  if (arch->ffn == FfnKind::kMoe) read_moe(f, model_type, &c);
  return c;
}

json hf_config_to_json(const ModelConfig& c) {
  const ArchInfo& arch = arch_of(c);
  json j = {{"architectures", {std::string(arch.hf_architectures.front())}},
            {"model_type", std::string(arch.hf_model_types.front())},
            {"hidden_size", c.d_model},
            {"intermediate_size", c.d_ff},
            {"num_hidden_layers", c.n_layers},
            {"num_attention_heads", c.n_heads},
            {"num_key_value_heads", c.n_kv_heads},
            {"head_dim", arch.attn == AttnKind::kMla ? c.mla.qk_rope_head_dim : c.head_dim},
            {"vocab_size", c.vocab_size},
            {"max_position_embeddings", c.max_ctx},
            {"rms_norm_eps", c.rms_eps},
            {"rope_theta", c.rope_theta},
            {"tie_word_embeddings", c.tied_embeddings},
            {"hidden_act", "silu"},
            {"use_cache", true}};
  if (!arch.qkv_bias) j["attention_bias"] = false;
  if (arch.name == "llama") j["mlp_bias"] = false;
  if (arch.name == "qwen2" || arch.name == "qwen3") j["use_sliding_window"] = false;
  if (c.bos_id >= 0) j["bos_token_id"] = c.bos_id;
  if (c.eos_id >= 0) j["eos_token_id"] = c.eos_id;
  if (c.rope_scaling.type == "yarn") {
    const RopeScaling& y = c.rope_scaling;
    j["rope_scaling"] = {{"type", "yarn"},
                         {"rope_type", "yarn"},
                         {"factor", y.factor},
                         {"original_max_position_embeddings", y.original_max_position},
                         {"beta_fast", y.beta_fast},
                         {"beta_slow", y.beta_slow},
                         {"mscale", y.mscale},
                         {"mscale_all_dim", y.mscale_all_dim},
                         {"attention_factor", y.attention_factor},
                         {"truncate", y.truncate}};
  }
  if (arch.attn == AttnKind::kMla) {
    const MlaDims& m = c.mla;
    j["q_lora_rank"] = m.q_lora_rank > 0 ? json(m.q_lora_rank) : json(nullptr);
    j["kv_lora_rank"] = m.kv_lora_rank;
    j["qk_nope_head_dim"] = m.qk_nope_head_dim;
    j["qk_rope_head_dim"] = m.qk_rope_head_dim;
    j["v_head_dim"] = m.v_head_dim;
    j["rope_interleave"] = c.rope_interleave;
  }
  if (arch.ffn == FfnKind::kMoe) {
    const MoeConfig& m = c.moe;
    j["n_routed_experts"] = m.n_experts;
    j["num_experts_per_tok"] = m.n_experts_per_tok;
    j["n_group"] = m.n_group;
    j["topk_group"] = m.topk_group;
    j["n_shared_experts"] = m.n_shared_experts;
    j["moe_intermediate_size"] = m.d_expert;
    j["first_k_dense_replace"] = m.first_dense;
    j["moe_layer_freq"] = m.layer_freq;
    j["norm_topk_prob"] = m.norm_topk_prob;
    j["routed_scaling_factor"] = m.routed_scaling_factor;
    j["scoring_func"] = "sigmoid";
    j["topk_method"] = "noaux_tc";
    j["num_nextn_predict_layers"] = 0;
  }
  return j;
}

int64_t hf_fp8_block_size(const json& j, const std::string& where) {
  auto it = j.find("quantization_config");
  if (it == j.end() || it->is_null()) return 0;
  const std::string key = "quantization_config";
  auto fail = [&](const std::string& field, const std::string& what) -> int64_t {
    throw ConfigError("'" + where + "': field '" + key + "." + field + "': " + what);
  };
  if (!it->is_object()) fail("", "expected an object");
  const json& q = *it;
  const auto m = q.find("quant_method");
  const std::string method = m == q.end() ? "" : m->is_string() ? m->get<std::string>() : json_excerpt(*m);
  if (method != "fp8")
    fail("quant_method", quoted_excerpt(method) + " checkpoints are not supported as input (only fp8 block "
         "scales, as DeepSeek-V3/R1 release them; dequantize to bf16 first)");
  if (auto f = q.find("fmt"); f != q.end() && !(f->is_string() && f->get<std::string>() == "e4m3"))
    fail("fmt", json_excerpt(*f) + " is not supported (only e4m3)");
  if (auto a = q.find("activation_scheme");
      a != q.end() && !(a->is_string() && a->get<std::string>() == "dynamic"))
    fail("activation_scheme", json_excerpt(*a) + " is not supported (only dynamic)");
  int64_t block = 128;
  if (auto b = q.find("weight_block_size"); b != q.end() && !b->is_null()) {
    if (!b->is_array() || b->size() != 2 || !(*b)[0].is_number_integer() ||
        !(*b)[1].is_number_integer() || (*b)[0] != (*b)[1] || (*b)[0].get<int64_t>() < 1 ||
        (*b)[0].get<int64_t>() > 65536)
      fail("weight_block_size", json_excerpt(*b) + " is not supported (square blocks [B, B], "
           "1 <= B <= 65536)");
    block = (*b)[0].get<int64_t>();
  }
  return block;
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
