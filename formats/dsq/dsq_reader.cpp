#include "formats/dsq/dsq_reader.h"

#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <set>

#include "formats/dsq/dsq_format.h"
#include "formats/dsq/dsq_util.h"
#include "lib/core/error.h"
#include "lib/core/json_io.h"
#include "lib/core/hash.h"

namespace dsq::formats {

using namespace dsqfile;
using nlohmann::json;

namespace {

// zstd cannot encode more than ~32768 raw bytes per stored byte (RLE blocks); a record that
// claims more is corrupt, and rejecting it keeps a hostile file from forcing a huge allocation.
constexpr uint64_t kMaxZstdRatio = 65536;

bool known_dtype(uint16_t v) { return v <= 8 || v == static_cast<uint16_t>(DType::kQInt); }

// Bytes of a kQInt blob, computed without overflow (nullopt when it would exceed 2^62).
std::optional<uint64_t> qint_bytes(const QuantDesc& q, int64_t rows, int64_t cols) {
  using u128 = unsigned __int128;
  const u128 row_code = (static_cast<u128>(cols) * q.bits() + 7) / 8;
  const u128 group = q.group == 0 ? static_cast<u128>(cols) : q.group;
  const u128 n_groups = cols == 0 ? 0 : (static_cast<u128>(cols) + group - 1) / group;
  const u128 codes = row_code * static_cast<u128>(rows);
  const u128 groups = n_groups * static_cast<u128>(rows);
  if (codes > (u128{1} << 60) || groups > (u128{1} << 60)) return std::nullopt;
  return quant_layout(q, rows, cols).total_bytes;
}

template <class T>
T load_pod(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The scheme of a qint record: the quant_scheme id (format 1.1), which must agree with the bits and
// symmetry also written for 1.0 readers; in 1.0 files the grouped-integer row of bits + sym.
QuantDesc record_scheme(const std::string& tw, const TensorRecord& r, uint16_t minor) {
  if (r.quant_sym > 1) throw FormatError(tw + ": quant_sym must be 0 or 1");
  std::optional<QuantScheme> s;
  if (minor == 0) {
    if (r.quant_scheme != 0) throw FormatError(tw + ": reserved field is not 0 in a 1.0 file");
    s = int_scheme(r.quant_bits, r.quant_sym == 1);
    if (!s)
      throw FormatError(tw + ": qint bits must be one of " + supported_bits_list() + ", got " +
                        std::to_string(r.quant_bits));
  } else {
    s = scheme_from_id(r.quant_scheme);
    if (!s) throw FormatError(tw + ": unknown quantization scheme id " + std::to_string(r.quant_scheme));
    const SchemeInfo& info = scheme_info(*s);
    const bool grouped = info.layout == SchemeLayout::kGroupedInt;
    if (grouped ? (r.quant_bits != info.bits || (r.quant_sym == 1) == info.has_zero)
                : (r.quant_bits != 0 || r.quant_sym != 0))
      throw FormatError(tw + ": quant_bits " + std::to_string(r.quant_bits) + " / quant_sym " +
                        std::to_string(r.quant_sym) + " disagree with scheme '" +
                        std::string(info.name) + "'");
    if (!grouped && (r.quant_group == 0 || r.quant_group > 65536))
      throw FormatError(tw + ": block edge " + std::to_string(r.quant_group) + " of scheme '" +
                        std::string(info.name) + "' must be in [1, 65536]");
  }
  return QuantDesc(*s, r.quant_group);
}

DsqTensorInfo parse_record(const std::string& file, const TensorRecord& r, const std::byte* names,
                           uint64_t names_bytes, uint16_t minor) {
  const std::string where = "'" + file + "'";
  if (r.name_bytes == 0 || r.name_offset > names_bytes || r.name_bytes > names_bytes - r.name_offset)
    throw FormatError(where + ": tensor name [" + std::to_string(r.name_offset) + ", +" +
                      std::to_string(r.name_bytes) + ") lies outside the name pool (" +
                      std::to_string(names_bytes) + " bytes)");
  DsqTensorInfo t;
  t.name.assign(reinterpret_cast<const char*>(names) + r.name_offset, r.name_bytes);
  const std::string tw = where + ": tensor '" + t.name + "'";
  if (!known_dtype(r.dtype)) throw FormatError(tw + ": unknown dtype " + std::to_string(r.dtype));
  t.dtype = static_cast<DType>(r.dtype);
  if (r.ndim > kMaxDims) throw FormatError(tw + ": " + std::to_string(r.ndim) + " dims, at most 8");
  for (uint32_t i = 0; i < kMaxDims; ++i) {
    if (i < r.ndim) t.shape.push_back(r.dims[i]);
    else if (r.dims[i] != 0) throw FormatError(tw + ": unused dim " + std::to_string(i) + " is not 0");
  }
  int64_t numel;
  try {
    numel = shape_numel(t.shape, tw);
  } catch (const ShapeError& e) {
    throw FormatError(e.what());
  }
  if (r.compression > static_cast<uint8_t>(Compression::kZstd))
    throw FormatError(tw + ": unknown compression " + std::to_string(r.compression));
  t.compression = r.compression;
  uint64_t want;
  if (t.dtype == DType::kQInt) {
    t.quant = record_scheme(tw, r, minor);
    if (r.ndim != 2) throw FormatError(tw + ": qint tensors must be 2-D, got " + shape_str(t.shape));
    const auto q = qint_bytes(t.quant, t.shape[0], t.shape[1]);
    if (!q) throw FormatError(tw + ": qint shape " + shape_str(t.shape) + " is too large");
    want = *q;
  } else {
    if (r.quant_bits || r.quant_sym || r.quant_group || r.quant_scheme)
      throw FormatError(tw + ": quantization fields set on a " +
                        std::string(dtype_name(t.dtype)) + " tensor");
    const uint64_t es = dtype_size(t.dtype);
    if (numel != 0 && static_cast<uint64_t>(numel) > (uint64_t{1} << 62) / es)
      throw FormatError(tw + ": shape " + shape_str(t.shape) + " is too large");
    want = static_cast<uint64_t>(numel) * es;
  }
  if (r.raw_bytes != want)
    throw FormatError(tw + ": raw size " + std::to_string(r.raw_bytes) + " bytes, " +
                      describe_dtype(t.dtype, t.quant) + " x " + shape_str(t.shape) + " needs " +
                      std::to_string(want));
  if (t.compression == 0 && r.stored_bytes != r.raw_bytes)
    throw FormatError(tw + ": uncompressed but stores " + std::to_string(r.stored_bytes) +
                      " bytes for " + std::to_string(r.raw_bytes));
  if (t.compression != 0 && (r.stored_bytes == 0 || r.raw_bytes / kMaxZstdRatio > r.stored_bytes))
    throw FormatError(tw + ": zstd size " + std::to_string(r.stored_bytes) + " bytes cannot hold " +
                      std::to_string(r.raw_bytes) + " raw bytes");
  if (r.data_offset % kAlign != 0)
    throw FormatError(tw + ": data offset " + std::to_string(r.data_offset) +
                      " is not a multiple of 64");
  t.data_offset = r.data_offset;
  t.stored_bytes = r.stored_bytes;
  t.raw_bytes = r.raw_bytes;
  t.checksum = r.checksum;
  return t;
}

}  // namespace

DsqIndex read_dsq_index(const MappedFile& f) {
  const std::string where = "'" + f.path() + "'";
  const uint64_t size = f.size();
  if (size < sizeof(Preamble))
    throw FormatError(where + ": truncated: " + std::to_string(size) +
                      " bytes, a dsq file has at least 64");
  const auto pre = load_pod<Preamble>(f.data());
  if (std::memcmp(pre.magic, kMagic, sizeof kMagic) != 0)
    throw FormatError(where + ": bad magic, not a dsq file");
  if (pre.version_major != kVersionMajor)
    throw FormatError(where + ": unsupported dsq format version " +
                      std::to_string(pre.version_major) + "." + std::to_string(pre.version_minor) +
                      " (this reader supports " + std::to_string(kVersionMajor) + ".x)");
  if (pre.file_bytes != size)
    throw FormatError(where + (pre.file_bytes > size ? ": truncated" : ": trailing bytes") +
                      ": the preamble says " + std::to_string(pre.file_bytes) +
                      " bytes, the file has " + std::to_string(size));
  if (pre.index_offset < sizeof(Preamble) || pre.index_offset % kAlign != 0 ||
      pre.index_offset > size || pre.index_bytes > size - pre.index_offset ||
      pre.index_bytes < sizeof(IndexHeader))
    throw FormatError(where + ": index at offset " + std::to_string(pre.index_offset) + " (" +
                      std::to_string(pre.index_bytes) + " bytes) lies outside the file (" +
                      std::to_string(size) + " bytes)");
  const std::byte* idx = f.data() + pre.index_offset;
  if (xxh64(idx, pre.index_bytes) != pre.index_checksum)
    throw FormatError(where + ": index checksum mismatch (corrupt tensor table or JSON header)");
  const auto ih = load_pod<IndexHeader>(idx);
  if (std::memcmp(ih.magic, kIndexMagic, sizeof kIndexMagic) != 0)
    throw FormatError(where + ": bad index magic");
  const uint64_t body = pre.index_bytes - sizeof(IndexHeader);
  const uint64_t table = uint64_t{ih.n_tensors} * sizeof(TensorRecord);
  if (table > body || ih.names_bytes > body - table ||
      ih.json_bytes != body - table - ih.names_bytes)
    throw FormatError(where + ": index sizes disagree: " + std::to_string(ih.n_tensors) +
                      " tensors, " + std::to_string(ih.names_bytes) + " name bytes and " +
                      std::to_string(ih.json_bytes) + " JSON bytes in a " +
                      std::to_string(pre.index_bytes) + "-byte index");
  DsqIndex out;
  out.version_major = pre.version_major;
  out.version_minor = pre.version_minor;
  out.file_bytes = size;
  out.index_offset = pre.index_offset;
  const std::byte* recs = idx + sizeof(IndexHeader);
  const std::byte* names = recs + table;
  std::set<std::string> seen;
  out.tensors.reserve(ih.n_tensors);
  for (uint32_t i = 0; i < ih.n_tensors; ++i) {
    const auto r = load_pod<TensorRecord>(recs + i * sizeof(TensorRecord));
    DsqTensorInfo t = parse_record(f.path(), r, names, ih.names_bytes, pre.version_minor);
    if (!seen.insert(t.name).second)
      throw FormatError(where + ": duplicate tensor '" + t.name + "'");
    if (t.data_offset < sizeof(Preamble) || t.data_offset > pre.index_offset ||
        t.stored_bytes > pre.index_offset - t.data_offset)
      throw FormatError(where + ": tensor '" + t.name + "': data [" + std::to_string(t.data_offset) +
                        ", +" + std::to_string(t.stored_bytes) +
                        ") lies outside the data region [64, " + std::to_string(pre.index_offset) +
                        ")");
    out.tensors.push_back(std::move(t));
  }
  std::vector<const DsqTensorInfo*> by_off;
  for (const auto& t : out.tensors) by_off.push_back(&t);
  std::sort(by_off.begin(), by_off.end(), [](auto* a, auto* b) {
    return a->data_offset < b->data_offset;
  });
  for (size_t i = 1; i < by_off.size(); ++i) {
    const auto* a = by_off[i - 1];
    const auto* b = by_off[i];
    if (a->stored_bytes > 0 && b->stored_bytes > 0 && a->data_offset + a->stored_bytes > b->data_offset)
      throw FormatError(where + ": tensor '" + b->name + "': data at " +
                        std::to_string(b->data_offset) + " overlaps tensor '" + a->name + "'");
  }
  const char* js = reinterpret_cast<const char*>(names + ih.names_bytes);
  try {
    out.header = parse_json(std::string_view(js, ih.json_bytes), f.path());
  } catch (const FormatError& e) {
    throw FormatError(where + ": JSON header does not parse (" +
                      std::string(e.what()).substr(where.size() + 2) + ")");
  }
  if (!out.header.is_object()) throw FormatError(where + ": JSON header is not an object");
  if (auto it = out.header.find("tensors"); it != out.header.end()) {
    if (!it->is_object()) throw FormatError(where + ": JSON header 'tensors' is not an object");
    for (auto& [name, v] : it->items()) {
      if (!seen.count(name))
        throw FormatError(where + ": JSON header describes tensor '" + name +
                          "' that is not in the tensor table");
      if (!v.is_object() || (v.contains("attrs") && !v["attrs"].is_object()))
        throw FormatError(where + ": tensor '" + name + "': JSON entry is malformed");
    }
  }
  return out;
}

bool sniff_dsq(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char m[sizeof kMagic];
  const bool ok = std::fread(m, 1, sizeof m, f) == sizeof m && std::memcmp(m, kMagic, sizeof m) == 0;
  std::fclose(f);
  return ok;
}

namespace {

void verify(const DsqTensorInfo& t, const std::string& path, const std::byte* p) {
  const uint64_t got = xxh64(p, t.raw_bytes);
  if (got != t.checksum)
    throw FormatError(strprintf("'%s': tensor '%s': checksum mismatch (table %016llx, data %016llx)",
                                path.c_str(), t.name.c_str(),
                                static_cast<unsigned long long>(t.checksum),
                                static_cast<unsigned long long>(got)));
}

Tensor load_tensor(const std::shared_ptr<const MappedFile>& m, const DsqTensorInfo& t,
                   bool verify_checksum, std::atomic<bool>& verified) {
  const std::byte* src = m->data() + t.data_offset;
  const QuantDesc* q = t.dtype == DType::kQInt ? &t.quant : nullptr;
  if (t.compression == 0) {
    if (verify_checksum && !verified.load(std::memory_order_acquire)) {
      verify(t, m->path(), src);
      verified.store(true, std::memory_order_release);
    }
    return Tensor::borrow(t.dtype, t.shape, src, t.raw_bytes, m, q);
  }
  const std::string tw = "'" + m->path() + "': tensor '" + t.name + "'";
  const unsigned long long fcs = ZSTD_getFrameContentSize(src, t.stored_bytes);
  if (fcs == ZSTD_CONTENTSIZE_ERROR || fcs == ZSTD_CONTENTSIZE_UNKNOWN || fcs != t.raw_bytes)
    throw FormatError(tw + ": corrupt zstd frame (content size does not match " +
                      std::to_string(t.raw_bytes) + " raw bytes)");
  Tensor out(t.dtype, t.shape, q);
  const size_t got = ZSTD_decompress(out.mutable_bytes(), t.raw_bytes, src, t.stored_bytes);
  if (ZSTD_isError(got)) throw FormatError(tw + ": corrupt zstd frame: " + ZSTD_getErrorName(got));
  if (got != t.raw_bytes)
    throw FormatError(tw + ": corrupt zstd frame: " + std::to_string(got) + " bytes, expected " +
                      std::to_string(t.raw_bytes));
  if (verify_checksum) verify(t, m->path(), out.bytes());
  return out;
}

}  // namespace

WeightStore open_dsq(const std::string& path, const OpenOptions& opts) {
  auto m = MappedFile::open(path);
  DsqIndex idx = read_dsq_index(*m);
  const std::string where = "'" + path + "'";
  WeightStore ws;
  const json& h = idx.header;
  const json& extras = json_member(h, "tensors");
  for (const auto& t : idx.tensors) {
    WeightStore::Entry e;
    e.name = t.name;
    e.dtype = t.dtype;
    e.shape = t.shape;
    e.quant = t.quant;
    e.source = path;
    if (auto it = extras.find(t.name); it != extras.end() && it->contains("attrs"))
      e.attrs = (*it)["attrs"];
    auto verified = std::make_shared<std::atomic<bool>>(false);
    e.load = [m, t, verified, check = opts.verify_checksums]() {
      return load_tensor(m, t, check, *verified);
    };
    ws.add(std::move(e));
  }
  for (const char* key : {"tokenizer", "provenance", "recipe"})
    if (h.contains(key)) ws.metadata[key] = h[key];
  if (auto it = h.find("metadata"); it != h.end() && it->is_object())
    for (auto& [k, v] : it->items()) ws.metadata[k] = v;
  // The tokenizer reference that commands follow and writers copy (load_tokenizer, the .dsq and
  // Hugging Face writers): an object whose kind and path are strings, add_bos_token a boolean.
  if (const auto t = ws.metadata.find("tokenizer"); t != ws.metadata.end()) {
    const auto wrong = [&](const char* key, bool boolean) {
      const auto f = t->find(key);
      return f != t->end() && !(boolean ? f->is_boolean() : f->is_string());
    };
    if (!t->is_object() || wrong("kind", false) || wrong("path", false) || wrong("add_bos_token", true))
      throw FormatError(where + ": JSON header: 'tokenizer' must be an object whose 'kind' and "
                                "'path' are strings and 'add_bos_token' a boolean");
  }
  ws.metadata["source_format"] = "dsq";
  ws.sources.push_back({path, idx.file_bytes, ""});
  if (auto it = h.find("config"); it != h.end()) {
    try {
      ws.config = it->get<ModelConfig>();
    } catch (const ConfigError& e) {
      throw ConfigError(where + ": JSON header: " + e.what());
    }
    validate_config_for_file(ws.config, ws.size(), where);
    ws.has_config = true;
    validate_against_config(ws, where);
  } else if (opts.require_config) {
    throw FormatError(where + ": the JSON header has no 'config': not a model file");
  }
  return ws;
}

std::optional<std::string> dsq_embedded_file(const json& tokenizer, const std::string& name) {
  if (!tokenizer.is_object() || !tokenizer.contains("files") || !tokenizer["files"].is_object() ||
      !tokenizer["files"].contains(name))
    return std::nullopt;
  const json& f = tokenizer["files"][name];
  if (!f.is_object() || !f.contains("base64") || !f["base64"].is_string())
    throw FormatError("embedded tokenizer file '" + name + "': no base64 data");
  auto bytes = base64_decode(f["base64"].get<std::string>());
  if (!bytes) throw FormatError("embedded tokenizer file '" + name + "': invalid base64");
  if (f.contains("sha256") && f["sha256"] != sha256_hex(bytes->data(), bytes->size()))
    throw FormatError("embedded tokenizer file '" + name + "': sha256 mismatch");
  return bytes;
}

}  // namespace dsq::formats
