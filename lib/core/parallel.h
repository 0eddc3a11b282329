// Threading. dsq uses OpenMP; results never depend on the thread count because every parallel
// loop writes disjoint outputs and every reduction is done in a fixed order by the caller.
#pragma once

#include <exception>
#include <mutex>

namespace dsq {

// Set the number of threads for OpenMP and BLAS (0 = all cores).
void set_num_threads(int n);
int num_threads();

// Collects the first exception thrown inside a parallel region so it can be rethrown after the
// join: no exception may leave an OpenMP region.
class ParallelErrors {
 public:
  template <class F>
  void run(F&& f) noexcept {
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu_);
      if (!first_) first_ = std::current_exception();
    }
  }
  void rethrow() {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::mutex mu_;
  std::exception_ptr first_;
};

}  // namespace dsq
