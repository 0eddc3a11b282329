// dsq_run: a companion runtime for .dsq files, written against the public contract only.
//
// It reads a .dsq model with formats/dsq/dsq_reader_standalone.h (header-only, standard library),
// and runs greedy generation from token ids, for the dense families dsq writes: llama, qwen2
// (q/k/v biases) and qwen3 (per-head q/k RMS norms), float or quantized (every grouped-integer
// scheme of docs/FORMAT.md: int8/4/3/2, symmetric or asymmetric, any group), pruned models with
// per-layer widths included. C++17, no dsq library, no BLAS: it is meant to be read.
//
//   dsq_run MODEL.dsq [-n N] ID [ID ...]
//
// prints the generated ids on one line (greedy; stops after N ids or at the model's EOS).
// Not supported (refused with a message): DeepSeek's MLA/MoE blocks, FP8 block-scaled tensors,
// zstd-compressed tensors, YaRN rope scaling, activation-sparsity thresholds (dsq sparsify).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "formats/dsq/dsq_reader_standalone.h"

namespace {

using dsq_standalone::Json;
using dsq_standalone::Reader;
using dsq_standalone::TensorInfo;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "dsq_run: %s\n", msg.c_str());
  std::exit(1);
}

// ============================================================================================
// Weights: every tensor as f32 (the runtime favours reading over speed).
// ============================================================================================

