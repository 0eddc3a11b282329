#include "lib/core/arch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <nlohmann/json.hpp>

#include "lib/core/error.h"
#include "lib/core/json_io.h"

namespace dsq {

using json = nlohmann::json;

LayerDims ModelConfig::layer(int64_t l) const {
  if (!layers.empty()) return layers.at(static_cast<size_t>(l));
  return LayerDims{n_heads, n_kv_heads, d_ff};
}

bool ModelConfig::is_moe_layer(int64_t l) const {
  return moe.n_experts > 0 && l >= moe.first_dense && moe.layer_freq > 0 && l % moe.layer_freq == 0;
}

int64_t ModelConfig::rope_dims() const {
  return mla.qk_rope_head_dim > 0 ? mla.qk_rope_head_dim : head_dim;
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
  if (c.rope_interleave) j["rope_interleave"] = true;
  if (!c.rope_scaling.type.empty()) {
    const RopeScaling& r = c.rope_scaling;
    j["rope_scaling"] = {{"type", r.type},
                         {"factor", r.factor},
                         {"original_max_position", r.original_max_position},
                         {"beta_fast", r.beta_fast},
                         {"beta_slow", r.beta_slow},
                         {"mscale", r.mscale},
                         {"mscale_all_dim", r.mscale_all_dim},
                         {"attention_factor", r.attention_factor},
                         {"truncate", r.truncate}};
  }
  if (c.mla.kv_lora_rank > 0)
    j["mla"] = {{"q_lora_rank", c.mla.q_lora_rank},
                {"kv_lora_rank", c.mla.kv_lora_rank},
                {"qk_nope_head_dim", c.mla.qk_nope_head_dim},
                {"qk_rope_head_dim", c.mla.qk_rope_head_dim},
                {"v_head_dim", c.mla.v_head_dim}};
  if (c.moe.n_experts > 0)
    j["moe"] = {{"n_experts", c.moe.n_experts},
                {"n_experts_per_tok", c.moe.n_experts_per_tok},
                {"n_group", c.moe.n_group},
                {"topk_group", c.moe.topk_group},
                {"n_shared_experts", c.moe.n_shared_experts},
                {"d_expert", c.moe.d_expert},
                {"first_dense", c.moe.first_dense},
                {"layer_freq", c.moe.layer_freq},
                {"norm_topk_prob", c.moe.norm_topk_prob},
                {"routed_scaling_factor", c.moe.routed_scaling_factor}};
  if (!c.layers.empty()) {
    json arr = json::array();
    for (const auto& l : c.layers)
      arr.push_back({{"n_heads", l.n_heads}, {"n_kv_heads", l.n_kv_heads}, {"d_ff", l.d_ff}});
    j["layers"] = arr;
  }
}

namespace {
template <class T>
void get_field(const json& j, const char* key, T& out, bool required, const char* parent = "") {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) throw ConfigError(strprintf("model config: missing field '%s%s'", parent, key));
    return;
  }
  if (!json_get(*it, &out))  // also an integer field given 1e300: out of range, not converted
    throw ConfigError(strprintf("model config: field '%s%s' has the wrong type or is out of range",
                                parent, key));
}

