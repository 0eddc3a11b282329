// Checks every #include in the source tree against the module layering table (README,
// "Architecture"): a module includes only from its own level or lower, and BLAS/Eigen, zstd and
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
      {"lib/core", {"lib/core"}},
      {"lib/quant", {"lib/core", "lib/quant"}},
      {"formats", {"lib/core", "formats"}},
      {"lib/model", {"lib/core", "lib/quant", "lib/model"}},
      {"calibration", {"lib/core", "lib/quant", "formats", "lib/model", "calibration"}},
      {"lib/compress",
       {"lib/core", "lib/quant", "formats", "lib/model", "calibration", "lib/compress"}},
      {"lib/report", {"lib/core", "lib/report"}},
  };
  return table;
}

std::string module_of(const std::string& rel) {
  for (const auto& [m, _] : allowed())
    if (rel.rfind(m + "/", 0) == 0) return m;
  return "";
}

struct Violation {
  std::string file, include;
};

std::vector<Violation> scan() {
  const fs::path root(DSQ_SOURCE_DIR);
  const std::regex inc_re(R"(^\s*#\s*include\s*[<"]([^>"]+)[>"])");
  std::vector<Violation> bad;
  for (const auto& top : {"lib", "formats", "calibration"}) {
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
        const std::string target = module_of(inc);
        if (!target.empty() && !allowed().at(mod).count(target)) bad.push_back({rel, inc});
        if (inc.rfind("tools/", 0) == 0) bad.push_back({rel, inc});
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
  EXPECT_EQ(module_of("tools/main.cpp"), "");
}

}  // namespace
