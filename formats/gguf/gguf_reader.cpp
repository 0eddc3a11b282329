// read_gguf: a GGUF model as a canonical WeightStore.
#include <charconv>
#include <cstdlib>
#include <cstring>

#include "formats/gguf/gguf.h"
#include "formats/hf/reader_util.h"
#include "lib/core/error.h"

namespace dsq::formats {

using json = nlohmann::json;

void dequantize_q4_0(const std::byte* src, float* dst, int64_t n) {
  // Block (18 bytes, 4.5 bits/weight): f16 scale d, then 16 bytes; byte j holds weight j in its
  // low nibble and weight j+16 in its high nibble, both offset by 8.
  for (int64_t b = 0; b < n / 32; ++b, src += 18, dst += 32) {
    uint16_t dh;
    std::memcpy(&dh, src, 2);
    const float d = f16_to_f32(dh);
    for (int j = 0; j < 16; ++j) {
      const auto q = static_cast<uint8_t>(src[2 + j]);
      dst[j] = static_cast<float>((q & 0x0F) - 8) * d;
      dst[j + 16] = static_cast<float>((q >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const std::byte* src, float* dst, int64_t n) {
  // Block (20 bytes, 5 bits/weight): f16 scale d, f16 min m, then Q4_0's 16 nibble bytes without
  // the offset: w = d * q + m.
  for (int64_t b = 0; b < n / 32; ++b, src += 20, dst += 32) {
    uint16_t dh, mh;
    std::memcpy(&dh, src, 2);
    std::memcpy(&mh, src + 2, 2);
    const float d = f16_to_f32(dh), m = f16_to_f32(mh);
    for (int j = 0; j < 16; ++j) {
      const auto q = static_cast<uint8_t>(src[4 + j]);
      dst[j] = static_cast<float>(q & 0x0F) * d + m;
      dst[j + 16] = static_cast<float>(q >> 4) * d + m;
    }
  }
}

void dequantize_q8_0(const std::byte* src, float* dst, int64_t n) {
  // Block (34 bytes, 8.5 bits/weight): f16 scale d, then 32 int8 weights.
  for (int64_t b = 0; b < n / 32; ++b, src += 34, dst += 32) {
    uint16_t dh;
    std::memcpy(&dh, src, 2);
    const float d = f16_to_f32(dh);
    for (int j = 0; j < 32; ++j) dst[j] = static_cast<float>(static_cast<int8_t>(src[2 + j])) * d;
  }
}

namespace {

class Meta {
 public:
  explicit Meta(const GgufFile& f) : f_(f) {}

  std::optional<int64_t> get_int(const std::string& key) const {
    auto it = f_.metadata().find(key);
    if (it == f_.metadata().end()) return std::nullopt;
    if (it->is_number_unsigned() && it->get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX))
      return static_cast<int64_t>(it->get<uint64_t>());
    if (it->is_number_integer() && !it->is_number_unsigned()) return it->get<int64_t>();
    fail(key, "expected an integer");
  }
  int64_t require_int(const std::string& key) const {
    if (auto v = get_int(key)) return *v;
    fail(key, "missing");
  }
  std::optional<double> get_float(const std::string& key) const {
    auto it = f_.metadata().find(key);
    if (it == f_.metadata().end()) return std::nullopt;
    if (!it->is_number()) fail(key, "expected a number");
    const auto t = f_.metadata_type(key);
    if (t && t->type == GgufValueType::kF32) {
      // An f32 is the storage of a decimal hyperparameter (1e-5 is stored as 9.99999975e-06):
      // recover the decimal through the shortest representation that round-trips the float,
      // so GGUF configs equal those read from config.json.
      char buf[32];
      const auto r = std::to_chars(buf, buf + sizeof(buf), it->get<float>());
      return std::strtod(std::string(buf, r.ptr).c_str(), nullptr);
    }
    return it->get<double>();
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw ConfigError("'" + f_.path() + "': metadata key '" + key + "': " + what);
  }

 private:
  const GgufFile& f_;
};

ModelConfig config_from_metadata(const GgufFile& f, const ArchInfo& arch) {
  const Meta m(f);
  const std::string p = std::string(arch.gguf_arch) + ".";
  ModelConfig c;
  c.arch = std::string(arch.name);
  c.n_layers = m.require_int(p + "block_count");
  c.d_model = m.require_int(p + "embedding_length");
  c.d_ff = m.require_int(p + "feed_forward_length");
  c.n_heads = m.require_int(p + "attention.head_count");
  c.n_kv_heads = m.get_int(p + "attention.head_count_kv").value_or(c.n_heads);
  if (c.n_heads <= 0) m.fail(p + "attention.head_count", "must be positive");
  c.head_dim = m.get_int(p + "attention.key_length").value_or(c.d_model / c.n_heads);
  if (auto rot = m.get_int(p + "rope.dimension_count"); rot && *rot != c.head_dim)
    m.fail(p + "rope.dimension_count",
           strprintf("partial rotary embeddings (%lld of head_dim %lld) are not supported",
                     static_cast<long long>(*rot), static_cast<long long>(c.head_dim)));
  c.max_ctx = m.get_int(p + "context_length").value_or(c.max_ctx);
  c.rms_eps = m.get_float(p + "attention.layer_norm_rms_epsilon").value_or(c.rms_eps);
  c.rope_theta = m.get_float(p + "rope.freq_base").value_or(c.rope_theta);
  c.bos_id = m.get_int("tokenizer.ggml.bos_token_id").value_or(-1);
  c.eos_id = m.get_int("tokenizer.ggml.eos_token_id").value_or(-1);
  c.qkv_bias = arch.qkv_bias;
  if (auto v = m.get_int(p + "vocab_size")) {
    c.vocab_size = *v;
  } else if (auto it = f.metadata().find("tokenizer.ggml.tokens");
             it != f.metadata().end() && it->is_array()) {
    c.vocab_size = static_cast<int64_t>(it->size());
  } else if (const GgufTensorInfo* e = f.find_tensor("token_embd.weight"); e && e->ne.size() == 2) {
    c.vocab_size = e->ne[1];
  }
  return c;
}

WeightStore::Loader tensor_loader(const GgufFile& f, const GgufTensorInfo& t, const Shape& shape,
                                  DType* dtype_out) {
  const std::byte* data = f.tensor_data(t);
  const auto& map = f.mapping();
  switch (t.type) {
    case GgmlType::kF32: *dtype_out = DType::kF32; break;
    case GgmlType::kF16: *dtype_out = DType::kF16; break;
    case GgmlType::kBF16: *dtype_out = DType::kBF16; break;
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ8_0: {
      *dtype_out = DType::kF32;
      const auto deq = t.type == GgmlType::kQ4_0   ? dequantize_q4_0
                       : t.type == GgmlType::kQ4_1 ? dequantize_q4_1
                                                   : dequantize_q8_0;
      return [map, data, shape, deq]() {
        Tensor out(DType::kF32, shape);
        deq(data, out.mutable_data<float>(), out.numel());
        return out;
      };
    }
    default:
      throw FormatError("'" + f.path() + "': tensor '" + t.name + "': ggml type " +
                        std::string(ggml_type_traits(static_cast<uint32_t>(t.type))->name) +
                        " is not supported (supported: f32, f16, bf16, q8_0, q4_0, q4_1)");
  }
  return detail::mapped_loader(map, data, *dtype_out, shape);
}

}  // namespace

WeightStore read_gguf(const std::string& path, const OpenOptions& /*opts*/) {
  const GgufFile f = GgufFile::open(path);
  const auto& md = f.metadata();
  auto ait = md.find("general.architecture");
  if (ait == md.end() || !ait->is_string())
    throw ConfigError("'" + path + "': metadata key 'general.architecture' is missing");
  const std::string gguf_arch = ait->get<std::string>();
  const ArchInfo* arch = find_arch_by_gguf(gguf_arch);
  if (!arch) {
    std::string known;
    for (const auto& a : arch_table()) known += (known.empty() ? "" : ", ") + std::string(a.gguf_arch);
    throw ConfigError("'" + path + "': unsupported GGUF architecture '" + gguf_arch +
                      "' (supported: " + known + ")");
  }
  if (f.tensors().empty())
    throw FormatError("'" + path + "': no tensors (a vocabulary-only file?)");

  ModelConfig c = config_from_metadata(f, *arch);
  detail::check_config_from_file(c, f.tensors().size(), path);
  const auto names = detail::source_name_map(*arch, c, detail::NameColumn::kGguf);

  std::vector<WeightStore::Entry> entries;
  for (const auto& t : f.tensors()) {
    auto it = names.find(t.name);
    if (it == names.end())
      throw FormatError(strprintf("'%s': tensor '%s' is not part of a %s model with %lld layers",
                                  path.c_str(), t.name.c_str(), gguf_arch.c_str(),
                                  static_cast<long long>(c.n_layers)));
    const detail::NameTarget& target = it->second;
    WeightStore::Entry e;
    e.name = target.canonical;
    e.shape.assign(t.ne.rbegin(), t.ne.rend());  // ggml [in, out] -> canonical [out, in]
    e.source = path;
    e.load = tensor_loader(f, t, e.shape, &e.dtype);
    if (arch->meta_rope_in_gguf)
      if (const int64_t heads = detail::permute_heads(*target.row, c, target.layer))
        e.load = detail::meta_to_canonical_loader(std::move(e.load), heads, c.head_dim);
    entries.push_back(std::move(e));
  }

  // GGUF has no tie flag: converters write the classifier even when it is the embedding, so a
  // classifier bit-identical to the embedding is dropped and the model marked tied.
  const detail::Classifier cls = detail::classifier_state(entries, *arch);
  c.tied_embeddings = cls != detail::Classifier::kDistinct;
  if (cls == detail::Classifier::kSameAsEmbedding) detail::drop_classifier(entries, *arch);

  WeightStore ws;
  ws.config = c;
  detail::add_in_canonical_order(ws, std::move(entries), c);
  ws.metadata["tokenizer"] = {{"kind", "gguf"}, {"path", detail::absolute_path(path)}};
  if (auto it = md.find("tokenizer.ggml.add_bos_token"); it != md.end() && it->is_boolean())
    ws.metadata["tokenizer"]["add_bos_token"] = it->get<bool>();
  detail::finish_store(ws, path, "gguf", {path});
  return ws;
}

}  // namespace dsq::formats
