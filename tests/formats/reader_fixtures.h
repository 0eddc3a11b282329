// Test-only writers for the checkpoint formats dsq reads: tiny synthetic models written as HF
// directories (single or sharded safetensors), GGUF and llama2.c files, byte by byte, so reader
// tests (and corruption tests) need no binary fixtures.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lib/core/arch.h"
#include "lib/core/synthetic.h"
#include "lib/core/dtype.h"
#include "lib/core/error.h"
#include "lib/core/tensor.h"
#include "lib/core/weight_store.h"

namespace dsq::formats::fixtures {

using json = nlohmann::json;

inline void write_file(const std::string& path, const std::string& bytes) {
  // Unlink first: ext4 flushes a file truncated and rewritten in place (auto_da_alloc), which
  // makes sweeps that rewrite one path thousands of times crawl.
  std::remove(path.c_str());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <class T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <class T>
void patch(std::string& s, size_t at, T v) {
  std::memcpy(s.data() + at, &v, sizeof(T));
}

// A tiny model of family `arch`: 2 layers, d_model 32, 4 heads of 8, 2 kv heads, d_ff 64,
// vocab 48 (every row length a multiple of 32, so GGUF Q8_0/Q4_0 blocks fit).
inline ModelConfig tiny_config(const std::string& arch, bool tied) {
  ModelConfig c = synthetic_config(arch, {.n_layers = 2, .d_model = 32, .n_heads = 4, .n_kv_heads = 2,
                                          .head_dim = 8, .d_ff = 64, .vocab = 48, .max_ctx = 128});
  c.rms_eps = 1e-6;
  c.tied_embeddings = tied;
  return c;
}

struct SynthTensor {
  std::string canonical;
  const ArchTensor* row = nullptr;
  int64_t layer = -1;
  int64_t expert = -1;
  Shape shape;
  std::vector<float> values;  // row-major in canonical order; every value exact in bf16 and f16
};

// Every tensor the config implies, in table order, with deterministic distinct values k/64,
// |k| <= 127 (exact in f16 and bf16, so conversions must be bit-exact).
inline std::vector<SynthTensor> synth_weights(const ModelConfig& c) {
  std::vector<SynthTensor> out;
  const ArchInfo& arch = require_arch(c.arch, "test");
  uint32_t seed = 1;
  for (const auto& row : arch.tensors) {
    if (!row_required(row, c)) continue;
    for_each_instance(row, c, [&](int64_t l, int64_t e) {
      SynthTensor t;
      t.canonical = expand_name(row.canonical, l, e);
      t.row = &row;
      t.layer = l;
      t.expert = e;
      t.shape = *expected_shape(c, t.canonical);
      t.values.resize(static_cast<size_t>(shape_numel(t.shape)));
      for (auto& v : t.values) {
        seed = seed * 1664525u + 1013904223u;
        v = static_cast<float>(static_cast<int>((seed >> 16) % 255) - 127) / 64.0f;
      }
      out.push_back(std::move(t));
    });
  }
  return out;
}

// Every tensor of `ws` holds exactly the synthetic values (after conversion to f32), and the
// store holds nothing else.
inline void expect_weights(const WeightStore& ws, const std::vector<SynthTensor>& want) {
  ASSERT_EQ(ws.size(), want.size());
  for (const auto& t : want) {
    SCOPED_TRACE(t.canonical);
    ASSERT_TRUE(ws.has(t.canonical));
    const Tensor x = ws.get_f32(t.canonical);
    ASSERT_EQ(x.shape(), t.shape);
    EXPECT_EQ(std::memcmp(x.data<float>(), t.values.data(), t.values.size() * 4), 0);
  }
}

inline std::string encode(const std::vector<float>& v, DType t) {
  std::string s;
  for (float x : v) {
    if (t == DType::kF32) put(s, x);
    else if (t == DType::kF16) put(s, f32_to_f16(x));
    else put(s, f32_to_bf16(x));
  }
  return s;
}

// Rows of a [heads*head_dim, cols] matrix from canonical rotate_half order to Meta interleaved
// order (the inverse of what readers of Meta-ordered sources apply).
inline std::vector<float> canonical_to_meta(const std::vector<float>& v, int64_t heads,
                                            int64_t head_dim) {
  const int64_t rows = heads * head_dim, cols = static_cast<int64_t>(v.size()) / rows;
  const int64_t half = head_dim / 2;
  std::vector<float> out(v.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t r = 0; r < head_dim; ++r)
      std::memcpy(&out[static_cast<size_t>((h * head_dim + 2 * (r % half) + r / half) * cols)],
                  &v[static_cast<size_t>((h * head_dim + r) * cols)],
                  static_cast<size_t>(cols) * 4);
  return out;
}

// ---- safetensors -------------------------------------------------------------------------
struct StTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", ...
  Shape shape;
  std::string bytes;
};

// Header JSON with consecutive data_offsets; the data section goes to *data.
inline json st_header(const std::vector<StTensor>& ts, std::string* data,
                      const json& metadata = json::object()) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  for (const auto& t : ts) {
    h[t.name] = {{"dtype", t.dtype},
                 {"shape", t.shape},
                 {"data_offsets", {data->size(), data->size() + t.bytes.size()}}};
    data->append(t.bytes);
  }
  return h;
}

