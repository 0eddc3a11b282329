// Checks every #include in the source tree against the floors of docs/ARCHITECTURE.md: a module
// includes only from its own floor or lower (nothing under lib/ reaches above it), tools/ calls
// only the jobs floor (plus core's error, log and thread-count headers), and BLAS/Eigen, zstd and
// HDF5 stay behind their one directory each.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

// module dir -> module dirs it may include from (itself included).
const std::map<std::string, std::set<std::string>>& allowed() {
  static const std::map<std::string, std::set<std::string>> table = {
      // floor 0
      {"lib/core", {"lib/core"}},
      // floor 1: numerics, files, reports
      {"lib/quant", {"lib/core", "lib/quant"}},
      {"formats", {"lib/core", "formats"}},
      {"lib/report", {"lib/core", "lib/report"}},
      // floor 2: the engine; text (tokenizers read GGUF and .dsq metadata)
      {"lib/model", {"lib/core", "lib/quant", "lib/model"}},
      {"lib/text", {"lib/core", "formats", "lib/text"}},
      // floor 3: algorithms over the engine
      {"calibration", {"lib/core", "lib/quant", "formats", "lib/model", "lib/text", "calibration"}},
      {"lib/compress", {"lib/core", "lib/quant", "lib/model", "lib/compress"}},
      {"lib/train", {"lib/core", "lib/quant", "lib/model", "lib/train"}},
      // floor 4: one entry point per command
      {"jobs",
       {"lib/core", "lib/quant", "formats", "lib/report", "lib/model", "lib/text", "calibration",
        "lib/compress", "lib/train", "jobs"}},
      // floor 5: the CLI calls only the jobs floor (and the few core headers below)
      {"tools", {"jobs", "tools"}},
  };
  return table;
}

std::string module_of(const std::string& rel) {
  for (const auto& [m, _] : allowed())
    if (rel.rfind(m + "/", 0) == 0) return m;
  return "";
}

// The core headers the CLI uses directly: error types (exit codes), logging, the thread count,
// the huge-page hint of its allocation functions and the allocator's mmap threshold, MPI start-up
// and the interrupt handlers.
bool tools_may_include(const std::string& inc) {
  return inc == "lib/core/error.h" || inc == "lib/core/log.h" || inc == "lib/core/parallel.h" ||
         inc == "lib/core/memory.h" || inc == "lib/core/dist.h" ||
         inc == "lib/core/interrupt.h";
}

struct Violation {
  std::string file, include;
};

std::vector<Violation> scan() {
  const fs::path root(DSQ_SOURCE_DIR);
  const std::regex inc_re(R"(^\s*#\s*include\s*[<"]([^>"]+)[>"])");
  std::vector<Violation> bad;
  for (const auto& top : {"lib", "formats", "calibration", "jobs", "tools"}) {
    if (!fs::exists(root / top)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root / top)) {
      if (!e.is_regular_file()) continue;
      const auto ext = e.path().extension().string();
      if (ext != ".h" && ext != ".cpp" && ext != ".def") continue;
      const std::string rel = fs::relative(e.path(), root).string();
      const std::string mod = module_of(rel);
      if (mod.empty()) continue;
      std::ifstream in(e.path());
      std::string line;
      while (std::getline(in, line)) {
        std::smatch m;
        if (!std::regex_search(line, m, inc_re)) continue;
        const std::string inc = m[1];
        // Third-party headers confined to one directory.
        const bool blas = inc == "cblas.h" || inc.rfind("Eigen/", 0) == 0 || inc == "lapacke.h";
        if (blas && rel.rfind("lib/core/linalg/", 0) != 0) bad.push_back({rel, inc});
        if (inc == "zstd.h" && rel.rfind("formats/dsq/", 0) != 0) bad.push_back({rel, inc});
        if (inc.rfind("hdf5", 0) == 0 && rel.rfind("formats/hdf5/", 0) != 0) bad.push_back({rel, inc});
        if (inc == "mpi.h" && rel.rfind("lib/core/dist/", 0) != 0) bad.push_back({rel, inc});
        const std::string target = module_of(inc);
        if (!target.empty() && !allowed().at(mod).count(target) &&
            !(mod == "tools" && tools_may_include(inc)))
          bad.push_back({rel, inc});
      }
    }
  }
  return bad;
}

TEST(Layering, EveryIncludeRespectsTheModuleTable) {
  const auto bad = scan();
  for (const auto& v : bad) ADD_FAILURE() << v.file << " includes \"" << v.include << "\"";
  EXPECT_TRUE(bad.empty());
}

TEST(Layering, TableKnowsTheCoreModule) {
  // Guards the scanner itself: a file in lib/core is classified and may not reach upward.
  EXPECT_EQ(module_of("lib/core/tensor.h"), "lib/core");
  EXPECT_EQ(allowed().at("lib/core").count("lib/model"), 0u);
  EXPECT_EQ(module_of("tools/main.cpp"), "tools");
  EXPECT_EQ(module_of("lib/text/tokenizer.h"), "lib/text");
  EXPECT_EQ(allowed().at("lib/compress").count("calibration"), 0u);  // no arrow upward
  EXPECT_EQ(allowed().at("tools").count("calibration"), 0u);
  EXPECT_TRUE(tools_may_include("lib/core/error.h"));
  EXPECT_FALSE(tools_may_include("lib/core/arch.h"));
}

}  // namespace
