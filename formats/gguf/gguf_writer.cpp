// GgufWriter: header reserved from the declarations, data streamed, table patched at finish().
#include "formats/gguf/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <set>

#include "formats/sinks.h"
#include "formats/write_util.h"
#include "lib/core/error.h"
#include "lib/core/quant_layout.h"

namespace dsq::formats {

using json = nlohmann::json;

namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;
constexpr size_t kMaxDims = 4;  // GGML_MAX_DIMS

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

// Appends an integer of type T when v is one in T's range; else returns `what` (the error).
template <class T>
std::string put_int(std::string& out, const json& v, const char* what) {
  if (!v.is_number_integer()) return what;
  constexpr auto lo = static_cast<int64_t>(std::numeric_limits<T>::min());
  constexpr auto hi = static_cast<uint64_t>(std::numeric_limits<T>::max());
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > hi) return what;
    put<T>(out, static_cast<T>(v.get<uint64_t>()));
    return {};
  }
  const int64_t x = v.get<int64_t>();
  if (x < lo || (x > 0 && static_cast<uint64_t>(x) > hi)) return what;
  put<T>(out, static_cast<T>(x));
  return {};
}

// Appends one scalar of type t; returns an error message, empty when the value is valid (the
// caller prefixes the output path and key).
std::string put_scalar(std::string& out, GgufValueType t, const json& v) {
  switch (t) {
    case GgufValueType::kU8: return put_int<uint8_t>(out, v, "expected a u8");
    case GgufValueType::kI8: return put_int<int8_t>(out, v, "expected an i8");
    case GgufValueType::kU16: return put_int<uint16_t>(out, v, "expected a u16");
    case GgufValueType::kI16: return put_int<int16_t>(out, v, "expected an i16");
    case GgufValueType::kU32: return put_int<uint32_t>(out, v, "expected a u32");
    case GgufValueType::kI32: return put_int<int32_t>(out, v, "expected an i32");
    case GgufValueType::kU64: return put_int<uint64_t>(out, v, "expected a u64");
    case GgufValueType::kI64: return put_int<int64_t>(out, v, "expected an i64");
    case GgufValueType::kF32:
      if (!v.is_number()) return "expected a number";
      put<float>(out, v.get<float>());
      return {};
    case GgufValueType::kF64:
      if (!v.is_number()) return "expected a number";
      put<double>(out, v.get<double>());
      return {};
    case GgufValueType::kBool:
      if (!v.is_boolean()) return "expected a bool";
      put<uint8_t>(out, v.get<bool>() ? 1 : 0);
      return {};
    case GgufValueType::kString:
      if (!v.is_string()) return "expected a string";
      put_string(out, v.get_ref<const std::string&>());
      return {};
    case GgufValueType::kArray:
      return "nested arrays are not written";
  }
  return "unknown value type";
}

}  // namespace

GgufWriter::GgufWriter(std::string out_path, GgufMetadata metadata,
                       std::vector<GgufTensorDecl> tensors, uint64_t alignment)
    : path_(std::move(out_path)), metadata_(std::move(metadata)), alignment_(alignment) {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 || alignment_ > (uint64_t{1} << 20))
    fail(strprintf("alignment %llu is not a power of two up to 1 MiB",
                   static_cast<unsigned long long>(alignment_)));
  std::set<std::string> keys;
  bool has_alignment = false;
  for (const auto& [k, v] : metadata_) {
    if (k.empty() || !keys.insert(k).second) fail("metadata key '" + k + "' is empty or repeated");
    has_alignment |= k == "general.alignment";
  }
  if (has_alignment) fail("metadata key 'general.alignment' is written by the writer itself");
  if (alignment_ != kDefaultAlignment) metadata_.emplace_back("general.alignment", gguf_u32(alignment_));
  for (auto& d : tensors) {
    if (d.name.empty() || index_.count(d.name)) fail("tensor '" + d.name + "' is unnamed or declared twice");
    if (d.ne.empty() || d.ne.size() > kMaxDims)
      fail(strprintf("tensor '%s': %zu dims (GGUF holds 1 to %zu)", d.name.c_str(), d.ne.size(), kMaxDims));
    for (const int64_t x : d.ne)
      if (x < 0) fail("tensor '" + d.name + "': negative dimension");
    index_.emplace(d.name, slots_.size());
    slots_.push_back({std::move(d)});
  }
  const std::string header = encode_header();  // validates every value; sizes only depend on names
  data_start_ = align_up(header.size(), alignment_);
  tmp_path_ = path_ + ".tmp";
  tmp_guard_ = interrupt::RemoveOnSignal(tmp_path_);
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError("'" + tmp_path_ + "': cannot create: " + std::strerror(errno));
}