// The file bytes: u64 header length, header text padded with spaces to `pad` bytes (plus
// `extra` more, to misalign the data section), data.
inline std::string st_file(const std::string& header_text, const std::string& data,
                           size_t pad = 8, size_t extra = 0) {
  std::string h = header_text;
  while (pad && h.size() % pad) h += ' ';
  h.append(extra, ' ');
  std::string s;
  put<uint64_t>(s, h.size());
  return s + h + data;
}

inline std::string hf_name(const SynthTensor& t) { return expand_name(t.row->hf, t.layer, t.expert); }

inline json hf_config(const ModelConfig& c) {
  const ArchInfo& arch = require_arch(c.arch, "test");
  return {{"architectures", {std::string(arch.hf_architectures.at(0))}},
          {"model_type", std::string(arch.hf_model_types.at(0))},
          {"hidden_size", c.d_model},
          {"intermediate_size", c.d_ff},
          {"num_hidden_layers", c.n_layers},
          {"num_attention_heads", c.n_heads},
          {"num_key_value_heads", c.n_kv_heads},
          {"head_dim", c.head_dim},
          {"vocab_size", c.vocab_size},
          {"max_position_embeddings", c.max_ctx},
          {"rms_norm_eps", c.rms_eps},
          {"rope_theta", c.rope_theta},
          {"hidden_act", "silu"},
          {"tie_word_embeddings", c.tied_embeddings},
          {"bos_token_id", c.bos_id},
          {"eos_token_id", c.eos_id}};
}

// config.json of a DeepSeek-V3 config (the MLA, MoE and rope fields of the release).
inline json hf_config_deepseek(const ModelConfig& c) {
  json j = hf_config(c);
  j.erase("head_dim");
  j["q_lora_rank"] = c.mla.q_lora_rank > 0 ? json(c.mla.q_lora_rank) : json(nullptr);
  j["kv_lora_rank"] = c.mla.kv_lora_rank;
  j["qk_nope_head_dim"] = c.mla.qk_nope_head_dim;
  j["qk_rope_head_dim"] = c.mla.qk_rope_head_dim;
  j["v_head_dim"] = c.mla.v_head_dim;
  j["n_routed_experts"] = c.moe.n_experts;
  j["num_experts_per_tok"] = c.moe.n_experts_per_tok;
  j["n_group"] = c.moe.n_group;
  j["topk_group"] = c.moe.topk_group;
  j["n_shared_experts"] = c.moe.n_shared_experts;
  j["moe_intermediate_size"] = c.moe.d_expert;
  j["first_k_dense_replace"] = c.moe.first_dense;
  j["moe_layer_freq"] = c.moe.layer_freq;
  j["norm_topk_prob"] = c.moe.norm_topk_prob;
  j["routed_scaling_factor"] = c.moe.routed_scaling_factor;
  j["topk_method"] = "noaux_tc";
  j["scoring_func"] = "sigmoid";
  return j;
}

// Safetensors entries for the synthetic weights under HF names; `dtype_of` picks each dtype.
template <class F>
std::vector<StTensor> hf_tensors(const std::vector<SynthTensor>& ws, F dtype_of) {
  std::vector<StTensor> out;
  for (const auto& t : ws) {
    const DType d = dtype_of(t);
    const char* name = d == DType::kF32 ? "F32" : d == DType::kF16 ? "F16" : "BF16";
    out.push_back({hf_name(t), name, t.shape, encode(t.values, d)});
  }
  return out;
}

