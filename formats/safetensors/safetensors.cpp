#include "formats/safetensors/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>

#include "formats/hf/reader_util.h"
#include "lib/core/error.h"
#include "lib/core/json_io.h"

namespace dsq::formats {

static_assert(std::endian::native == std::endian::little, "dsq reads little-endian files");

using json = nlohmann::json;

namespace {

// The reference implementation refuses headers above 100 MB; so does dsq.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeName {
  std::string_view name;
  DType dtype;
};
constexpr DtypeName kSupported[] = {{"F32", DType::kF32},
                                    {"F16", DType::kF16},
                                    {"BF16", DType::kBF16},
                                    {"F8_E4M3", DType::kF8E4M3}};

bool as_u64(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

SafetensorsTensor parse_entry(const std::string& path, const std::string& name, const json& v,
                              uint64_t data_size) {
  const std::string w = "'" + path + "': tensor '" + name + "'";
  if (!v.is_object()) throw FormatError(w + ": header entry is not an object");
  SafetensorsTensor t;
  t.name = name;

  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) throw FormatError(w + ": missing 'dtype'");
  const auto& dts = dt->get_ref<const std::string&>();
  const auto* sup = std::find_if(std::begin(kSupported), std::end(kSupported),
                                 [&](const DtypeName& d) { return d.name == dts; });
  if (sup == std::end(kSupported))
    throw FormatError(w + ": dtype '" + dts + "' is not supported (supported: F32, F16, BF16, F8_E4M3)");
  t.dtype = sup->dtype;

  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) throw FormatError(w + ": missing 'shape'");
  for (const auto& d : *sh) {
    uint64_t u = 0;
    if (!as_u64(d, &u) || u > static_cast<uint64_t>(INT64_MAX))
      throw FormatError(w + ": shape " + json_excerpt(*sh) + " has a dimension that is not a "
                        "non-negative int64");
    t.shape.push_back(static_cast<int64_t>(u));
  }
  size_t nbytes = 0;
  try {
    nbytes = tensor_nbytes(t.dtype, t.shape);
  } catch (const ShapeError&) {
    throw FormatError(w + ": shape " + shape_str(t.shape) + " overflows int64");
  }

  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !as_u64((*off)[0], &t.begin) ||
      !as_u64((*off)[1], &t.end))
    throw FormatError(w + ": 'data_offsets' must be two non-negative integers");
  if (t.begin > t.end || t.end > data_size)
    throw FormatError(strprintf("%s: data_offsets [%llu, %llu] outside the data section of %llu "
                                "bytes",
                                w.c_str(), static_cast<unsigned long long>(t.begin),
                                static_cast<unsigned long long>(t.end),
                                static_cast<unsigned long long>(data_size)));
  if (t.end - t.begin != nbytes)
    throw FormatError(strprintf("%s: data_offsets span %llu bytes, %s x %s needs %zu", w.c_str(),
                                static_cast<unsigned long long>(t.end - t.begin),
                                std::string(dtype_name(t.dtype)).c_str(),
                                shape_str(t.shape).c_str(), nbytes));
  return t;
}

}  // namespace

const SafetensorsTensor* SafetensorsFile::find_tensor(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  f.map_ = MappedFile::open(path);
  const uint64_t size = f.map_->size();
  if (size < 8)
    throw FormatError(strprintf("'%s': truncated: %llu bytes, the header length alone needs 8",
                                path.c_str(), static_cast<unsigned long long>(size)));
  uint64_t n = 0;
  std::memcpy(&n, f.map_->data(), 8);
  if (n > size - 8)
    throw FormatError(strprintf("'%s': header length %llu runs past the end of the file (%llu "
                                "bytes)",
                                path.c_str(), static_cast<unsigned long long>(n),
                                static_cast<unsigned long long>(size)));
  if (n > kMaxHeaderBytes)
    throw FormatError(strprintf("'%s': header length %llu exceeds the 100 MB limit", path.c_str(),
                                static_cast<unsigned long long>(n)));
  f.data_offset_ = 8 + n;
  const uint64_t data_size = size - f.data_offset_;
  const std::string_view text(reinterpret_cast<const char*>(f.map_->data() + 8),
                              static_cast<size_t>(n));
  const json header = detail::parse_json_strict(text, path);
  if (!header.is_object()) throw FormatError("'" + path + "': header is not a JSON object");

  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) throw FormatError("'" + path + "': '__metadata__' is not an object");
      f.metadata_ = v;
      continue;
    }
    f.index_[name] = f.tensors_.size();
    f.tensors_.push_back(parse_entry(path, name, v, data_size));
  }
  // nlohmann::json orders keys alphabetically; put tensors back in file order by offset for a
  // stable, meaningful order, then reject overlaps.
  std::vector<size_t> order(f.tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return f.tensors_[a].begin < f.tensors_[b].begin;
  });
  std::vector<SafetensorsTensor> sorted;
  sorted.reserve(order.size());
  for (size_t i : order) sorted.push_back(std::move(f.tensors_[i]));
  f.tensors_ = std::move(sorted);
  f.index_.clear();
  const SafetensorsTensor* prev = nullptr;  // the tensor reaching furthest so far
  for (size_t i = 0; i < f.tensors_.size(); ++i) {
    const auto& t = f.tensors_[i];
    f.index_[t.name] = i;
    if (t.begin == t.end) continue;  // empty tensors occupy no bytes
    if (prev && t.begin < prev->end)
      throw FormatError("'" + path + "': tensor '" + t.name + "': data_offsets overlap tensor '" +
                        prev->name + "'");
    if (!prev || t.end > prev->end) prev = &t;
  }
  return f;
}

bool sniff_safetensors(const std::string& path) {
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (!fp) return false;
  unsigned char head[9] = {};
  const bool read = std::fread(head, 1, 9, fp) == 9;
  const bool seek = std::fseek(fp, 0, SEEK_END) == 0;
  const long size = seek ? std::ftell(fp) : -1;
  std::fclose(fp);
  if (!read || size < 9) return false;
  uint64_t n = 0;
  std::memcpy(&n, head, 8);
  return n >= 2 && n <= static_cast<uint64_t>(size) - 8 && head[8] == '{';
}

}  // namespace dsq::formats
