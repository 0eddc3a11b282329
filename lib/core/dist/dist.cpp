#include "lib/core/dist.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <numeric>

#include "lib/core/error.h"

#if DSQ_WITH_MPI
#include <mpi.h>
#endif

namespace dsq::dist {
namespace {

int g_rank = 0, g_size = 1;
bool g_started = false;

// The size the launcher announced, 0 when none did.
int launcher_size() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* s = std::getenv(v)) return std::max(1, std::atoi(s));
  return std::getenv("PMIX_RANK") ? 1 : 0;
}

}  // namespace

bool built_with_mpi() { return DSQ_WITH_MPI != 0; }

void init([[maybe_unused]] int* argc, [[maybe_unused]] char*** argv) {
  if (g_started) return;
  const int n = launcher_size();
  if (n == 0) return;
#if DSQ_WITH_MPI
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  g_started = true;
#else
  if (n > 1)
    throw UsageError(strprintf("started as one of %d MPI processes, but this dsq was built without "
                               "MPI (install libopenmpi-dev and rebuild)", n));
#endif
}

void finalize() {
#if DSQ_WITH_MPI
  if (g_started) MPI_Finalize();
#endif
  g_started = false;
}

int rank() { return g_rank; }
int size() { return g_size; }

void bcast([[maybe_unused]] void* data, [[maybe_unused]] size_t bytes, [[maybe_unused]] int root) {
#if DSQ_WITH_MPI
  if (g_size == 1) return;
  auto* p = static_cast<char*>(data);
  constexpr size_t kChunk = size_t{1} << 30;
  for (size_t off = 0; off < bytes; off += kChunk) {
    const int n = static_cast<int>(std::min(kChunk, bytes - off));
    MPI_Bcast(p + off, n, MPI_BYTE, root, MPI_COMM_WORLD);
  }
#endif
}

void bcast(std::string& s, int root) {
  if (g_size == 1) return;
  uint64_t n = s.size();
  bcast(&n, sizeof n, root);
  s.resize(static_cast<size_t>(n));
  bcast(s.data(), s.size(), root);
}

void barrier() {
#if DSQ_WITH_MPI
  if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void abort_all(int code) {
#if DSQ_WITH_MPI
  if (g_started && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

std::vector<int> assign(const std::vector<double>& costs, int ranks) {
  DSQ_ASSERT(ranks >= 1, "assign: %d ranks", ranks);
  std::vector<size_t> order(costs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return costs[a] > costs[b]; });
  std::vector<double> load(static_cast<size_t>(ranks), 0.0);
  std::vector<int> owner(costs.size(), 0);
  for (const size_t i : order) {
    const auto least = std::min_element(load.begin(), load.end());  // first minimum: lowest rank
    owner[i] = static_cast<int>(least - load.begin());
    *least += costs[i];
  }
  return owner;
}

}  // namespace dsq::dist
