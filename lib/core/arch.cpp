#include "lib/core/arch.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "lib/core/error.h"

namespace dsq {

using json = nlohmann::json;

LayerDims ModelConfig::layer(int64_t l) const {
  if (!layers.empty()) return layers.at(static_cast<size_t>(l));
  return LayerDims{n_heads, n_kv_heads, d_ff};
}

void to_json(json& j, const ModelConfig& c) {
  j = json{{"arch", c.arch},
           {"n_layers", c.n_layers},
           {"d_model", c.d_model},
           {"n_heads", c.n_heads},
           {"n_kv_heads", c.n_kv_heads},
           {"head_dim", c.head_dim},
           {"d_ff", c.d_ff},
           {"vocab_size", c.vocab_size},
           {"max_ctx", c.max_ctx},
           {"rms_eps", c.rms_eps},
           {"rope_theta", c.rope_theta},
           {"tied_embeddings", c.tied_embeddings},
           {"qkv_bias", c.qkv_bias},
           {"bos_id", c.bos_id},
           {"eos_id", c.eos_id}};
  if (!c.layers.empty()) {
    json arr = json::array();
    for (const auto& l : c.layers)
      arr.push_back({{"n_heads", l.n_heads}, {"n_kv_heads", l.n_kv_heads}, {"d_ff", l.d_ff}});
    j["layers"] = arr;
  }
}

namespace {
template <class T>
void get_field(const json& j, const char* key, T& out, bool required) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) throw ConfigError(strprintf("model config: missing field '%s'", key));
    return;
  }
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    throw ConfigError(strprintf("model config: field '%s' has the wrong type", key));
  }
}
}  // namespace

void from_json(const json& j, ModelConfig& c) {
  if (!j.is_object()) throw ConfigError("model config: expected a JSON object");
  get_field(j, "arch", c.arch, true);
  get_field(j, "n_layers", c.n_layers, true);
  get_field(j, "d_model", c.d_model, true);
  get_field(j, "n_heads", c.n_heads, true);
  get_field(j, "n_kv_heads", c.n_kv_heads, true);
  get_field(j, "head_dim", c.head_dim, true);
  get_field(j, "d_ff", c.d_ff, true);
  get_field(j, "vocab_size", c.vocab_size, true);
  get_field(j, "max_ctx", c.max_ctx, false);
  get_field(j, "rms_eps", c.rms_eps, false);
  get_field(j, "rope_theta", c.rope_theta, false);
  get_field(j, "tied_embeddings", c.tied_embeddings, false);
  get_field(j, "qkv_bias", c.qkv_bias, false);
  get_field(j, "bos_id", c.bos_id, false);
  get_field(j, "eos_id", c.eos_id, false);
  c.layers.clear();
  if (auto it = j.find("layers"); it != j.end()) {
    if (!it->is_array()) throw ConfigError("model config: 'layers' must be an array");
    for (const auto& l : *it) {
      LayerDims d;
      get_field(l, "n_heads", d.n_heads, true);
      get_field(l, "n_kv_heads", d.n_kv_heads, true);
      get_field(l, "d_ff", d.d_ff, true);
      c.layers.push_back(d);
    }
  }
}

void validate_config(const ModelConfig& c, const std::string& where) {
  auto bad = [&](const std::string& what) { throw ConfigError(where + ": " + what); };
  require_arch(c.arch, where);
  if (c.n_layers <= 0) bad("n_layers must be positive");
  if (c.d_model <= 0 || c.vocab_size <= 0) bad("d_model and vocab_size must be positive");
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) bad("head_dim must be positive and even");
  if (c.rms_eps <= 0) bad("rms_eps must be positive");
  if (!c.layers.empty() && static_cast<int64_t>(c.layers.size()) != c.n_layers)
    bad(strprintf("'layers' has %zu entries, n_layers is %lld", c.layers.size(),
                  static_cast<long long>(c.n_layers)));
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerDims d = c.layer(l);
    if (d.n_heads < 0 || d.n_kv_heads < 0 || d.d_ff < 0) bad(strprintf("layer %lld: negative width", static_cast<long long>(l)));
    if (d.n_kv_heads == 0 ? d.n_heads != 0 : d.n_heads % d.n_kv_heads != 0)
      bad(strprintf("layer %lld: n_heads %lld is not a multiple of n_kv_heads %lld",
                    static_cast<long long>(l), static_cast<long long>(d.n_heads),
                    static_cast<long long>(d.n_kv_heads)));
  }
  if (c.layers.empty() && (c.n_heads <= 0 || c.n_kv_heads <= 0 || c.d_ff <= 0))
    bad("n_heads, n_kv_heads and d_ff must be positive");
}

