#include "formats/safetensors/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "formats/write_util.h"
#include "lib/core/error.h"
#include "lib/core/json_io.h"

namespace dsq::formats {

size_t safetensors_dtype_bytes(std::string_view dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  if (dtype == "I64") return 8;
  if (dtype == "I8" || dtype == "U8") return 1;
  return 0;
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<SafetensorsDecl> tensors,
                                     const nlohmann::json& metadata)
    : path_(std::move(path)) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.is_object()) fail("__metadata__ must be an object");
  for (const auto& [k, v] : metadata.items())
    if (!v.is_string()) fail("__metadata__ '" + k + "': values must be strings");
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (auto& d : tensors) {
    if (d.name.empty() || d.name == "__metadata__" || index_.count(d.name))
      fail("tensor '" + d.name + "' is unnamed, reserved or declared twice");
    const size_t esize = safetensors_dtype_bytes(d.dtype);
    if (esize == 0) fail("tensor '" + d.name + "': dtype '" + d.dtype + "' is not written");
    uint64_t n = 1;
    for (const int64_t x : d.shape) {
      if (x < 0) fail("tensor '" + d.name + "': negative dimension");
      n *= static_cast<uint64_t>(x);
    }
    Slot s{d, offset, offset + n * esize};
    offset = s.end;
    header[d.name] = {{"dtype", d.dtype}, {"shape", d.shape}, {"data_offsets", {s.begin, s.end}}};
    index_.emplace(d.name, slots_.size());
    slots_.push_back(std::move(s));
  }
  data_bytes_ = offset;
  std::string text = dump_json(header);
  text.append((8 - text.size() % 8) % 8, ' ');  // data section 8-aligned
  data_start_ = 8 + text.size();
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError("'" + path_ + "': cannot create: " + std::strerror(errno));
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  pwrite_all(len, 8, 0);
  pwrite_all(text.data(), text.size(), 8);
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void SafetensorsWriter::fail(const std::string& what) const {
  throw FormatError("'" + path_ + "': " + what);
}

void SafetensorsWriter::pwrite_all(const void* p, size_t n, uint64_t at) {
  formats::pwrite_all(fd_, p, n, at, path_);
}

void SafetensorsWriter::add(const std::string& name, const void* data, size_t bytes) {
  DSQ_ASSERT(!finished_ && fd_ >= 0, "SafetensorsWriter::add after finish");
  const auto it = index_.find(name);
  if (it == index_.end()) fail("tensor '" + name + "' was not declared");
  Slot& s = slots_[it->second];
  if (s.written) fail("tensor '" + name + "' written twice");
  if (bytes != s.end - s.begin)
    fail("tensor '" + name + "': " + std::to_string(bytes) + " bytes given, " + s.decl.dtype +
         " needs " + std::to_string(s.end - s.begin));
  pwrite_all(data, bytes, data_start_ + s.begin);
  s.written = true;
}

uint64_t SafetensorsWriter::finish() {
  DSQ_ASSERT(!finished_ && fd_ >= 0, "SafetensorsWriter::finish twice");
  for (const Slot& s : slots_)
    if (!s.written) fail("tensor '" + s.decl.name + "' was declared but not written");
  if (::fsync(fd_) != 0) throw IoError("'" + path_ + "': fsync failed: " + std::strerror(errno));
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw IoError("'" + path_ + "': close failed: " + std::strerror(errno));
  finished_ = true;
  return data_start_ + data_bytes_;
}

}  // namespace dsq::formats
