#include "formats/hdf5/hdf5_file.h"

#include <hdf5.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "lib/core/error.h"

namespace dsq::formats::hdf5 {

void run_isolated(const std::string& path, const std::function<void()>& fn) {
  int fds[2];
  if (::pipe(fds) != 0) throw IoError("cannot create a pipe: " + std::string(std::strerror(errno)));
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw IoError("cannot fork: " + std::string(std::strerror(errno)));
  }
  if (pid == 0) {  // child: one thread, HDF5 only; reports "kind:message" and leaves at once
    ::close(fds[0]);
    // Everything the child has to say goes through the pipe. A crash report (libhdf5's, or a
    // sanitizer's in an instrumented build) must not reach the user's terminal: the parent turns
    // the child's death into one line.
    if (const int null_fd = ::open("/dev/null", O_WRONLY); null_fd >= 0) {
      ::dup2(null_fd, STDOUT_FILENO);
      ::dup2(null_fd, STDERR_FILENO);
      ::close(null_fd);
    }
    std::string out = "ok";
    try {
      fn();
    } catch (const ShapeError& e) {
      out = std::string("S") + e.what();
    } catch (const IoError& e) {
      out = std::string("I") + e.what();
    } catch (const std::exception& e) {
      out = std::string("F") + e.what();
    }
    size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = ::write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string msg;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      msg.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // The child leaves with _exit(0) whatever fn() did; anything else is a crash (a signal, or a
  // sanitizer's report and exit in an instrumented build).
  if (WIFSIGNALED(status))
    throw FormatError("'" + path + "': corrupt HDF5 file: libhdf5 crashed reading it (signal " +
                      std::to_string(WTERMSIG(status)) + ")");
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    throw FormatError("'" + path + "': corrupt HDF5 file: libhdf5 crashed reading it (exit status " +
                      std::to_string(WEXITSTATUS(status)) + ")");
  if (msg == "ok") return;
  if (msg.empty()) throw FormatError("'" + path + "': reading the HDF5 file failed");
  const std::string text = msg.substr(1);
  if (msg[0] == 'S') throw ShapeError(text);
  if (msg[0] == 'I') throw IoError(text);
  throw FormatError(text);
}

int64_t open_object_count() {
  return static_cast<int64_t>(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL));
}

void keep_freed_memory() { H5set_free_list_limits(-1, -1, -1, -1, -1, -1); }

