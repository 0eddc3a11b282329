#include "formats/hf/reader_util.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

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
                                                               int64_t n_layers, NameColumn col) {
  std::map<std::string, NameTarget, std::less<>> out;
  for (const auto& row : arch.tensors) {
    const std::string_view pattern = col == NameColumn::kHf ? row.hf : row.gguf;
    const int64_t n = row.per_layer() ? n_layers : 1;
    for (int64_t l = 0; l < n; ++l)
      out[expand_name(pattern, l)] =
          NameTarget{expand_name(row.canonical, l), &row, row.per_layer() ? l : -1};
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
                            const ArchInfo& arch) {
  const int64_t n_rows = static_cast<int64_t>(arch.tensors.size());
  std::map<std::string, int64_t> rank;  // globals: row index; layer l: (l + 1) * n_rows + row
  for (const auto& e : entries) {
    int64_t layer = -1;
    std::string ignored;
    if (!parse_block_name(e.name, &layer, &ignored)) layer = -1;
    for (int64_t i = 0; i < n_rows; ++i) {
      const auto& row = arch.tensors[static_cast<size_t>(i)];
      if (row.per_layer() != (layer >= 0)) continue;
      if (expand_name(row.canonical, layer) == e.name) {
        rank[e.name] = row.per_layer() ? (layer + 1) * n_rows + i : i;
        break;
      }
    }
  }
  auto key = [&](const WeightStore::Entry& e) {
    auto it = rank.find(e.name);
    return it == rank.end() ? INT64_MAX : it->second;
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