// ---------------------------------------------------------------------------------------------
// The table. Adding a family = adding a row here.
namespace {
std::vector<ArchTensor> llama_like_tensors() {
  using R = TensorRole;
  using P = RopePermute;
  return {
      {"token_embd.weight", "model.embed_tokens.weight", "token_embd.weight", R::kEmbedding, P::kNone, false, false},
      {"output_norm.weight", "model.norm.weight", "output_norm.weight", R::kNorm, P::kNone, false, false},
      {"output.weight", "lm_head.weight", "output.weight", R::kClassifier, P::kNone, false, true},
      {"blk.{L}.attn_norm.weight", "model.layers.{L}.input_layernorm.weight", "blk.{L}.attn_norm.weight", R::kNorm, P::kNone, true, false},
      {"blk.{L}.attn_q.weight", "model.layers.{L}.self_attn.q_proj.weight", "blk.{L}.attn_q.weight", R::kLinear, P::kQ, true, false},
      {"blk.{L}.attn_k.weight", "model.layers.{L}.self_attn.k_proj.weight", "blk.{L}.attn_k.weight", R::kLinear, P::kK, true, false},
      {"blk.{L}.attn_v.weight", "model.layers.{L}.self_attn.v_proj.weight", "blk.{L}.attn_v.weight", R::kLinear, P::kNone, true, false},
      {"blk.{L}.attn_q.bias", "model.layers.{L}.self_attn.q_proj.bias", "blk.{L}.attn_q.bias", R::kBias, P::kQ, true, true},
      {"blk.{L}.attn_k.bias", "model.layers.{L}.self_attn.k_proj.bias", "blk.{L}.attn_k.bias", R::kBias, P::kK, true, true},
      {"blk.{L}.attn_v.bias", "model.layers.{L}.self_attn.v_proj.bias", "blk.{L}.attn_v.bias", R::kBias, P::kNone, true, true},
      {"blk.{L}.attn_output.weight", "model.layers.{L}.self_attn.o_proj.weight", "blk.{L}.attn_output.weight", R::kLinear, P::kNone, true, false},
      {"blk.{L}.ffn_norm.weight", "model.layers.{L}.post_attention_layernorm.weight", "blk.{L}.ffn_norm.weight", R::kNorm, P::kNone, true, false},
      {"blk.{L}.ffn_gate.weight", "model.layers.{L}.mlp.gate_proj.weight", "blk.{L}.ffn_gate.weight", R::kLinear, P::kNone, true, false},
      {"blk.{L}.ffn_up.weight", "model.layers.{L}.mlp.up_proj.weight", "blk.{L}.ffn_up.weight", R::kLinear, P::kNone, true, false},
      {"blk.{L}.ffn_down.weight", "model.layers.{L}.mlp.down_proj.weight", "blk.{L}.ffn_down.weight", R::kLinear, P::kNone, true, false},
  };
}

std::vector<LinearGroup> llama_like_groups() {
  return {
      {"attn_in", "attn_norm", {"attn_q", "attn_k", "attn_v"}, {"attn_q", "attn_k"}},
      {"attn_out", "attn_v", {"attn_output"}, {}, ChannelMap::kKvHeads},
      {"ffn_in", "ffn_norm", {"ffn_gate", "ffn_up"}},
      {"ffn_out", "ffn_up", {"ffn_down"}},
  };
}
}  // namespace

const std::vector<ArchInfo>& arch_table() {
  static const std::vector<ArchInfo> table = {
      {"llama",
       {"LlamaForCausalLM", "MistralForCausalLM"},
       {"llama", "mistral"},
       "llama",
       /*meta_rope_in_gguf=*/true,
       /*qkv_bias=*/false,
       llama_like_tensors(),
       llama_like_groups()},
      {"qwen2",
       {"Qwen2ForCausalLM"},
       {"qwen2"},
       "qwen2",
       /*meta_rope_in_gguf=*/false,  // llama.cpp keeps NEOX order for qwen2
       /*qkv_bias=*/true,
       llama_like_tensors(),
       llama_like_groups()},
  };
  return table;
}

const ArchInfo* find_arch(std::string_view name) {
  for (const auto& a : arch_table())
    if (a.name == name) return &a;
  return nullptr;
}