// ---- GGUF ------------------------------------------------------------------------------------
// Builds GGUF bytes field by field and remembers where fields are ("n_tensors", "n_kv",
// "kv.<key>.len" for string/array lengths, "tensor.<name>.{name_len,dims,type,offset}", "data")
// so corruption tests can patch them.
class GgufBuilder {
 public:
  void kv_u32(const std::string& k, uint32_t v) { key(k, 4); put(kv_, v); }
  void kv_f32(const std::string& k, float v) { key(k, 6); put(kv_, v); }
  void kv_str(const std::string& k, const std::string& v) {
    key(k, 8);
    str(kv_, v, "kv." + k + ".len");
  }
  void kv_str_array(const std::string& k, const std::vector<std::string>& v) {
    key(k, 9);
    put<uint32_t>(kv_, 8);
    kv_marks_["kv." + k + ".len"] = kv_.size();
    put<uint64_t>(kv_, v.size());
    for (const auto& s : v) str(kv_, s, "");
  }
  // Appends a value of any type, raw (type id + payload written by the caller).
  void kv_raw(const std::string& k, uint32_t type, const std::string& payload) {
    key(k, type);
    kv_marks_["kv." + k + ".len"] = kv_.size() + (type == 9 ? 4 : 0);
    kv_ += payload;
  }
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type,
              const std::string& bytes) {
    tensors_.push_back({name, std::move(ne), type, bytes});
  }

  std::string build(uint32_t version = 3, uint64_t alignment = 32) {
    std::string s = "GGUF";
    put(s, version);
    marks["n_tensors"] = s.size();
    put<uint64_t>(s, tensors_.size());
    marks["n_kv"] = s.size();
    put<uint64_t>(s, n_kv_);
    for (const auto& [k, at] : kv_marks_) marks[k] = s.size() + at;
    s += kv_;
    uint64_t off = 0;
    for (const auto& t : tensors_) {
      const std::string p = "tensor." + t.name + ".";
      str(s, t.name, p + "name_len", &marks);
      marks[p + "dims"] = s.size();
      put<uint32_t>(s, static_cast<uint32_t>(t.ne.size()));
      for (auto d : t.ne) put(s, d);
      marks[p + "type"] = s.size();
      put(s, t.type);
      marks[p + "offset"] = s.size();
      put(s, off);
      off = (off + t.bytes.size() + alignment - 1) / alignment * alignment;
    }
    while (s.size() % alignment) s += '\0';
    marks["data"] = s.size();
    for (const auto& t : tensors_) {
      s += t.bytes;
      while ((s.size() - marks["data"]) % alignment) s += '\0';
    }
    return s;
  }

  std::map<std::string, size_t> marks;

 private:
  struct T {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string bytes;
  };
  void key(const std::string& k, uint32_t type) {
    str(kv_, k, "");
    put(kv_, type);
    ++n_kv_;
  }
  void str(std::string& s, const std::string& v, const std::string& mark,
           std::map<std::string, size_t>* marks_out = nullptr) {
    if (!mark.empty()) (marks_out ? *marks_out : kv_marks_)[mark] = s.size();
    put<uint64_t>(s, v.size());
    s += v;
  }
  std::string kv_;
  uint64_t n_kv_ = 0;
  std::map<std::string, size_t> kv_marks_;
  std::vector<T> tensors_;
};

// ggml type ids used by the tests.
constexpr uint32_t kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_0 = 2, kGgmlQ8_0 = 8, kGgmlBF16 = 30;

// Q8_0 encoding of values k/64 with |k| <= 127: scale 1/64 per block makes it exact.
inline std::string encode_q8_0_exact(const std::vector<float>& v) {
  std::string s;
  for (size_t b = 0; b < v.size(); b += 32) {
    put(s, f32_to_f16(1.0f / 64.0f));
    for (size_t j = 0; j < 32; ++j) put(s, static_cast<int8_t>(v[b + j] * 64.0f));
  }
  return s;
}