namespace {

static_assert(sizeof(hid_t) == sizeof(int64_t), "hid_t is stored as int64_t in the header");
constexpr int kMaxRank = 8;

// HDF5 prints its error stack to stderr by default; dsq reports errors itself.
void silence_hdf5() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

// Closes an HDF5 handle of any kind at scope exit.
class Handle {
 public:
  explicit Handle(hid_t h = H5I_INVALID_HID) : h_(h) {}
  ~Handle() {
    if (h_ >= 0) close_any(h_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : h_(o.h_) { o.h_ = H5I_INVALID_HID; }
  hid_t get() const { return h_; }
  bool ok() const { return h_ >= 0; }

 private:
  static void close_any(hid_t h) {
    switch (H5Iget_type(h)) {
      case H5I_FILE: H5Fclose(h); break;
      case H5I_GROUP: H5Gclose(h); break;
      case H5I_DATASET: H5Dclose(h); break;
      case H5I_DATASPACE: H5Sclose(h); break;
      case H5I_DATATYPE: H5Tclose(h); break;
      case H5I_ATTR: H5Aclose(h); break;
      case H5I_GENPROP_LST: H5Pclose(h); break;
      default: break;
    }
  }
  hid_t h_;
};

std::string norm_path(const std::string& p) { return p.empty() ? "/" : p; }

std::string where(const std::string& file, const std::string& object) {
  return "'" + file + "': '" + norm_path(object) + "'";
}

// Does every component of `path` exist (H5Lexists on a deep path fails when a parent is absent)?
bool exists(hid_t file, const std::string& path) {
  if (path.empty() || path == "/") return true;
  std::string prefix;
  size_t pos = 0;
  while (pos <= path.size()) {
    const size_t next = path.find('/', pos);
    const std::string comp = path.substr(pos, next == std::string::npos ? std::string::npos
                                                                          : next - pos);
    if (!comp.empty()) {
      prefix += (prefix.empty() && path[0] != '/' ? "" : "/") + comp;
      if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
      if (H5Oexists_by_name(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    }
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return true;
}

hid_t lcpl_intermediate() {
  hid_t p = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(p, 1);
  return p;
}

Handle open_attr_for_write(hid_t file, const std::string& object, const std::string& name,
                           hid_t type, hid_t space, const std::string& file_name) {
  const std::string obj = norm_path(object);
  Handle o(H5Oopen(file, obj.c_str(), H5P_DEFAULT));
  if (!o.ok()) throw IoError(where(file_name, object) + ": cannot open object");
  if (H5Aexists(o.get(), name.c_str()) > 0) H5Adelete(o.get(), name.c_str());
  Handle a(H5Acreate2(o.get(), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!a.ok()) throw IoError(where(file_name, object) + ": cannot create attribute '" + name + "'");
  return a;
}

}  // namespace

bool is_hdf5_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char sig[8] = {};
  if (!f.read(sig, 8)) return false;
  return std::memcmp(sig, "\x89HDF\r\n\x1a\n", 8) == 0;
}

// ---------------------------------------------------------------------------------------------
// Writer

Writer::Writer(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp"), tmp_guard_(tmp_) {
  silence_hdf5();
  file_ = H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file_ < 0) throw IoError("'" + tmp_ + "': cannot create HDF5 file");
}

Writer::~Writer() {
  if (file_ >= 0) {
    H5Fclose(file_);
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }
}

void Writer::ensure_group(const std::string& group) {
  const std::string g = norm_path(group);
  if (!exists(file_, g)) {
    Handle lcpl(lcpl_intermediate());
    Handle created(H5Gcreate2(file_, g.c_str(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (!created.ok()) throw IoError(where(tmp_, group) + ": cannot create group");
  }
}

void Writer::write_dataset(const std::string& dataset, const Shape& shape, const void* data,
                           bool f64) {
  DSQ_ASSERT(file_ >= 0, "write after commit");
  if (shape.empty() || shape.size() > kMaxRank) {
    throw ShapeError(where(tmp_, dataset) + ": rank " + std::to_string(shape.size()) +
                     " not in [1, 8]");
  }
  const int64_t n = shape_numel(shape, dataset);
  for (int64_t i = 0; i < n; ++i) {
    const double v = f64 ? static_cast<const double*>(data)[i] : static_cast<const float*>(data)[i];
    if (!std::isfinite(v)) {
      throw FormatError(where(tmp_, dataset) + ": element " + std::to_string(i) +
                        " is not finite");
    }
  }
  hsize_t dims[kMaxRank];
  for (size_t i = 0; i < shape.size(); ++i) dims[i] = static_cast<hsize_t>(shape[i]);
  Handle space(H5Screate_simple(static_cast<int>(shape.size()), dims, nullptr));
  Handle lcpl(lcpl_intermediate());
  const hid_t file_type = f64 ? H5T_IEEE_F64LE : H5T_IEEE_F32LE;
  const hid_t mem_type = f64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
  Handle ds(H5Dcreate2(file_, dataset.c_str(), file_type, space.get(), lcpl.get(), H5P_DEFAULT,
                       H5P_DEFAULT));
  if (!ds.ok()) throw IoError(where(tmp_, dataset) + ": cannot create dataset");
  if (n > 0 && H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    throw IoError(where(tmp_, dataset) + ": write failed (disk full?)");
  }
}

void Writer::write_f64(const std::string& dataset, const Shape& shape, const double* data) {
  write_dataset(dataset, shape, data, true);
}

void Writer::write_f32(const std::string& dataset, const Shape& shape, const float* data) {
  write_dataset(dataset, shape, data, false);
}

void Writer::set_attr(const std::string& object, const std::string& name, int64_t value) {
  if (!exists(file_, norm_path(object))) ensure_group(object);
  Handle space(H5Screate(H5S_SCALAR));
  Handle a(open_attr_for_write(file_, object, name, H5T_STD_I64LE, space.get(), tmp_));
  if (H5Awrite(a.get(), H5T_NATIVE_INT64, &value) < 0)
    throw IoError(where(tmp_, object) + ": cannot write attribute '" + name + "'");
}

void Writer::set_attr(const std::string& object, const std::string& name, double value) {
  if (!std::isfinite(value))
    throw FormatError(where(tmp_, object) + ": attribute '" + name + "' is not finite");
  if (!exists(file_, norm_path(object))) ensure_group(object);
  Handle space(H5Screate(H5S_SCALAR));
  Handle a(open_attr_for_write(file_, object, name, H5T_IEEE_F64LE, space.get(), tmp_));
  if (H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &value) < 0)
    throw IoError(where(tmp_, object) + ": cannot write attribute '" + name + "'");
}

void Writer::set_attr(const std::string& object, const std::string& name,
                      const std::string& value) {
  if (!exists(file_, norm_path(object))) ensure_group(object);
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), value.size() + 1);
  H5Tset_strpad(type.get(), H5T_STR_NULLTERM);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR));
  Handle a(open_attr_for_write(file_, object, name, type.get(), space.get(), tmp_));
  if (H5Awrite(a.get(), type.get(), value.c_str()) < 0)
    throw IoError(where(tmp_, object) + ": cannot write attribute '" + name + "'");
}

void Writer::copy_from(const std::string& src, const std::string& object) {
  Reader reader(src);  // validates the source is HDF5
  if (!reader.has(object)) throw FormatError(where(src, object) + ": no such object");
  Handle sf(H5Fopen(src.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!sf.ok()) throw FormatError("'" + src + "': cannot open HDF5 file");
  Handle lcpl(lcpl_intermediate());
  const std::string obj = norm_path(object);
  if (H5Ocopy(sf.get(), obj.c_str(), file_, obj.c_str(), H5P_DEFAULT, lcpl.get()) < 0)
    throw IoError(where(tmp_, object) + ": cannot copy from '" + src + "'");
}

void Writer::commit() {
  DSQ_ASSERT(file_ >= 0, "commit twice");
  const herr_t rc = H5Fclose(file_);
  file_ = -1;
  if (rc < 0) {
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
    throw IoError("'" + tmp_ + "': cannot close HDF5 file (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) throw IoError("'" + path_ + "': cannot rename from '" + tmp_ + "': " + ec.message());
  tmp_guard_.release();
}

// ---------------------------------------------------------------------------------------------
// Reader

Reader::Reader(std::string path) : path_(std::move(path)) {
  silence_hdf5();
  if (!std::filesystem::exists(path_)) throw IoError("'" + path_ + "': no such file");
  if (!is_hdf5_file(path_) || H5Fis_hdf5(path_.c_str()) <= 0)
    throw FormatError("'" + path_ + "': not an HDF5 file (bad signature)");
  file_ = H5Fopen(path_.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file_ < 0) throw FormatError("'" + path_ + "': cannot open HDF5 file (truncated?)");
}

Reader::~Reader() {
  if (file_ >= 0) H5Fclose(file_);
}

bool Reader::has(const std::string& object) const { return exists(file_, norm_path(object)); }

bool Reader::is_group(const std::string& object) const {
  if (!has(object)) return false;
  H5O_info_t info;
  if (H5Oget_info_by_name(file_, norm_path(object).c_str(), &info, H5P_DEFAULT) < 0) return false;
  return info.type == H5O_TYPE_GROUP;
}

std::vector<std::string> Reader::children(const std::string& group) const {
  if (!is_group(group)) throw FormatError(where(path_, group) + ": no such group");
  Handle g(H5Gopen2(file_, norm_path(group).c_str(), H5P_DEFAULT));
  H5G_info_t info;
  if (!g.ok() || H5Gget_info(g.get(), &info) < 0)
    throw FormatError(where(path_, group) + ": cannot read group");
  std::vector<std::string> out;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr,
                                           0, H5P_DEFAULT);
    if (len < 0) throw FormatError(where(path_, group) + ": cannot read link names");
    std::string name(static_cast<size_t>(len), '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(),
                       static_cast<size_t>(len) + 1, H5P_DEFAULT);
    out.push_back(std::move(name));
  }
  return out;
}

Shape Reader::shape(const std::string& dataset) const {
  if (!has(dataset)) throw FormatError(where(path_, dataset) + ": no such dataset");
  Handle ds(H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT));
  if (!ds.ok()) throw FormatError(where(path_, dataset) + ": not a dataset");
  Handle type(H5Dget_type(ds.get()));
  if (H5Tget_class(type.get()) != H5T_FLOAT)
    throw FormatError(where(path_, dataset) + ": expected a floating-point dataset");
  Handle space(H5Dget_space(ds.get()));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > kMaxRank)
    throw FormatError(where(path_, dataset) + ": bad rank " + std::to_string(rank));
  hsize_t dims[kMaxRank];
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  Shape s;
  for (int i = 0; i < rank; ++i) {
    if (dims[i] > static_cast<hsize_t>(INT64_MAX))
      throw FormatError(where(path_, dataset) + ": dimension overflows int64");
    s.push_back(static_cast<int64_t>(dims[i]));
  }
  shape_numel(s, "'" + path_ + "': dataset '" + dataset + "'");  // throws on overflow
  return s;
}

std::vector<double> Reader::read_f64(const std::string& dataset,
                                     const std::optional<Shape>& expected) const {
  const Shape s = shape(dataset);
  if (expected && *expected != s) {
    throw ShapeError(where(path_, dataset) + ": expected shape " + shape_str(*expected) +
                     ", found " + shape_str(s));
  }
  const int64_t n = shape_numel(s);
  Handle ds(H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT));
  Handle type(H5Dget_type(ds.get()));
  // Trust nothing: the stored bytes must cover the claimed shape before we allocate for it
  // (dsq writes contiguous, unfiltered datasets; an unallocated one would read as fill values).
  const size_t elem = H5Tget_size(type.get());
  const hsize_t stored = H5Dget_storage_size(ds.get());
  if (elem == 0 || static_cast<double>(stored) < static_cast<double>(n) * elem) {
    throw FormatError(where(path_, dataset) + ": " + std::to_string(stored) +
                      " bytes stored, " + shape_str(s) + " x " + std::to_string(elem) +
                      " bytes needed (truncated, unallocated or compressed dataset)");
  }
  std::vector<double> out(static_cast<size_t>(n));
  if (n > 0 && H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    throw FormatError(where(path_, dataset) + ": read failed (truncated file?)");
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(out[static_cast<size_t>(i)]))
      throw FormatError(where(path_, dataset) + ": element " + std::to_string(i) +
                        " is not finite");
  }
  return out;
}

