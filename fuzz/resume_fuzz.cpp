// The resume state of interrupted runs (OUT.partial/), which a full disk, a crash or a user's edit
// can damage: the calibration pipeline's state.json, block results (blk.L.dsq) and hidden states
// (acts.L.dsq), a training checkpoint (checkpoint.bin) and distillation's teacher cache
// (teacher.topk). The first byte picks the file; the rest is its content. A damaged file must be
// a dsq::Error naming it (or, for the cache, a miss: the labels are recomputed).
//
// Seeds come from the production writers: `DSQ_FUZZ_WRITE_SEEDS=DIR fuzz_resume -runs=0` writes
// one input of each kind to DIR (fuzz/make_corpus.sh).
#include <cstdlib>

#include "calibration/pipeline_workdir.h"
#include "fuzz/fuzz_util.h"
#include "lib/text/tokenizer.h"
#include "lib/train/adamw.h"
#include "lib/train/teacher_cache.h"
#include "lib/train/train_model.h"

namespace {
using namespace dsq;
using calibration::detail::BlockResult;
using calibration::detail::LinearResult;
using calibration::detail::WorkDir;

const nlohmann::json kRecipe = {{"method", "gptq"}, {"bits", 4}};
const nlohmann::json kCacheKey = {{"teacher", "fuzz"}, {"k", 2}};
constexpr int64_t kRows = 4, kD = 8;

std::vector<train::Param<float>> params() {
  std::vector<train::Param<float>> p(2);
  p[0].name = "blk.0.attn_q.weight";
  p[0].shape = {4, 4};
  p[1].name = "output_norm.weight";
  p[1].shape = {4};
  for (auto& q : p) {
    q.w.assign(static_cast<size_t>(shape_numel(q.shape)), 0.5f);
    q.g.assign(q.w.size(), 0.25f);
  }
  return p;
}

void write_seed(const std::string& dir, char kind, const std::string& file) {
  std::ofstream(dir + "/" + std::string(1, kind) + ".seed", std::ios::binary) << kind << text::load_text_file(file);
}

void write_seeds(const std::string& dir) {
  std::filesystem::create_directories(dir);
  const std::string w = fuzz::work_dir() + "/seed.partial";
  std::filesystem::remove_all(w);
  WorkDir wd(w, kRecipe, /*resume=*/false);
  BlockResult b;
  b.layer = 0;
  const std::vector<float> q(16, 0.25f), n(4, 1.0f), h(kRows * kD, -0.5f);
  LinearResult l;
  l.name = "blk.0.attn_q.weight";
  l.q = Tensor::from_f32({4, 4}, q);
  b.linears.push_back(std::move(l));
  b.replaced.emplace_back("blk.0.attn_norm.weight", Tensor::from_f32({4}, n));
  wd.save_block(b);
  wd.save_acts(0, h, kRows, kD);
  wd.commit(1);
  write_seed(dir, 's', w + "/state.json");
  write_seed(dir, 'b', w + "/blk.0.dsq");
  wd.save_acts(1, h, kRows, kD);
  write_seed(dir, 'a', w + "/acts.1.dsq");
  auto p = params();
  train::AdamWOptions o;
  o.total = 4;
  train::AdamW opt(o, p);
  opt.step(p);
  opt.save(w + "/checkpoint.bin", p, {{"train_seconds", 1.5}, {"curve", nlohmann::json::array()}});
  write_seed(dir, 'c', w + "/checkpoint.bin");
  const std::vector<float> logits = {0.f, 3.f, 1.f, 2.f, -1.f, 2.f, 2.f, 0.5f};
  train::TeacherCacheWriter tc(w + "/teacher.topk", 2, 4, 2, 1.0, kCacheKey);
  tc.add(logits.data(), 2);
  tc.finish();
  write_seed(dir, 't', w + "/teacher.topk");
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("DSQ_FUZZ_WRITE_SEEDS")) write_seeds(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char kind = static_cast<char>(data[0]);
  const std::string w = fuzz::work_dir() + "/out.partial";
  std::filesystem::remove_all(w);
  std::filesystem::create_directories(w);
  const auto put = [&](const std::string& name) {
    std::ofstream(w + "/" + name, std::ios::binary)
        .write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
    return w + "/" + name;
  };
  fuzz::expect_clean([&] {
    switch (kind) {
      case 's': {  // state.json, then the committed blocks it names
        put("state.json");
        WorkDir wd(w, kRecipe, /*resume=*/true);
        if (wd.completed() > 0 && wd.completed() < 4) (void)wd.load_block(0);
        break;
      }
      case 'b': {
        put("blk.0.dsq");
        const WorkDir wd(w, kRecipe, /*resume=*/true, /*writer=*/false);
        const BlockResult r = wd.load_block(0);
        for (const auto& l : r.linears) (void)l.q.nbytes();
        break;
      }
      case 'a': {
        put("acts.1.dsq");
        const WorkDir wd(w, kRecipe, /*resume=*/true, /*writer=*/false);
        const std::vector<float> h = wd.load_acts(1, kRows, kD);
        if (h.size() != static_cast<size_t>(kRows * kD)) std::abort();
        break;
      }
      case 'c': {
        const std::string path = put("checkpoint.bin");
        auto p = params();
        train::AdamW opt({}, p);
        (void)opt.load(path, p);
        if (opt.steps_done() < 0) std::abort();
        break;
      }
      case 't': {
        const std::string path = put("teacher.topk");
        const auto c = train::TeacherCache::open_if_matches(path, kCacheKey);
        if (c)  // a hit is used: every row's ids index the vocabulary
          for (int64_t r = 0; r < c->rows(); ++r) {
            const train::TeacherRow row = c->row(r);
            for (int64_t i = 0; i < row.k; ++i)
              if (row.ids[i] < 0 || row.ids[i] >= c->vocab() || !(row.logp[i] <= 0.0f)) std::abort();
          }
        break;
      }
      default: break;
    }
  });
  return 0;
}
