#include "jobs/inspect.h"

#include <filesystem>
#include <map>

#include "formats/dsq/dsq_format.h"
#include "formats/dsq/dsq_reader.h"
#include "formats/format_table.h"
#include "jobs/job_util.h"
#include "lib/core/error.h"

namespace dsq::jobs {

using formats::DsqTensorInfo;
using formats::FormatInfo;
using formats::OpenOptions;

using nlohmann::json;

namespace {

// Bytes of one tensor served at `target` (nullopt = f16): matrices only, 1-D tensors at f32.
uint64_t served_bytes(const Shape& s, const QuantDesc* target) {
  const int64_t n = shape_numel(s);
  if (s.size() < 2) return static_cast<uint64_t>(n) * 4;
  if (!target) return static_cast<uint64_t>(n) * 2;
  const int64_t cols = s.back();
  const int64_t rows = cols == 0 ? 0 : n / cols;
  return quant_layout(*target, rows, cols).total_bytes;
}

int64_t mla_kv_floats(const ModelConfig& c) { return c.mla.kv_lora_rank + c.mla.qk_rope_head_dim; }

// KV-cache bytes per token of one layer, f16, by the row's attention kind.
uint64_t kv_bytes_per_token(const ArchInfo& a, const ModelConfig& c, int64_t l) {
  switch (a.attn) {
    case AttnKind::kGqa: return 2 * static_cast<uint64_t>(c.layer(l).n_kv_heads * c.head_dim) * 2;
    // Absorbed decoding caches the normed latent and the rotated shared rope key only.
    case AttnKind::kMla: return static_cast<uint64_t>(c.mla.kv_lora_rank + c.mla.qk_rope_head_dim) * 2;
  }
  return 0;
}

uint64_t kv_cache_bytes(const ModelConfig& c, int64_t ctx, int64_t batch) {
  const ArchInfo& a = arch_of(c);
  uint64_t per_token = 0;
  for (int64_t l = 0; l < c.n_layers; ++l) per_token += kv_bytes_per_token(a, c, l);
  return per_token * static_cast<uint64_t>(ctx) * static_cast<uint64_t>(batch);
}

// Parameters by part of the model, from the architecture table: embedding, attention and FFN
// sub-blocks, the head (final norm + classifier), and the block linears (what quantizers touch).
nlohmann::json parameter_breakdown(const WeightStore& ws) {
  int64_t emb = 0, attn = 0, ffn = 0, head = 0, linears = 0;
  for (const auto& name : ws.names()) {
    const ArchTensor* row = find_tensor_row(ws.config, name);
    if (!row) continue;
    const int64_t n = shape_numel(ws.entry(name).shape, name);
    if (row->role == TensorRole::kEmbedding) emb += n;
    else if (row->part == Part::kAttn) attn += n;
    else if (row->part == Part::kFfn) ffn += n;
    else head += n;
    if (row->per_layer() && row->role == TensorRole::kLinear) linears += n;
  }
  return {{"embedding", emb}, {"attention", attn}, {"ffn", ffn}, {"head", head},
          {"block_linears", linears}};
}

// The block structure: attention and FFN kinds, MLA widths, the MoE layout, and the parameters a
// token activates (every tensor except the routed experts it is not sent to; the embedding table
// counts in full, as DeepSeek's "37B activated" does).
nlohmann::json structure(const WeightStore& ws) {
  const ModelConfig& c = ws.config;
  const ArchInfo& a = arch_of(c);
  json s = {{"attention", a.attn == AttnKind::kMla ? "mla" : "gqa"}};
  int64_t routed = 0, per_expert = 0, moe_layers = 0;
  for (const auto& name : ws.names()) {
    int64_t l = -1, e = -1;
    const ArchTensor* row = find_tensor_row(c, name, &l, &e);
    if (!row || !row->per_expert()) continue;
    const int64_t n = shape_numel(ws.entry(name).shape, name);
    routed += n;
    if (e == 0) per_expert += n;
  }
  for (int64_t l = 0; l < c.n_layers; ++l) moe_layers += c.is_moe_layer(l) ? 1 : 0;
  if (a.attn == AttnKind::kMla)
    s["mla"] = {{"q_lora_rank", c.mla.q_lora_rank},
                {"kv_lora_rank", c.mla.kv_lora_rank},
                {"qk_nope_head_dim", c.mla.qk_nope_head_dim},
                {"qk_rope_head_dim", c.mla.qk_rope_head_dim},
                {"v_head_dim", c.mla.v_head_dim},
                {"kv_cache_floats_per_token_layer", mla_kv_floats(c)},
                {"expanded_kv_floats_per_token_layer",
                 c.n_heads * (c.mla.qk_nope_head_dim + c.mla.qk_rope_head_dim + c.mla.v_head_dim)}};
  if (c.moe.n_experts > 0) {
    s["ffn"] = "moe";
    s["moe"] = {{"moe_layers", moe_layers},
                {"dense_layers", c.n_layers - moe_layers},
                {"routed_experts", c.moe.n_experts},
                {"experts_per_token", c.moe.n_experts_per_tok},
                {"shared_experts", c.moe.n_shared_experts},
                {"expert_width", c.moe.d_expert},
                {"groups", c.moe.n_group},
                {"groups_per_token", c.moe.topk_group},
                {"routed_scaling_factor", c.moe.routed_scaling_factor},
                {"routed_expert_parameters", routed}};
  } else {
    s["ffn"] = "dense";
  }
  // per_expert counts one expert of every MoE layer: the inactive ones are E - K of them.
  const int64_t inactive = c.moe.n_experts > 0 ? per_expert * (c.moe.n_experts - c.moe.n_experts_per_tok) : 0;
  s["active_parameters_per_token"] = ws.parameter_count() - inactive;
  if (!c.rope_scaling.type.empty())
    s["rope_scaling"] = {{"type", c.rope_scaling.type}, {"factor", c.rope_scaling.factor},
                         {"original_max_position", c.rope_scaling.original_max_position}};
  return s;
}

}  // namespace

json run_inspect(const InspectOptions& opts) {
  if (opts.ctx < 0) throw UsageError("--ctx must be >= 0");
  if (opts.batch < 1) throw UsageError("--batch must be >= 1");
  const FormatInfo& fmt = formats::detect_format(opts.path);
  const WeightStore ws = fmt.open(opts.path, OpenOptions{});
  IoPlan io;
  io.model_inputs(ws);
  io.output(opts.json_out, "--json");
  io.check();
  std::map<std::string, DsqTensorInfo> stored;  // .dsq: on-disk sizes and compression
  if (fmt.name == "dsq")
    for (auto& t : formats::read_dsq_index(*MappedFile::open(opts.path)).tensors) stored[t.name] = t;

  const QuantDesc int8{8, 0, true}, int4{4, 128, false};
  uint64_t total = 0, w_f16 = 0, w_i8 = 0, w_i4 = 0;
  json tensors = json::array();
  for (const auto& name : ws.names()) {
    const auto& e = ws.entry(name);
    const bool qint = e.dtype == DType::kQInt;
    const uint64_t bytes = tensor_nbytes(e.dtype, e.shape, qint ? &e.quant : nullptr);
    json t = {{"name", name},
              {"dtype", dtype_name(e.dtype)},
              {"shape", e.shape},
              {"parameters", shape_numel(e.shape, name)},
              {"bytes", bytes}};
    if (qint) {
      t["scheme"] = scheme_name(e.quant);
      t["bits_per_weight"] = quant_bits_per_weight(e.quant, e.shape[0], e.shape[1]);
    }
    if (auto it = stored.find(name); it != stored.end()) {
      t["stored_bytes"] = it->second.stored_bytes;
      t["compression"] = it->second.compression ? "zstd" : "none";
    }
    tensors.push_back(t);
    total += bytes;
    w_f16 += served_bytes(e.shape, nullptr);
    w_i8 += served_bytes(e.shape, &int8);
    w_i4 += served_bytes(e.shape, &int4);
  }
  const int64_t params = ws.parameter_count();
  uint64_t file_bytes = 0;
  for (const auto& s : ws.sources) file_bytes += s.bytes;

  json j = {{"path", opts.path},
            {"format", fmt.name},
            {"architecture", ws.has_config ? ws.config.arch : "unknown"},
            {"parameters", params},
            {"bytes", total},
            {"file_bytes", file_bytes},
            {"bits_per_weight", params ? 8.0 * static_cast<double>(total) / params : 0.0},
            {"tensors", tensors}};
  json weights = {{"f16", w_f16}, {"int8", w_i8}, {"int4_g128", w_i4}, {"as_stored", total}};
  json mem = {{"batch", opts.batch}, {"kv_dtype", "f16"}, {"weights", weights}};
  uint64_t kv = 0;
  if (ws.has_config) {
    j["config"] = ws.config;
    j["parameter_breakdown"] = parameter_breakdown(ws);
    j["structure"] = structure(ws);
    const int64_t ctx = opts.ctx > 0 ? opts.ctx : ws.config.max_ctx;
    kv = kv_cache_bytes(ws.config, ctx, opts.batch);
    mem["ctx"] = ctx;
  } else {
    mem["ctx"] = opts.ctx;
  }
  mem["kv_cache_bytes"] = kv;
  json tot = json::object();
  for (auto& [k, v] : weights.items()) tot[k] = v.get<uint64_t>() + kv;
  mem["total"] = tot;
  j["memory_estimate"] = mem;
  if (!opts.json_out.empty()) write_json_file(opts.json_out, j);
  return j;
}

}  // namespace dsq::jobs