const json* sub_object(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return nullptr;
  if (!it->is_object()) throw ConfigError(strprintf("model config: '%s' must be an object", key));
  return &*it;
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
  get_field(j, "rope_interleave", c.rope_interleave, false);
  c.rope_scaling = {};
  if (const json* r = sub_object(j, "rope_scaling")) {
    RopeScaling& s = c.rope_scaling;
    const char* p = "rope_scaling.";
    get_field(*r, "type", s.type, true, p);
    get_field(*r, "factor", s.factor, true, p);
    get_field(*r, "original_max_position", s.original_max_position, true, p);
    get_field(*r, "beta_fast", s.beta_fast, false, p);
    get_field(*r, "beta_slow", s.beta_slow, false, p);
    get_field(*r, "mscale", s.mscale, false, p);
    get_field(*r, "mscale_all_dim", s.mscale_all_dim, false, p);
    get_field(*r, "attention_factor", s.attention_factor, false, p);
    get_field(*r, "truncate", s.truncate, false, p);
  }
  c.mla = {};
  if (const json* m = sub_object(j, "mla")) {
    const char* p = "mla.";
    get_field(*m, "q_lora_rank", c.mla.q_lora_rank, true, p);
    get_field(*m, "kv_lora_rank", c.mla.kv_lora_rank, true, p);
    get_field(*m, "qk_nope_head_dim", c.mla.qk_nope_head_dim, true, p);
    get_field(*m, "qk_rope_head_dim", c.mla.qk_rope_head_dim, true, p);
    get_field(*m, "v_head_dim", c.mla.v_head_dim, true, p);
  }
  c.moe = {};
  if (const json* m = sub_object(j, "moe")) {
    const char* p = "moe.";
    get_field(*m, "n_experts", c.moe.n_experts, true, p);
    get_field(*m, "n_experts_per_tok", c.moe.n_experts_per_tok, true, p);
    get_field(*m, "n_group", c.moe.n_group, true, p);
    get_field(*m, "topk_group", c.moe.topk_group, true, p);
    get_field(*m, "n_shared_experts", c.moe.n_shared_experts, true, p);
    get_field(*m, "d_expert", c.moe.d_expert, true, p);
    get_field(*m, "first_dense", c.moe.first_dense, true, p);
    get_field(*m, "layer_freq", c.moe.layer_freq, true, p);
    get_field(*m, "norm_topk_prob", c.moe.norm_topk_prob, true, p);
    get_field(*m, "routed_scaling_factor", c.moe.routed_scaling_factor, true, p);
  }
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

namespace {
template <class Bad>
void validate_rope_scaling(const RopeScaling& r, Bad&& bad) {
  if (r.type.empty()) return;
  if (r.type != "yarn") bad("rope_scaling type '" + r.type + "' is not supported (only yarn)");
  for (const auto& [name, v] : {std::pair{"factor", r.factor}, {"beta_fast", r.beta_fast},
                                {"beta_slow", r.beta_slow}, {"mscale", r.mscale},
                                {"mscale_all_dim", r.mscale_all_dim},
                                {"attention_factor", r.attention_factor}})
    if (!std::isfinite(v) || v < 0) bad(std::string("rope_scaling.") + name + " must be finite and non-negative");
  if (r.factor <= 0) bad("rope_scaling.factor must be positive");
  if (r.original_max_position <= 0 || r.original_max_position > kMaxWidth)
    bad("rope_scaling.original_max_position must be positive");
  if (r.beta_fast <= 0 || r.beta_slow <= 0) bad("rope_scaling.beta_fast and beta_slow must be positive");
}
}  // namespace

void validate_config(const ModelConfig& c, const std::string& where) {
  auto bad = [&](const std::string& what) { throw ConfigError(where + ": " + what); };
  const ArchInfo& a = require_arch(c.arch, where);
  if (c.qkv_bias != a.qkv_bias)
    bad(strprintf("qkv_bias is %s but the %s architecture %s q/k/v biases",
                  c.qkv_bias ? "true" : "false", c.arch.c_str(), a.qkv_bias ? "has" : "has no"));
  if (c.n_layers <= 0) bad("n_layers must be positive");
  if (c.n_layers > kMaxLayers)
    bad(strprintf("n_layers = %lld is implausibly large (at most %lld)",
                  static_cast<long long>(c.n_layers), static_cast<long long>(kMaxLayers)));
  const std::pair<const char*, int64_t> widths[] = {
      {"d_model", c.d_model},   {"n_heads", c.n_heads},   {"n_kv_heads", c.n_kv_heads},
      {"head_dim", c.head_dim}, {"d_ff", c.d_ff},         {"vocab_size", c.vocab_size},
      {"max_ctx", c.max_ctx}};
  for (const auto& [name, v] : widths)
    if (v > kMaxWidth)
      bad(strprintf("%s = %lld is implausibly large", name, static_cast<long long>(v)));
  for (const LayerDims& d : c.layers)
    if (d.n_heads > kMaxWidth || d.n_kv_heads > kMaxWidth || d.d_ff > kMaxWidth)
      bad("a per-layer width is implausibly large");
  if (!std::isfinite(c.rms_eps) || !std::isfinite(c.rope_theta) || c.rope_theta <= 0)
    bad("rms_eps and rope_theta must be finite, rope_theta positive");
  if (c.d_model <= 0 || c.vocab_size <= 0) bad("d_model and vocab_size must be positive");
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) bad("head_dim must be positive and even");
  if (c.rms_eps <= 0) bad("rms_eps must be positive");
  if (!c.layers.empty() && static_cast<int64_t>(c.layers.size()) != c.n_layers)
    bad(strprintf("'layers' has %zu entries, n_layers is %lld", c.layers.size(),
                  static_cast<long long>(c.n_layers)));
  // Per-layer widths: the explicit list (bounded by n_layers, checked above), else the global ones.
  for (int64_t l = 0; l < (c.layers.empty() ? 1 : c.n_layers); ++l) {
    const LayerDims d = c.layer(l);
    if (d.n_heads < 0 || d.n_kv_heads < 0 || d.d_ff < 0) bad(strprintf("layer %lld: negative width", static_cast<long long>(l)));
    if (d.n_kv_heads == 0 ? d.n_heads != 0 : d.n_heads % d.n_kv_heads != 0)
      bad(strprintf("layer %lld: n_heads %lld is not a multiple of n_kv_heads %lld",
                    static_cast<long long>(l), static_cast<long long>(d.n_heads),
                    static_cast<long long>(d.n_kv_heads)));
  }
  if (c.layers.empty() && (c.n_heads <= 0 || c.n_kv_heads <= 0 || c.d_ff <= 0))
    bad("n_heads, n_kv_heads and d_ff must be positive");
  validate_rope_scaling(c.rope_scaling, bad);
  const bool mla = a.attn == AttnKind::kMla;
  const MlaDims& m = c.mla;
  if (!mla && m != MlaDims{}) bad("'mla' widths are set but " + c.arch + " has no latent attention");
  if (mla) {
    const std::pair<const char*, int64_t> dims[] = {
        {"q_lora_rank", m.q_lora_rank},           {"kv_lora_rank", m.kv_lora_rank},
        {"qk_nope_head_dim", m.qk_nope_head_dim}, {"qk_rope_head_dim", m.qk_rope_head_dim},
        {"v_head_dim", m.v_head_dim}};
    for (const auto& [name, v] : dims) {
      if (v > kMaxWidth) bad(strprintf("%s = %lld is implausibly large", name, static_cast<long long>(v)));
      if (v < 0 || (v == 0 && std::string_view(name) != "q_lora_rank"))
        bad(strprintf("%s must be positive (it is %lld)", name, static_cast<long long>(v)));
    }
    if (m.qk_rope_head_dim % 2 != 0) bad("qk_rope_head_dim must be even");
    if (c.head_dim != m.qk_nope_head_dim + m.qk_rope_head_dim)
      bad(strprintf("head_dim %lld is not qk_nope_head_dim + qk_rope_head_dim = %lld",
                    static_cast<long long>(c.head_dim),
                    static_cast<long long>(m.qk_nope_head_dim + m.qk_rope_head_dim)));
    for (int64_t l = 0; l < (c.layers.empty() ? 1 : c.n_layers); ++l)
      if (c.layer(l).n_kv_heads != c.layer(l).n_heads)
        bad("latent attention has one kv head per head (n_kv_heads must equal n_heads)");
  }
  const bool moe = a.ffn == FfnKind::kMoe;
  const MoeConfig& e = c.moe;
  if (!moe && e.n_experts != 0) bad("'moe' is set but " + c.arch + " has no experts");
  if (moe && e.n_experts > 0) {
    auto num = [&](const char* name, int64_t v, int64_t lo, int64_t hi) {
      if (v < lo || v > hi)
        bad(strprintf("%s = %lld must be in [%lld, %lld]", name, static_cast<long long>(v),
                      static_cast<long long>(lo), static_cast<long long>(hi)));
    };
    num("n_experts", e.n_experts, 1, int64_t{1} << 20);
    num("n_experts_per_tok", e.n_experts_per_tok, 1, e.n_experts);
    num("n_group", e.n_group, 1, e.n_experts);
    if (e.n_experts % e.n_group != 0)
      bad(strprintf("n_experts %lld is not a multiple of n_group %lld",
                    static_cast<long long>(e.n_experts), static_cast<long long>(e.n_group)));
    num("topk_group", e.topk_group, 1, e.n_group);
    if (e.n_experts / e.n_group < 2 && e.n_group > 1)
      bad("each expert group needs at least 2 experts (groups are scored by their top two)");
    if (e.topk_group * (e.n_experts / e.n_group) < e.n_experts_per_tok)
      bad(strprintf("topk_group %lld groups of %lld experts hold fewer than n_experts_per_tok %lld",
                    static_cast<long long>(e.topk_group), static_cast<long long>(e.n_experts / e.n_group),
                    static_cast<long long>(e.n_experts_per_tok)));
    num("n_shared_experts", e.n_shared_experts, 0, 1024);
    num("d_expert", e.d_expert, 1, kMaxWidth);
    num("first_dense", e.first_dense, 0, kMaxLayers);
    num("layer_freq", e.layer_freq, 1, kMaxLayers);
    if (!std::isfinite(e.routed_scaling_factor) || e.routed_scaling_factor <= 0)
      bad("routed_scaling_factor must be finite and positive");
  }
}