GgufWriter::~GgufWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_ && !tmp_path_.empty()) ::unlink(tmp_path_.c_str());
}

void GgufWriter::fail(const std::string& what) const { throw FormatError("'" + path_ + "': " + what); }

std::string GgufWriter::encode_header() const {
  std::string h;
  h += "GGUF";
  put<uint32_t>(h, kGgufVersion);
  put<uint64_t>(h, slots_.size());
  put<uint64_t>(h, metadata_.size());
  for (const auto& [k, v] : metadata_) {
    put_string(h, k);
    put<uint32_t>(h, static_cast<uint32_t>(v.type));
    std::string err;
    if (v.type == GgufValueType::kArray) {
      if (!v.value.is_array()) fail("metadata key '" + k + "': expected an array");
      put<uint32_t>(h, static_cast<uint32_t>(v.elem));
      put<uint64_t>(h, v.value.size());
      for (const auto& e : v.value) {
        err = put_scalar(h, v.elem, e);
        if (!err.empty()) break;
      }
    } else {
      err = put_scalar(h, v.type, v.value);
    }
    if (!err.empty()) fail("metadata key '" + k + "': " + err);
  }
  for (const Slot& s : slots_) {
    put_string(h, s.decl.name);
    put<uint32_t>(h, static_cast<uint32_t>(s.decl.ne.size()));
    for (const int64_t x : s.decl.ne) put<uint64_t>(h, static_cast<uint64_t>(x));
    put<uint32_t>(h, static_cast<uint32_t>(s.type));
    put<uint64_t>(h, s.offset);
  }
  return h;
}

void GgufWriter::pwrite_all(const void* p, size_t n, uint64_t at) {
  formats::pwrite_all(fd_, p, n, at, tmp_path_);
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, const void* data, size_t bytes) {
  DSQ_ASSERT(!finished_ && fd_ >= 0, "GgufWriter::add_tensor after finish");
  const auto it = index_.find(name);
  if (it == index_.end()) fail("tensor '" + name + "' was not declared");
  Slot& s = slots_[it->second];
  if (s.written) fail("tensor '" + name + "' written twice");
  const GgmlTypeTraits* tr = ggml_type_traits(static_cast<uint32_t>(type));
  if (!tr) fail(strprintf("tensor '%s': unknown ggml type %u", name.c_str(), static_cast<unsigned>(type)));
  const std::optional<uint64_t> want = ggml_nbytes(*tr, s.decl.ne);
  if (!want)
    fail(strprintf("tensor '%s': a row of %lld is not a whole number of %s blocks of %lld",
                   name.c_str(), static_cast<long long>(s.decl.ne[0]), std::string(tr->name).c_str(),
                   static_cast<long long>(tr->block)));
  if (*want != bytes)
    fail(strprintf("tensor '%s': %zu bytes given, %s needs %llu", name.c_str(), bytes,
                   std::string(tr->name).c_str(), static_cast<unsigned long long>(*want)));
  s.type = type;
  s.offset = align_up(data_end_, alignment_);
  pwrite_all(data, bytes, data_start_ + s.offset);
  data_end_ = s.offset + bytes;
  s.written = true;
}

uint64_t GgufWriter::finish() {
  DSQ_ASSERT(!finished_ && fd_ >= 0, "GgufWriter::finish twice");
  for (const Slot& s : slots_)
    if (!s.written) fail("tensor '" + s.decl.name + "' was declared but not written");
  const std::string header = encode_header();
  DSQ_ASSERT(align_up(header.size(), alignment_) == data_start_, "GGUF header size changed");
  // The padding after the header and between tensors is a hole in the file: zeros.
  pwrite_all(header.data(), header.size(), 0);
  const uint64_t size = data_start_ + data_end_;
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
    throw IoError("'" + tmp_path_ + "': truncate failed: " + std::strerror(errno));
  commit_output(&fd_, tmp_path_, path_);
  tmp_guard_.release();
  finished_ = true;
  return size;
}

}  // namespace dsq::formats
