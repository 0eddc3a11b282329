// A small wrapper over the HDF5 C API: the only place in dsq that includes hdf5.h. Files hold
// groups, float datasets (f32/f64, any rank) and scalar attributes (int64, f64, UTF-8 strings),
// all in standard HDF5 types, so h5py and h5dump read them without dsq.
//
// Paths are HDF5 object paths ("blk.3/attn_in/hessian"); intermediate groups are created on
// write. Errors: a file that is not HDF5, a missing object or a dataset of the wrong class or
// shape throws FormatError/ShapeError quoting the file and the object; the OS refusing throws
// IoError. Not thread-safe (serial HDF5): call from the orchestrating thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lib/core/interrupt.h"
#include "lib/core/tensor.h"

namespace dsq::formats::hdf5 {

// Writes `<path>.tmp` and renames it to `path` on commit(); the destructor of an uncommitted
// writer removes the temporary file, so a failed run never leaves a half-written output.
class Writer {
 public:
  explicit Writer(std::string path);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Datasets of shape `shape` (row-major, contiguous). Rejects NaN/Inf values (FormatError).
  void write_f64(const std::string& dataset, const Shape& shape, const double* data);
  void write_f32(const std::string& dataset, const Shape& shape, const float* data);
  // Scalar attributes on a group or dataset (created when missing; "" or "/" is the root).
  void set_attr(const std::string& object, const std::string& name, int64_t value);
  void set_attr(const std::string& object, const std::string& name, double value);
  void set_attr(const std::string& object, const std::string& name, const std::string& value);
  void set_attr(const std::string& object, const std::string& name, const char* value) {
    set_attr(object, name, std::string(value));
  }
  // Copy object `object` (a group with everything below it) of HDF5 file `src` into this file
  // under the same path. Used to merge per-block files into one.
  void copy_from(const std::string& src, const std::string& object);

  // Close and rename the temporary file to its final name.
  void commit();
  const std::string& path() const { return path_; }

 private:
  void ensure_group(const std::string& group);
  void write_dataset(const std::string& dataset, const Shape& shape, const void* data,
                     bool f64);
  std::string path_, tmp_;
  interrupt::RemoveOnSignal tmp_guard_;  // the .tmp goes if the run is interrupted
  int64_t file_ = -1;  // hid_t
};

class Reader {
 public:
  // Throws IoError when the file is missing, FormatError when it is not an HDF5 file.
  explicit Reader(std::string path);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  bool has(const std::string& object) const;
  bool is_group(const std::string& object) const;
  // Names of the direct children of a group, in HDF5's name order.
  std::vector<std::string> children(const std::string& group) const;
  // Shape of a floating-point dataset (FormatError for other classes or a missing dataset).
  Shape shape(const std::string& dataset) const;
  // Whole dataset converted to f64; ShapeError when `expected` is given and differs.
  std::vector<double> read_f64(const std::string& dataset,
                               const std::optional<Shape>& expected = std::nullopt) const;
  // Attributes; nullopt when absent, FormatError when present with another type.
  std::optional<int64_t> attr_int(const std::string& object, const std::string& name) const;
  std::optional<double> attr_double(const std::string& object, const std::string& name) const;
  std::optional<std::string> attr_string(const std::string& object,
                                         const std::string& name) const;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int64_t file_ = -1;
};

// True when `path` starts with the HDF5 signature (no exception for missing files).
bool is_hdf5_file(const std::string& path);

// libhdf5 trusts the structure of the files it reads: a corrupt B-tree or heap in a statistics
// file can make it read out of bounds and crash the process (found by fuzzing). HDF5 input from a
// user is therefore read twice: first by `fn` in a forked child process, which either succeeds,
// throws (the message and kind come back through a pipe and are rethrown here) or dies (a
// FormatError "'<path>': corrupt HDF5 file: libhdf5 crashed reading it (signal N)"); only then
// does the caller read it for real. `fn` must read everything the caller will read, so the same
// libhdf5 calls on the same bytes have already succeeded once.
void run_isolated(const std::string& path, const std::function<void()>& fn);

// The number of HDF5 files, groups, datasets, named datatypes and attributes this process holds
// open: 0 whenever no Reader or Writer is alive, unless a handle leaked (the fuzz harness checks
// it after every input).
int64_t open_object_count();

// Lets libhdf5 keep every block it frees for reuse. By default it returns blocks beyond small
// free-list limits to malloc, and every file it opens allocates a metadata cache of about half a
// megabyte afresh: under AddressSanitizer, each one costs fresh pages from the kernel. The fuzz
// harness, which opens a file per input, runs 4-5x faster with this; one process-wide setting.
void keep_freed_memory();

}  // namespace dsq::formats::hdf5