void validate_config_for_file(const ModelConfig& c, size_t n_tensors, const std::string& where) {
  if (c.n_layers > 0 && static_cast<uint64_t>(c.n_layers) > n_tensors)
    throw ConfigError(strprintf("%s: the config says %lld layers but there are only %zu tensors",
                                where.c_str(), static_cast<long long>(c.n_layers), n_tensors));
  validate_config(c, where);
  // Counted without enumerating names, so a hostile expert count cannot make anyone list them.
  int64_t required = 0;
  const ArchInfo& a = arch_of(c);
  for (const ArchTensor& row : a.tensors) {
    if (row.optional || row.role == TensorRole::kClassifier) continue;  // may be absent
    if (!row.per_layer()) {
      ++required;
      continue;
    }
    int64_t layers = 0;
    for (int64_t l = 0; l < c.n_layers; ++l) layers += row_in_layer(row, c, l) ? 1 : 0;
    required += layers * (row.per_expert() ? c.moe.n_experts : 1);
    if (required > static_cast<int64_t>(n_tensors))
      throw ConfigError(strprintf("%s: the config implies more than %zu tensors (the file holds "
                                  "%zu): check n_layers and n_routed_experts",
                                  where.c_str(), n_tensors, n_tensors));
  }
}

// ---------------------------------------------------------------------------------------------
// Dims, rows and lookups.