const ArchInfo* find_arch_by_hf(std::string_view hf_arch, std::string_view model_type) {
  for (const auto& a : arch_table()) {
    for (auto n : a.hf_architectures)
      if (!hf_arch.empty() && n == hf_arch) return &a;
    for (auto n : a.hf_model_types)
      if (!model_type.empty() && n == model_type) return &a;
  }
  return nullptr;
}

const ArchInfo* find_arch_by_gguf(std::string_view gguf_arch) {
  for (const auto& a : arch_table())
    if (a.gguf_arch == gguf_arch) return &a;
  return nullptr;
}

const ArchInfo& require_arch(std::string_view name, const std::string& where) {
  if (const ArchInfo* a = find_arch(name)) return *a;
  std::string known;
  for (const auto& a : arch_table()) known += (known.empty() ? "" : ", ") + std::string(a.name);
  throw ConfigError(where + ": unsupported architecture '" + std::string(name) +
                    "' (supported: " + known + ")");
}

std::string expand_name(std::string_view pattern, int64_t layer) {
  std::string out(pattern);
  const auto pos = out.find("{L}");
  if (pos != std::string::npos) out.replace(pos, 3, std::to_string(layer));
  return out;
}

std::string linear_name(int64_t layer, std::string_view short_name) {
  return "blk." + std::to_string(layer) + "." + std::string(short_name) + ".weight";
}

bool parse_block_name(const std::string& canonical, int64_t* layer, std::string* short_name) {
  if (canonical.rfind("blk.", 0) != 0) return false;
  const auto dot = canonical.find('.', 4);
  if (dot == std::string::npos || dot == 4) return false;
  int64_t l = 0;
  for (size_t i = 4; i < dot; ++i) {
    if (canonical[i] < '0' || canonical[i] > '9') return false;
    l = l * 10 + (canonical[i] - '0');
  }
  const auto last = canonical.rfind('.');
  if (last <= dot) return false;
  if (layer) *layer = l;
  if (short_name) *short_name = canonical.substr(dot + 1, last - dot - 1);
  return true;
}

bool is_block_linear(const std::string& canonical) {
  int64_t l;
  std::string s;
  if (!parse_block_name(canonical, &l, &s)) return false;
  if (canonical.size() < 7 || canonical.compare(canonical.size() - 7, 7, ".weight") != 0) return false;
  return s == "attn_q" || s == "attn_k" || s == "attn_v" || s == "attn_output" ||
         s == "ffn_gate" || s == "ffn_up" || s == "ffn_down";
}

std::optional<Shape> expected_shape(const ModelConfig& c, const std::string& name) {
  const int64_t d = c.d_model;
  if (name == "token_embd.weight" || name == "output.weight") return Shape{c.vocab_size, d};
  if (name == "output_norm.weight") return Shape{d};
  int64_t l;
  std::string s;
  if (!parse_block_name(name, &l, &s) || l < 0 || l >= c.n_layers) return std::nullopt;
  const LayerDims w = c.layer(l);
  const int64_t q = w.n_heads * c.head_dim, kv = w.n_kv_heads * c.head_dim;
  const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  if (bias) {
    if (s == "attn_q") return Shape{q};
    if (s == "attn_k" || s == "attn_v") return Shape{kv};
    if (s == "attn_output" || s == "ffn_down") return Shape{d};  // pruning's bias compensation
    return std::nullopt;
  }
  if (s == "attn_norm" || s == "ffn_norm") return Shape{d};
  if (s == "attn_q") return Shape{q, d};
  if (s == "attn_k" || s == "attn_v") return Shape{kv, d};
  if (s == "attn_output") return Shape{d, q};
  if (s == "ffn_gate" || s == "ffn_up") return Shape{w.d_ff, d};
  if (s == "ffn_down") return Shape{d, w.d_ff};
  return std::nullopt;
}

void permute_meta_to_hf(const std::byte* src, std::byte* dst, int64_t n_heads, int64_t head_dim,
                        int64_t cols, size_t elem_bytes) {
  const size_t row_bytes = static_cast<size_t>(cols) * elem_bytes;
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t r = 0; r < head_dim; ++r) {
      // HF row r of the head holds rotary pair element (r / half) of pair (r % half), which Meta
      // stores at row 2*(r % half) + r / half.
      const int64_t meta = 2 * (r % half) + r / half;
      std::memcpy(dst + static_cast<size_t>(h * head_dim + r) * row_bytes,
                  src + static_cast<size_t>(h * head_dim + meta) * row_bytes, row_bytes);
    }
}

}  // namespace dsq