namespace {

// Opens attribute `name` of `object`, or returns an invalid handle when absent.
Handle open_attr(hid_t file, const std::string& fname, const std::string& object,
                 const std::string& name) {
  const std::string obj = norm_path(object);
  if (!exists(file, obj)) return Handle();
  if (H5Aexists_by_name(file, obj.c_str(), name.c_str(), H5P_DEFAULT) <= 0) return Handle();
  Handle a(H5Aopen_by_name(file, obj.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  if (!a.ok()) throw FormatError(where(fname, object) + ": cannot open attribute '" + name + "'");
  Handle space(H5Aget_space(a.get()));
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    throw FormatError(where(fname, object) + ": attribute '" + name + "' is not a scalar");
  return a;
}

}  // namespace

std::optional<int64_t> Reader::attr_int(const std::string& object, const std::string& name) const {
  Handle a = open_attr(file_, path_, object, name);
  if (!a.ok()) return std::nullopt;
  Handle type(H5Aget_type(a.get()));
  if (H5Tget_class(type.get()) != H5T_INTEGER)
    throw FormatError(where(path_, object) + ": attribute '" + name + "' is not an integer");
  int64_t v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_INT64, &v) < 0)
    throw FormatError(where(path_, object) + ": cannot read attribute '" + name + "'");
  return v;
}