std::string_view dim_name(Dim d) {
  switch (d) {
    case Dim::kVocab: return "vocab_size";
    case Dim::kModel: return "d_model";
    case Dim::kHeadDim: return "head_dim";
    case Dim::kQ: return "n_heads*head_dim";
    case Dim::kKv: return "n_kv_heads*head_dim";
    case Dim::kFfn: return "d_ff";
    case Dim::kQLora: return "q_lora_rank";
    case Dim::kQkHeads: return "n_heads*(qk_nope+qk_rope)";
    case Dim::kKvA: return "kv_lora_rank+qk_rope";
    case Dim::kKvLora: return "kv_lora_rank";
    case Dim::kKvB: return "n_heads*(qk_nope+v_head_dim)";
    case Dim::kVHeads: return "n_heads*v_head_dim";
    case Dim::kExperts: return "n_experts";
    case Dim::kExpert: return "d_expert";
    case Dim::kShared: return "d_expert*n_shared_experts";
  }
  return "?";
}

int64_t dim_size(Dim d, const ModelConfig& c, const LayerDims& w) {
  switch (d) {
    case Dim::kVocab: return c.vocab_size;
    case Dim::kModel: return c.d_model;
    case Dim::kHeadDim: return c.head_dim;
    case Dim::kQ: return w.n_heads * c.head_dim;
    case Dim::kKv: return w.n_kv_heads * c.head_dim;
    case Dim::kFfn: return w.d_ff;
    case Dim::kQLora: return c.mla.q_lora_rank;
    case Dim::kQkHeads: return w.n_heads * (c.mla.qk_nope_head_dim + c.mla.qk_rope_head_dim);
    case Dim::kKvA: return c.mla.kv_lora_rank + c.mla.qk_rope_head_dim;
    case Dim::kKvLora: return c.mla.kv_lora_rank;
    case Dim::kKvB: return w.n_heads * (c.mla.qk_nope_head_dim + c.mla.v_head_dim);
    case Dim::kVHeads: return w.n_heads * c.mla.v_head_dim;
    case Dim::kExperts: return c.moe.n_experts;
    case Dim::kExpert: return c.moe.d_expert;
    case Dim::kShared: return c.moe.d_expert * c.moe.n_shared_experts;
  }
  return 0;
}

