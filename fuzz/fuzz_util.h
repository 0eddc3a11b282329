// Shared by the libFuzzer harnesses (fuzz/README.md): the input goes to a file in a per-process
// directory (every reader takes a path, and memory-maps it as in production), and the call runs
// under `expect_clean`, which accepts what dsq promises for bad input (a dsq::Error, i.e. a
// one-line message and exit 1) and lets everything else through to the fuzzer: a crash, a
// sanitizer report, a hang, an allocation the input did not pay for (bad_alloc), or an exception
// of another kind escaping the reader.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <string>

#include "lib/core/error.h"
#include "lib/core/log.h"

namespace dsq::fuzz {

// The directory of this process's input files.
inline const std::string& work_dir() {
  static const std::string dir = [] {
    const std::string d = std::filesystem::temp_directory_path().string() + "/dsq-fuzz-" +
                          std::to_string(::getpid());
    std::filesystem::create_directories(d);
    set_log_level(LogLevel::kError);  // readers warn about odd inputs: keep the fuzzer's log clean
    return d;
  }();
  return dir;
}

// Writes the input to `name` in the work directory and returns its path.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = work_dir() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

// Runs fn; a dsq::Error is the promised outcome for bad input.
template <class Fn>
void expect_clean(Fn&& fn) {
  try {
    fn();
  } catch (const Error&) {
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "bad_alloc escaped: an allocation the input's bytes did not bound\n");
    std::abort();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "non-dsq exception escaped: %s\n", e.what());
    std::abort();
  }
}

}  // namespace dsq::fuzz
