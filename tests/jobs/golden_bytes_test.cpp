// Output bytes pinned: the tensors `dsq quantize` writes for stories260K with RTN and with GPTQ,
// hashed in file order, are the ones the code wrote before the speed work of issue 19 (the digests
// are of files written by the binary of commit 621f29f; its whole output files were also compared
// byte for byte with the new binary's). A speed-up that changes one code or one scale fails here.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "formats/format_table.h"
#include "jobs/quantize.h"
#include "lib/core/hash.h"
#include "lib/core/linalg.h"
#include "tests/jobs/quantize_options.h"
#include "tests/test_util.h"

namespace dsq::jobs {
namespace {

// SHA-256 over every tensor's name and bytes, in file order (the header, which names the source's
// absolute paths, is left out).
std::string tensor_digest(const std::string& path) {
  const WeightStore ws = formats::open_model(path);
  Sha256 h;
  for (const auto& name : ws.names()) {
    const Tensor t = ws.get(name);
    h.update(name.data(), name.size() + 1);
    h.update(t.bytes(), t.nbytes());
  }
  return h.hex_digest();
}

TEST(GoldenBytes, RtnOnStories260K) {
  DSQ_REQUIRE_SHARED(shared);
  ::dsq::testing::TempDir tmp;
  const std::string src = shared + "/models/stories260K/hf", out = tmp.file("q.dsq");
  // Exact arithmetic only (no BLAS): the same bytes on every machine.
  const std::map<std::string, std::string> want = {
      {"int4_sym_g32", "c99eb0c266a4c57e0713e861917e303023ebf6ea21146535397bce5048bbffa5"},
      {"int8_asym_g128", "351085c819e3462afc366b3a4509b890e6ece6fa3fef6ee6bd65f80894f36e4b"},
      {"int3_asym_g64", "9b136b5f498568110ddb969adcf8b4018d38ff582a13a07a48f5bcd160759629"},
  };
  for (const auto& [scheme, digest] : want) {
    run_quantize(quiet_quantize_options(src, out, *parse_scheme_name(scheme)));
    EXPECT_EQ(tensor_digest(out), digest) << scheme;
  }
}

TEST(GoldenBytes, GptqOnStories260K) {
  DSQ_REQUIRE_SHARED(shared);
  // GPTQ's Hessian is a BLAS product: its bytes are reproducible between runs on the same BLAS
  // kernels (the digest per kernel family OpenBLAS picks; add a row for another machine's). On a
  // CPU with AVX-512, OpenBLAS (0.3.21) takes AVX-512 paths whatever family it names: measured on
  // an AMD EPYC (Haswell by default; the others forced with OPENBLAS_CORETYPE).
  const std::string c9e9 = "c9e9e835c07f7bba3e87cb0add826d3e2e3280403fd4fd702be0f773d482a3d4";
  const std::string d232 = "232debe69bd211d7d288924860d7488d88a7caa190afb1eaa050715cadb52512";
  const std::string p887 = "887850168ce63dbe81ba1476c5947f967f65681e935e1e1d3b468c2c5d8c408b";
  const std::map<std::string, std::string> want = {
      {"SkylakeX+avx512", c9e9},   {"Haswell", d232},           {"Zen", d232},
      {"Haswell+avx512", c9e9},    {"Zen+avx512", c9e9},        {"Sandybridge+avx512", c9e9},
      {"Prescott", p887},          {"Prescott+avx512", p887},
  };
  const std::string core =
      linalg::blas_core_name() + (__builtin_cpu_supports("avx512f") ? "+avx512" : "");
  const auto it = want.find(core);
  ::dsq::testing::TempDir tmp;
  QuantizeOptions o = quiet_quantize_options(shared + "/models/stories260K/hf", tmp.file("q.dsq"),
                                             QuantDesc{4, 32, false});
  o.method = "gptq";
  o.method_options = {{"calib", shared + "/data/tinystories-calib.stories260K.u32"},
                      {"calib_samples", 16},
                      {"calib_len", 256}};
  run_quantize(o);
  const std::string got = tensor_digest(o.out_path);
  if (it == want.end()) GTEST_SKIP() << "no pinned GPTQ digest for OpenBLAS kernels '" << core << "' (this run: " << got << ")";
  EXPECT_EQ(got, it->second);
}

}  // namespace
}  // namespace dsq::jobs
