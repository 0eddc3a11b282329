// Quiet quantize options for tests that drive jobs::run_quantize (RTN unless the test changes
// the method).
#pragma once

#include <string>

#include "jobs/quantize.h"

namespace dsq::jobs {

inline QuantizeOptions quiet_quantize_options(const std::string& src, const std::string& out, QuantDesc d) {
  QuantizeOptions o;
  o.model_path = src;
  o.out_path = out;
  o.desc = d;
  o.progress = false;
  return o;
}

}  // namespace dsq::jobs