std::optional<double> Reader::attr_double(const std::string& object,
                                          const std::string& name) const {
  Handle a = open_attr(file_, path_, object, name);
  if (!a.ok()) return std::nullopt;
  Handle type(H5Aget_type(a.get()));
  const H5T_class_t c = H5Tget_class(type.get());
  if (c != H5T_FLOAT && c != H5T_INTEGER)
    throw FormatError(where(path_, object) + ": attribute '" + name + "' is not a number");
  double v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0)
    throw FormatError(where(path_, object) + ": cannot read attribute '" + name + "'");
  return v;
}

std::optional<std::string> Reader::attr_string(const std::string& object,
                                               const std::string& name) const {
  Handle a = open_attr(file_, path_, object, name);
  if (!a.ok()) return std::nullopt;
  Handle type(H5Aget_type(a.get()));
  if (H5Tget_class(type.get()) != H5T_STRING)
    throw FormatError(where(path_, object) + ": attribute '" + name + "' is not a string");
  if (H5Tis_variable_str(type.get()) > 0) {  // h5py's default for str attributes
    Handle mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* p = nullptr;
    if (H5Aread(a.get(), mem.get(), &p) < 0 || p == nullptr)
      throw FormatError(where(path_, object) + ": cannot read attribute '" + name + "'");
    std::string s(p);
    H5free_memory(p);
    return s;
  }
  const size_t size = H5Tget_size(type.get());
  std::string s(size, '\0');
  if (size > 0 && H5Aread(a.get(), type.get(), s.data()) < 0)
    throw FormatError(where(path_, object) + ": cannot read attribute '" + name + "'");
  s.resize(std::strlen(s.c_str()));
  return s;
}

}  // namespace dsq::formats::hdf5
