// dsq inspect MODEL [--json FILE|-] [--ctx N] [--batch N]
// Architecture, parameter count, per-tensor table and a serving-memory estimate for any model
// dsq reads (including .dsq).
#include <cstdio>
#include <string>

#include "jobs/inspect.h"
#include "tools/commands.h"

namespace dsq::tools {
namespace {

struct {
  jobs::InspectOptions inspect;
} g_opts;

void add_options(CLI::App& sub) {
  auto& o = g_opts.inspect;
  sub.add_option("model", o.path, "Model: HF directory, .safetensors, .gguf, llama2.c .bin, .dsq")
      ->required();
  sub.add_option("--json", o.json_out, "Write the report as JSON to this file ('-' for stdout)");
  sub.add_option("--ctx", o.ctx, "Context length for the KV-cache estimate (0 = the model's)")
      ->check(at_least(0));
  sub.add_option("--batch", o.batch, "Sequences for the KV-cache estimate")
      ->check(at_least(1))
      ->capture_default_str();
}

std::string mib(uint64_t b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%12llu B %10.2f MiB", static_cast<unsigned long long>(b),
                static_cast<double>(b) / (1024.0 * 1024.0));
  return buf;
}

void print_text(const nlohmann::json& j) {
  std::printf("model         '%s' (%s)\n", j["path"].get<std::string>().c_str(),
              j["format"].get<std::string>().c_str());
  if (j.contains("config")) {
    const auto& c = j["config"];
    std::printf("architecture  %s: %lld layers, d_model %lld, %lld heads (%lld kv, head_dim %lld), "
                "d_ff %lld, vocab %lld%s\n",
                c["arch"].get<std::string>().c_str(), c["n_layers"].get<long long>(),
                c["d_model"].get<long long>(), c["n_heads"].get<long long>(),
                c["n_kv_heads"].get<long long>(), c["head_dim"].get<long long>(),
                c["d_ff"].get<long long>(), c["vocab_size"].get<long long>(),
                c["tied_embeddings"].get<bool>() ? ", tied embeddings" : "");
  } else {
    std::printf("architecture  unknown (no model config)\n");
  }
  if (j.contains("structure")) {
    const auto& s = j["structure"];
    if (s.contains("mla")) {
      const auto& m = s["mla"];
      std::printf("attention     MLA: q_lora %lld, kv_lora %lld, heads of nope %lld + rope %lld, v %lld; "
                  "cache %lld values per token and layer (expanded heads: %lld)\n",
                  m["q_lora_rank"].get<long long>(), m["kv_lora_rank"].get<long long>(),
                  m["qk_nope_head_dim"].get<long long>(), m["qk_rope_head_dim"].get<long long>(),
                  m["v_head_dim"].get<long long>(), m["kv_cache_floats_per_token_layer"].get<long long>(),
                  m["expanded_kv_floats_per_token_layer"].get<long long>());
    }
    if (s.contains("moe")) {
      const auto& m = s["moe"];
      std::printf("experts       %lld MoE + %lld dense layers; %lld routed experts of %lld (%lld per "
                  "token, %lld of %lld groups) + %lld shared\n",
                  m["moe_layers"].get<long long>(), m["dense_layers"].get<long long>(),
                  m["routed_experts"].get<long long>(), m["expert_width"].get<long long>(),
                  m["experts_per_token"].get<long long>(), m["groups_per_token"].get<long long>(),
                  m["groups"].get<long long>(), m["shared_experts"].get<long long>());
    }
  }
  std::printf("parameters    %lld", j["parameters"].get<long long>());
  if (j.contains("structure") && j["structure"].contains("moe"))
    std::printf(" (%lld active per token)", j["structure"]["active_parameters_per_token"].get<long long>());
  std::printf("\n");
  std::printf("tensor bytes  %s  (%.3f bits/weight)\n\n", mib(j["bytes"]).c_str(),
              j["bits_per_weight"].get<double>());
  std::printf("%-32s %-16s %-14s %12s %s\n", "tensor", "dtype", "shape", "bytes", "notes");
  for (const auto& t : j["tensors"]) {
    std::string shape;
    for (const auto& d : t["shape"]) shape += (shape.empty() ? "" : "x") + std::to_string(d.get<long long>());
    const std::string type = t.contains("scheme") ? t["scheme"].get<std::string>() : t["dtype"].get<std::string>();
    std::string notes;
    if (t.contains("bits_per_weight"))
      notes += std::to_string(t["bits_per_weight"].get<double>()).substr(0, 5) + " bpw ";
    if (t.value("compression", "none") == "zstd")
      notes += "zstd " + std::to_string(t["stored_bytes"].get<unsigned long long>()) + " B";
    std::printf("%-32s %-16s %-14s %12llu %s\n", t["name"].get<std::string>().c_str(), type.c_str(),
                shape.c_str(), t["bytes"].get<unsigned long long>(), notes.c_str());
  }
  const auto& m = j["memory_estimate"];
  std::printf("\nmemory estimate (ctx %lld, batch %lld, f16 KV cache %s)\n", m["ctx"].get<long long>(),
              m["batch"].get<long long>(), mib(m["kv_cache_bytes"]).c_str());
  for (const char* k : {"f16", "int8", "int4_g128", "as_stored"})
    std::printf("  weights %-10s %s   total %s\n", k, mib(m["weights"][k]).c_str(),
                mib(m["total"][k]).c_str());
}

int run() {
  const nlohmann::json j = jobs::run_inspect(g_opts.inspect);
  if (g_opts.inspect.json_out != "-") print_text(j);
  return 0;
}

}  // namespace

const Command kInspectCommand = {"inspect", "Show a model's tensors, size and serving memory",
                                 add_options, run};

}  // namespace dsq::tools