float half_to_float(uint16_t h) {  // IEEE binary16
  const uint32_t sign = uint32_t(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else {  // subnormal: man * 2^-24
      float f = std::ldexp(static_cast<float>(man), -24);
      std::memcpy(&bits, &f, 4);
      bits |= sign;
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (man << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16_to_float(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

struct Matrix {
  int64_t rows = 0, cols = 0;  // [out, in] for linears, row-major
  std::vector<float> w;
  const float* row(int64_t r) const { return w.data() + r * cols; }
};

// FORMAT.md "Quantized tensors": per row an LSB-first stream of `bits`-bit codes, then f16 scales
// [rows, n_groups], then u8 zeros [rows, n_groups] (asymmetric); w = scale * (code - zero), zero
// = 2^(bits-1) for symmetric schemes.
std::vector<float> dequantize(const TensorInfo& t, const std::vector<unsigned char>& b) {
  const uint64_t rows = uint64_t(t.shape[0]), cols = uint64_t(t.shape[1]);
  const auto L = dsq_standalone::qint_layout(t.quant_bits, t.quant_group, t.quant_sym, rows, cols);
  std::vector<float> out(rows * cols);
  for (uint64_t r = 0; r < rows; ++r) {
    const unsigned char* codes = b.data() + r * L.row_code_bytes;
    for (uint64_t c = 0; c < cols; ++c) {
      const uint64_t bit = c * t.quant_bits, g = r * L.n_groups + c / L.group;
      uint32_t v = codes[bit / 8];
      if (bit % 8 + t.quant_bits > 8) v |= uint32_t(codes[bit / 8 + 1]) << 8;
      const int code = int((v >> (bit % 8)) & ((1u << t.quant_bits) - 1));
      uint16_t s;
      std::memcpy(&s, b.data() + L.scales_offset + 2 * g, 2);
      const int zero = t.quant_sym ? 1 << (t.quant_bits - 1) : b[L.zeros_offset + g];
      out[r * cols + c] = half_to_float(s) * static_cast<float>(code - zero);
    }
  }
  return out;
}

class Weights {
 public:
  explicit Weights(Reader& r) : r_(r) {}
  bool has(const std::string& name) const { return r_.find(name) != nullptr; }
  Matrix get(const std::string& name, int64_t rows, int64_t cols) {
    const TensorInfo* t = r_.find(name);
    if (!t) die("tensor '" + name + "' is missing");
    int64_t numel = 1;
    for (int64_t d : t->shape) numel *= d;
    if (numel != rows * cols)
      die("tensor '" + name + "' has " + std::to_string(numel) + " elements, the config implies " +
          std::to_string(rows * cols));
    const std::vector<unsigned char> b = r_.read(*t);
    Matrix m{rows, cols, std::vector<float>(size_t(numel))};
    switch (t->dtype) {
      case dsq_standalone::QINT: m.w = dequantize(*t, b); break;
      case dsq_standalone::F32: std::memcpy(m.w.data(), b.data(), b.size()); break;
      case dsq_standalone::F16:
      case dsq_standalone::BF16:
        for (int64_t i = 0; i < numel; ++i) {
          uint16_t h;
          std::memcpy(&h, b.data() + 2 * i, 2);
          m.w[size_t(i)] = t->dtype == dsq_standalone::F16 ? half_to_float(h) : bf16_to_float(h);
        }
        break;
      default: die("tensor '" + name + "': dtype " + dsq_standalone::dtype_name(t->dtype) + " is not supported");
    }
    return m;
  }
  std::vector<float> vec(const std::string& name, int64_t n) { return get(name, 1, n).w; }

 private:
  Reader& r_;
};

// ============================================================================================
// The model: config, layers, one forward step with a KV cache.
// ============================================================================================

struct Layer {
  int64_t n_heads = 0, n_kv_heads = 0, d_ff = 0;
  std::vector<float> attn_norm, ffn_norm, q_norm, k_norm, bq, bk, bv;
  Matrix wq, wk, wv, wo, gate, up, down;
  std::vector<float> k_cache, v_cache;  // [pos, n_kv_heads * head_dim]
};

struct Model {
  std::string arch;
  int64_t n_layers = 0, d_model = 0, head_dim = 0, vocab = 0, max_ctx = 0;
  double rms_eps = 1e-5, rope_theta = 10000.0;
  int64_t eos_id = -1;
  std::vector<float> embedding, output_norm;
  Matrix classifier;  // the embedding when tied
  std::vector<Layer> layers;
};

int64_t need_int(const Json& c, const char* key) {
  if (c[key].is_null()) die(std::string("config has no '") + key + "'");
  return c[key].as_int();
}

Model load(Reader& r) {
  const Json& c = r.header()["config"];
  if (c.is_null()) die("the file has no config (not a model)");
  Model m;
  m.arch = c["arch"].as_string();
  if (m.arch != "llama" && m.arch != "qwen2" && m.arch != "qwen3")
    die("architecture '" + m.arch + "' is not supported (llama, qwen2, qwen3)");
  if (!c["rope_scaling"].is_null() && !c["rope_scaling"]["type"].is_null() &&
      !c["rope_scaling"]["type"].as_string().empty())
    die("rope scaling is not supported");
  if (!c["rope_interleave"].is_null() && c["rope_interleave"].as_bool())
    die("interleaved rope is not supported");
  for (const auto& [name, extras] : r.header()["tensors"].kind() == Json::Object
                                        ? r.header()["tensors"].members()
                                        : std::vector<std::pair<std::string, Json>>{})
    if (!extras["attrs"].is_null() && !extras["attrs"].members().empty())
      die("tensor '" + name + "' carries attributes (activation-sparsity thresholds?): not supported");
  m.n_layers = need_int(c, "n_layers");
  m.d_model = need_int(c, "d_model");
  m.head_dim = need_int(c, "head_dim");
  m.vocab = need_int(c, "vocab_size");
  m.max_ctx = need_int(c, "max_ctx");
  m.rms_eps = c["rms_eps"].as_double();
  m.rope_theta = c["rope_theta"].as_double();
  m.eos_id = c["eos_id"].is_null() ? -1 : c["eos_id"].as_int();
  const bool tied = !c["tied_embeddings"].is_null() && c["tied_embeddings"].as_bool();
  const bool qkv_bias = m.arch == "qwen2", qk_norm = m.arch == "qwen3";

  Weights w(r);
  const int64_t D = m.d_model, hd = m.head_dim;
  m.embedding = w.get("token_embd.weight", m.vocab, D).w;
  m.output_norm = w.vec("output_norm.weight", D);
  m.classifier = w.get(tied ? "token_embd.weight" : "output.weight", m.vocab, D);
  for (int64_t l = 0; l < m.n_layers; ++l) {
    Layer y;
    const Json& per = c["layers"];
    const Json& dims = per.is_null() ? c : per.items().at(size_t(l));
    y.n_heads = need_int(dims, "n_heads");
    y.n_kv_heads = need_int(dims, "n_kv_heads");
    y.d_ff = need_int(dims, "d_ff");
    const std::string p = "blk." + std::to_string(l) + ".";
    const int64_t q = y.n_heads * hd, kv = y.n_kv_heads * hd;
    y.attn_norm = w.vec(p + "attn_norm.weight", D);
    y.ffn_norm = w.vec(p + "ffn_norm.weight", D);
    y.wq = w.get(p + "attn_q.weight", q, D);
    y.wk = w.get(p + "attn_k.weight", kv, D);
    y.wv = w.get(p + "attn_v.weight", kv, D);
    y.wo = w.get(p + "attn_output.weight", D, q);
    if (qkv_bias) {
      y.bq = w.vec(p + "attn_q.bias", q);
      y.bk = w.vec(p + "attn_k.bias", kv);
      y.bv = w.vec(p + "attn_v.bias", kv);
    }
    if (qk_norm) {
      y.q_norm = w.vec(p + "attn_q_norm.weight", hd);
      y.k_norm = w.vec(p + "attn_k_norm.weight", hd);
    }
    y.gate = w.get(p + "ffn_gate.weight", y.d_ff, D);
    y.up = w.get(p + "ffn_up.weight", y.d_ff, D);
    y.down = w.get(p + "ffn_down.weight", D, y.d_ff);
    m.layers.push_back(std::move(y));
  }
  return m;
}

// y = W x (+ b), dot products accumulated in double.
void linear(const Matrix& W, const float* x, const std::vector<float>& b, float* y) {
  for (int64_t r = 0; r < W.rows; ++r) {
    const float* w = W.row(r);
    double acc = 0;
    for (int64_t c = 0; c < W.cols; ++c) acc += double(w[c]) * x[c];
    y[r] = static_cast<float>(acc) + (b.empty() ? 0.0f : b[size_t(r)]);
  }
}

// RMSNorm over n values: x / sqrt(mean(x^2) + eps) * weight.
void rmsnorm(const float* x, const std::vector<float>& weight, int64_t n, double eps, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
  const float inv = static_cast<float>(1.0 / std::sqrt(ss / double(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * weight[size_t(i)];
}

// Rotary embedding in Hugging Face's rotate_half layout (dsq's canonical order): dims i and
// i + hd/2 form a pair rotated by pos * theta^(-2i/hd).
void rope(float* v, int64_t hd, int64_t pos, double theta) {
  const int64_t half = hd / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double inv_freq = 1.0 / std::pow(theta, double(2 * i) / double(hd));
    const double a = double(pos) * inv_freq;
    const float c = static_cast<float>(std::cos(a)), s = static_cast<float>(std::sin(a));
    const float x0 = v[i], x1 = v[i + half];
    v[i] = x0 * c - x1 * s;
    v[i + half] = x1 * c + x0 * s;
  }
}

// One token through the model at position `pos`; returns the logits.
std::vector<float> step(Model& m, int32_t id, int64_t pos) {
  const int64_t D = m.d_model, hd = m.head_dim;
  if (id < 0 || id >= m.vocab) die("token id " + std::to_string(id) + " is outside the vocabulary");
  std::vector<float> x(m.embedding.begin() + id * D, m.embedding.begin() + (id + 1) * D);
  std::vector<float> h(static_cast<size_t>(D)), out(static_cast<size_t>(D));
  for (Layer& y : m.layers) {
    // Attention.
    const int64_t nq = y.n_heads, nkv = y.n_kv_heads;
    std::vector<float> q(size_t(nq * hd)), k(size_t(nkv * hd)), v(size_t(nkv * hd));
    rmsnorm(x.data(), y.attn_norm, D, m.rms_eps, h.data());
    linear(y.wq, h.data(), y.bq, q.data());
    linear(y.wk, h.data(), y.bk, k.data());
    linear(y.wv, h.data(), y.bv, v.data());
    for (int64_t i = 0; i < nq; ++i) {
      if (!y.q_norm.empty()) rmsnorm(&q[size_t(i * hd)], y.q_norm, hd, m.rms_eps, &q[size_t(i * hd)]);
      rope(&q[size_t(i * hd)], hd, pos, m.rope_theta);
    }
    for (int64_t i = 0; i < nkv; ++i) {
      if (!y.k_norm.empty()) rmsnorm(&k[size_t(i * hd)], y.k_norm, hd, m.rms_eps, &k[size_t(i * hd)]);
      rope(&k[size_t(i * hd)], hd, pos, m.rope_theta);
    }
    y.k_cache.insert(y.k_cache.end(), k.begin(), k.end());
    y.v_cache.insert(y.v_cache.end(), v.begin(), v.end());
    std::vector<float> att(size_t(nq * hd), 0.0f), score(size_t(pos + 1));
    const int64_t group = nq / nkv;  // query heads per kv head
    for (int64_t i = 0; i < nq; ++i) {
      const int64_t j = i / group;
      const float* qi = &q[size_t(i * hd)];
      double mx = -INFINITY;
      for (int64_t t = 0; t <= pos; ++t) {
        const float* kt = &y.k_cache[size_t((t * nkv + j) * hd)];
        double dot = 0;
        for (int64_t d = 0; d < hd; ++d) dot += double(qi[d]) * kt[d];
        score[size_t(t)] = static_cast<float>(dot / std::sqrt(double(hd)));
        mx = std::max(mx, double(score[size_t(t)]));
      }
      double sum = 0;
      for (int64_t t = 0; t <= pos; ++t) sum += std::exp(score[size_t(t)] - mx);
      for (int64_t d = 0; d < hd; ++d) {
        double acc = 0;
        for (int64_t t = 0; t <= pos; ++t)
          acc += std::exp(score[size_t(t)] - mx) / sum * y.v_cache[size_t((t * nkv + j) * hd + d)];
        att[size_t(i * hd + d)] = static_cast<float>(acc);
      }
    }
    linear(y.wo, att.data(), {}, out.data());
    for (int64_t i = 0; i < D; ++i) x[size_t(i)] += out[size_t(i)];
    // SwiGLU feed-forward: down(silu(gate h) * up h).
    rmsnorm(x.data(), y.ffn_norm, D, m.rms_eps, h.data());
    std::vector<float> g(size_t(y.d_ff)), u(size_t(y.d_ff));
    linear(y.gate, h.data(), {}, g.data());
    linear(y.up, h.data(), {}, u.data());
    for (int64_t i = 0; i < y.d_ff; ++i) g[size_t(i)] = g[size_t(i)] / (1.0f + std::exp(-g[size_t(i)])) * u[size_t(i)];
    linear(y.down, g.data(), {}, out.data());
    for (int64_t i = 0; i < D; ++i) x[size_t(i)] += out[size_t(i)];
  }
  rmsnorm(x.data(), m.output_norm, D, m.rms_eps, h.data());
  std::vector<float> logits(size_t(m.vocab));
  linear(m.classifier, h.data(), {}, logits.data());
  return logits;
}

}  // namespace

// ============================================================================================
// Command line.
// ============================================================================================

int main(int argc, char** argv) {
  std::string path;
  int64_t n_new = 32;
  std::vector<int32_t> ids;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-n" && i + 1 < argc) {
      n_new = std::atoll(argv[++i]);
    } else if (path.empty()) {
      path = a;
    } else {
      char* end = nullptr;
      const long v = std::strtol(a.c_str(), &end, 10);
      if (*end != '\0' || v < 0 || v > INT32_MAX) die("'" + a + "' is not a token id");
      ids.push_back(static_cast<int32_t>(v));
    }
  }
  if (path.empty() || ids.empty() || n_new < 0) {
    std::fprintf(stderr, "usage: dsq_run MODEL.dsq [-n N] ID [ID ...]\n");
    return 2;
  }
  try {
    Reader reader(path);
    Model m = load(reader);
    if (int64_t(ids.size()) + n_new > m.max_ctx) die("prompt + -n exceeds the model's context");
    std::vector<float> logits;
    int64_t pos = 0;
    for (const int32_t id : ids) logits = step(m, id, pos++);
    std::vector<int32_t> out;
    for (int64_t i = 0; i < n_new; ++i) {
      const int32_t next = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      out.push_back(next);
      if (next == m.eos_id) break;
      if (i + 1 < n_new) logits = step(m, next, pos++);
    }
    for (size_t i = 0; i < out.size(); ++i) std::printf(i ? " %d" : "%d", out[i]);
    std::printf("\n");
  } catch (const std::exception& e) {
    die(e.what());
  }
  return 0;
}