std::string_view ArchTensor::short_name() const {
  if (!per_layer()) return canonical;
  const std::string_view rest = canonical.substr(8);  // after "blk.{L}."
  return rest.substr(0, rest.rfind('.'));
}

namespace {
// Matches `name` against a pattern holding at most one "{E}" (a decimal index without leading
// zeros); *expert receives it (-1 when the pattern has none).
bool match_expert(std::string_view pattern, std::string_view name, int64_t* expert) {
  const size_t p = pattern.find("{E}");
  if (p == std::string_view::npos) {
    *expert = -1;
    return pattern == name;
  }
  const std::string_view pre = pattern.substr(0, p), post = pattern.substr(p + 3);
  if (name.size() <= pre.size() + post.size() || name.substr(0, pre.size()) != pre ||
      name.substr(name.size() - post.size()) != post)
    return false;
  const std::string_view digits = name.substr(pre.size(), name.size() - pre.size() - post.size());
  if (digits.size() > 9 || (digits.size() > 1 && digits[0] == '0')) return false;
  int64_t e = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return false;
    e = e * 10 + (ch - '0');
  }
  *expert = e;
  return true;
}
}  // namespace

const ArchTensor* ArchInfo::find(std::string_view name) const {
  int64_t e = -1;
  for (const auto& t : tensors)
    if (t.canonical == name ||
        (t.per_layer() && t.role != TensorRole::kBias &&
         (t.short_name() == name || match_expert(t.short_name(), name, &e))))
      return &t;
  return nullptr;
}

const ArchTensor* ArchInfo::bias_of(std::string_view linear_short) const {
  for (const auto& t : tensors)
    if (t.role == TensorRole::kBias && t.short_name() == linear_short) return &t;
  return nullptr;
}

const LinearGroup* ArchInfo::group(std::string_view name) const {
  for (const auto& g : linear_groups)
    if (g.name == name) return &g;
  return nullptr;
}

const LinearGroup* ArchInfo::group_of(std::string_view linear) const {
  const ArchTensor* t = find(linear);
  return t ? group(t->group) : nullptr;
}

std::vector<const ArchTensor*> ArchInfo::block_rows(TensorRole role) const {
  std::vector<const ArchTensor*> out;
  for (const auto& t : tensors)
    if (t.per_layer() && t.role == role) out.push_back(&t);
  return out;
}

const ArchTensor* ArchInfo::consumer_of(Dim d) const {
  for (const ArchTensor* t : block_rows(TensorRole::kLinear))
    if (t->shape.size() == 2 && t->shape[1] == d) return t;
  return nullptr;
}

