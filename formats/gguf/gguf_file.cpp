// GgufFile: bounds-checked parsing of a GGUF header, metadata and tensor table.
#include <algorithm>
#include <bit>
#include <cstring>
#include <set>
#include <string>
#include <type_traits>

#include "formats/gguf/gguf.h"
#include "lib/core/error.h"

namespace dsq::formats {

static_assert(std::endian::native == std::endian::little, "dsq reads little-endian files");

using json = nlohmann::json;

namespace {

constexpr GgmlTypeTraits kGgmlTypes[] = {
    {GgmlType::kF32, "f32", 1, 4},       {GgmlType::kF16, "f16", 1, 2},
    {GgmlType::kQ4_0, "q4_0", 32, 18},   {GgmlType::kQ4_1, "q4_1", 32, 20},
    {GgmlType::kQ5_0, "q5_0", 32, 22},   {GgmlType::kQ5_1, "q5_1", 32, 24},
    {GgmlType::kQ8_0, "q8_0", 32, 34},   {GgmlType::kQ8_1, "q8_1", 32, 36},
    {GgmlType::kQ2_K, "q2_k", 256, 84},  {GgmlType::kQ3_K, "q3_k", 256, 110},
    {GgmlType::kQ4_K, "q4_k", 256, 144}, {GgmlType::kQ5_K, "q5_k", 256, 176},
    {GgmlType::kQ6_K, "q6_k", 256, 210}, {GgmlType::kQ8_K, "q8_k", 256, 292},
    {GgmlType::kI8, "i8", 1, 1},         {GgmlType::kI16, "i16", 1, 2},
    {GgmlType::kI32, "i32", 1, 4},       {GgmlType::kI64, "i64", 1, 8},
    {GgmlType::kF64, "f64", 1, 8},       {GgmlType::kBF16, "bf16", 1, 2},
};

constexpr uint32_t kMaxDims = 4;        // GGML_MAX_DIMS
constexpr int kMaxArrayNesting = 8;     // deeper nesting is rejected (no unbounded recursion)
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;          // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims=0, type, offset

// Smallest encoding of one value of type t (used to bound array counts before allocating).
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::kU8: case GgufValueType::kI8: case GgufValueType::kBool: return 1;
    case GgufValueType::kU16: case GgufValueType::kI16: return 2;
    case GgufValueType::kU32: case GgufValueType::kI32: case GgufValueType::kF32: return 4;
    case GgufValueType::kU64: case GgufValueType::kI64: case GgufValueType::kF64: return 8;
    case GgufValueType::kString: return 8;
    case GgufValueType::kArray: return 12;
  }
  return 1;
}

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kF64); }

// What a read is of, for its error message: a string, or a callable that makes one only when
// the read fails (a vocabulary array holds 10^5 strings; building a message for each read cost
// more than reading them).
template <class What>
std::string describe(const What& what) {
  if constexpr (std::is_invocable_v<const What&>)
    return what();
  else
    return std::string(what);
}

// A cursor over the mapped bytes; every read checks the bytes left and names what it was reading.
class Cursor {
 public:
  Cursor(const std::string& path, const std::byte* data, size_t size)
      : path_(path), data_(data), size_(size) {}

