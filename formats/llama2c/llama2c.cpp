#include "formats/llama2c/llama2c.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "formats/hf/reader_util.h"
#include "lib/core/error.h"

namespace dsq::formats {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr uint32_t kMagic = 0x616b3432;  // "ak42" (versions 1 and 2)
constexpr size_t kV0HeaderBytes = 7 * 4;
constexpr size_t kV1HeaderBytes = 256;

struct Header {
  int32_t dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len;
  int version = 0;
  bool shared = true;  // classifier shared with the embedding
};

// The widths a section's rows/cols are made of.
enum class Dim { kNone, kVocab, kDim, kHidden, kKv, kSeq, kHalfHead };

// One float32 array of the file: a canonical name pattern (empty: skipped, e.g. freq_cis) and
// [rows, cols] (cols kNone: a vector), repeated per layer when per_layer.
struct Section {
  std::string_view canonical;
  bool per_layer;
  Dim rows, cols;
};

constexpr Section kEmbedding{"token_embd.weight", false, Dim::kVocab, Dim::kDim};
constexpr Section kAttnNorm{"blk.{L}.attn_norm.weight", true, Dim::kDim, Dim::kNone};
constexpr Section kQ{"blk.{L}.attn_q.weight", true, Dim::kDim, Dim::kDim};
constexpr Section kK{"blk.{L}.attn_k.weight", true, Dim::kKv, Dim::kDim};
constexpr Section kV{"blk.{L}.attn_v.weight", true, Dim::kKv, Dim::kDim};
constexpr Section kO{"blk.{L}.attn_output.weight", true, Dim::kDim, Dim::kDim};
constexpr Section kFfnNorm{"blk.{L}.ffn_norm.weight", true, Dim::kDim, Dim::kNone};
constexpr Section kGate{"blk.{L}.ffn_gate.weight", true, Dim::kHidden, Dim::kDim};   // w1
constexpr Section kDown{"blk.{L}.ffn_down.weight", true, Dim::kDim, Dim::kHidden};   // w2
constexpr Section kUp{"blk.{L}.ffn_up.weight", true, Dim::kHidden, Dim::kDim};       // w3
constexpr Section kFinalNorm{"output_norm.weight", false, Dim::kDim, Dim::kNone};
constexpr Section kFreqCis{"", false, Dim::kSeq, Dim::kHalfHead};
constexpr Section kClassifier{"output.weight", false, Dim::kVocab, Dim::kDim};

std::vector<Section> layout(const Header& h) {
  std::vector<Section> s;
  if (h.version == 0)
    s = {kEmbedding, kAttnNorm, kQ, kK, kV, kO, kFfnNorm, kGate, kDown, kUp, kFinalNorm,
         kFreqCis,   kFreqCis};
  else
    s = {kAttnNorm, kFfnNorm, kFinalNorm, kEmbedding, kQ, kK, kV, kO, kGate, kDown, kUp};
  if (!h.shared) s.push_back(kClassifier);
  return s;
}

int64_t dim_value(const Header& h, Dim d) {
  switch (d) {
    case Dim::kNone: return 1;
    case Dim::kVocab: return h.vocab;
    case Dim::kDim: return h.dim;
    case Dim::kHidden: return h.hidden;
    case Dim::kKv: return static_cast<int64_t>(h.n_kv_heads) * (h.dim / h.n_heads);
    case Dim::kSeq: return h.seq_len;
    case Dim::kHalfHead: return h.dim / h.n_heads / 2;
  }
  return 0;
}

// Header widths within ranges no real llama2.c model leaves (and small enough that every size
// product below fits in uint64).
bool plausible(const Header& h) {
  return h.dim > 0 && h.dim <= (1 << 16) && h.hidden > 0 && h.hidden <= (1 << 20) &&
         h.n_layers > 0 && h.n_layers <= (1 << 12) && h.n_heads > 0 && h.n_heads <= h.dim &&
         h.n_kv_heads > 0 && h.n_kv_heads <= h.n_heads && h.vocab > 0 && h.vocab <= (1 << 24) &&
         h.seq_len > 0 && h.seq_len <= (1 << 24);
}

// Reads the header; false when the file is too short or the widths are implausible.
bool read_header(const std::byte* data, size_t size, Header* h) {
  if (size < kV0HeaderBytes) return false;
  uint32_t magic;
  std::memcpy(&magic, data, 4);
  int32_t v[7];
  if (magic == kMagic) {
    if (size < kV1HeaderBytes) return false;
    int32_t version;
    std::memcpy(&version, data + 4, 4);
    std::memcpy(v, data + 8, sizeof(v));
    h->version = version;
    h->shared = static_cast<uint8_t>(data[8 + sizeof(v)]) != 0;
  } else {
    std::memcpy(v, data, sizeof(v));
    h->version = 0;
    h->shared = v[5] > 0;
    if (v[5] < 0 && v[5] != INT32_MIN) v[5] = -v[5];
  }
  h->dim = v[0];
  h->hidden = v[1];
  h->n_layers = v[2];
  h->n_heads = v[3];
  h->n_kv_heads = v[4];
  h->vocab = v[5];
  h->seq_len = v[6];
  return plausible(*h);
}

// Bytes the header implies (header + every section), for a plausible header.
uint64_t expected_bytes(const Header& h) {
  uint64_t total = h.version == 0 ? kV0HeaderBytes : kV1HeaderBytes;
  for (const auto& s : layout(h)) {
    const uint64_t n = static_cast<uint64_t>(dim_value(h, s.rows)) *
                       static_cast<uint64_t>(dim_value(h, s.cols)) *
                       static_cast<uint64_t>(s.per_layer ? h.n_layers : 1);
    total += 4 * n;
  }
  return total;
}

// "tensor 'blk.1.ffn_up.weight' ends at byte N" (or "freq_cis ...") for the first array not
// wholly inside a file of `size` bytes.
std::string first_cut_tensor(const Header& h, uint64_t size) {
  uint64_t end = h.version == 0 ? kV0HeaderBytes : kV1HeaderBytes;
  for (const auto& s : layout(h))
    for (int64_t l = 0; l < (s.per_layer ? h.n_layers : 1); ++l) {
      end += 4 * static_cast<uint64_t>(dim_value(h, s.rows) * dim_value(h, s.cols));
      if (end > size)
        return strprintf("%s ends at byte %llu",
                         s.canonical.empty()
                             ? "freq_cis"
                             : ("tensor '" + expand_name(s.canonical, l) + "'").c_str(),
                         static_cast<unsigned long long>(end));
    }
  return "the last array";
}

std::string header_str(const Header& h) {
  return strprintf("{dim %d, hidden %d, layers %d, heads %d, kv_heads %d, vocab %d, seq_len %d}",
                   h.dim, h.hidden, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab, h.seq_len);
}

bool has_bin_extension(const std::string& path) {
  return fs::path(path).extension() == ".bin";
}

json tokenizer_reference(const std::string& path, int64_t vocab) {
  const fs::path dir = fs::path(detail::absolute_path(path)).parent_path();
  for (const fs::path& d : {dir, dir.parent_path()}) {
    std::vector<fs::path> models;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(d, ec))
      if (e.path().extension() == ".model" && e.is_regular_file(ec)) models.push_back(e.path());
    std::sort(models.begin(), models.end());
    for (const auto& m : models)
      if (detail::sentencepiece_piece_count(m.string()) == vocab)
        return {{"kind", "sentencepiece"}, {"path", m.string()}};
  }
  const std::string names[] = {"tokenizer.bin",
                               strprintf("tok%lld.bin", static_cast<long long>(vocab))};
  for (const auto& name : names)
    if (fs::is_regular_file(dir / name))
      return {{"kind", "llama2c"}, {"path", (dir / name).string()}};
  return nullptr;
}

}  // namespace