namespace {

// The output axis of a producer (norm or linear) and the input axis of a group's linears decide
// how a scale on the group's input folds into the producer.
ChannelMap derive_channels(Dim producer_out, Dim consumer_in) {
  if (producer_out == consumer_in) return ChannelMap::kIdentity;
  if (producer_out == Dim::kKv && consumer_in == Dim::kQ) return ChannelMap::kKvHeads;
  if (producer_out == Dim::kKvB && consumer_in == Dim::kVHeads) return ChannelMap::kMlaV;
  return ChannelMap::kNone;
}

bool has_placeholder(std::string_view pattern, std::string_view ph) {
  return pattern.find(ph) != std::string_view::npos;
}

// Derives the group fields of a row and checks that it is consistent; a bad row is a bug in the
// table, so this asserts (tests/core/arch_table_test.cpp builds every row).
ArchInfo finish_row(ArchInfo a) {
  const char* an = a.name.data();
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const ArchTensor& t = a.tensors[i];
    DSQ_ASSERT(!t.shape.empty() && t.shape.size() <= 2, "%s: %s: bad shape rank", an, t.canonical.data());
    // Every source pattern instantiates the same placeholders; an empty GGUF pattern means the
    // tensor has no per-tensor GGUF name (llama.cpp fuses experts into one 3-D tensor).
    for (std::string_view ph : {"{L}", "{E}"}) {
      const bool c = has_placeholder(t.canonical, ph);
      DSQ_ASSERT(has_placeholder(t.hf, ph) == c && (t.gguf.empty() || has_placeholder(t.gguf, ph) == c),
                 "%s: %s: %s in some patterns only", an, t.canonical.data(), ph.data());
    }
    DSQ_ASSERT(!t.per_expert() || (t.per_layer() && t.only == Only::kMoe),
               "%s: %s: an expert row must be a MoE-layer block row", an, t.canonical.data());
    DSQ_ASSERT(t.per_layer() || t.only == Only::kAlways, "%s: %s: a global row is always present",
               an, t.canonical.data());
    DSQ_ASSERT(t.per_layer() == (t.part != Part::kGlobal), "%s: %s: part and {L} disagree", an,
               t.canonical.data());
    for (size_t j = 0; j < i; ++j)
      DSQ_ASSERT(a.tensors[j].canonical != t.canonical && a.tensors[j].hf != t.hf &&
                     (t.gguf.empty() || a.tensors[j].gguf != t.gguf),
                 "%s: %s: duplicate name", an, t.canonical.data());
    if ((t.role == TensorRole::kLinear || t.role == TensorRole::kRouter) && t.per_layer()) {
      LinearGroup* g = nullptr;
      for (auto& x : a.linear_groups)
        if (x.name == t.group) g = &x;
      DSQ_ASSERT(g != nullptr, "%s: linear %s has no group", an, t.canonical.data());
      DSQ_ASSERT(t.shape.size() == 2, "%s: linear %s is not 2-D", an, t.canonical.data());
      if (t.role == TensorRole::kRouter) {
        g->routers.push_back(t.short_name());
      } else {
        DSQ_ASSERT(g->linears.empty() || g->per_expert == t.per_expert(),
                   "%s: group %s mixes expert and non-expert linears", an, g->name.data());
        g->per_expert = t.per_expert();
        g->linears.push_back(t.short_name());
      }
    }
    if (t.role == TensorRole::kBias) {
      const ArchTensor* w = a.find(t.short_name());
      DSQ_ASSERT(w && w->role == TensorRole::kLinear && t.shape.size() == 1 &&
                     t.shape[0] == w->shape[0],
                 "%s: bias %s does not match a linear's rows", an, t.canonical.data());
    }
  }
  for (auto& g : a.linear_groups) {
    DSQ_ASSERT(!g.linears.empty(), "%s: group %s has no linears", an, g.name.data());
    const Dim in = a.find(g.linears.front())->shape[1];
    for (auto l : g.linears)
      DSQ_ASSERT(a.find(l)->shape[1] == in, "%s: group %s: linears read different widths", an,
                 g.name.data());
    const ArchTensor* p = a.find(g.producer);
    DSQ_ASSERT(p && (p->role == TensorRole::kNorm || p->role == TensorRole::kLinear),
               "%s: group %s: producer %s is not a norm or linear", an, g.name.data(),
               g.producer.data());
    g.channels = derive_channels(p->shape[0], in);
    for (auto l : g.no_clip)
      DSQ_ASSERT(std::find(g.linears.begin(), g.linears.end(), l) != g.linears.end(),
                 "%s: group %s: no_clip %s is not a member", an, g.name.data(), l.data());
  }
  // The engine's kinds compute with these tensors (lib/model/block.cpp).
  std::vector<std::string_view> need = {names::kAttnNorm, names::kAttnOutput, names::kFfnNorm,
                                        names::kFfnGate,  names::kFfnUp,      names::kFfnDown,
                                        names::kTokenEmbd, names::kOutputNorm, names::kOutput};
  if (a.attn == AttnKind::kGqa) need.insert(need.end(), {names::kAttnQ, names::kAttnK, names::kAttnV});
  if (a.attn == AttnKind::kMla)
    need.insert(need.end(), {names::kAttnQ, names::kAttnQA, names::kAttnQANorm, names::kAttnQB,
                             names::kAttnKvA, names::kAttnKvANorm, names::kAttnKvB});
  if (a.ffn == FfnKind::kMoe)
    need.insert(need.end(), {names::kFfnGateInp, names::kExpProbsB, names::kFfnGateShexp,
                             names::kFfnUpShexp, names::kFfnDownShexp});
  for (auto n : need) DSQ_ASSERT(a.find(n) != nullptr, "%s: no %s row", an, n.data());
  if (a.ffn == FfnKind::kMoe)
    for (auto n : {names::kFfnGateExps, names::kFfnUpExps, names::kFfnDownExps})
      DSQ_ASSERT(a.find(expert_name(n, 0)) != nullptr, "%s: no %s row", an, n.data());
  a.has_experts = std::any_of(a.tensors.begin(), a.tensors.end(),
                              [](const ArchTensor& t) { return t.per_expert(); });
  const ArchTensor* qb = a.bias_of(names::kAttnQ);
  a.qkv_bias = qb && !qb->optional;
  a.qk_norm = a.find(names::kAttnQNorm) != nullptr;
  DSQ_ASSERT(a.qk_norm == (a.find(names::kAttnKNorm) != nullptr), "%s: q and k norms", an);
  return a;
}

}  // namespace