  size_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError("'" + path_ + "': " + what);
  }
  template <class What>
  void need(uint64_t n, const What& what) const {
    if (n > left())
      fail(strprintf("truncated: %s needs %llu bytes at offset %zu, only %llu left",
                     describe(what).c_str(), static_cast<unsigned long long>(n), pos_,
                     static_cast<unsigned long long>(left())));
  }
  template <class T, class What>
  T read(const What& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <class What>
  std::string read_string(const What& what) {
    const uint64_t n = read<uint64_t>([&] { return describe(what) + " length"; });
    if (n > left())
      fail(strprintf("%s: string length %llu exceeds the %llu bytes left in the file",
                     describe(what).c_str(), static_cast<unsigned long long>(n),
                     static_cast<unsigned long long>(left())));
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

 private:
  const std::string& path_;
  const std::byte* data_;
  size_t size_;
  size_t pos_ = 0;
};

json read_value(Cursor& c, GgufValueType t, const std::string& what, int depth);

json read_array(Cursor& c, const std::string& what, int depth, GgufValueType* elem_out) {
  if (depth >= kMaxArrayNesting)
    c.fail(strprintf("metadata key '%s': arrays nested deeper than %d levels", what.c_str(),
                     kMaxArrayNesting));
  const uint32_t et = c.read<uint32_t>([&] { return "metadata key '" + what + "' array type"; });
  if (!valid_value_type(et))
    c.fail(strprintf("metadata key '%s': unknown array element type %u", what.c_str(), et));
  const auto elem = static_cast<GgufValueType>(et);
  if (elem_out) *elem_out = elem;
  const uint64_t n = c.read<uint64_t>([&] { return "metadata key '" + what + "' array length"; });
  const uint64_t min = min_value_bytes(elem);
  if (n > c.left() / min)
    c.fail(strprintf("metadata key '%s': array of %llu %s elements cannot fit in the %llu bytes "
                     "left",
                     what.c_str(), static_cast<unsigned long long>(n),
                     std::string(gguf_value_type_name(elem)).c_str(),
                     static_cast<unsigned long long>(c.left())));
  json arr = json::array();
  arr.get_ref<json::array_t&>().reserve(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) arr.push_back(read_value(c, elem, what, depth + 1));
  return arr;
}

json read_value(Cursor& c, GgufValueType t, const std::string& what, int depth) {
  const auto w = [&] { return "metadata key '" + what + "'"; };
  switch (t) {
    case GgufValueType::kU8: return c.read<uint8_t>(w);
    case GgufValueType::kI8: return c.read<int8_t>(w);
    case GgufValueType::kU16: return c.read<uint16_t>(w);
    case GgufValueType::kI16: return c.read<int16_t>(w);
    case GgufValueType::kU32: return c.read<uint32_t>(w);
    case GgufValueType::kI32: return c.read<int32_t>(w);
    case GgufValueType::kF32: return c.read<float>(w);
    case GgufValueType::kU64: return c.read<uint64_t>(w);
    case GgufValueType::kI64: return c.read<int64_t>(w);
    case GgufValueType::kF64: return c.read<double>(w);
    case GgufValueType::kBool: {
      const uint8_t b = c.read<uint8_t>(w);
      if (b > 1) c.fail(strprintf("%s: bool value %u is not 0 or 1", w().c_str(), b));
      return b != 0;
    }
    case GgufValueType::kString: return c.read_string(w);
    case GgufValueType::kArray: return read_array(c, what, depth, nullptr);
  }
  c.fail(w() + ": unknown value type");
}

}  // namespace

