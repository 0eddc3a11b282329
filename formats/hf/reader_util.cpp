#include "formats/hf/reader_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "lib/core/error.h"
#include "lib/core/json_io.h"

namespace dsq::formats::detail {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("'" + path + "': cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError("'" + path + "': read error");
  return ss.str();
}

json parse_json_strict(std::string_view text, const std::string& path) {
  return parse_json(text, path);
}

std::map<std::string, NameTarget, std::less<>> source_name_map(const ArchInfo& arch,
                                                               const ModelConfig& c,
                                                               NameColumn col) {
  std::map<std::string, NameTarget, std::less<>> out;
  for (const auto& row : arch.tensors) {
    const std::string_view pattern = col == NameColumn::kHf ? row.hf : row.gguf;
    if (pattern.empty()) continue;
    for_each_instance(row, c, [&](int64_t l, int64_t e) {
      out[expand_name(pattern, l, e)] = NameTarget{expand_name(row.canonical, l, e), &row, l, e};
    });
  }
  return out;
}

WeightStore::Loader mapped_loader(std::shared_ptr<const MappedFile> map, const std::byte* data,
                                  DType dtype, Shape shape) {
  const size_t nbytes = tensor_nbytes(dtype, shape);
  const size_t align = std::max<size_t>(1, dtype_size(dtype));
  if (reinterpret_cast<uintptr_t>(data) % align == 0)
    return [map, data, dtype, shape, nbytes]() {
      return Tensor::borrow(dtype, shape, data, nbytes, map);
    };
  return [map, data, dtype, shape, nbytes]() {
    Tensor t(dtype, shape);
    std::memcpy(t.mutable_bytes(), data, nbytes);
    return t;
  };
}

WeightStore::Loader fp8_block_loader(MappedTensor w, MappedTensor s, int64_t block) {
  const std::string sw = "'" + s.path + "': tensor '" + s.name + "'";
  DSQ_ASSERT(w.shape.size() == 2 && block > 0, "fp8_block_loader: bad weight shape");
  const int64_t rows = w.shape[0], cols = w.shape[1];
  const Shape want{(rows + block - 1) / block, (cols + block - 1) / block};
  if (s.dtype != DType::kF32)
    throw FormatError(sw + ": block scales must be F32, found " + std::string(dtype_name(s.dtype)));
  if (s.shape != want)
    throw FormatError(strprintf("%s: shape %s, expected %s for the %s weight '%s' in %lldx%lld "
                                "blocks",
                                sw.c_str(), shape_str(s.shape).c_str(), shape_str(want).c_str(),
                                shape_str(w.shape).c_str(), w.name.c_str(),
                                static_cast<long long>(block), static_cast<long long>(block)));
  const size_t n_scales = static_cast<size_t>(want[0] * want[1]);
  std::vector<float> scales(n_scales);
  std::memcpy(scales.data(), s.data, n_scales * 4);
  for (size_t i = 0; i < n_scales; ++i)
    if (!std::isfinite(scales[i]) || scales[i] < 0)
      throw FormatError(strprintf("%s: scale [%lld][%lld] is %g (block scales must be finite and "
                                  "non-negative)",
                                  sw.c_str(), static_cast<long long>(i / want[1]),
                                  static_cast<long long>(i % want[1]), scales[i]));
  const QuantDesc d(QuantScheme::kFp8E4M3, static_cast<uint32_t>(block));
  return [w = std::move(w), s = std::move(s), d, rows, cols]() {
    const QuantLayout L = quant_layout(d, rows, cols);
    Tensor t(DType::kQInt, Shape{rows, cols}, &d);
    auto* out = reinterpret_cast<uint8_t*>(t.mutable_bytes());
    std::memcpy(out, w.data, L.codes_bytes);
    std::memcpy(out + L.scales_offset, s.data, L.scales_bytes);
    for (size_t i = 0; i < L.codes_bytes; ++i)
      if (fp8_e4m3_is_nan(out[i]))
        throw FormatError(strprintf("'%s': tensor '%s': element [%lld][%lld] is an FP8 NaN code "
                                    "(0x%02X)",
                                    w.path.c_str(), w.name.c_str(),
                                    static_cast<long long>(static_cast<int64_t>(i) / cols),
                                    static_cast<long long>(static_cast<int64_t>(i) % cols), out[i]));
    return t;
  };
}

WeightStore::Loader meta_to_canonical_loader(WeightStore::Loader base, int64_t heads,
                                             int64_t head_dim) {
  return [base = std::move(base), heads, head_dim]() {
    const Tensor src = base();
    const int64_t rows = src.ndim() ? src.dim(0) : 0;
    if (rows != heads * head_dim)
      throw ShapeError(strprintf("cannot permute %lld rows as %lld heads of %lld (RoPE order)",
                                 static_cast<long long>(rows), static_cast<long long>(heads),
                                 static_cast<long long>(head_dim)));
    Tensor dst(src.dtype(), src.shape());
    const int64_t cols = rows ? src.numel() / rows : 0;
    permute_meta_to_hf(src.bytes(), dst.mutable_bytes(), heads, head_dim, cols,
                       dtype_size(src.dtype()));
    return dst;
  };
}

int64_t permute_heads(const ArchTensor& row, const ModelConfig& c, int64_t layer) {
  if (row.permute == RopePermute::kNone || layer < 0) return 0;
  const LayerDims d = c.layer(layer);
  return row.permute == RopePermute::kQ ? d.n_heads : d.n_kv_heads;
}

bool same_tensor_bytes(const WeightStore::Entry& a, const WeightStore::Entry& b) {
  if (a.dtype != b.dtype || a.shape != b.shape) return false;
  const Tensor ta = a.load(), tb = b.load();
  return ta.nbytes() == tb.nbytes() && std::memcmp(ta.bytes(), tb.bytes(), ta.nbytes()) == 0;
}

namespace {
const WeightStore::Entry* find_role(const std::vector<WeightStore::Entry>& entries,
                                    const ArchInfo& arch, TensorRole role) {
  for (const auto& row : arch.tensors)
    if (row.role == role && !row.per_layer())
      for (const auto& e : entries)
        if (e.name == row.canonical) return &e;
  return nullptr;
}
}  // namespace

Classifier classifier_state(const std::vector<WeightStore::Entry>& entries, const ArchInfo& arch) {
  const WeightStore::Entry* out = find_role(entries, arch, TensorRole::kClassifier);
  if (!out) return Classifier::kAbsent;
  const WeightStore::Entry* emb = find_role(entries, arch, TensorRole::kEmbedding);
  return emb && same_tensor_bytes(*out, *emb) ? Classifier::kSameAsEmbedding
                                              : Classifier::kDistinct;
}

void drop_classifier(std::vector<WeightStore::Entry>& entries, const ArchInfo& arch) {
  if (const WeightStore::Entry* out = find_role(entries, arch, TensorRole::kClassifier)) {
    const std::string name = out->name;
    std::erase_if(entries, [&](const WeightStore::Entry& e) { return e.name == name; });
  }
}

void add_in_canonical_order(WeightStore& ws, std::vector<WeightStore::Entry> entries,
                            const ModelConfig& c) {
  const ArchInfo& arch = arch_of(c);
  using Key = std::tuple<int64_t, int64_t, int64_t>;  // (layer + 1, row, expert); globals layer 0
  std::map<std::string, Key> rank;
  for (const auto& e : entries) {
    int64_t layer = -1, expert = -1;
    if (const ArchTensor* row = find_tensor_row(c, e.name, &layer, &expert))
      rank[e.name] = Key{layer + 1, row - arch.tensors.data(), expert};
  }
  auto key = [&](const WeightStore::Entry& e) {
    auto it = rank.find(e.name);
    return it == rank.end() ? Key{INT64_MAX, 0, 0} : it->second;
  };
  std::stable_sort(entries.begin(), entries.end(),
                   [&](const auto& a, const auto& b) { return key(a) < key(b); });
  for (auto& e : entries) ws.add(std::move(e));
}

namespace {
// Reads a protobuf varint at data[*pos]; false when malformed or past `size`.
bool read_varint(const unsigned char* data, size_t size, size_t* pos, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*pos >= size) return false;
    const unsigned char b = data[(*pos)++];
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}
}  // namespace