const std::vector<ArchInfo>& arch_table() {
  static const std::vector<ArchInfo> table = [] {
    std::vector<ArchInfo> rows;
    for (auto& a : detail::arch_rows()) rows.push_back(finish_row(std::move(a)));
    return rows;
  }();
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
    if (!a.gguf_arch.empty() && a.gguf_arch == gguf_arch) return &a;
  return nullptr;
}

const ArchInfo& require_arch(std::string_view name, const std::string& where) {
  if (const ArchInfo* a = find_arch(name)) return *a;
  std::string known;
  for (const auto& a : arch_table()) known += (known.empty() ? "" : ", ") + std::string(a.name);
  throw ConfigError(where + ": unsupported architecture '" + std::string(name) +
                    "' (supported: " + known + ")");
}

const ArchInfo& arch_of(const ModelConfig& c) {
  const ArchInfo* a = find_arch(c.arch);
  DSQ_ASSERT(a != nullptr, "unvalidated config: architecture '%s'", c.arch.c_str());
  return *a;
}

std::string expand_name(std::string_view pattern, int64_t layer, int64_t expert) {
  std::string out(pattern);
  if (const auto pos = out.find("{L}"); pos != std::string::npos)
    out.replace(pos, 3, std::to_string(layer));
  if (const auto pos = out.find("{E}"); pos != std::string::npos)
    out.replace(pos, 3, std::to_string(expert));
  return out;
}

std::string expert_name(std::string_view short_name, int64_t expert) {
  std::string_view base = short_name;
  if (base.size() > 4 && base.substr(base.size() - 4) == ".{E}") base.remove_suffix(4);
  return std::string(base) + "." + std::to_string(expert);
}

bool row_in_layer(const ArchTensor& row, const ModelConfig& c, int64_t layer) {
  switch (row.only) {
    case Only::kAlways: return true;
    case Only::kQLora: return c.mla.q_lora_rank > 0;
    case Only::kNoQLora: return c.mla.q_lora_rank == 0;
    case Only::kDense: return !c.is_moe_layer(layer);
    case Only::kMoe: return c.is_moe_layer(layer);
  }
  return false;
}