std::string_view gguf_value_type_name(GgufValueType t) {
  static constexpr std::string_view kNames[] = {"u8",  "i8",   "u16",    "i16",   "u32",
                                                "i32", "f32",  "bool",   "string", "array",
                                                "u64", "i64",  "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

std::optional<uint64_t> ggml_nbytes(const GgmlTypeTraits& tr, const std::vector<int64_t>& ne) {
  const int64_t ne0 = ne.empty() ? 1 : ne[0];
  if (ne0 % tr.block != 0) return std::nullopt;
  uint64_t blocks = 1;
  for (size_t i = 0; i < ne.size(); ++i) {
    if (ne[i] < 0) return std::nullopt;
    const auto d = static_cast<uint64_t>(i == 0 ? ne[i] / tr.block : ne[i]);
    if (d != 0 && blocks > UINT64_MAX / d) return std::nullopt;
    blocks *= d;
  }
  if (blocks > UINT64_MAX / static_cast<uint64_t>(tr.block_bytes)) return std::nullopt;
  return blocks * static_cast<uint64_t>(tr.block_bytes);
}

const GgmlTypeTraits* ggml_type_traits(uint32_t id) {
  for (const auto& t : kGgmlTypes)
    if (static_cast<uint32_t>(t.type) == id) return &t;
  return nullptr;
}

std::optional<GgufKeyType> GgufFile::metadata_type(const std::string& key) const {
  auto it = types_.find(key);
  if (it == types_.end()) return std::nullopt;
  return it->second;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const std::byte* GgufFile::tensor_data(const GgufTensorInfo& t) const {
  return map_->data() + data_offset_ + t.offset;
}

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f;
  f.path_ = path;
  f.map_ = MappedFile::open(path);
  Cursor c(f.path_, f.map_->data(), f.map_->size());

  c.need(4, "magic");
  if (std::memcmp(f.map_->data(), "GGUF", 4) != 0) c.fail("bad magic: not a GGUF file");
  c.read<uint32_t>("magic");
  f.version_ = c.read<uint32_t>("version");
  if (f.version_ != 2 && f.version_ != 3) {
    if (f.version_ == 1) c.fail("GGUF version 1 is not supported (only 2 and 3)");
    if ((f.version_ & 0xFFFF) == 0) c.fail("big-endian GGUF files are not supported");
    c.fail(strprintf("unknown GGUF version %u (supported: 2, 3)", f.version_));
  }
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_kv > c.left() / kMinKvBytes)
    c.fail(strprintf("metadata count %llu cannot fit in the %llu bytes left",
                     static_cast<unsigned long long>(n_kv),
                     static_cast<unsigned long long>(c.left())));

  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key =
        c.read_string([&] { return strprintf("metadata key #%llu", (unsigned long long)i); });
    if (f.metadata_.contains(key)) c.fail("duplicate metadata key '" + key + "'");
    const uint32_t t = c.read<uint32_t>([&] { return "metadata key '" + key + "' type"; });
    if (!valid_value_type(t))
      c.fail(strprintf("metadata key '%s': unknown value type %u", key.c_str(), t));
    GgufKeyType kt{static_cast<GgufValueType>(t), GgufValueType::kU8};
    if (kt.type == GgufValueType::kArray)
      f.metadata_[key] = read_array(c, key, 0, &kt.elem);
    else
      f.metadata_[key] = read_value(c, kt.type, key, 0);
    f.types_[key] = kt;
  }

  if (auto it = f.metadata_.find("general.alignment"); it != f.metadata_.end()) {
    if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<int64_t>() > 0))
      c.fail("metadata key 'general.alignment': expected a positive integer");
    const uint64_t a = it->get<uint64_t>();
    if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 20))
      c.fail(strprintf("metadata key 'general.alignment': %llu is not a power of two up to 1 MiB",
                       static_cast<unsigned long long>(a)));
    f.alignment_ = a;
  }

  if (n_tensors > c.left() / kMinTensorInfoBytes)
    c.fail(strprintf("tensor count %llu cannot fit in the %llu bytes left",
                     static_cast<unsigned long long>(n_tensors),
                     static_cast<unsigned long long>(c.left())));
  f.tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.read_string([&] { return strprintf("tensor #%llu name", (unsigned long long)i); });
    const std::string w = "tensor '" + t.name + "'";
    if (f.tensor_index_.count(t.name)) c.fail("duplicate tensor '" + t.name + "'");
    const uint32_t nd = c.read<uint32_t>([&] { return w + " dimension count"; });
    if (nd > kMaxDims) c.fail(strprintf("%s: %u dimensions (at most %u)", w.c_str(), nd, kMaxDims));
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t ne = c.read<uint64_t>([&] { return w + " dimensions"; });
      if (ne > static_cast<uint64_t>(INT64_MAX))
        c.fail(strprintf("%s: dimension %u is %llu, beyond int64", w.c_str(), d,
                         static_cast<unsigned long long>(ne)));
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    const uint32_t type = c.read<uint32_t>([&] { return w + " type"; });
    const GgmlTypeTraits* tr = ggml_type_traits(type);
    if (!tr) c.fail(strprintf("%s: unknown ggml type %u", w.c_str(), type));
    t.type = tr->type;
    t.offset = c.read<uint64_t>([&] { return w + " offset"; });
    try {
      (void)shape_numel(t.ne, w);  // negative dims, element count beyond int64: named errors
    } catch (const ShapeError& e) {
      c.fail(e.what());
    }
    const int64_t ne0 = t.ne.empty() ? 1 : t.ne[0];
    if (ne0 % tr->block != 0)
      c.fail(strprintf("%s: row length %lld is not a multiple of the %s block size %lld",
                       w.c_str(), static_cast<long long>(ne0), std::string(tr->name).c_str(),
                       static_cast<long long>(tr->block)));
    const std::optional<uint64_t> nbytes = ggml_nbytes(*tr, t.ne);
    if (!nbytes) c.fail(w + ": byte size overflows");
    t.nbytes = *nbytes;
    f.tensor_index_[t.name] = f.tensors_.size();
    f.tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment (may equal the file size for
  // a file without tensor data).
  const uint64_t end_of_table = c.pos();
  f.data_offset_ = (end_of_table + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  const uint64_t size = f.map_->size();
  const uint64_t data_size = f.data_offset_ <= size ? size - f.data_offset_ : 0;
  if (!f.tensors_.empty() && f.data_offset_ > size)
    c.fail(strprintf("truncated: the data section starts at %llu, beyond the file size %llu",
                     static_cast<unsigned long long>(f.data_offset_),
                     static_cast<unsigned long long>(size)));
  for (const auto& t : f.tensors_) {
    if (t.offset % f.alignment_ != 0)
      c.fail(strprintf("tensor '%s': offset %llu is not a multiple of the alignment %llu",
                       t.name.c_str(), static_cast<unsigned long long>(t.offset),
                       static_cast<unsigned long long>(f.alignment_)));
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      c.fail(strprintf("tensor '%s': data [%llu, +%llu) runs past the end of the data section "
                       "(%llu bytes; truncated file?)",
                       t.name.c_str(), static_cast<unsigned long long>(t.offset),
                       static_cast<unsigned long long>(t.nbytes),
                       static_cast<unsigned long long>(data_size)));
  }
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : f.tensors_)
    if (t.nbytes) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto* a, const auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i - 1]->offset + by_offset[i - 1]->nbytes > by_offset[i]->offset)
      c.fail("tensor '" + by_offset[i]->name + "': data overlaps tensor '" +
             by_offset[i - 1]->name + "'");
  return f;
}

bool sniff_gguf(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return false;
  char magic[4] = {};
  const bool ok = std::fread(magic, 1, 4, fp) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  std::fclose(fp);
  return ok;
}

}  // namespace dsq::formats
