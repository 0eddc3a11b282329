#include "lib/core/arch.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
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
}

void validate_config_for_file(const ModelConfig& c, size_t n_tensors, const std::string& where) {
  if (c.n_layers > 0 && static_cast<uint64_t>(c.n_layers) > n_tensors)
    throw ConfigError(strprintf("%s: the config says %lld layers but there are only %zu tensors",
                                where.c_str(), static_cast<long long>(c.n_layers), n_tensors));
  validate_config(c, where);
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
  }
  return 0;
}

std::string_view ArchTensor::short_name() const {
  if (!per_layer()) return canonical;
  const std::string_view rest = canonical.substr(8);  // after "blk.{L}."
  return rest.substr(0, rest.rfind('.'));
}

const ArchTensor* ArchInfo::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.canonical == name || (t.per_layer() && t.role != TensorRole::kBias && t.short_name() == name))
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
  return ChannelMap::kNone;
}

// Derives the group fields of a row and checks that it is consistent; a bad row is a bug in the
// table, so this asserts (tests/core/arch_table_test.cpp builds every row).
ArchInfo finish_row(ArchInfo a) {
  const char* an = a.name.data();
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const ArchTensor& t = a.tensors[i];
    DSQ_ASSERT(!t.shape.empty() && t.shape.size() <= 2, "%s: %s: bad shape rank", an, t.canonical.data());
    const bool hf_l = t.hf.find("{L}") != std::string_view::npos;
    const bool gg_l = t.gguf.find("{L}") != std::string_view::npos;
    DSQ_ASSERT(hf_l == t.per_layer() && gg_l == t.per_layer(), "%s: %s: {L} in some patterns only",
               an, t.canonical.data());
    DSQ_ASSERT(t.per_layer() == (t.part != Part::kGlobal), "%s: %s: part and {L} disagree", an,
               t.canonical.data());
    for (size_t j = 0; j < i; ++j)
      DSQ_ASSERT(a.tensors[j].canonical != t.canonical && a.tensors[j].hf != t.hf &&
                     a.tensors[j].gguf != t.gguf,
                 "%s: %s: duplicate name", an, t.canonical.data());
    if (t.role == TensorRole::kLinear && t.per_layer()) {
      LinearGroup* g = nullptr;
      for (auto& x : a.linear_groups)
        if (x.name == t.group) g = &x;
      DSQ_ASSERT(g != nullptr, "%s: linear %s has no group", an, t.canonical.data());
      DSQ_ASSERT(t.shape.size() == 2, "%s: linear %s is not 2-D", an, t.canonical.data());
      g->linears.push_back(t.short_name());
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
  for (auto n : {names::kAttnNorm, names::kAttnQ, names::kAttnK, names::kAttnV, names::kAttnOutput,
                 names::kFfnNorm, names::kFfnGate, names::kFfnUp, names::kFfnDown, names::kTokenEmbd,
                 names::kOutputNorm, names::kOutput})
    DSQ_ASSERT(a.find(n) != nullptr, "%s: no %s row", an, n.data());
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

const ArchInfo& arch_of(const ModelConfig& c) {
  const ArchInfo* a = find_arch(c.arch);
  DSQ_ASSERT(a != nullptr, "unvalidated config: architecture '%s'", c.arch.c_str());
  return *a;
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

const ArchTensor* find_tensor_row(const ModelConfig& c, const std::string& name, int64_t* layer) {
  const ArchInfo* a = find_arch(c.arch);
  if (!a) return nullptr;
  int64_t l = -1;
  std::string pattern = name;
  if (parse_block_name(name, &l, nullptr)) {
    if (l < 0 || l >= c.n_layers) return nullptr;
    pattern = "blk.{L}." + name.substr(name.find('.', 4) + 1);
  }
  for (const auto& t : a->tensors)
    if (t.canonical == pattern) {
      if (layer) *layer = t.per_layer() ? l : -1;
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