bool sniff_llama2c(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return false;
  std::byte head[kV1HeaderBytes] = {};
  const size_t got = std::fread(head, 1, sizeof(head), fp);
  const bool seek = std::fseek(fp, 0, SEEK_END) == 0;
  const long size = seek ? std::ftell(fp) : -1;
  std::fclose(fp);
  Header h;
  if (size < 0 || !read_header(head, got, &h)) return false;
  if (h.version != 0) return true;  // "ak42" magic and a plausible header
  return expected_bytes(h) == static_cast<uint64_t>(size) || has_bin_extension(path);
}

WeightStore read_llama2c(const std::string& path, const OpenOptions& /*opts*/) {
  const auto map = MappedFile::open(path);
  Header h;
  if (!read_header(map->data(), map->size(), &h))
    throw FormatError("'" + path + "': not a llama2.c checkpoint (header missing or implausible)");
  if (h.version == 2)
    throw FormatError("'" + path + "': llama2.c version 2 (int8 quantized) checkpoints are not "
                      "supported; export version 0 or 1 (float32)");
  if (h.version != 0 && h.version != 1)
    throw FormatError(strprintf("'%s': unknown llama2.c version %d", path.c_str(), h.version));
  if (h.dim % h.n_heads != 0 || (h.dim / h.n_heads) % 2 != 0)
    throw FormatError("'" + path + "': header " + header_str(h) +
                      ": dim is not n_heads times an even head size");
  const uint64_t want = expected_bytes(h);
  if (want < map->size())
    throw FormatError(strprintf("'%s': header %s implies %llu bytes, the file has %zu (trailing "
                                "data?)",
                                path.c_str(), header_str(h).c_str(),
                                static_cast<unsigned long long>(want), map->size()));
  if (want > map->size())
    throw FormatError(strprintf("'%s': truncated: %s, the file has %zu (header %s implies %llu)",
                                path.c_str(), first_cut_tensor(h, map->size()).c_str(),
                                map->size(), header_str(h).c_str(),
                                static_cast<unsigned long long>(want)));

  ModelConfig c;
  c.arch = "llama";
  c.n_layers = h.n_layers;
  c.d_model = h.dim;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.head_dim = h.dim / h.n_heads;
  c.d_ff = h.hidden;
  c.vocab_size = h.vocab;
  c.max_ctx = h.seq_len;
  c.rms_eps = 1e-5;        // llama2.c's fixed norm epsilon
  c.rope_theta = 10000.0;  // and RoPE base
  c.tied_embeddings = h.shared;
  c.bos_id = 1;  // run.c's fixed BOS/EOS ids
  c.eos_id = 2;
  const ArchInfo& arch = require_arch(c.arch, path);
  detail::check_config_from_file(c, layout(h).size() * static_cast<size_t>(h.n_layers), path);

  std::vector<WeightStore::Entry> entries;
  size_t offset = h.version == 0 ? kV0HeaderBytes : kV1HeaderBytes;
  for (const auto& s : layout(h)) {
    const int64_t rows = dim_value(h, s.rows), cols = dim_value(h, s.cols);
    const size_t bytes = static_cast<size_t>(rows * cols) * 4;
    const ArchTensor* row = nullptr;
    for (const auto& t : arch.tensors)
      if (t.canonical == s.canonical) row = &t;
    DSQ_ASSERT(s.canonical.empty() || row != nullptr, "llama2c section '%.*s' not in the table",
               static_cast<int>(s.canonical.size()), s.canonical.data());
    const int64_t n = s.per_layer ? h.n_layers : 1;
    for (int64_t l = 0; l < n; ++l, offset += bytes) {
      if (!row) continue;
      WeightStore::Entry e;
      e.name = expand_name(s.canonical, l);
      e.dtype = DType::kF32;
      e.shape = s.cols == Dim::kNone ? Shape{rows} : Shape{rows, cols};
      e.source = path;
      e.load = detail::mapped_loader(map, map->data() + offset, DType::kF32, e.shape);
      if (const int64_t heads = detail::permute_heads(*row, c, s.per_layer ? l : -1))
        e.load = detail::meta_to_canonical_loader(std::move(e.load), heads, c.head_dim);
      entries.push_back(std::move(e));
    }
  }
  DSQ_ASSERT(offset == map->size(), "llama2c layout walked %zu of %zu bytes", offset, map->size());

  WeightStore ws;
  ws.config = c;
  detail::add_in_canonical_order(ws, std::move(entries), c);
  if (json tok = tokenizer_reference(path, c.vocab_size); !tok.is_null()) ws.metadata["tokenizer"] = tok;
  ws.metadata["llama2c_version"] = h.version;
  detail::finish_store(ws, path, "llama2c", {path});
  return ws;
}

}  // namespace dsq::formats
