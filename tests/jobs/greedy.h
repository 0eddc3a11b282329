// The prompt ids and 12 greedy ids a model continues "Once upon a time" with (jobs::run_generate):
// what export tests compare to show that weights and tokenizer travelled together.
#pragma once

#include <string>
#include <vector>

#include "jobs/generate.h"

namespace dsq::jobs {

inline std::vector<int32_t> greedy(const std::string& model) {
  GenerateOptions o;
  o.model = model;
  o.prompt = "Once upon a time";
  o.n_new = 12;
  const GenerateResult r = run_generate(o);
  std::vector<int32_t> all = r.prompt_ids;
  all.insert(all.end(), r.new_ids.begin(), r.new_ids.end());
  return all;
}

}  // namespace dsq::jobs
