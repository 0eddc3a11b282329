#include "lib/core/weight_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "lib/core/error.h"

namespace dsq {

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError("'" + path + "': cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw IoError("'" + path + "': cannot stat: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError("'" + path + "': not a regular file");
  }
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
#ifdef DSQ_FUZZ_READ_FILES
    // Fuzz builds (CMakeLists.txt): a heap copy of exactly the file's bytes, page-aligned like a
    // mapping, so that AddressSanitizer reports a read past the end of the file; a mapping stays
    // readable to the end of its last page.
    auto* buf = static_cast<std::byte*>(::operator new(m->size_, std::align_val_t{4096}));
    for (size_t done = 0; done < m->size_;) {
      const ssize_t n = ::pread(fd, buf + done, m->size_ - done, static_cast<off_t>(done));
      if (n <= 0) {
        const int e = n < 0 ? errno : EIO;
        ::operator delete(buf, std::align_val_t{4096});
        ::close(fd);
        throw IoError("'" + path + "': cannot read: " + std::strerror(e));
      }
      done += static_cast<size_t>(n);
    }
    m->data_ = buf;
#else
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      throw IoError("'" + path + "': cannot mmap: " + std::strerror(e));
    }
    m->data_ = static_cast<const std::byte*>(p);
#endif
  }
  ::close(fd);
  return m;
}

MappedFile::~MappedFile() {
#ifdef DSQ_FUZZ_READ_FILES
  if (data_) ::operator delete(const_cast<std::byte*>(data_), std::align_val_t{4096});
#else
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
#endif
}

void WeightStore::add(Entry e) {
  if (index_.count(e.name))
    throw FormatError("'" + e.source + "': duplicate tensor '" + e.name + "'");
  DSQ_ASSERT(static_cast<bool>(e.load), "entry '%s' has no loader", e.name.c_str());
  index_[e.name] = entries_.size();
  order_.push_back(e.name);
  entries_.push_back(std::move(e));
}

void WeightStore::add_tensor(const std::string& name, Tensor t, const std::string& source) {
  Entry e;
  e.name = name;
  e.dtype = t.dtype();
  e.shape = t.shape();
  e.quant = t.quant();
  e.source = source;
  e.load = [t]() { return t; };
  add(std::move(e));
}

void WeightStore::replace(const std::string& name, Tensor t) {
  Entry& e = entry(name);
  e.dtype = t.dtype();
  e.shape = t.shape();
  e.quant = t.quant();
  e.load = [t]() { return t; };
}

void WeightStore::remove(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) return;
  const size_t i = it->second;
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
  order_.erase(order_.begin() + static_cast<std::ptrdiff_t>(i));
  index_.clear();
  for (size_t k = 0; k < entries_.size(); ++k) index_[entries_[k].name] = k;
}

const WeightStore::Entry& WeightStore::entry(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw FormatError("missing tensor '" + name + "'");
  return entries_[it->second];
}

WeightStore::Entry& WeightStore::entry(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) throw FormatError("missing tensor '" + name + "'");
  return entries_[it->second];
}

Tensor WeightStore::get(const std::string& name) const { return entry(name).load(); }

Tensor WeightStore::get_f32(const std::string& name) const {
  const Entry& e = entry(name);
  if (!dtype_is_float(e.dtype))
    throw FormatError("'" + e.source + "': tensor '" + name + "' is " +
                      std::string(dtype_name(e.dtype)) + ", not a float type");
  return e.load().to(DType::kF32);
}

int64_t WeightStore::parameter_count() const {
  int64_t n = 0;
  for (const auto& e : entries_) n += shape_numel(e.shape, e.name);
  return n;
}

void validate_against_config(const WeightStore& ws, const std::string& where) {
  DSQ_ASSERT(ws.has_config, "validate_against_config without a config");
  const ModelConfig& c = ws.config;
  validate_config(c, where);
  const ArchInfo& arch = require_arch(c.arch, where);
  for (const auto& name : ws.names()) {
    const auto& e = ws.entry(name);
    auto want = expected_shape(c, name);
    if (!want)
      throw FormatError("'" + e.source + "': tensor '" + name + "' is not part of a " + c.arch +
                        " model with " + std::to_string(c.n_layers) + " layers");
    if (*want != e.shape)
      throw ShapeError("'" + e.source + "': tensor '" + name + "' has shape " + shape_str(e.shape) +
                       ", the config implies " + shape_str(*want));
  }
  for (const auto& t : arch.tensors) {
    if (!row_required(t, c)) continue;
    for_each_instance(t, c, [&](int64_t l, int64_t e) {
      const std::string name = expand_name(t.canonical, l, e);
      if (!ws.has(name)) throw FormatError(where + ": missing tensor '" + name + "'");
    });
  }
}

}  // namespace dsq