// The synthetic model as a GGUF: Meta-ordered q/k for llama, ggml dims, metadata keys.
// `type_of` picks the ggml type (f32, f16, bf16 or q8_0) of each tensor.
template <class F>
GgufBuilder gguf_model(const ModelConfig& c, const std::vector<SynthTensor>& ws, F type_of) {
  const ArchInfo& arch = require_arch(c.arch, "test");
  const std::string p = std::string(arch.gguf_arch) + ".";
  GgufBuilder b;
  b.kv_str("general.architecture", std::string(arch.gguf_arch));
  b.kv_u32(p + "block_count", static_cast<uint32_t>(c.n_layers));
  b.kv_u32(p + "embedding_length", static_cast<uint32_t>(c.d_model));
  b.kv_u32(p + "feed_forward_length", static_cast<uint32_t>(c.d_ff));
  b.kv_u32(p + "attention.head_count", static_cast<uint32_t>(c.n_heads));
  b.kv_u32(p + "attention.head_count_kv", static_cast<uint32_t>(c.n_kv_heads));
  b.kv_u32(p + "context_length", static_cast<uint32_t>(c.max_ctx));
  b.kv_f32(p + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_eps));
  b.kv_f32(p + "rope.freq_base", static_cast<float>(c.rope_theta));
  std::vector<std::string> tokens;
  for (int64_t i = 0; i < c.vocab_size; ++i) tokens.push_back(strprintf("t%lld", static_cast<long long>(i)));
  b.kv_str_array("tokenizer.ggml.tokens", tokens);
  b.kv_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(c.bos_id));
  b.kv_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(c.eos_id));
  for (const auto& t : ws) {
    std::vector<float> v = t.values;
    if (arch.meta_rope_in_gguf && t.row->permute != RopePermute::kNone) {
      const LayerDims d = c.layer(t.layer);
      v = canonical_to_meta(v, t.row->permute == RopePermute::kQ ? d.n_heads : d.n_kv_heads,
                            c.head_dim);
    }
    std::vector<uint64_t> ne(t.shape.rbegin(), t.shape.rend());
    const uint32_t type = type_of(t);
    const std::string bytes = type == kGgmlF32    ? encode(v, DType::kF32)
                              : type == kGgmlF16  ? encode(v, DType::kF16)
                              : type == kGgmlBF16 ? encode(v, DType::kBF16)
                                                  : encode_q8_0_exact(v);
    b.tensor(expand_name(t.row->gguf, t.layer), ne, type, bytes);
  }
  return b;
}

// ---- llama2.c --------------------------------------------------------------------------------
// The synthetic llama model as a legacy (v0) llama2.c file, or v1 ("ak42", 256-byte header).
inline std::string llama2c_file(const ModelConfig& c, const std::vector<SynthTensor>& ws,
                                int version = 0) {
  std::map<std::string, std::vector<float>> by;
  for (const auto& t : ws) {
    std::vector<float> v = t.values;
    if (t.row->permute != RopePermute::kNone)
      v = canonical_to_meta(v, t.row->permute == RopePermute::kQ ? c.n_heads : c.n_kv_heads,
                            c.head_dim);
    by[t.canonical] = v;
  }
  std::string s;
  const int32_t vocab = static_cast<int32_t>(c.tied_embeddings ? c.vocab_size : -c.vocab_size);
  const int32_t hdr[7] = {static_cast<int32_t>(c.d_model), static_cast<int32_t>(c.d_ff),
                          static_cast<int32_t>(c.n_layers), static_cast<int32_t>(c.n_heads),
                          static_cast<int32_t>(c.n_kv_heads), vocab, 16};
  if (version) {
    put<uint32_t>(s, 0x616b3432);
    put<int32_t>(s, version);
  }
  for (int32_t h : hdr) put(s, version && h < 0 ? -h : h);
  if (version) {
    put<uint8_t>(s, c.tied_embeddings ? 1 : 0);
    s.resize(256, '\0');
  }
  auto emit = [&](const std::string& pattern, bool per_layer) {
    for (int64_t l = 0; l < (per_layer ? c.n_layers : 1); ++l)
      s += encode(by.at(expand_name(pattern, l)), DType::kF32);
  };
  const std::vector<float> freqs(static_cast<size_t>(16 * c.head_dim / 2), 0.5f);
  if (version == 0) {
    emit("token_embd.weight", false);
    for (const char* p : {"blk.{L}.attn_norm.weight", "blk.{L}.attn_q.weight",
                          "blk.{L}.attn_k.weight", "blk.{L}.attn_v.weight",
                          "blk.{L}.attn_output.weight", "blk.{L}.ffn_norm.weight",
                          "blk.{L}.ffn_gate.weight", "blk.{L}.ffn_down.weight",
                          "blk.{L}.ffn_up.weight"})
      emit(p, true);
    emit("output_norm.weight", false);
    s += encode(freqs, DType::kF32) + encode(freqs, DType::kF32);
  } else {
    emit("blk.{L}.attn_norm.weight", true);
    emit("blk.{L}.ffn_norm.weight", true);
    emit("output_norm.weight", false);
    emit("token_embd.weight", false);
    for (const char* p : {"blk.{L}.attn_q.weight", "blk.{L}.attn_k.weight",
                          "blk.{L}.attn_v.weight", "blk.{L}.attn_output.weight",
                          "blk.{L}.ffn_gate.weight", "blk.{L}.ffn_down.weight",
                          "blk.{L}.ffn_up.weight"})
      emit(p, true);
  }
  if (!c.tied_embeddings) emit("output.weight", false);
  return s;
}

}  // namespace dsq::formats::fixtures