std::string linear_name(int64_t layer, std::string_view short_name) {
  return "blk." + std::to_string(layer) + "." + std::string(short_name) + ".weight";
}

std::string bias_name(int64_t layer, std::string_view short_name) {
  return "blk." + std::to_string(layer) + "." + std::string(short_name) + ".bias";
}

bool parse_block_name(const std::string& canonical, int64_t* layer, std::string* short_name) {
  if (canonical.rfind("blk.", 0) != 0) return false;
  const auto dot = canonical.find('.', 4);
  if (dot == std::string::npos || dot == 4 || dot > 4 + 9) return false;  // at most 9 digits
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

const ArchTensor* find_tensor_row(const ModelConfig& c, const std::string& name, int64_t* layer,
                                  int64_t* expert) {
  const ArchInfo* a = find_arch(c.arch);
  if (!a) return nullptr;
  int64_t l = -1;
  std::string pattern = name;
  if (parse_block_name(name, &l, nullptr)) {
    if (l < 0 || l >= c.n_layers) return nullptr;
    pattern = "blk.{L}." + name.substr(name.find('.', 4) + 1);
  }
  for (const auto& t : a->tensors) {
    int64_t e = -1;
    if (!match_expert(t.canonical, pattern, &e)) continue;
    if (t.per_layer() && !row_in_layer(t, c, l)) return nullptr;
    if (t.per_expert() && e >= c.moe.n_experts) return nullptr;
    if (layer) *layer = t.per_layer() ? l : -1;
    if (expert) *expert = e;
    return &t;
  }
  return nullptr;
}

Shape row_shape(const ArchTensor& row, const ModelConfig& c, int64_t layer) {
  const LayerDims w = row.per_layer() ? c.layer(layer) : LayerDims{c.n_heads, c.n_kv_heads, c.d_ff};
  Shape s;
  for (const Dim d : row.shape) s.push_back(dim_size(d, c, w));
  return s;
}

std::optional<Shape> expected_shape(const ModelConfig& c, const std::string& name) {
  int64_t l = -1;
  const ArchTensor* row = find_tensor_row(c, name, &l);
  if (!row) return std::nullopt;
  return row_shape(*row, c, l);
}

bool is_block_linear(const ModelConfig& c, const std::string& canonical) {
  const ArchTensor* row = find_tensor_row(c, canonical);
  return row && row->per_layer() && row->role == TensorRole::kLinear;
}

bool row_required(const ArchTensor& row, const ModelConfig& c) {
  if (row.role == TensorRole::kClassifier) return !c.tied_embeddings;
  return !row.optional;
}

namespace {
// HF row r of a head holds rotary pair element (r / half) of pair (r % half), which Meta stores at
// row 2*(r % half) + r / half. to_hf: dst HF row r <- src Meta row; else dst Meta row <- src HF r.
void permute_rope_rows(const std::byte* src, std::byte* dst, int64_t n_heads, int64_t head_dim,
                       int64_t cols, size_t elem_bytes, bool to_hf) {
  const size_t row_bytes = static_cast<size_t>(cols) * elem_bytes;
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h)
    for (int64_t r = 0; r < head_dim; ++r) {
      const int64_t meta = 2 * (r % half) + r / half;
      const int64_t d = h * head_dim + (to_hf ? r : meta), s = h * head_dim + (to_hf ? meta : r);
      std::memcpy(dst + static_cast<size_t>(d) * row_bytes, src + static_cast<size_t>(s) * row_bytes,
                  row_bytes);
    }
}
}  // namespace

void permute_meta_to_hf(const std::byte* src, std::byte* dst, int64_t n_heads, int64_t head_dim,
                        int64_t cols, size_t elem_bytes) {
  permute_rope_rows(src, dst, n_heads, head_dim, cols, elem_bytes, true);
}

void permute_hf_to_meta(const std::byte* src, std::byte* dst, int64_t n_heads, int64_t head_dim,
                        int64_t cols, size_t elem_bytes) {
  permute_rope_rows(src, dst, n_heads, head_dim, cols, elem_bytes, false);
}

}  // namespace dsq
