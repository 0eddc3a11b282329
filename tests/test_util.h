// Shared helpers for tests: where ../shared is, temporary directories, running the CLI.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace dsq::testing {

// ../shared beside the checkout (override with DSQ_SHARED_DIR). Empty when absent.
inline std::string shared_dir() {
  if (const char* env = std::getenv("DSQ_SHARED_DIR")) return env;
  const std::filesystem::path p = std::filesystem::path(DSQ_SOURCE_DIR) / ".." / "shared";
  return std::filesystem::exists(p / "models") ? std::filesystem::canonical(p).string() : "";
}

// True when running in CI (CI=true): tests that need ../shared must not skip there.
inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) != "" && std::string(ci) != "false" && std::string(ci) != "0";
}

// A fresh temporary directory per test, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "dsq";
    for (auto& ch : name)
      if (ch == '/') ch = '_';
    path_ = std::filesystem::temp_directory_path() /
            ("dsq-test-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Path of the built CLI.
inline std::string dsq_binary() { return std::string(DSQ_BINARY_DIR) + "/bin/dsq"; }

}  // namespace dsq::testing

// Skips the test (outside CI) or fails it (in CI) when ../shared is missing; yields the path.
#define DSQ_REQUIRE_SHARED(var)                                                              \
  const std::string var = ::dsq::testing::shared_dir();                                      \
  if (var.empty()) {                                                                         \
    if (::dsq::testing::in_ci()) FAIL() << "../shared is missing but CI=true: it must exist"; \
    GTEST_SKIP() << "../shared (real models and data) not found beside the checkout; "       \
                    "set DSQ_SHARED_DIR to run this test";                                   \
  }

// Skips (outside CI) or fails (in CI) a test that runs llama.cpp's gguf-py (../shared/oracles)
// when Debian's numpy / PyYAML / sentencepiece, which it imports, are not installed.
#define DSQ_REQUIRE_GGUF_PY()                                                                \
  if (std::system("/usr/bin/python3 -c 'import numpy, yaml, sentencepiece' >/dev/null 2>&1") != \
      0) {                                                                                     \
    if (::dsq::testing::in_ci())                                                             \
      FAIL() << "numpy/yaml/sentencepiece missing but CI=true (scripts/install-test-extras.sh)"; \
    GTEST_SKIP() << "Debian's python3-numpy / -yaml / -sentencepiece not installed; run "    \
                    "scripts/install-test-extras.sh to check against llama.cpp's gguf-py";   \
  }