int64_t sentencepiece_piece_count(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec || size == 0 || size > (64u << 20)) return -1;
  std::string bytes;
  try {
    bytes = read_text_file(path);
  } catch (const Error&) {
    return -1;
  }
  const auto* d = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t pos = 0;
  int64_t pieces = 0;
  while (pos < bytes.size()) {
    uint64_t key = 0, v = 0;
    if (!read_varint(d, bytes.size(), &pos, &key)) return -1;
    const uint64_t field = key >> 3, wire = key & 7;
    if (field == 0) return -1;
    switch (wire) {
      case 0:
        if (!read_varint(d, bytes.size(), &pos, &v)) return -1;
        break;
      case 1:
      case 5: {
        const size_t n = wire == 1 ? 8 : 4;
        if (bytes.size() - pos < n) return -1;
        pos += n;
        break;
      }
      case 2:
        if (!read_varint(d, bytes.size(), &pos, &v) || v > bytes.size() - pos) return -1;
        pos += static_cast<size_t>(v);
        if (field == 1) ++pieces;
        break;
      default:
        return -1;
    }
  }
  return pieces;
}

json hf_tokenizer_reference(const std::string& dir) {
  json ref;
  const fs::path d(dir);
  if (fs::is_regular_file(d / "tokenizer.model"))
    ref = {{"kind", "sentencepiece"}, {"path", absolute_path((d / "tokenizer.model").string())}};
  else if (fs::is_regular_file(d / "tokenizer.json"))
    ref = {{"kind", "hf-json"}, {"path", absolute_path((d / "tokenizer.json").string())}};
  else
    return ref;
  const fs::path cfg = d / "tokenizer_config.json";
  if (fs::is_regular_file(cfg)) {
    const json tc = parse_json_strict(read_text_file(cfg.string()), cfg.string());
    if (auto it = tc.find("add_bos_token"); it != tc.end() && it->is_boolean())
      ref["add_bos_token"] = it->get<bool>();
  }
  return ref;
}

void check_config_from_file(const ModelConfig& c, size_t n_tensors, const std::string& where) {
  validate_config_for_file(c, n_tensors, where);
}

void finish_store(WeightStore& ws, const std::string& where, std::string_view format,
                  const std::vector<std::string>& files) {
  ws.metadata["source_format"] = std::string(format);
  for (const auto& f : files) {
    std::error_code ec;
    const auto bytes = fs::file_size(f, ec);
    ws.sources.push_back(SourceFile{absolute_path(f), ec ? 0 : static_cast<uint64_t>(bytes), ""});
  }
  ws.has_config = true;
  validate_against_config(ws, where);
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  const fs::path p = fs::absolute(path, ec);
  return ec ? path : p.lexically_normal().string();
}

}  // namespace dsq::formats::detail
